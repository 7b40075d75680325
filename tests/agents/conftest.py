from __future__ import annotations

import pytest
from PIL import Image

from tests.fakes.ollama_server import fake_ollama  # noqa: F401 - the shared fixture


@pytest.fixture
def image() -> Image.Image:
    """A 640x480 picture with a little structure (so its PNG is not trivial)."""
    picture = Image.new("RGB", (640, 480), (200, 220, 240))
    picture.paste((120, 80, 40), (200, 240, 360, 400))
    return picture
