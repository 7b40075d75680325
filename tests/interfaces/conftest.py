"""Offline components for the interface tests: rule planner, OpenCV inpainter, user masks."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def make_image(width: int = 96, height: int = 64) -> np.ndarray:
    """A gradient with a dark square: something for OpenCV to paint over."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 128)], axis=-1)
    image[20:40, 30:60] = 20
    return image.astype(np.uint8)


def make_mask(width: int = 96, height: int = 64) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[18:42, 28:62] = 255
    return mask


@pytest.fixture
def image_png() -> bytes:
    return png(make_image())


@pytest.fixture
def mask_png() -> bytes:
    return png(make_mask())


@pytest.fixture
def offline_factory(tmp_path) -> Iterator[Callable[[], Any]]:
    """A components factory with no model weights and no Ollama (built once, closed after)."""
    from graphs import Settings, build_components

    built: list[Any] = []

    def factory() -> Any:
        if not built:
            settings = Settings(data_dir=tmp_path / "data", _env_file=None)
            built.append(
                build_components(settings, inpainter="opencv", planner="rules", segmenter=False)
            )
        return built[0]

    yield factory
    for components in built:
        components.close()


@pytest.fixture
def components(offline_factory) -> Any:
    return offline_factory()


@pytest.fixture
def files(tmp_path):
    """A picture and its object mask written as in.png and mask.png, for the CLI tests."""
    from PIL import Image

    from tests.graphs.helpers import object_mask, picture

    image, mask = tmp_path / "in.png", tmp_path / "mask.png"
    picture().save(image)
    Image.fromarray(object_mask()).save(mask)
    return image, mask

LOOPBACK = "http://localhost"
"""TestClient's base URL: a host name the API answers (its default, `testserver`, gets 421
from the Host guard, as any name but loopback's does without BRUSHEDIT_ALLOWED_HOSTS)."""
