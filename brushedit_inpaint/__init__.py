"""BrushNet dual-branch inpainting as a clean extension of stock diffusers.

Heavy imports (torch, diffusers) happen on first attribute access, so `import brushedit_inpaint` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "BrushNetModel": "brushnet",
    "BrushNetOutput": "brushnet",
    "MidBlock2D": "brushnet",
    "unet_forward_with_brushnet": "unet_injection",
    "StableDiffusionBrushNetPipeline": "pipeline",
    "StableDiffusionBrushNetPipelineOutput": "pipeline",
    "StableDiffusionXLBrushNetPipeline": "pipeline_sdxl",
    "StableDiffusionXLBrushNetPipelineOutput": "pipeline_sdxl",
    "load_pipeline": "loading",
    "EncodeCache": "caching",
    "BrushNetLoadError": "families",
    "base_family": "families",
    "brushnet_family": "families",
    "blur_blend": "processing",
    "blend_weights": "processing",
    "hole_to_known_mask": "processing",
    "to_hole_mask": "processing",
    "working_size": "processing",
    "native_working_size": "processing",
}

__all__ = [
    "BrushNetLoadError",
    "BrushNetModel",
    "BrushNetOutput",
    "EncodeCache",
    "MidBlock2D",
    "StableDiffusionBrushNetPipeline",
    "StableDiffusionBrushNetPipelineOutput",
    "StableDiffusionXLBrushNetPipeline",
    "StableDiffusionXLBrushNetPipelineOutput",
    "base_family",
    "blend_weights",
    "blur_blend",
    "brushnet_family",
    "hole_to_known_mask",
    "load_pipeline",
    "native_working_size",
    "to_hole_mask",
    "unet_forward_with_brushnet",
    "working_size",
]

if TYPE_CHECKING:
    from .brushnet import BrushNetModel, BrushNetOutput, MidBlock2D
    from .families import BrushNetLoadError, base_family, brushnet_family
    from .loading import load_pipeline
    from .pipeline import StableDiffusionBrushNetPipeline, StableDiffusionBrushNetPipelineOutput
    from .pipeline_sdxl import (
        StableDiffusionXLBrushNetPipeline,
        StableDiffusionXLBrushNetPipelineOutput,
    )
    from .processing import (
        blend_weights,
        blur_blend,
        hole_to_known_mask,
        native_working_size,
        to_hole_mask,
        working_size,
    )
    from .unet_injection import unet_forward_with_brushnet


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
