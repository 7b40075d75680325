"""Which mask an edit plan gets: the per-category policy (user mask, segmentation, box, full).

Built on the primitives of `tools.mask_ops`; the segmenter is only a type here, so the policy
imports no model code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools.errors import InvalidRequestError
from tools.mask_ops import (
    Mask,
    MaskShape,
    area_fraction,
    as_mask,
    bounding_box,
    check_mask,
    dilate,
    empty_mask,
    fit_user_mask,
    from_box,
    full_mask,
    invert,
    scaled_px,
)
from tools.segment import DEFAULT_BOX_THRESHOLDS
from tools.types import Box, EditCategory, EditPlan

if TYPE_CHECKING:
    from PIL import Image

    from tools.segment import Segmentation, Segmenter



MaskSource = Literal["user", "segmentation", "box", "full", "inverted_foreground"]
Find = Callable[..., "Segmentation"]
"""`find(phrase, union=None)`: the policy's segmentation of one phrase in the plan's image."""


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

    def segment(
        self, segmenter: Segmenter, image: Image.Image, phrase: str, *, union: bool | None = None
    ) -> Segmentation:
        """`segmenter.segment` with this policy's thresholds (`union`: its `union_boxes`)."""
        return segmenter.segment(
            image, phrase, box_thresholds=self.box_thresholds,
            text_threshold=self.text_threshold,
            union=self.union_boxes if union is None else union,
        )

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
    find = partial(policy.segment, segmenter, image)
    if category is EditCategory.BACKGROUND:
        return _background_proposal(plan, find, size, policy)
    return _object_proposal(plan, find, size, policy)


def mask_for_plan(*args: Any, **kwargs: Any) -> Mask:
    """`propose_mask(...).mask` (the same arguments), for callers that need only the mask."""
    return propose_mask(*args, **kwargs).mask


def _user_proposal(user_mask: Any, size: tuple[int, int], category: EditCategory) -> MaskProposal:
    notes = ["user mask"]
    mask = as_mask(user_mask)
    if (mask.shape[1], mask.shape[0]) != size:
        notes.append(
            f"user mask resized from {mask.shape[1]}x{mask.shape[0]} to {size[0]}x{size[1]}"
        )
    # another aspect ratio is refused, not stretched; an empty mask is refused
    mask = check_mask(fit_user_mask(mask, size, resize=True), size)
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
    plan: EditPlan, find: Find, size: tuple[int, int], policy: MaskPolicy
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
    seg = find(phrase)
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
    plan: EditPlan, find: Find, size: tuple[int, int], policy: MaskPolicy
) -> MaskProposal:
    category = EditCategory.BACKGROUND
    segmentations: list[Segmentation] = []
    notes: list[str] = []
    phrases = [p for p in ((plan.object or "").strip(), policy.background_fallback_phrase) if p]
    if not (plan.object or "").strip():
        notes.append("the plan names no subject to keep")
    for phrase in phrases:
        seg = find(phrase, union=True)
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
