"""The mask vocabulary in one import: `tools.mask_ops` (primitives) + `tools.mask_policy` (policy).

Kept so `from tools.masks import ...` keeps working; new code imports the module it needs.
"""

from __future__ import annotations

from tools.mask_ops import (
    REFERENCE_SIDE,
    Mask,
    MaskShape,
    area_fraction,
    as_mask,
    bounding_box,
    bounding_ellipse,
    check_mask,
    dilate,
    empty_mask,
    erode,
    feather,
    fit_mask,
    from_box,
    full_mask,
    invert,
    same_aspect,
    scaled_px,
    shift,
    union,
)
from tools.mask_policy import (
    DEFAULT_BOX_THRESHOLDS,
    MaskPolicy,
    MaskProposal,
    MaskSource,
    mask_for_plan,
    propose_mask,
)

__all__ = [
    "DEFAULT_BOX_THRESHOLDS",
    "REFERENCE_SIDE",
    "Mask",
    "MaskPolicy",
    "MaskProposal",
    "MaskShape",
    "MaskSource",
    "area_fraction",
    "as_mask",
    "bounding_box",
    "bounding_ellipse",
    "check_mask",
    "dilate",
    "empty_mask",
    "erode",
    "feather",
    "fit_mask",
    "from_box",
    "full_mask",
    "invert",
    "mask_for_plan",
    "propose_mask",
    "same_aspect",
    "scaled_px",
    "shift",
    "union",
]
