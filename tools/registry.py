"""The inpainters and segmenters by name: the one table every surface reads.

CLI choices, the web editor's dropdown, the HTTP API's and MCP's enums, evals, the doctor and the
option validation all take their names from here, so adding a backend is one entry, not eight
edits. Plain data (no imports of the backends): reading it costs nothing.

Besides BrushNet and the OpenCV fill, the table holds the *conductors*: today's diffusers editors
(FLUX.1 Fill and Kontext, Qwen-Image-Edit, FLUX.2 klein, Stable Diffusion inpainting) driven by
the same agents, masks and verifier (`tools.conductors`). Each spec says what a surface needs to
list, configure and explain one: the categories it performs, the prompt it wants, its native
size, its default steps and guidance, its weights and licence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PromptStyle = Literal["caption", "instruction"]
"""What a backend's prompt is: `caption` describes what the masked area shows afterwards (fill
models: "a corgi on the sofa"); `instruction` says what to change (instruction editors: "replace
the cat with a corgi, keep everything else unchanged")."""

GuidanceKind = Literal["cfg", "true_cfg", "embedded", "distilled", "none"]
"""What `guidance_scale` turns: classic classifier-free guidance (`cfg`, two passes per step),
true CFG of a guidance-free model with a negative prompt (`true_cfg`), a guidance value embedded
in a guidance-distilled model (`embedded`, one pass), nothing on a step-distilled model
(`distilled`), or nothing at all (`none`)."""


@dataclass(frozen=True)
class BackendSpec:
    """What a backend is called, what it can do, and which edit options it reads.

    The fields after `uses_options` describe diffusion backends; a backend without weights
    (the OpenCV fill) leaves them at their defaults.
    """

    name: str
    summary: str
    categories: tuple[str, ...]
    """Edit categories it performs (`tools.types.EditCategory` values)."""
    needs_weights: bool
    uses_options: tuple[str, ...] = ()
    """`EditOptions` fields it reads; the others do not change its result."""
    family: str = ""
    """The model family in words (`FLUX.1 Fill [dev]`), for listings and the doctor."""
    prompt_style: PromptStyle = "caption"
    maskless: bool = False
    """Whether it can edit without a mask (global edits: "make it winter")."""
    native_side: int = 0
    """It works best at about `native_side`**2 pixels (0: at the image's own size)."""
    size_multiple: int = 8
    """Working width and height are multiples of this."""
    default_steps: int = 50
    default_guidance: float = 7.5
    guidance: GuidanceKind = "cfg"
    retry_guidance_step: float = 0.0
    """How a verifier retry moves `guidance_scale` (0: guidance is no knob of this backend)."""
    retry_steps_step: int = 0
    """How many steps a verifier retry adds (distilled models: more steps, not more guidance)."""
    pipeline_class: str | None = None
    """The diffusers pipeline class it runs (None: not a diffusers pipeline of its own)."""
    accepts_pipelines: tuple[str, ...] = ()
    """`_class_name`s in a checkpoint's model_index.json it loads (the pipeline's siblings)."""
    default_model: str | None = None
    """The official Hub repository its weights come from by default."""
    model_env: str | None = None
    """The environment variable naming its weights (`BRUSHEDIT_<NAME>_MODEL`)."""
    single_file: bool = False
    """Whether a single `.safetensors` checkpoint file can stand in for a folder."""
    gated: bool = False
    """Whether the Hub repository asks you to accept its licence before downloading."""
    licence: str = ""
    weights_gb: float = 0.0
    """Size of the weights in bfloat16, in GB (about what the GPU needs without offload)."""
    good_at: str = ""
    """One line on when to pick it, for the docs and listings."""

    @property
    def is_conductor(self) -> bool:
        """Whether it is one of the diffusers conductors of `tools.conductors`."""
        return self.pipeline_class is not None and self.model_env is not None


def model_env(name: str) -> str:
    """`BRUSHEDIT_FLUX_FILL_MODEL` for `flux-fill`: where a conductor's weights are named."""
    return f"BRUSHEDIT_{name.upper().replace('-', '_')}_MODEL"


ALL_CATEGORIES = ("addition", "removal", "local", "global", "background")
MASKED_CATEGORIES = ("addition", "removal", "local", "background")
"""What a fill model can do: repaint a masked area. It cannot restyle a whole photo (a global
edit): with the whole photo masked it would paint a new picture from the caption alone."""

_CONDUCTOR_OPTIONS = ("seed", "steps", "samples", "blending")


def _conductor(name: str, summary: str, categories: tuple[str, ...], **fields) -> BackendSpec:
    return BackendSpec(name, summary, categories, needs_weights=True, model_env=model_env(name),
                       **fields)


INPAINTERS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec(
            "brushnet",
            "BrushNet dual-branch diffusion on a Stable Diffusion 1.5 or SDXL base: every "
            "edit category; needs the model weights",
            ALL_CATEGORIES,
            needs_weights=True,
            uses_options=("seed", "steps", "guidance_scale", "conditioning_scale", "samples",
                          "blending", "negative_prompt"),
            family="BrushNet (SD1.5 / SDXL)",
            retry_guidance_step=1.5,
            native_side=512,
            licence="Apache-2.0 (BrushNet); the base model's licence",
            weights_gb=3.5,
            good_at="BrushEdit's own conductor: any SD1.5 or SDXL base, every edit category",
        ),
        BackendSpec(
            "opencv",
            "OpenCV fill from the surroundings: removals only, no weights, seconds on a CPU",
            ("removal",),
            needs_weights=False,
            uses_options=("seed",),
            family="OpenCV inpainting",
            licence="Apache-2.0",
            good_at="removals of small objects with no GPU and no weights",
        ),
        _conductor(
            "flux-fill",
            "FLUX.1 Fill [dev]: fills a masked area from a caption; additions, removals, "
            "local and background edits; needs the model weights",
            MASKED_CATEGORIES,
            uses_options=(*_CONDUCTOR_OPTIONS, "guidance_scale"),
            family="FLUX.1 Fill [dev]",
            prompt_style="caption",
            native_side=1024,
            size_multiple=16,
            default_steps=50,
            default_guidance=30.0,
            guidance="embedded",
            retry_guidance_step=-5.0,  # 30 is already the top of the guidance range
            pipeline_class="FluxFillPipeline",
            accepts_pipelines=("FluxFillPipeline",),
            default_model="black-forest-labs/FLUX.1-Fill-dev",
            single_file=True,
            gated=True,
            licence="FLUX.1 [dev] Non-Commercial License",
            weights_gb=33.0,
            good_at="the best fill from a caption: removals and object swaps that match "
                    "the light and texture around them",
        ),
        _conductor(
            "flux-kontext",
            "FLUX.1 Kontext [dev] inside a mask: follows edit instructions; every edit "
            "category, global edits without a mask; needs the model weights",
            ALL_CATEGORIES,
            uses_options=(*_CONDUCTOR_OPTIONS, "guidance_scale"),
            family="FLUX.1 Kontext [dev]",
            prompt_style="instruction",
            maskless=True,
            native_side=1024,
            size_multiple=16,
            default_steps=28,
            default_guidance=2.5,
            guidance="embedded",
            retry_guidance_step=1.0,
            pipeline_class="FluxKontextInpaintPipeline",
            accepts_pipelines=("FluxKontextPipeline", "FluxKontextInpaintPipeline"),
            default_model="black-forest-labs/FLUX.1-Kontext-dev",
            single_file=True,
            gated=True,
            licence="FLUX.1 [dev] Non-Commercial License",
            weights_gb=33.0,
            good_at="instruction edits of one object or attribute (\"make the car red\") "
                    "that keep its identity",
        ),
        _conductor(
            "qwen-image-edit",
            "Qwen-Image-Edit inside a mask: the strongest open instruction editor; every "
            "edit category, global edits without a mask; needs the model weights",
            ALL_CATEGORIES,
            uses_options=(*_CONDUCTOR_OPTIONS, "guidance_scale", "negative_prompt"),
            family="Qwen-Image-Edit",
            prompt_style="instruction",
            maskless=True,
            native_side=1024,
            size_multiple=32,
            default_steps=50,
            default_guidance=4.0,
            guidance="true_cfg",
            retry_guidance_step=1.0,
            pipeline_class="QwenImageEditInpaintPipeline",
            accepts_pipelines=("QwenImageEditPipeline", "QwenImageEditInpaintPipeline",
                               "QwenImageEditPlusPipeline"),
            default_model="Qwen/Qwen-Image-Edit",
            licence="Apache-2.0",
            weights_gb=58.0,
            good_at="hard instruction edits, text in images, style changes; its drift "
                    "(shift, zoom) is held in check by the mask and the alignment check",
        ),
        _conductor(
            "flux2-klein",
            "FLUX.2 klein 4B inside a mask, 4 distilled steps: fast instruction edits; every "
            "edit category, global edits without a mask; needs the model weights",
            ALL_CATEGORIES,
            uses_options=(*_CONDUCTOR_OPTIONS, "guidance_scale"),
            family="FLUX.2 klein 4B",
            prompt_style="instruction",
            maskless=True,
            native_side=1024,
            size_multiple=16,
            default_steps=4,
            default_guidance=1.0,
            guidance="distilled",
            retry_steps_step=2,
            pipeline_class="Flux2KleinInpaintPipeline",
            accepts_pipelines=("Flux2KleinPipeline", "Flux2KleinInpaintPipeline"),
            default_model="black-forest-labs/FLUX.2-klein-4B",
            licence="Apache-2.0",
            weights_gb=16.0,
            good_at="interactive editing: seconds per edit on one GPU, Apache-2.0",
        ),
        _conductor(
            "sd-inpaint",
            "Any Stable Diffusion 1.5, SDXL or SD3 inpainting checkpoint (diffusers' "
            "AutoPipelineForInpainting) filling a mask from a caption; needs the model weights",
            MASKED_CATEGORIES,
            uses_options=(*_CONDUCTOR_OPTIONS, "guidance_scale", "negative_prompt"),
            family="Stable Diffusion inpainting (SD1.5 / SDXL / SD3)",
            prompt_style="caption",
            native_side=512,
            size_multiple=8,
            default_steps=50,
            default_guidance=7.5,
            guidance="cfg",
            retry_guidance_step=1.5,
            pipeline_class="AutoPipelineForInpainting",
            accepts_pipelines=(
                "StableDiffusionInpaintPipeline", "StableDiffusionPipeline",
                "StableDiffusionXLInpaintPipeline", "StableDiffusionXLPipeline",
                "StableDiffusion3InpaintPipeline", "StableDiffusion3Pipeline",
            ),
            default_model="stable-diffusion-v1-5/stable-diffusion-inpainting",
            single_file=True,
            licence="CreativeML OpenRAIL-M (SD1.5); the checkpoint's own licence",
            weights_gb=2.1,
            good_at="community inpainting checkpoints and small GPUs (4 GB is enough for SD1.5)",
        ),
    )
}
INPAINTER_NAMES: tuple[str, ...] = tuple(INPAINTERS)
DEFAULT_INPAINTER = "brushnet"
WEIGHTLESS_INPAINTER = next(spec.name for spec in INPAINTERS.values() if not spec.needs_weights)
"""The inpainter that runs with no model weights: the demo's and the doctor's fallback."""
CONDUCTOR_NAMES: tuple[str, ...] = tuple(s.name for s in INPAINTERS.values() if s.is_conductor)
"""The diffusers conductors (`tools.conductors.load_conductor` loads them by these names)."""

SEGMENTERS: dict[str, BackendSpec] = {
    "grounded-sam": BackendSpec(
        "grounded-sam",
        "GroundingDINO boxes refined by Segment Anything; needs the model weights",
        ("removal", "local", "background"),
        needs_weights=True,
    ),
}
SEGMENTER_NAMES: tuple[str, ...] = tuple(SEGMENTERS)


def inpainter_choices() -> str:
    """`brushnet, opencv, ...`: the names as a sentence fragment for messages."""
    return ", ".join(INPAINTER_NAMES)


def inpainter_help() -> str:
    """`brushnet (...); opencv (...)`: each name with its summary, for CLI help and schemas."""
    return "; ".join(f"{spec.name}: {spec.summary}" for spec in INPAINTERS.values())


def model_setting(name: str) -> str | None:
    """The `Settings` field behind a conductor's weights variable (`flux_fill_model` for
    `BRUSHEDIT_FLUX_FILL_MODEL`), or None for backends without one."""
    env = INPAINTERS[name].model_env
    return env.removeprefix("BRUSHEDIT_").lower() if env else None


def prompt_style(name: str) -> PromptStyle:
    """The prompt the inpainter `name` wants: `caption` (fill models) or `instruction` (editors)."""
    return INPAINTERS[name].prompt_style
