"""The five conductors: each says only what differs from `DiffusersConductor`.

Which pipeline it runs (and which maskless sibling a global edit runs), how its prompt and
guidance are passed, and its native size. Categories come from the registry entry of the same
name, so the light table and the classes cannot disagree. Nothing heavy at import.
"""

from __future__ import annotations

from typing import Any, ClassVar

from tools.conductors.base import DiffusersConductor
from tools.conductors.loading import conductor_spec
from tools.registry import INPAINTERS
from tools.types import EditCategory


def _categories(name: str) -> frozenset[EditCategory]:
    return frozenset(EditCategory(c) for c in INPAINTERS[name].categories)


class FluxFillConductor(DiffusersConductor):
    """FLUX.1 Fill [dev] (`FluxFillPipeline`): a caption fills the mask; guidance is embedded
    in the model (30 by default), so each step is one pass."""

    name: ClassVar[str] = "flux-fill"
    categories: ClassVar[frozenset[EditCategory]] = _categories("flux-fill")


class FluxKontextConductor(DiffusersConductor):
    """FLUX.1 Kontext [dev] inside a mask (`FluxKontextInpaintPipeline`); global edits run
    `FluxKontextPipeline`. The photo is the model's context image; it is passed at the working
    size we chose (`_auto_resize=False`), not snapped to Kontext's preferred resolutions."""

    name: ClassVar[str] = "flux-kontext"
    categories: ClassVar[frozenset[EditCategory]] = _categories("flux-kontext")
    maskless_pipeline: ClassVar[str | None] = "FluxKontextPipeline"

    def call_extras(self, size: tuple[int, int]) -> dict[str, Any]:
        return {"max_area": size[0] * size[1], "_auto_resize": False}


class QwenImageEditConductor(DiffusersConductor):
    """Qwen-Image-Edit inside a mask (`QwenImageEditInpaintPipeline`); global edits run
    `QwenImageEditPipeline`. Guidance is true CFG (`true_cfg_scale`, 4.0) against the negative
    prompt. The pipeline always paints at about one megapixel: a smaller `working_side` only
    changes the crop we hand it."""

    name: ClassVar[str] = "qwen-image-edit"
    categories: ClassVar[frozenset[EditCategory]] = _categories("qwen-image-edit")
    maskless_pipeline: ClassVar[str | None] = "QwenImageEditPipeline"
    guidance_argument: ClassVar[str] = "true_cfg_scale"


class Flux2KleinConductor(DiffusersConductor):
    """FLUX.2 klein inside a mask (`Flux2KleinInpaintPipeline`), the photo also its reference
    image; global edits run `Flux2KleinPipeline`. The 4B model is step-distilled: 4 steps, and
    `guidance_scale` only matters for the undistilled base checkpoints."""

    name: ClassVar[str] = "flux2-klein"
    categories: ClassVar[frozenset[EditCategory]] = _categories("flux2-klein")
    maskless_pipeline: ClassVar[str | None] = "Flux2KleinPipeline"
    min_side: ClassVar[int] = 64  # Flux2ImageProcessor refuses smaller reference images


class SDInpaintConductor(DiffusersConductor):
    """Any Stable Diffusion 1.5, SDXL or SD3 inpainting checkpoint through diffusers'
    `AutoPipelineForInpainting`: classic CFG with the negative prompt; native size from the
    checkpoint (SD1.5 512, SDXL and SD3 1024)."""

    name: ClassVar[str] = "sd-inpaint"
    categories: ClassVar[frozenset[EditCategory]] = _categories("sd-inpaint")

    def native_side(self) -> int:
        config = getattr(getattr(self.pipeline, "unet", None), "config", None) or getattr(
            getattr(self.pipeline, "transformer", None), "config", None
        )
        scale = getattr(self.pipeline, "vae_scale_factor", None)
        sample = config.get("sample_size") if config is not None else None
        if isinstance(sample, int) and isinstance(scale, int):
            return sample * scale
        return super().native_side()


CONDUCTORS: dict[str, type[DiffusersConductor]] = {
    cls.name: cls
    for cls in (FluxFillConductor, FluxKontextConductor, QwenImageEditConductor,
                Flux2KleinConductor, SDInpaintConductor)
}
"""The conductor classes by registry name."""


def load_conductor(name: str, model: str | None = None, **options: Any) -> DiffusersConductor:
    """Conductor `name` (`flux-fill`, `flux-kontext`, `qwen-image-edit`, `flux2-klein`,
    `sd-inpaint`) loaded from `model`: a Hub id (default: its official repository), a folder
    written by `save_pretrained`, or a single checkpoint file where diffusers can load one.

    `options`: `device` (`cpu`; `cuda`, `mps`), `dtype` (bfloat16 on a GPU, float32 on the
    CPU by default), `local_files_only` (True: nothing downloads), `offload` (`none`, `model`,
    `sequential`; needs a GPU device) and `working_side` (paint at about that many pixels
    squared instead of the native size). Raises `MissingWeightsError`, `WrongPipelineError` or
    `ConductorLoadError` in one sentence.
    """
    conductor_spec(name)
    return CONDUCTORS[name].from_pretrained(model, **options)
