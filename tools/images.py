"""Image input users can trust: one loader for photos and masks that normalises or refuses.

Every source (a path, bytes, a PIL image, a numpy array) takes one path, for photos and masks
alike: the size is checked from the header before a pixel is decoded (`probe_image` does only
that); JPEGs are decoded at the smallest scale that still covers the working size; the EXIF
orientation is applied; every bit depth and mode is scaled to 8 bits by its real range
(`tools.bit_depth`), never clipped. Photos become 8-bit RGB (alpha composited on white, and
said so in the notes), masks the project's mask type. Empty, truncated, non-image, too large,
too small and unsupported inputs raise `InvalidImageError` (or a subclass carrying the facts)
with one readable sentence.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tools.errors import ImageTooLargeError, InvalidImageError
from tools.image_limits import (  # DEFAULT_MAX_PIXELS and MIN_SIDE are also read from here
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    MIN_SIDE,
    check_image_size,
    check_max_side,
    working_size,
)
from tools.mask_ops import Mask, as_mask, fit_mask

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

SUPPORTED_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "BMP", "TIFF", "GIF", "PPM", "TGA")
"""MPO is the JPEG variant many phone cameras write (a JPEG plus preview frames)."""

ImageSource = str | Path | bytes
ImageInput = Any
"""An `ImageSource`, a PIL image or a numpy array ((H, W), (H, W, 1|2|3|4); any numeric dtype)."""

_TRANSPOSE_NAMES = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
                    6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}
"""EXIF orientation -> the PIL transpose that displays it upright (as `ImageOps.exif_transpose`)."""


@dataclass
class LoadedImage:
    """An RGB image plus what was done to make it so.

    `original_size` is the (W, H) as displayed (after the EXIF orientation) before any
    downscale to the working size; `scale` is the factor applied (1.0 when none was).
    """

    image: Image.Image
    notes: list[str] = field(default_factory=list)
    format: str | None = None
    original_size: tuple[int, int] | None = None
    scale: float = 1.0


@dataclass(frozen=True)
class ImageHeader:
    """What an image file says about itself before a pixel is decoded."""

    width: int
    height: int
    format: str | None
    mode: str
    orientation: int = 1

    @property
    def size(self) -> tuple[int, int]:
        """(W, H) as displayed: EXIF orientations 5-8 swap the sides."""
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height

    @property
    def pixels(self) -> int:
        return self.width * self.height


def probe_image(
    source: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS, what: str = "image"
) -> ImageHeader:
    """Read only the header of an image (or mask, `what="mask"`) and check its size.

    Refuses what `read_image` and `load_mask` would refuse before decoding: too many pixels
    (`ImageTooLargeError`), a side under `MIN_SIDE` (`ImageTooSmallError`), not an image or an
    unsupported format (`InvalidImageError`). Costs the file's bytes, never its pixels: call it
    before handing an upload to anything that decodes.
    """
    if _is_array(source) or _is_pil(source):
        return _in_memory_header(source, what, max_pixels)
    data, name = _source_bytes(source, what)
    with _pillow_errors(name, max_pixels):
        return _header(_open(data, name, max_pixels, what))


def read_image(
    source: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int | None = None
) -> LoadedImage:
    """Open, check and normalise an image into 8-bit RGB.

    `max_side` is the working size: the image is shrunk, keeping its aspect ratio, so its long
    side is at most `max_side` (JPEGs are decoded at a reduced scale toward it, which saves
    most of their memory), and refused (`ImageTooSmallError`) when its short side would then
    fall under `MIN_SIDE`.
    """
    from tools.bit_depth import to_8bit

    check_max_side(max_side)
    decoded = _decode(source, "image", max_pixels, max_side)
    image, notes = decoded.image, decoded.notes
    decoded.image = None  # the decoded pixels go as soon as their 8-bit copy exists
    image, converted = to_8bit(image)
    notes += converted
    target = decoded.working
    stored = target[::-1] if decoded.orientation in (5, 6, 7, 8) else target
    if image.size != stored:
        from PIL import Image as PILImage

        image = image.resize(stored, PILImage.Resampling.LANCZOS, reducing_gap=3.0)
    image = _orient(image, decoded.orientation, notes)
    image = _flatten(image, notes)
    if image is source:  # an RGB image given directly: the caller keeps theirs
        image = image.copy()
    for note in notes:
        logger.info("%s: %s", decoded.name, note)
    original = decoded.header.size
    return LoadedImage(image=image, notes=notes, format=decoded.header.format,
                       original_size=original, scale=target[0] / original[0])


def load_image(
    source: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int | None = None
) -> Image.Image:
    """`read_image` without the notes: an RGB PIL image."""
    return read_image(source, max_pixels=max_pixels, max_side=max_side).image


def load_mask(
    source: ImageInput, size: tuple[int, int] | None = None, *, resize: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Mask:
    """Read a mask (white = edit; a varying alpha channel counts as the painted area).

    The same path as `read_image`: header checked first, EXIF orientation applied (a mask
    saved with its photo's orientation tag fits the photo), any bit depth compared at its real
    range. `size` is the (W, H) of the image it belongs to; `tools.mask_ops.fit_mask` decides
    what a different size means: another aspect ratio is always refused (`InvalidMaskError`),
    the same aspect ratio at another scale is resized (nearest neighbour) only when `resize`
    is set.
    """
    decoded = _decode(source, "mask", max_pixels, None)
    mask = as_mask(decoded.image)
    if decoded.orientation in _TRANSPOSE_NAMES:
        from PIL import Image as PILImage

        mask = np.asarray(_orient(PILImage.fromarray(mask, "L"), decoded.orientation, []))
    if size is None:
        return mask
    return fit_mask(mask, size, resize=resize)


# --- the one decoding path -----------------------------------------------------------------------


@dataclass
class _Decoded:
    """Pixels as decoded (a PIL image of any mode in its stored orientation, or a mask's array)
    and what the header said."""

    image: Any
    header: ImageHeader
    name: str
    working: tuple[int, int]
    notes: list[str]

    @property
    def orientation(self) -> int:
        return self.header.orientation


def _decode(source: ImageInput, what: str, max_pixels: int, max_side: int | None) -> _Decoded:
    """Check the size from the header, then decode (JPEGs toward the working size)."""
    if _is_array(source) or _is_pil(source):
        name = _memory_name(what)
        header = _in_memory_header(source, what, max_pixels)
        working = working_size(header.size, max_side, name=name)
        if _is_array(source):  # a mask array keeps its raw values: `as_mask` reads them
            image = source if what == "mask" else _array_image(source, name)
            return _Decoded(image, header, name, working, [])
        with _pillow_errors(name, max_pixels):
            source.load()
        return _Decoded(source, header, name, working, [])
    data, name = _source_bytes(source, what)
    notes: list[str] = []
    with _pillow_errors(name, max_pixels):
        image = _open(data, name, max_pixels, what)
        header = _header(image)
        working = working_size(header.size, max_side, name=name)
        if getattr(image, "n_frames", 1) > 1:
            notes.append(f"{name} has {image.n_frames} frames; only the first is used")
        if image.format in ("JPEG", "MPO") and working != header.size:
            stored = working[::-1] if header.orientation in (5, 6, 7, 8) else working
            image.draft(image.mode, stored)
        image.load()
    return _Decoded(image, header, name, working, notes)


def _open(data: bytes, name: str, max_pixels: int, what: str) -> Image.Image:
    """`Image.open` (header only) with the size and format checked before any pixel is read."""
    from PIL import Image as PILImage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        image = PILImage.open(io.BytesIO(data))
    check_image_size(*image.size, name=name, max_pixels=max_pixels, min_side=_min_side(what))
    if image.format not in SUPPORTED_FORMATS:
        raise InvalidImageError(
            f"{name} is a {image.format} file, which is not supported; use one of "
            f"{', '.join(SUPPORTED_FORMATS)}"
        )
    return image


@contextlib.contextmanager
def _pillow_errors(name: str, max_pixels: int) -> Iterator[None]:
    """Every failure Pillow raises while opening or decoding, as our one sentence."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        yield
    except InvalidImageError:
        raise
    except PILImage.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise ImageTooLargeError(name, max_pixels,
                                 pixels=int(found.group(1)) if found else None) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"{name} is not an image file (or its format is unknown)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(
            f"{name} is damaged or truncated and cannot be read ({exc})"
        ) from exc


def _header(image: Image.Image) -> ImageHeader:
    return ImageHeader(width=image.size[0], height=image.size[1], format=image.format,
                       mode=image.mode, orientation=_orientation(image))


def _in_memory_header(source: Any, what: str, max_pixels: int) -> ImageHeader:
    """The header of a PIL image or an array given directly: checked before any conversion."""
    name = _memory_name(what)
    if _is_pil(source):
        width, height = source.size
        header = ImageHeader(width, height, getattr(source, "format", None), source.mode,
                             _orientation(source))
    else:
        shape = np.shape(source)
        if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 2, 3, 4)):
            raise InvalidImageError(
                f"{name} must be an (H, W) or (H, W, 1|2|3|4) array, got shape {tuple(shape)}"
            )
        height, width = int(shape[0]), int(shape[1])
        header = ImageHeader(width, height, None, "array")
    check_image_size(width, height, name=name, max_pixels=max_pixels, min_side=_min_side(what))
    return header


def _array_image(array: Any, name: str) -> Image.Image:
    """An array given directly as an 8-bit PIL image (scaled by its real range)."""
    from PIL import Image as PILImage

    from tools.bit_depth import array_to_8bit

    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    try:
        eight = array_to_8bit(array)
    except InvalidImageError as exc:
        raise InvalidImageError(f"{name}: {exc}") from None
    modes = {2: "L", 3: {2: "LA", 3: "RGB", 4: "RGBA"}}
    mode = modes[2] if eight.ndim == 2 else modes[3][eight.shape[2]]
    return PILImage.fromarray(np.ascontiguousarray(eight), mode)


def _orient(image: Image.Image, orientation: int, notes: list[str]) -> Image.Image:
    """`image` displayed upright for its EXIF `orientation` (the same rule for photos and masks)."""
    if orientation not in _TRANSPOSE_NAMES:
        return image
    from PIL import Image as PILImage

    notes.append("EXIF orientation applied")
    return image.transpose(getattr(PILImage.Transpose, _TRANSPOSE_NAMES[orientation]))


def _flatten(image: Image.Image, notes: list[str]) -> Image.Image:
    """An 8-bit L, LA, RGB or RGBA image as RGB, transparency composited on white band by band
    (no full-size RGBA copies)."""
    from PIL import Image as PILImage

    from tools.bit_depth import bands

    if image.mode not in ("LA", "RGBA"):
        return image if image.mode == "RGB" else image.convert("RGB")
    if image.getchannel("A").getextrema()[0] < 255:
        notes.append("transparent pixels composited on white")
    out = PILImage.new("RGB", image.size, (255, 255, 255))
    for top, bottom in bands(image.size):
        band = image.crop((0, top, image.size[0], bottom)).convert("RGBA")
        white = PILImage.new("RGBA", band.size, (255, 255, 255, 255))
        out.paste(PILImage.alpha_composite(white, band).convert("RGB"), (0, top))
    return out


def _is_pil(value: Any) -> bool:
    return hasattr(value, "mode") and hasattr(value, "size") and hasattr(value, "getexif")


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray)


def _min_side(what: str) -> int:
    """Images must reach `MIN_SIDE`; a mask only has to fit its image (see `check_image_size`)."""
    return 1 if what == "mask" else MIN_SIDE


def _memory_name(what: str) -> str:
    return f"the {what}"


def _source_bytes(source: ImageSource, what: str) -> tuple[bytes, str]:
    """The bytes of a path or an upload, and how to name it in a sentence."""
    if not isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        raise InvalidImageError(
            f"cannot read {'a mask' if what == 'mask' else 'an image'} from "
            f"{type(source).__name__}; give a path, bytes, a PIL image or a numpy array"
        )
    data, name = _read_bytes(source, what="a mask file" if what == "mask" else "an image file")
    if what == "mask" and not name.startswith("the "):
        name = f"mask {name}"  # not "mask the uploaded mask"
    return data, name


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


SHOWN_NAME_CHARS = 80
"""Longest file name an error quotes whole: a longer one (a pasted data: URI, a model's
run-on argument) is shown by its ends, so the sentence stays one line and echoes no payload."""


def shown_name(path: str | Path) -> str:
    """A file name as an error quotes it: whole when short, else its start and its end."""
    name = str(path)
    if len(name) <= SHOWN_NAME_CHARS:
        return name
    return f"{name[:40]}…{name[-30:]} ({len(name)} characters)"


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
    name = shown_name(path)
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


def _orientation(image: Any) -> int:
    """The EXIF orientation tag (1 = upright; anything unreadable counts as upright)."""
    try:
        value = int(image.getexif().get(0x0112, 1))
    except Exception:
        return 1
    return value if value in range(1, 9) else 1


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
