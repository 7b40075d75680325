"""The one mask type and the operations on it: the mask primitives every layer uses.

Convention everywhere in this project: a mask is a `numpy.ndarray` of dtype uint8 and shape
(H, W), holding only 0 and 255, where 255 marks the area to edit (diffusers' white = generate).
`as_mask` is the single place other representations are converted into it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tools.errors import InvalidImageError, InvalidMaskError
from tools.types import Box

if TYPE_CHECKING:
    from PIL import Image

Mask = np.ndarray
"""uint8 array of shape (H, W) with values in {0, 255}; 255 = area to edit."""


def as_mask(value: Any, *, threshold: float = 0.5) -> Mask:
    """Convert a bool/integer/float array or a PIL image into the project's mask type.

    Arrays of bools and of 0/1 are taken as they are; other values are compared at `threshold`
    of their real range (`tools.bit_depth.value_range`: 0..255 for uint8, 0..65535 for
    uint16 and 16-bit images, 0..1 for floats that fit...), so a 25%-grey 16-bit mask means
    25% grey, as its 8-bit twin does. (H, W, 1) and (H, W, 3|4) arrays are reduced to one
    channel (alpha when it varies, else the brightest colour channel); PIL images the same way.
    """
    if hasattr(value, "mode") and hasattr(value, "size"):  # a PIL image
        return _image_mask(value, threshold)
    try:
        array = np.asarray(value)
    except Exception as exc:  # anything unconvertible is a bad mask
        raise InvalidMaskError(f"cannot read a mask from {type(value).__name__}") from exc
    if array.ndim == 3:
        if array.shape[2] == 4 and array[..., 3].min() != array[..., 3].max():
            array = array[..., 3]
        elif array.shape[2] in (1, 3, 4):
            array = array[..., : min(array.shape[2], 3)].max(axis=2)
        else:
            raise InvalidMaskError(f"a mask must have 1, 3 or 4 channels, got shape {array.shape}")
    if array.ndim != 2:
        raise InvalidMaskError(f"a mask must be a 2-D (H, W) array, got shape {array.shape}")
    if array.size == 0:
        raise InvalidMaskError("the mask is empty (zero pixels)")
    if array.dtype == bool:
        return _marked(array.copy())
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InvalidMaskError(f"a mask must hold numbers, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise InvalidMaskError("the mask holds NaN or infinite values")
    cut = _cut(array.dtype, float(array.min()), float(array.max()), threshold)
    return _marked(array > cut)


def _cut(dtype: np.dtype, low: float, high: float, threshold: float) -> float:
    """The raw value above which a pixel is marked: 0/1 integers are a binary mask."""
    from tools.bit_depth import value_range

    if np.issubdtype(dtype, np.integer) and low >= 0 and high <= 1:
        return 0.5
    return threshold * value_range(dtype, low, high)


def _marked(selected: np.ndarray) -> Mask:
    """A bool array made here (reused in place) as a mask, 255 where True, no wide temporary."""
    mask = np.ascontiguousarray(selected).view(np.uint8)
    mask *= 255
    return mask


def _image_mask(image: Image.Image, threshold: float) -> Mask:
    """A PIL image of any mode as a mask: high-depth modes compared band by band at their real
    range (no full-size copy), 8-bit modes reduced to one channel as arrays are."""
    from PIL import ImageChops

    from tools.bit_depth import HIGH_DEPTH_MODES, bands, raw_extrema, to_8bit

    if image.size[0] * image.size[1] == 0:
        raise InvalidMaskError("the mask is empty (zero pixels)")
    if image.mode in HIGH_DEPTH_MODES:
        try:
            low, high = raw_extrema(image)
        except InvalidImageError as exc:  # NaN or infinities
            raise InvalidMaskError(f"the mask: {exc}") from None
        dtype = np.asarray(image.crop((0, 0, 1, 1))).dtype
        cut = _cut(dtype, low, high, threshold)
        mask = np.empty((image.size[1], image.size[0]), np.uint8)
        for top, bottom in bands(image.size):
            mask[top:bottom] = _marked(np.asarray(image.crop((0, top, image.size[0], bottom))) > cut)
        return mask
    image, _ = to_8bit(image)
    if image.mode in ("LA", "RGBA"):
        alpha = image.getchannel("A")
        low, high = alpha.getextrema()
        if low != high:
            return as_mask(np.asarray(alpha), threshold=threshold)
        image = image.convert("L" if image.mode == "LA" else "RGB")
    if image.mode == "RGB":
        red, green, blue = image.split()
        image = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    return as_mask(np.asarray(image), threshold=threshold)


def check_mask(mask: Mask, size: tuple[int, int] | None = None) -> Mask:
    """Raise `InvalidMaskError` unless `mask` follows the convention (and fits `size` = (W, H))."""
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.ndim != 2:
        raise InvalidMaskError("a mask must be a uint8 (H, W) array; use tools.mask_ops.as_mask")
    if size is not None and (mask.shape[1], mask.shape[0]) != tuple(size):
        raise InvalidMaskError(
            f"the mask is {mask.shape[1]}x{mask.shape[0]} but the image is {size[0]}x{size[1]}"
        )
    return mask


def same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """True when (W, H) sizes `a` and `b` have one aspect ratio, up to a pixel of rounding."""
    (aw, ah), (bw, bh) = a, b
    # b's height at a's aspect ratio, compared with a pixel of slack on either rounding side
    return abs(aw * bh - ah * bw) <= max(aw, ah, bw, bh)


def fit_mask(mask: Mask, size: tuple[int, int], *, resize: bool = False) -> Mask:
    """`mask` fitted to an image of (W, H) `size`, or `InvalidMaskError` saying why it cannot be.

    The one rule every surface shares: a mask of another aspect ratio is refused (stretching it
    would edit the wrong pixels); one of the same aspect ratio at another scale (the source was
    downscaled on import) is resized with nearest-neighbour sampling when `resize` is set.
    """
    mask = as_mask(mask)
    have = (int(mask.shape[1]), int(mask.shape[0]))
    want = (int(size[0]), int(size[1]))
    if have == want:
        return mask
    if not same_aspect(have, want):
        raise InvalidMaskError(
            f"the mask is {have[0]}x{have[1]} but the image is {want[0]}x{want[1]}: its aspect "
            "ratio differs, and a mask is never stretched; draw it on this image"
        )
    if not resize:
        raise InvalidMaskError(
            f"the mask is {have[0]}x{have[1]} but the image is {want[0]}x{want[1]}; "
            "give a mask of the image's size"
        )
    from PIL import Image

    resized = Image.fromarray(mask).resize(want, Image.Resampling.NEAREST)
    return np.asarray(resized, dtype=np.uint8).copy()


def fit_user_mask(mask: Any, size: tuple[int, int], *, resize: bool = False) -> Mask:
    """A mask a person gave, fitted to (W, H) `size` by `fit_mask` and refused when it is empty."""
    fitted = fit_mask(mask, size, resize=resize)
    if not fitted.any():
        raise InvalidMaskError(
            "the mask is empty: it marks no pixels (all black); paint the area to edit white, "
            "or send no mask"
        )
    return fitted


# --- operations on masks -------------------------------------------------------------------------
# Every function below takes and returns the one mask type (uint8 (H, W), values {0, 255}) unless
# its docstring says otherwise, and never modifies its argument. Morphology uses square structuring
# elements, as the reference UI does; a `px` of N moves the edge by N pixels in every direction.

MaskShape = Literal["rect", "ellipse"]


def dilate(mask: Mask, px: int) -> Mask:
    """Grow the area to edit by `px` pixels (square element of side 2*px + 1).

    Removal needs this: a segmentation hugs the object, and its shadow and halo must go too.
    """
    return _morph(mask, px, grow=True)


def erode(mask: Mask, px: int) -> Mask:
    """Shrink the area to edit by `px` pixels (square element of side 2*px + 1).

    The image border does not erode the mask: an object cut by the frame keeps touching it.
    """
    return _morph(mask, px, grow=False)


def _morph(mask: Mask, px: int, *, grow: bool) -> Mask:
    """Dilate (`grow`) or erode by `px`; outside the image counts as kept when growing and as
    edited when shrinking, so the frame neither adds nor removes area."""
    import cv2

    _check_px(px, "px")
    check_mask(mask)
    if px == 0:
        return mask.copy()
    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    operation = cv2.dilate if grow else cv2.erode
    return operation(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0 if grow else 255)


def invert(mask: Mask) -> Mask:
    """Swap the edited and kept areas (a background edit is the inverse of the subject)."""
    check_mask(mask)
    return (255 - mask).astype(np.uint8)


def union(*masks: Mask) -> Mask:
    """Pixels marked in any of the masks; all masks must have the same shape."""
    if not masks:
        raise InvalidMaskError("`union` needs at least one mask")
    first = check_mask(masks[0])
    for other in masks[1:]:
        check_mask(other)
        if other.shape != first.shape:
            raise InvalidMaskError(
                f"cannot unite masks of shapes {first.shape} and {other.shape}: sizes must match"
            )
    return np.maximum.reduce([np.asarray(m) for m in masks]).astype(np.uint8)


def empty_mask(size: tuple[int, int]) -> Mask:
    """An all-zero mask for an image of `size` = (W, H): nothing to edit."""
    width, height = _check_size(size)
    return np.zeros((height, width), np.uint8)


def full_mask(size: tuple[int, int]) -> Mask:
    """An all-255 mask for an image of `size` = (W, H): edit everything (global edits)."""
    width, height = _check_size(size)
    return np.full((height, width), 255, np.uint8)


def bounding_box(mask: Mask) -> Box | None:
    """The smallest box holding every marked pixel (`x1`/`y1` exclusive), or None if empty."""
    check_mask(mask)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return Box(x0=int(cols[0]), y0=int(rows[0]), x1=int(cols[-1]) + 1, y1=int(rows[-1]) + 1)


def bounding_ellipse(mask: Mask) -> Mask:
    """The axis-aligned ellipse around the mask's bounding box, clipped to the image.

    The ellipse passes through the box's corners (semi-axes scaled by sqrt(2)), so it contains
    every marked pixel: a rounder, roomier region than the box for "make it bigger" edits.
    An empty mask stays empty.
    """
    box = bounding_box(mask)
    if box is None:
        return mask.copy()
    height, width = mask.shape
    cx, cy = (box.x0 + box.x1) / 2.0, (box.y0 + box.y1) / 2.0
    ax, ay = box.width / 2.0 * np.sqrt(2.0), box.height / 2.0 * np.sqrt(2.0)
    return _ellipse(width, height, cx, cy, ax, ay)


def shift(mask: Mask, dx: int, dy: int) -> Mask:
    """Move the mask `dx` pixels right and `dy` pixels down; what leaves the frame is lost."""
    check_mask(mask)
    height, width = mask.shape
    dx, dy = int(dx), int(dy)
    out = np.zeros_like(mask)
    if abs(dx) >= width or abs(dy) >= height:
        return out
    out[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = mask[
        max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
    ]
    return out


def from_box(box: Box, size: tuple[int, int], shape: MaskShape = "rect") -> Mask:
    """A mask for an image of `size` = (W, H) marking `box` (clipped to the image).

    `shape="ellipse"` marks the ellipse inscribed in the box (pixel centres inside it), which
    suits added objects better than a hard rectangle.
    """
    width, height = _check_size(size)
    if shape not in ("rect", "ellipse"):
        raise ValueError(f"`shape` must be 'rect' or 'ellipse', got {shape!r}")
    if shape == "ellipse":
        cx, cy = (box.x0 + box.x1) / 2.0, (box.y0 + box.y1) / 2.0
        return _ellipse(width, height, cx, cy, box.width / 2.0, box.height / 2.0)
    out = np.zeros((height, width), np.uint8)
    out[min(box.y0, height) : min(box.y1, height), min(box.x0, width) : min(box.x1, width)] = 255
    return out


def feather(mask: Mask, radius: int) -> np.ndarray:
    """A soft alpha for compositing: float32 (H, W) in [0, 1], 1 = edit; NOT a `Mask`.

    The mask is blurred with a Gaussian of kernel side 2*radius + 1 (sigma chosen by OpenCV),
    so the edge fades over about `radius` pixels on each side; radius 0 gives mask / 255.
    """
    import cv2

    _check_px(radius, "radius")
    check_mask(mask)
    alpha = mask.astype(np.float32) / 255.0
    if radius == 0:
        return alpha
    side = 2 * radius + 1
    return np.clip(cv2.GaussianBlur(alpha, (side, side), 0), 0.0, 1.0)


def area_fraction(mask: Mask) -> float:
    """Share of the image marked for editing, 0.0 to 1.0."""
    check_mask(mask)
    return float(np.count_nonzero(mask)) / float(mask.size)


REFERENCE_SIDE = 512
"""Pixel amounts in policies are given for a 512 x 512 image, the paper's working size."""


def scaled_px(px_at_512: float, size: tuple[int, int]) -> int:
    """Scale a pixel amount given at 512 x 512 to an image of `size` = (W, H).

    Scales with the geometric mean of the sides, so a 1024 x 1024 image gets twice the pixels;
    a positive amount never rounds down to 0.
    """
    width, height = _check_size(size)
    if px_at_512 < 0:
        raise ValueError(f"`px_at_512` must be >= 0, got {px_at_512}")
    if px_at_512 == 0:
        return 0
    scale = float(np.sqrt(width * height)) / REFERENCE_SIDE
    return max(1, int(round(px_at_512 * scale)))


def _check_px(px: int, name: str) -> None:
    if isinstance(px, bool) or not isinstance(px, (int, np.integer)) or px < 0:
        raise ValueError(f"`{name}` must be an integer >= 0, got {px!r}")


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`size` must be (width, height), got {size!r}") from exc
    if width <= 0 or height <= 0:
        raise ValueError(f"`size` must be positive (width, height), got {size!r}")
    return width, height


def _ellipse(width: int, height: int, cx: float, cy: float, ax: float, ay: float) -> Mask:
    """Pixels whose centres lie in the axis-aligned ellipse (centre cx, cy; semi-axes ax, ay)."""
    xs = (np.arange(width, dtype=np.float64) + 0.5 - cx) / max(ax, 1e-9)
    ys = (np.arange(height, dtype=np.float64) + 0.5 - cy) / max(ay, 1e-9)
    inside = ys[:, None] ** 2 + xs[None, :] ** 2 <= 1.0
    return np.where(inside, 255, 0).astype(np.uint8)
