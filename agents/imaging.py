"""How images are prepared for a model: bounded size, lossless PNG, masks made visible."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image


def fit_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(W, H) scaled down, keeping the aspect ratio, so neither side exceeds `max_side`."""
    width, height = size
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def downscale(image: Image.Image, max_side: int | None) -> Image.Image:
    """Shrink (never enlarge) so the longest side is at most `max_side`; RGB out."""
    from PIL import Image as PILImage

    rgb = image if image.mode == "RGB" else image.convert("RGB")
    target = fit_size(rgb.size, max_side)
    if target == rgb.size:
        return rgb
    return rgb.resize(target, PILImage.Resampling.LANCZOS)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(image: Image.Image) -> str:
    """A `data:image/png;base64,...` URL, the form LangChain content blocks accept."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def mask_image(mask: np.ndarray) -> Image.Image:
    """A project mask (uint8 HxW, 255 = edit) as a black/white RGB picture a VLM can look at."""
    from PIL import Image as PILImage

    from tools.mask_ops import as_mask

    return PILImage.fromarray(as_mask(mask), mode="L").convert("RGB")


def snap_to_multiple(image: Image.Image, multiple: int, max_side: int) -> Image.Image:
    """Resize so both sides are multiples of `multiple` and at most `max_side` (qwen2.5vl's grid)."""
    from PIL import Image as PILImage

    width, height = fit_size(image.size, max_side)
    width = max(multiple, round(width / multiple) * multiple)
    height = max(multiple, round(height / multiple) * multiple)
    while max(width, height) > max_side and max(width, height) > multiple:
        if width >= height:
            width -= multiple
        else:
            height -= multiple
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if (width, height) == rgb.size:
        return rgb
    return rgb.resize((width, height), PILImage.Resampling.LANCZOS)
