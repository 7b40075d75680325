"""The edit vocabulary and the tools that act on images: segmentation, masks, inpainting, metrics.

Importing this package is cheap: torch, diffusers and transformers load only when a model does.
"""

from tools.errors import (
    BrushEditError,
    ConfigError,
    InvalidImageError,
    InvalidMaskError,
    InvalidRequestError,
    ModelLoadError,
    UnsupportedEditError,
)
from tools.images import LoadedImage, content_hash, load_image, load_mask, read_image
from tools.masks import Mask, as_mask
from tools.types import Box, EditCategory, EditOptions, EditPlan, EditRequest, EditResult

__all__ = [
    "Box",
    "BrushEditError",
    "ConfigError",
    "EditCategory",
    "EditOptions",
    "EditPlan",
    "EditRequest",
    "EditResult",
    "InvalidImageError",
    "InvalidMaskError",
    "InvalidRequestError",
    "LoadedImage",
    "Mask",
    "ModelLoadError",
    "UnsupportedEditError",
    "as_mask",
    "content_hash",
    "load_image",
    "load_mask",
    "read_image",
]
