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
        ConfigError,
        ImageTooLargeError,
        ImageTooSmallError,
        InvalidImageError,
        InvalidMaskError,
        InvalidRequestError,
        InvalidTextError,
        ModelLoadError,
        UnsupportedEditError,
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
            "ConfigError",
            "ImageTooLargeError",
            "ImageTooSmallError",
            "InvalidImageError",
            "InvalidMaskError",
            "InvalidRequestError",
            "InvalidTextError",
            "ModelLoadError",
            "UnsupportedEditError",
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
    "ConfigError",
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
    "ModelLoadError",
    "UnsupportedEditError",
    "as_mask",
    "content_hash",
    "load_image",
    "load_mask",
    "probe_image",
    "read_image",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
