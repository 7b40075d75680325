"""Image input users can trust: one loader that normalises or refuses, with a clear reason.

EXIF orientation is applied; every mode is converted to 8-bit RGB (alpha composited on white,
and said so in the notes); a pixel-count limit guards against decompression bombs; empty,
truncated, non-image and unsupported files raise `InvalidImageError` with one readable sentence.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tools.errors import InvalidImageError
from tools.mask_ops import Mask, as_mask, fit_mask

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 40_000_000
"""40 megapixels: larger than any photo we expect, far below what would exhaust memory."""
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""256 MiB: a 40-megapixel uncompressed TIFF fits; reading stops as soon as a file passes it."""
MIN_SIDE = 8
SUPPORTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "PPM", "TGA")

ImageSource = str | Path | bytes


@dataclass
class LoadedImage:
    """An RGB image plus what was done to make it so."""

    image: Image.Image
    notes: list[str] = field(default_factory=list)
    format: str | None = None


def read_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Open, check and normalise an image from a path or bytes into 8-bit RGB."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    data, name = _read_bytes(source)
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format
            width, height = image.size
            if width * height > max_pixels:
                raise InvalidImageError(
                    f"{name} is {width}x{height} ({width * height:,} pixels), over the limit of "
                    f"{max_pixels:,} pixels; downscale it first"
                )
            if fmt not in SUPPORTED_FORMATS:
                raise InvalidImageError(
                    f"{name} is a {fmt} file, which is not supported; use one of "
                    f"{', '.join(SUPPORTED_FORMATS)}"
                )
            image.load()
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(
            f"{name} is over the limit of {max_pixels:,} pixels and too large to open safely"
        ) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"{name} is not an image file (or its format is unknown)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(
            f"{name} is damaged or truncated and cannot be read ({exc})"
        ) from exc
    if min(width, height) < MIN_SIDE:
        raise InvalidImageError(
            f"{name} is {width}x{height}; both sides must be at least {MIN_SIDE} px"
        )
    if getattr(image, "n_frames", 1) > 1:
        notes.append(f"{name} has {image.n_frames} frames; only the first is used")
    if _orientation(image) not in (0, 1):
        image = ImageOps.exif_transpose(image)
        notes.append("EXIF orientation applied")
    image = _to_rgb(image, notes)
    for note in notes:
        logger.info("%s: %s", name, note)
    return LoadedImage(image=image, notes=notes, format=fmt)


def load_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """`read_image` without the notes: an RGB PIL image."""
    return read_image(source, max_pixels=max_pixels).image


def load_mask(
    source: ImageSource, size: tuple[int, int] | None = None, *, resize: bool = False
) -> Mask:
    """Read a mask file (white = edit; a varying alpha channel counts as the painted area).

    `size` is the (W, H) of the image it belongs to; `tools.mask_ops.fit_mask` decides what a
    different size means: another aspect ratio is always refused (`InvalidMaskError`), the same
    aspect ratio at another scale is resized (nearest neighbour) only when `resize` is set.
    """
    from PIL import Image, UnidentifiedImageError

    data, name = _read_bytes(source, what="a mask file")
    name = name if name.startswith("the ") else f"mask {name}"  # not "mask the uploaded mask"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            raw = Image.open(io.BytesIO(data))
            if raw.size[0] * raw.size[1] > DEFAULT_MAX_PIXELS:
                raise InvalidImageError(
                    f"{name} is {raw.size[0]}x{raw.size[1]}, over the limit of "
                    f"{DEFAULT_MAX_PIXELS:,} pixels"
                )
            raw.load()
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(f"{name} is too large to open safely") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"{name} is not an image file") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"{name} is damaged or truncated ({exc})") from exc
    mask = as_mask(raw)
    if size is None:
        return mask
    return fit_mask(mask, size, resize=resize)


def content_hash(image: Image.Image) -> str:
    """SHA-256 of the pixels, size and mode: the same picture always gets the same id."""
    digest = hashlib.sha256()
    digest.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def _read_bytes(
    source: ImageSource, *, max_bytes: int = DEFAULT_MAX_BYTES, what: str = "an image file"
) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = "the uploaded image" if what == "an image file" else "the uploaded mask"
        if len(data) > max_bytes:
            raise InvalidImageError(
                f"{name} is {len(data):,} bytes, over the limit of {max_bytes:,} bytes"
            )
    else:
        name = str(source)
        data = read_user_file(source, max_bytes=max_bytes, what=what)
    if not data:
        raise InvalidImageError(f"{name} is empty (0 bytes)")
    return data, name


def read_user_file(
    source: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, what: str = "a file"
) -> bytes:
    """The bytes of a regular file a user named, refusing anything else in one sentence.

    Devices (`/dev/zero`, or a symlink to one), FIFOs, sockets and folders are refused before a
    byte is read: the file is opened non-blocking (so a FIFO cannot hang the open) and checked
    with `fstat` on the open descriptor (so a swapped path cannot slip past). The size cap is
    checked while reading, so a file that grows, or lies about its size, cannot exhaust memory.
    """
    path = Path(source)
    name = str(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InvalidImageError(f"{name} does not exist") from None
    except OSError as exc:
        raise InvalidImageError(f"{name} cannot be read ({exc.strerror or exc})") from None
    kind = _special_kind(info.st_mode)
    if kind == "a folder":
        raise InvalidImageError(f"{name} is a folder, not {what}")
    if kind is not None:
        raise InvalidImageError(f"{name} is {kind}, not a regular file; give {what}")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise InvalidImageError(f"{name} cannot be read ({exc.strerror or exc})") from None
    try:
        kind = _special_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise InvalidImageError(f"{name} is {kind}, not a regular file; give {what}")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise InvalidImageError(
                    f"{name} is over the limit of {max_bytes:,} bytes; use a smaller file"
                )
    except OSError as exc:
        raise InvalidImageError(f"{name} cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def _special_kind(mode: int) -> str | None:
    """None for a regular file, else what the file is, in words."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:
        return 1


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    from PIL import Image

    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        if mode == "F" and array.max(initial=0) <= 1.0:
            top = 1.0
        array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        notes.append(f"{mode} image scaled to 8 bits")
        return Image.fromarray(array, "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba)[..., 3]
        if alpha.min() < 255:
            notes.append("transparent pixels composited on white")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
    elif mode not in ("L", "P", "1"):
        notes.append(f"{mode} converted to RGB")
    return image.convert("RGB")


ImageLike = Any
"""A PIL image, a uint8 (H, W, C) array (0..255) or a float (H, W, C) array (0..1)."""


def to_float_image(image: ImageLike) -> np.ndarray:
    """(H, W, C) float64 in [0, 1] from a PIL image or an array (uint8 is divided by 255)."""
    if hasattr(image, "mode") and hasattr(image, "size"):
        pil: Image.Image = image
        array = np.asarray(pil.convert("RGB"))
    else:
        array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(f"an image must be (H, W) or (H, W, C), got shape {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    if np.issubdtype(array.dtype, np.floating):
        if array.size and (array.min() < 0.0 or array.max() > 1.0):
            raise ValueError("float images must hold values in [0, 1]")
        return array.astype(np.float64)
    raise ValueError(f"images must be uint8 or float arrays, got dtype {array.dtype}")
