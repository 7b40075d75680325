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


def smart_resize(
    width: int, height: int, factor: int, min_pixels: int | None, max_pixels: int | None
) -> tuple[int, int]:
    """(W, H) a Qwen-style processor resizes a picture to: sides rounded to multiples of
    `factor`, then scaled (keeping the aspect ratio) into [`min_pixels`, `max_pixels`].

    Follows `smart_resize` of Qwen2.5-VL's processor; a size it returns maps to itself, so a
    picture sent at that size reaches the model unchanged.
    """
    import math

    w_bar = max(factor, round(width / factor) * factor)
    h_bar = max(factor, round(height / factor) * factor)
    if max_pixels and w_bar * h_bar > max_pixels:
        beta = math.sqrt(width * height / max_pixels)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
    elif min_pixels and w_bar * h_bar < min_pixels:
        beta = math.sqrt(min_pixels / (width * height))
        w_bar = math.ceil(width * beta / factor) * factor
        h_bar = math.ceil(height * beta / factor) * factor
    return w_bar, h_bar


LLAVA_PAD_RGB = (122, 116, 104)
"""LLaVA's `expand2square` fill: its image processor's mean colour (0.481, 0.458, 0.408)."""


def pad_to_square(image: Image.Image, fill: tuple[int, int, int] = LLAVA_PAD_RGB) -> Image.Image:
    """The picture centred on a square of side max(W, H), as LLaVA-1.5 pads it; RGB out."""
    from PIL import Image as PILImage

    rgb = image if image.mode == "RGB" else image.convert("RGB")
    side = max(rgb.size)
    if rgb.width == rgb.height:
        return rgb
    square = PILImage.new("RGB", (side, side), fill)
    square.paste(rgb, ((side - rgb.width) // 2, (side - rgb.height) // 2))
    return square
