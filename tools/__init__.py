"""The edit vocabulary and the tools that act on images: segmentation, masks, inpainting, metrics.

Importing this package is cheap: names load on first use (PEP 562), so `import tools.errors`
does not pull in numpy or Pillow, and torch, diffusers and transformers load only when a model does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools.lazy import lazy_exports

if TYPE_CHECKING:
    from tools.errors import (
        BrushEditError,
        ConductorLoadError,
        ConfigError,
        EditCancelledError,
        ImageTooLargeError,
        ImageTooSmallError,
        InvalidImageError,
        InvalidMaskError,
        InvalidRequestError,
        InvalidTextError,
        MissingWeightsError,
        ModelLoadError,
        UnsupportedEditError,
        WrongPipelineError,
    )
    from tools.images import (
        ImageHeader,
        LoadedImage,
        content_hash,
        load_image,
        load_mask,
        probe_image,
        read_image,
    )
    from tools.mask_ops import Mask, as_mask
    from tools.types import Box, EditCategory, EditOptions, EditPlan, EditRequest, EditResult

_EXPORTS = {
    **dict.fromkeys(
        [
            "BrushEditError",
            "ConductorLoadError",
            "ConfigError",
            "EditCancelledError",
            "ImageTooLargeError",
            "ImageTooSmallError",
            "InvalidImageError",
            "InvalidMaskError",
            "InvalidRequestError",
            "InvalidTextError",
            "MissingWeightsError",
            "ModelLoadError",
            "UnsupportedEditError",
            "WrongPipelineError",
        ],
        "tools.errors",
    ),
    **dict.fromkeys(
        ["ImageHeader", "LoadedImage", "content_hash", "load_image", "load_mask", "probe_image",
         "read_image"],
        "tools.images",
    ),
    **dict.fromkeys(["Mask", "as_mask"], "tools.mask_ops"),
    **dict.fromkeys(
        ["Box", "EditCategory", "EditOptions", "EditPlan", "EditRequest", "EditResult"],
        "tools.types",
    ),
}

__all__ = [
    "Box",
    "BrushEditError",
    "ConductorLoadError",
    "ConfigError",
    "EditCancelledError",
    "EditCategory",
    "EditOptions",
    "EditPlan",
    "EditRequest",
    "EditResult",
    "ImageHeader",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "InvalidImageError",
    "InvalidMaskError",
    "InvalidRequestError",
    "InvalidTextError",
    "LoadedImage",
    "Mask",
    "MissingWeightsError",
    "ModelLoadError",
    "UnsupportedEditError",
    "WrongPipelineError",
    "as_mask",
    "content_hash",
    "load_image",
    "load_mask",
    "probe_image",
    "read_image",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
