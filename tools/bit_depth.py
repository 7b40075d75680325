"""Any bit depth Pillow reads, or numpy holds, scaled to 8 bits by its real range, never clipped.

Pillow's own `convert("L")` clips 16-bit and float pixels at 255, so a 25%-grey 16-bit mask
(16384) became white and edited the whole image. Here every high-depth value is scaled:

- `I;16`, `I;16B`, `I;16L`, `I;16N` and `uint16` arrays: 0..65535 (their declared depth);
- `I` (32-bit int) and wider integer arrays: the smallest of 0..255, 0..65535 and 0..2**31-1
  that holds the values (Pillow opens 16-bit TIFF, PPM and converted images as `I`);
- `F` and float arrays: 0..1 when the values fit, else 0..255, else 0..65535, else 0..max;
- negative values count as 0; NaN and infinities are refused.

High-depth images are converted in bands of about a megapixel, so no full-size float or
int64 copy is ever made: converting costs the 8-bit result plus one band.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from tools.errors import InvalidImageError

if TYPE_CHECKING:
    from PIL import Image

HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
"""Single-channel modes with more than 8 bits per pixel."""
EIGHT_BIT_MODES = ("L", "LA", "RGB", "RGBA")
BAND_PIXELS = 1 << 20
"""Pixels converted at a time (one band of rows)."""
_INT_RANGES = (255, 65535, 2**31 - 1)
_FLOAT_RANGES = (1.0, 255.0, 65535.0)


def value_range(dtype: np.dtype, low: float, high: float) -> float:
    """The full-scale value of data of `dtype` whose values span [`low`, `high`]."""
    dtype = np.dtype(dtype).newbyteorder("=")
    if dtype == np.bool_:
        return 1.0
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if np.issubdtype(dtype, np.integer):
        return float(next((top for top in _INT_RANGES if high <= top), np.iinfo(dtype).max))
    if not (np.isfinite(low) and np.isfinite(high)):
        raise InvalidImageError("the image holds NaN or infinite values")
    return float(next((top for top in _FLOAT_RANGES if high <= top), high))


def array_to_8bit(array: np.ndarray) -> np.ndarray:
    """`array` (any numeric dtype, any shape) as uint8, scaled from its `value_range`."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        out = array.astype(np.uint8)
        out *= 255
        return out
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InvalidImageError(f"pixels must be numbers, got dtype {array.dtype}")
    if array.size == 0:
        return np.zeros(array.shape, np.uint8)
    low, high = _extrema(array)
    return _scaled(array, value_range(array.dtype, low, high))


def _extrema(array: np.ndarray) -> tuple[float, float]:
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise InvalidImageError("the image holds NaN or infinite values")
    return float(array.min()), float(array.max())


def _scaled(array: np.ndarray, top: float) -> np.ndarray:
    """round(clip(array, 0, top) * 255 / top) as uint8, a band at a time (no wide copy)."""
    if array.dtype.itemsize <= 2 and np.issubdtype(array.dtype, np.unsignedinteger):
        return _lookup(int(top), array.dtype.itemsize)[array]
    out = np.empty(array.shape, np.uint8)
    flat_in, flat_out = array.reshape(-1), out.reshape(-1)
    for start in range(0, flat_in.size, BAND_PIXELS):
        band = np.multiply(flat_in[start : start + BAND_PIXELS], 255.0 / top, dtype=np.float32)
        band += 0.5
        np.clip(band, 0.0, 255.0, out=band)
        flat_out[start : start + BAND_PIXELS] = band
    return out


@functools.lru_cache(maxsize=4)
def _lookup(top: int, itemsize: int) -> np.ndarray:
    """The 8-bit value of every 8- or 16-bit raw value at full scale `top`."""
    values = np.arange(1 << (8 * itemsize), dtype=np.int64)
    return ((np.minimum(values, top) * 255 + top // 2) // top).astype(np.uint8)


def to_8bit(image: Image.Image) -> tuple[Image.Image, list[str]]:
    """`image` in an 8-bit mode (L, LA, RGB or RGBA; alpha kept), plus what was done, in words.

    High-depth modes are scaled by their real range (see the module doc); palettes become RGB,
    or RGBA when they carry transparency; CMYK, YCbCr, LAB and HSV become RGB.
    """
    mode = image.mode
    if mode in EIGHT_BIT_MODES:
        return image, []
    if mode in HIGH_DEPTH_MODES:
        return high_depth_to_l(image), [f"{mode} image scaled to 8 bits"]
    if mode == "1":
        return image.convert("L"), []
    if mode in ("P", "PA"):
        keeps_alpha = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if keeps_alpha else "RGB"), []
    if mode in ("La", "RGBa"):  # premultiplied alpha
        return image.convert("LA" if mode == "La" else "RGBA"), []
    if mode == "RGBX":
        return image.convert("RGB"), []
    return image.convert("RGB"), [f"{mode} converted to RGB"]


def high_depth_to_l(image: Image.Image) -> Image.Image:
    """A high-depth single-channel image as mode L, scaled by its real range, band by band."""
    from PIL import Image as PILImage

    dtype = np.asarray(image.crop((0, 0, 1, 1))).dtype
    # 16-bit modes declare their depth: no need to look at the values
    scale = 65535.0 if image.mode.startswith("I;16") else value_range(dtype, *raw_extrema(image))
    out = PILImage.new("L", image.size)
    for top, bottom in bands(image.size):
        band = np.asarray(image.crop((0, top, image.size[0], bottom)))
        out.paste(PILImage.fromarray(_scaled(band, scale), "L"), (0, top))
    return out


def raw_extrema(image: Image.Image) -> tuple[float, float]:
    """(min, max) of a high-depth image's raw values; NaN or infinities are refused."""
    if image.mode in ("I;16", "I"):  # modes Pillow's own (fast) extrema read
        low, high = image.getextrema()
        return float(low), float(high)
    low, high = np.inf, -np.inf
    for top, bottom in bands(image.size):
        band_low, band_high = _extrema(np.asarray(image.crop((0, top, image.size[0], bottom))))
        low, high = min(low, band_low), max(high, band_high)
    return float(low), float(high)


def bands(size: tuple[int, int]) -> list[tuple[int, int]]:
    """(top, bottom) row ranges of about `BAND_PIXELS` pixels each."""
    width, height = size
    rows = max(1, BAND_PIXELS // max(width, 1))
    return [(top, min(top + rows, height)) for top in range(0, height, rows)]
