"""The tiny SDXL builders by the names tests in other folders (tools, graphs) import; they live in `tiny_parts`."""

from __future__ import annotations

from pathlib import Path

from .tiny_parts import SDXL, save_tiny_base, tiny_pipeline


def make_tiny_sdxl_pipeline(tmp_dir: Path, seed: int = 0):
    """A complete tiny `StableDiffusionXLBrushNetPipeline` (both encoders, UniPC), progress bar off."""
    return tiny_pipeline(SDXL, tmp_dir, seed=seed)


def save_tiny_sdxl_base(folder: Path, seed: int = 0):
    """Save a tiny SDXL base as `StableDiffusionXLPipeline.save_pretrained` writes it; returns the BrushNet."""
    return save_tiny_base(SDXL, folder, seed)
