"""The one mask type and the operations on it.

Convention everywhere in this project: a mask is a `numpy.ndarray` of dtype uint8 and shape
(H, W), holding only 0 and 255, where 255 marks the area to edit (diffusers' white = generate).
`as_mask` is the single place other representations are converted into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools.errors import InvalidMaskError, InvalidRequestError
from tools.types import Box, EditCategory, EditPlan

if TYPE_CHECKING:
    from PIL import Image

    from tools.segment import Segmentation, Segmenter

Mask = np.ndarray
"""uint8 array of shape (H, W) with values in {0, 255}; 255 = area to edit."""


def as_mask(value: Any, *, threshold: float = 0.5) -> Mask:
    """Convert a bool/uint8/float array or a PIL image into the project's mask type.

    Arrays of bools, of 0/1, of 0..255 and of floats in [0, 1] are accepted; (H, W, 1) and
    (H, W, 3|4) arrays are reduced to one channel (max over RGB; alpha when it varies).
    `threshold` is a fraction of the full value range.
    """
    array = _to_array(value)
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
        return np.where(array, 255, 0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InvalidMaskError("the mask holds NaN or infinite values")
        top = 1.0 if array.max(initial=0.0) <= 1.0 else 255.0
    else:
        top = 1 if array.max(initial=0) <= 1 else 255
    return np.where(array > threshold * top, 255, 0).astype(np.uint8)


def _to_array(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "mode") and hasattr(value, "size"):  # a PIL image
        image: Image.Image = value
        if image.mode in ("RGBA", "LA", "PA"):
            return np.asarray(image.convert("RGBA"))
        return np.asarray(image.convert("L"))
    try:
        return np.asarray(value)
    except Exception as exc:  # anything unconvertible is a bad mask
        raise InvalidMaskError(f"cannot read a mask from {type(value).__name__}") from exc


def check_mask(mask: Mask, size: tuple[int, int] | None = None) -> Mask:
    """Raise `InvalidMaskError` unless `mask` follows the convention (and fits `size` = (W, H))."""
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.ndim != 2:
        raise InvalidMaskError("a mask must be a uint8 (H, W) array; use tools.masks.as_mask")
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


# --- operations on masks -------------------------------------------------------------------------
# Every function below takes and returns the one mask type (uint8 (H, W), values {0, 255}) unless
# its docstring says otherwise, and never modifies its argument. Morphology uses square structuring
# elements, as the reference UI does; a `px` of N moves the edge by N pixels in every direction.

MaskShape = Literal["rect", "ellipse"]


def dilate(mask: Mask, px: int) -> Mask:
    """Grow the area to edit by `px` pixels (square element of side 2*px + 1).

    Removal needs this: a segmentation hugs the object, and its shadow and halo must go too.
    """
    import cv2

    _check_px(px, "px")
    check_mask(mask)
    if px == 0:
        return mask.copy()
    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return cv2.dilate(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)


def erode(mask: Mask, px: int) -> Mask:
    """Shrink the area to edit by `px` pixels (square element of side 2*px + 1).

    The image border does not erode the mask: an object cut by the frame keeps touching it.
    """
    import cv2

    _check_px(px, "px")
    check_mask(mask)
    if px == 0:
        return mask.copy()
    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return cv2.erode(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=255)


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


# --- which mask an edit plan gets ---------------------------------------------------------------

DEFAULT_BOX_THRESHOLDS = (0.3, 0.25, 0.2, 0.15, 0.1, 0.05)
"""GroundingDINO box thresholds tried in turn until something is found (the reference's list)."""

MaskSource = Literal["user", "segmentation", "box", "full", "inverted_foreground"]


class MaskPolicy(BaseModel):
    """How a plan becomes a mask; the graph's retry passes a relaxed copy (`relaxed()`)."""

    model_config = ConfigDict(frozen=True)

    removal_dilation_px: int = Field(
        default=15, ge=0, le=512, description="Removal dilation at 512 px, scaled with image size."
    )
    local_dilation_px: int = Field(
        default=3, ge=0, le=512, description="Local-edit dilation at 512 px, scaled with size."
    )
    union_boxes: bool = Field(
        default=False, description="Unite every matching box instead of keeping the best one."
    )
    box_thresholds: tuple[float, ...] = Field(
        default=DEFAULT_BOX_THRESHOLDS, description="Detector box thresholds, tried in order."
    )
    text_threshold: float = Field(default=0.25, ge=0.0, le=1.0)
    addition_shape: MaskShape = Field(
        default="rect", description="Shape drawn in the box of an addition."
    )
    background_fallback_phrase: str | None = Field(
        default="person. animal. object.",
        description="Foreground to look for when the plan's subject is missing or not found.",
    )

    @field_validator("box_thresholds")
    @classmethod
    def _thresholds_in_range(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("`box_thresholds` needs at least one threshold")
        if any(not 0.0 <= t <= 1.0 for t in value):
            raise ValueError(f"`box_thresholds` must lie in [0, 1], got {value}")
        return value

    def relaxed(self) -> MaskPolicy:
        """A more permissive copy for a retry: thresholds down to 0, united boxes, 1.5x dilation."""
        thresholds = (
            self.box_thresholds
            if 0.0 in self.box_thresholds
            else (
                *self.box_thresholds,
                0.0,
            )
        )
        return self.model_copy(
            update={
                "box_thresholds": thresholds,
                "union_boxes": True,
                "removal_dilation_px": min(512, round(self.removal_dilation_px * 1.5)),
                "local_dilation_px": min(512, round(self.local_dilation_px * 1.5)),
            }
        )


@dataclass
class MaskProposal:
    """The mask chosen for a plan, where it came from, and what was tried on the way."""

    mask: Mask
    source: MaskSource
    found: bool
    category: EditCategory
    segmentations: list[Segmentation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description for traces (no arrays)."""
        box = bounding_box(self.mask)
        return {
            "source": self.source,
            "found": self.found,
            "category": self.category.value,
            "area_fraction": round(area_fraction(self.mask), 6),
            "bbox": list(box.as_tuple()) if box is not None else None,
            "size": [int(self.mask.shape[1]), int(self.mask.shape[0])],
            "notes": list(self.notes),
            "segmentations": [s.summary() for s in self.segmentations],
        }


def propose_mask(
    plan: EditPlan,
    image: Image.Image,
    segmenter: Segmenter | None,
    *,
    box: Box | None = None,
    user_mask: Any = None,
    policy: MaskPolicy | None = None,
) -> MaskProposal:
    """Pick the mask for `plan` on `image` following the per-category policy.

    A user mask always wins. Removal: the object's segmentation, dilated. Local: the object's
    segmentation, slightly dilated. Background: the inverse of the subject (`plan.object`) found
    with every box united. Global: the whole image. Addition: `box` (else `plan.box`) drawn as
    a rectangle or ellipse. Segmentation finding nothing is a normal outcome: the proposal then
    has `found=False` (and an empty mask for removal/local) and the caller decides.
    """
    policy = policy or MaskPolicy()
    size = (int(image.size[0]), int(image.size[1]))
    category = plan.category
    if user_mask is not None:
        return _user_proposal(user_mask, size, category)
    if category is EditCategory.GLOBAL:
        return MaskProposal(
            full_mask(size), "full", True, category, notes=["global edit: the whole image"]
        )
    if category is EditCategory.ADDITION:
        return _addition_proposal(plan, box, size, policy)
    if segmenter is None:
        raise InvalidRequestError(
            f"a {category.value} edit needs a segmenter (or a user mask) to find its region"
        )
    if category is EditCategory.BACKGROUND:
        return _background_proposal(plan, image, segmenter, size, policy)
    return _object_proposal(plan, image, segmenter, size, policy)


def mask_for_plan(
    plan: EditPlan,
    image: Image.Image,
    segmenter: Segmenter | None,
    box: Box | None = None,
    user_mask: Any = None,
    policy: MaskPolicy | None = None,
) -> Mask:
    """`propose_mask(...).mask`, for callers that need only the mask."""
    return propose_mask(plan, image, segmenter, box=box, user_mask=user_mask, policy=policy).mask


def _user_proposal(user_mask: Any, size: tuple[int, int], category: EditCategory) -> MaskProposal:
    notes = ["user mask"]
    mask = as_mask(user_mask)
    if (mask.shape[1], mask.shape[0]) != size:
        notes.append(
            f"user mask resized from {mask.shape[1]}x{mask.shape[0]} to {size[0]}x{size[1]}"
        )
        mask = fit_mask(mask, size, resize=True)  # another aspect ratio: refused, not stretched
    check_mask(mask, size)
    if not mask.any():
        raise InvalidMaskError(
            "the user mask marks no pixels (it is all black); paint the area to edit in white"
        )
    return MaskProposal(mask, "user", True, category, notes=notes)


def _addition_proposal(
    plan: EditPlan, box: Box | None, size: tuple[int, int], policy: MaskPolicy
) -> MaskProposal:
    chosen = box if box is not None else plan.box
    if chosen is None:
        raise InvalidRequestError(
            "an addition needs a box saying where to put the new object; the plan has none "
            "(pass `box=` or set `plan.box`)"
        )
    try:
        clamped = Box.clamped(chosen.x0, chosen.y0, chosen.x1, chosen.y1, size[0], size[1])
    except ValueError as exc:
        raise InvalidRequestError(
            f"the addition box {chosen.as_tuple()} lies outside the {size[0]}x{size[1]} image"
        ) from exc
    notes = [f"addition box {clamped.as_tuple()} drawn as {policy.addition_shape}"]
    if clamped != chosen:
        notes.append(f"box {chosen.as_tuple()} clamped to the image")
    mask = from_box(clamped, size, policy.addition_shape)
    return MaskProposal(mask, "box", True, EditCategory.ADDITION, notes=notes)


def _object_proposal(
    plan: EditPlan,
    image: Image.Image,
    segmenter: Segmenter,
    size: tuple[int, int],
    policy: MaskPolicy,
) -> MaskProposal:
    category = plan.category
    phrase = (plan.object or "").strip()
    if not phrase:
        return MaskProposal(
            empty_mask(size),
            "segmentation",
            False,
            category,
            notes=[f"the plan names no object to segment for a {category.value} edit"],
        )
    seg = segmenter.segment(
        image,
        phrase,
        box_thresholds=policy.box_thresholds,
        text_threshold=policy.text_threshold,
        union=policy.union_boxes,
    )
    if not seg.found:
        return MaskProposal(
            empty_mask(size),
            "segmentation",
            False,
            category,
            segmentations=[seg],
            notes=[f"nothing found for {seg.phrase!r} at thresholds {list(seg.thresholds_tried)}"],
        )
    at_512 = (
        policy.removal_dilation_px if category is EditCategory.REMOVAL else policy.local_dilation_px
    )
    px = scaled_px(at_512, size)
    mask = dilate(seg.mask, px) if px else seg.mask.copy()
    notes = [f"{seg.phrase!r} found at box threshold {seg.threshold}; dilated {px} px"]
    return MaskProposal(mask, "segmentation", True, category, segmentations=[seg], notes=notes)


def _background_proposal(
    plan: EditPlan,
    image: Image.Image,
    segmenter: Segmenter,
    size: tuple[int, int],
    policy: MaskPolicy,
) -> MaskProposal:
    category = EditCategory.BACKGROUND
    segmentations: list[Segmentation] = []
    notes: list[str] = []
    phrases = [p for p in ((plan.object or "").strip(), policy.background_fallback_phrase) if p]
    if not (plan.object or "").strip():
        notes.append("the plan names no subject to keep")
    for phrase in phrases:
        seg = segmenter.segment(
            image,
            phrase,
            box_thresholds=policy.box_thresholds,
            text_threshold=policy.text_threshold,
            union=True,
        )
        segmentations.append(seg)
        if not seg.found:
            notes.append(f"no foreground found for {seg.phrase!r}")
            continue
        background = invert(seg.mask)
        if not background.any():
            notes.append(f"{seg.phrase!r} covers the whole image; no background left")
            continue
        notes.append(f"background = everything but {seg.phrase!r}")
        return MaskProposal(background, "inverted_foreground", True, category, segmentations, notes)
    notes.append("falling back to the whole image: the subject may change too")
    return MaskProposal(full_mask(size), "full", False, category, segmentations, notes)
