"""What every diffusers conductor does the same way: the numbered steps of one edit.

A conductor is an `Inpainter` around one diffusers pipeline. `DiffusersConductor._inpaint`
1. resolves the knobs (the model's own default steps and guidance where the caller set none),
2. frames the edit (whole photo or the crop around the mask, at the model's native size),
3. builds the pipeline call (what differs per model: `pipeline_call`),
4. runs it with per-step progress and a cancel hook,
5. puts each output back onto the photo with BrushNet's blur blend (`framing.composite`), so
   pixels outside the blend zone are the source's, and
6. records what it did (`ConductorRun`) on each image (`run_record(image)` reads it back).

A global edit on an instruction editor runs the model's maskless sibling pipeline (built from
the same components with `from_pipe`) on the whole photo. The thin classes in
`tools.conductors.models` say only what differs. torch and diffusers load when a model does.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tools.inpainter import Inpainter, InpaintRequest, StepWatch
from tools.option_specs import option_bounds
from tools.registry import INPAINTERS, BackendSpec, GuidanceKind, PromptStyle
from tools.types import EditCategory, EditOptions

if TYPE_CHECKING:
    from PIL import Image

RUN_INFO_KEY = "brushedit_conductor_run"
"""Key of the `ConductorRun` (as a dict) in each result image's `info`."""
RAW_INFO_KEY = "brushedit_conductor_raw"
"""Key of the conductor's raw output (a PIL image of the photo's size, before compositing) in
each result image's `info`: what the alignment check compares with the source."""


@dataclass(frozen=True)
class Knobs:
    """The values one conductor call runs with, after defaults are applied."""

    steps: int
    guidance_scale: float
    negative_prompt: str | None
    seed: int
    samples: int
    blending: bool


def resolve_knobs(
    spec: BackendSpec, options: EditOptions, seed: int, negative_prompt: str | None
) -> Knobs:
    """The knobs for `spec` from `options`: `steps` and `guidance_scale` the caller left unset
    (None) take the model's defaults (FLUX.2 klein: 4 steps; FLUX.1 Fill: guidance 30); set,
    they are used as given, 50 steps included. The negative prompt goes only to models that
    read one."""
    return Knobs(
        steps=options.steps if options.steps is not None else spec.default_steps,
        guidance_scale=(
            options.guidance_scale if options.guidance_scale is not None
            else spec.default_guidance
        ),
        negative_prompt=negative_prompt if "negative_prompt" in spec.uses_options else None,
        seed=seed,
        samples=options.samples,
        blending=options.blending,
    )


def retry_changes(spec: BackendSpec, options: EditOptions, retry: int) -> dict[str, Any]:
    """The `EditOptions` values the `retry`-th verifier retry (1, 2, ...) of conductor `spec`
    runs with, besides a new seed: guidance moved by `spec.retry_guidance_step` per retry (true
    CFG for Qwen, the embedded guidance of FLUX.1 [dev] models, CFG for SD), or for a distilled
    model `spec.retry_steps_step` more steps; counted from `options` as the edit had them before
    any retry, within the options' bounds. Empty for retry 0."""
    if retry <= 0:
        return {}
    knobs = resolve_knobs(spec, options, options.seed, None)
    changes: dict[str, Any] = {}
    if spec.retry_guidance_step:
        low, high = option_bounds("guidance_scale")
        value = knobs.guidance_scale + retry * spec.retry_guidance_step
        changes["guidance_scale"] = round(min(max(value, low or 0.0), high or value), 3)
    if spec.retry_steps_step:
        _, most = option_bounds("steps")
        changes["steps"] = int(min(knobs.steps + retry * spec.retry_steps_step, most or 10**6))
    return changes


@dataclass(frozen=True)
class ConductorRun:
    """What a conductor did for one edit: enough to reproduce it and to show it in a trace."""

    conductor: str
    family: str
    model: str
    pipeline: str
    prompt: str
    prompt_style: PromptStyle
    negative_prompt: str | None
    category: str
    maskless: bool
    steps: int
    guidance_scale: float
    guidance: GuidanceKind
    seed: int
    samples: int
    working_size: tuple[int, int]
    crop_box: tuple[int, int, int, int] | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe (tuples as lists)."""
        data = asdict(self)
        data["working_size"] = list(self.working_size)
        data["crop_box"] = list(self.crop_box) if self.crop_box else None
        return data


def raw_output(image: Any) -> Image.Image | None:
    """The conductor's raw output behind a result image (photo size, not blended), or None."""
    raw = getattr(image, "info", {}).get(RAW_INFO_KEY)
    return raw if hasattr(raw, "size") and hasattr(raw, "mode") else None


def run_record(image: Any) -> ConductorRun | None:
    """The `ConductorRun` a conductor attached to a result image, or None."""
    data = getattr(image, "info", {}).get(RUN_INFO_KEY)
    if not isinstance(data, dict):
        return None
    box = data.get("crop_box")
    return ConductorRun(
        **{**data, "working_size": tuple(data["working_size"]),
           "crop_box": tuple(box) if box else None}
    )  # fmt: skip


class DiffusersConductor(Inpainter):
    """An edit conductor around one diffusers pipeline; subclasses say what differs.

    Args:
        pipeline: the loaded diffusers pipeline (`tools.conductors.load_conductor` loads it).
        model: what it was loaded from (Hub id, folder or file), for records.
        working_side: paint at about this many pixels squared instead of the model's native
            size (less memory and time; tests use 32-64).
    """

    name: ClassVar[str]
    maskless_pipeline: ClassVar[str | None] = None
    """The diffusers pipeline a global edit runs (None: no maskless edits)."""
    strength: ClassVar[float] = 1.0
    """How much of the masked area is repainted (1.0: from pure noise, as BrushNet does)."""
    min_side: ClassVar[int] = 0
    """The smallest working width or height the pipelines accept."""

    def __init__(self, pipeline: Any, *, model: str = "", working_side: int | None = None) -> None:
        if not callable(pipeline):
            raise ValueError(
                f"`pipeline` must be a callable pipeline, got {type(pipeline).__name__}"
            )
        if working_side is not None and (
            isinstance(working_side, bool) or not isinstance(working_side, int)
            or not 16 <= working_side <= 4096
        ):
            raise ValueError(f"`working_side` must be an integer in [16, 4096], got {working_side!r}")
        self.pipeline = pipeline
        self.model = model
        self.working_side = working_side or self.native_side()
        self._maskless: Any = None

    @classmethod
    def spec(cls) -> BackendSpec:
        return INPAINTERS[cls.name]

    @property
    def size_multiple(self) -> int:
        return self.spec().size_multiple

    def native_side(self) -> int:
        """The side of the square area the model was trained at: the registry's, or the size the
        pipeline itself picks when given none (`default_sample_size * vae_scale_factor`) if that
        is smaller, as for small test checkpoints."""
        side = self.spec().native_side
        sample = getattr(self.pipeline, "default_sample_size", None)
        scale = getattr(self.pipeline, "vae_scale_factor", None)
        if isinstance(sample, int) and isinstance(scale, int) and sample * scale > 0:
            return min(side, sample * scale)
        return side

    @classmethod
    def from_pretrained(
        cls, model: str | None = None, *, working_side: int | None = None, **load: Any
    ) -> DiffusersConductor:
        """Load this conductor from `model` (Hub id, `save_pretrained` folder or single file;
        default: its official repository); `load` are `tools.conductors.loading.load_pipeline`'s
        options (`device`, `dtype`, `local_files_only`, `offload`)."""
        from tools.conductors.loading import load_pipeline

        pipeline, model = load_pipeline(cls.name, model, **load)
        return cls(pipeline, model=model, working_side=working_side)

    @classmethod
    def create(cls, **kwargs: Any) -> Inpainter:
        """`cls(pipeline)` when given one, else `from_pretrained(**kwargs)`."""
        if "pipeline" in kwargs:
            return cls(**kwargs)
        return cls.from_pretrained(**kwargs)

    @classmethod
    def unsupported_message(cls, category: EditCategory) -> str:
        allowed = ", ".join(sorted(c.value for c in cls.categories))
        if category is EditCategory.GLOBAL:
            return (
                f"The {cls.name} conductor fills a masked area from a caption and cannot "
                f"restyle a whole photo, so it cannot do a global edit (it can do: {allowed})."
            )
        return f"The {cls.name} conductor cannot do {category.value} edits (only: {allowed})."

    def maskless(self, category: EditCategory) -> bool:
        """Whether an edit of `category` runs without a mask (global edits of editors that can)."""
        return category is EditCategory.GLOBAL and self.maskless_pipeline is not None

    # -- what differs per model ---------------------------------------------------------------

    guidance_argument: ClassVar[str] = "guidance_scale"
    """The pipeline argument `EditOptions.guidance_scale` goes to (Qwen: `true_cfg_scale`)."""

    def call_extras(self, size: tuple[int, int]) -> dict[str, Any]:
        """Arguments only this model's pipelines take, for a `size` (width, height) call."""
        return {}

    def pipeline_call(
        self, image: Image.Image, mask: Image.Image | None, request: InpaintRequest, knobs: Knobs,
        size: tuple[int, int],
    ) -> dict[str, Any]:
        """The model's own arguments: prompt, guidance, size (`mask` None: a maskless call)."""
        width, height = size
        kwargs: dict[str, Any] = {"prompt": request.prompt, "image": image,
                                  "height": height, "width": width,
                                  self.guidance_argument: knobs.guidance_scale}
        if "negative_prompt" in self.spec().uses_options:
            kwargs["negative_prompt"] = knobs.negative_prompt or " "
        if mask is not None:
            kwargs.update(mask_image=mask, strength=self.strength)
        return {**kwargs, **self.call_extras(size)}

    # -- the steps ----------------------------------------------------------------------------

    def _inpaint(self, request: InpaintRequest) -> list[Image.Image]:
        from PIL import Image

        started = time.perf_counter()
        # 1. Resolve the knobs: the model's defaults for what the caller left unset
        spec = self.spec()
        knobs = resolve_knobs(spec, request.options, request.seed, request.negative_prompt)
        maskless = self.maskless(request.category)

        # 2. Frame the edit: the region (whole photo or the crop around the mask) and its size
        from tools.conductors.framing import composite, frame_edit, place, region

        source = np.asarray(request.image)
        framing = frame_edit(request.image.size, request.mask, side=self.working_side,
                             multiple=self.size_multiple, min_side=self.min_side,
                             crop=not maskless)
        work_image, work_mask = region(source, request.mask, framing)

        # 3. The pipeline call: the model's arguments plus the shared ones
        pipeline = self._maskless_pipeline() if maskless else self.pipeline
        watch = StepWatch(request.progress, request.cancel, knobs.steps, self.name)
        kwargs = self.pipeline_call(
            Image.fromarray(work_image, "RGB"),
            None if maskless else Image.fromarray(work_mask, "L"),
            request, knobs, framing.working_size,
        )
        kwargs.update(
            num_inference_steps=knobs.steps, num_images_per_prompt=knobs.samples,
            generator=self._generator(knobs.seed), output_type="np",
            callback_on_step_end=watch,
        )  # fmt: skip

        # 4. Run it (per-step progress; a cancel stops the loop)
        outputs = self._run(pipeline, kwargs)
        watch.raise_if_cancelled()

        # 5. Back onto the photo: resized to the region, pasted, blur-blended
        run = ConductorRun(
            conductor=self.name, family=spec.family, model=self.model,
            pipeline=type(pipeline).__name__, prompt=request.prompt,
            prompt_style=spec.prompt_style, negative_prompt=knobs.negative_prompt,
            category=request.category.value, maskless=maskless, steps=knobs.steps,
            guidance_scale=knobs.guidance_scale, guidance=spec.guidance, seed=knobs.seed,
            samples=knobs.samples, working_size=framing.working_size, crop_box=framing.box,
            seconds=round(time.perf_counter() - started, 3),
        )  # fmt: skip
        results = []
        for output in outputs:
            generated = np.clip(np.rint(np.asarray(output) * 255.0), 0, 255).astype(np.uint8)
            placed = place(source, generated, framing)
            final = composite(source, placed, request.mask, blending=knobs.blending)
            # 6. Record what was done (and the raw output, for the alignment check) on the image
            result = Image.fromarray(final, "RGB")
            result.info[RUN_INFO_KEY] = run.as_dict()
            result.info[RAW_INFO_KEY] = Image.fromarray(placed, "RGB")
            results.append(result)
        return results

    def _run(self, pipeline: Any, kwargs: dict[str, Any]) -> list[np.ndarray]:
        import torch

        from tools.errors import ModelLoadError

        try:
            with torch.inference_mode():
                output = pipeline(**kwargs)
        except OSError as exc:  # weights read lazily (offload hooks, sharded files)
            raise ModelLoadError(
                f"The {self.name} conductor could not read its weights: {exc}"
            ) from exc
        images = output.images if hasattr(output, "images") else output[0]
        return list(images)

    def _generator(self, seed: int) -> Any:
        """A CPU generator: the same seed gives the same noise on every device."""
        import torch

        return torch.Generator("cpu").manual_seed(seed)

    def _maskless_pipeline(self) -> Any:
        """The maskless sibling pipeline, sharing this pipeline's components (`from_pipe`)."""
        if self._maskless is None:
            import diffusers

            cls = getattr(diffusers, self.maskless_pipeline or "")
            # `from_pipe` casts the shared models to `dtype` (float32 unless told): keep theirs
            self._maskless = cls.from_pipe(self.pipeline, dtype=self.pipeline.dtype)
            self._maskless.set_progress_bar_config(disable=True)
        return self._maskless
