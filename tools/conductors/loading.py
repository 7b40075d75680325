"""Loading a conductor's weights: a Hub id, a folder written by `save_pretrained`, or one file.

`locate_weights` finds out what a model setting names without loading anything (the local
Hugging Face cache for Hub ids; `model_index.json` for the pipeline class), so a wrong folder
or missing weights fail at once in one sentence, before any Hub retry or gigabyte read.
`weights_status` is the same answer as data (found or not, and the fix), for the doctor.
`load_pipeline` then loads the pipeline with diffusers' own `from_pretrained` /
`from_single_file`, in bfloat16 on a GPU and float32 on the CPU unless told otherwise, and
places it (device, or model / sequential CPU offload); `tools.conductors.load_conductor` wraps
it in its conductor class.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tools.errors import (
    ConductorLoadError,
    ConfigError,
    InvalidRequestError,
    MissingWeightsError,
    WrongPipelineError,
)
from tools.registry import CONDUCTOR_NAMES, INPAINTERS, BackendSpec

Offload = Literal["none", "model", "sequential"]
"""`model`: diffusers' `enable_model_cpu_offload` (one model on the GPU at a time); `sequential`:
`enable_sequential_cpu_offload` (layer by layer: least memory, slowest)."""

SINGLE_FILE_SUFFIXES = (".safetensors", ".sft", ".ckpt")


@dataclass(frozen=True)
class WeightsLocation:
    """Where a conductor's weights are: `kind` folder, file or hub; the checkpoint's pipeline
    class (from model_index.json; None for a single file); `cached` for Hub ids on disk."""

    kind: Literal["folder", "file", "hub"]
    source: str
    pipeline_class: str | None
    cached: bool = True


@dataclass(frozen=True)
class WeightsStatus:
    """A conductor's weights as the doctor reports them."""

    conductor: str
    model: str
    found: bool
    detail: str
    fix: str | None = None
    pipeline_class: str | None = None


def conductor_spec(name: str) -> BackendSpec:
    """The registry entry of conductor `name`; `InvalidRequestError` names the choices."""
    if name not in CONDUCTOR_NAMES:
        raise InvalidRequestError(
            f"Unknown conductor {name!r}. Available: {', '.join(CONDUCTOR_NAMES)}"
        )
    return INPAINTERS[name]


def fix_command(repo: str, folder: str = "<folder>") -> str:
    """The command that fetches a Hub repository's weights into `folder`."""
    return f"hf download {repo} --local-dir {folder}"


def _missing(spec: BackendSpec, model: str, why: str, folder: str = "<folder>") -> MissingWeightsError:
    repo = spec.default_model or model
    command = fix_command(repo, folder)
    licence = " after accepting its licence on the Hub" if spec.gated else ""
    summary = f"The {spec.name} conductor's weights are not on this machine ({why})"
    return MissingWeightsError(
        f"{summary}; fetch them{licence} with `{command}` and use that folder as its model.",
        conductor=spec.name, model=model, repo=repo, fix_command=command,
        env_var=spec.model_env or "", gated=spec.gated, summary=summary,
    )  # fmt: skip


def _looks_like_path(source: str) -> bool:
    """Hub ids are `owner/name`; anything absolute, dotted, deeper or with a file suffix is a path."""
    if os.path.isabs(source) or source.startswith((".", "~")) or source.endswith(SINGLE_FILE_SUFFIXES):
        return True
    return source.count("/") > 1 or "\\" in source


def _pipeline_class(index: Path, spec: BackendSpec, model: str) -> str:
    try:
        found = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError, AttributeError) as exc:
        raise ConductorLoadError(
            f"The {spec.name} conductor cannot read {index} ({exc}).",
            conductor=spec.name, model=model,
        ) from None  # fmt: skip
    if not isinstance(found, str):
        raise ConductorLoadError(
            f"{index} names no pipeline class (`_class_name`), so the {spec.name} conductor "
            "cannot tell what it holds.", conductor=spec.name, model=model,
        )  # fmt: skip
    return found


def check_pipeline_class(spec: BackendSpec, model: str, found: str) -> None:
    """A checkpoint of pipeline `found` must be one `spec` loads; else one sentence naming both."""
    if found in spec.accepts_pipelines:
        return
    other = next((s.name for s in INPAINTERS.values() if found in s.accepts_pipelines), None)
    whose = f" (the {other} conductor's)" if other else ""
    raise WrongPipelineError(
        f"{model} holds a {found} checkpoint{whose}, but the {spec.name} conductor needs a "
        f"{spec.pipeline_class} one.",
        conductor=spec.name, model=model, expected=spec.pipeline_class or "", found=found,
        suggested=other,
    )  # fmt: skip


def locate_weights(spec: BackendSpec, model: str, *, local_files_only: bool = True) -> WeightsLocation:
    """What `model` is for conductor `spec`, checked without loading any weights.

    Raises `MissingWeightsError` (not on this machine, downloads off), `WrongPipelineError`
    (another pipeline's checkpoint) or `ConductorLoadError` (anything else unusable).
    """
    path = Path(model).expanduser()
    if path.is_dir():
        index = path / "model_index.json"
        if not index.is_file():
            raise ConductorLoadError(
                f"The folder {model} has no model_index.json, so it is not a diffusers pipeline "
                f"folder (one written by `save_pretrained`) the {spec.name} conductor can load.",
                conductor=spec.name, model=model,
            )  # fmt: skip
        found = _pipeline_class(index, spec, model)
        check_pipeline_class(spec, model, found)
        return WeightsLocation("folder", str(path), found)
    if path.is_file():
        if not spec.single_file or path.suffix not in SINGLE_FILE_SUFFIXES:
            kinds = "a diffusers folder or a Hub id" if not spec.single_file else (
                f"a {', '.join(SINGLE_FILE_SUFFIXES)} checkpoint, a diffusers folder or a Hub id")
            raise ConductorLoadError(
                f"The {spec.name} conductor cannot load the file {model}; give it {kinds}.",
                conductor=spec.name, model=model,
            )  # fmt: skip
        return WeightsLocation("file", str(path), None)
    if path.exists():
        raise ConductorLoadError(
            f"{model} is not a regular file or folder, so the {spec.name} conductor cannot "
            "load it.", conductor=spec.name, model=model,
        )  # fmt: skip
    if _looks_like_path(model):
        raise _missing(spec, model, f"{model} does not exist", folder=model)
    return _locate_hub(spec, model, local_files_only)


def _locate_hub(spec: BackendSpec, repo: str, local_files_only: bool) -> WeightsLocation:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = try_to_load_from_cache(repo, "model_index.json")
    except HFValidationError:
        raise ConductorLoadError(
            f"{repo!r} is neither a folder, a file nor a Hub repository id (owner/name), so the "
            f"{spec.name} conductor cannot load it.", conductor=spec.name, model=repo,
        ) from None  # fmt: skip
    if isinstance(cached, str):
        found = _pipeline_class(Path(cached), spec, repo)
        check_pipeline_class(spec, repo, found)
        return WeightsLocation("hub", repo, found)
    if local_files_only:
        raise _missing(spec, repo, f"{repo} is not in the Hugging Face cache and downloads are off")
    try:
        index = hf_hub_download(repo, "model_index.json")
    except Exception as exc:  # gated, missing, offline: one sentence with the Hub's reason
        raise ConductorLoadError(
            f"The {spec.name} conductor cannot fetch {repo} from the Hugging Face Hub "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no reason given'}).",
            conductor=spec.name, model=repo,
        ) from None  # fmt: skip
    found = _pipeline_class(Path(index), spec, repo)
    check_pipeline_class(spec, repo, found)
    return WeightsLocation("hub", repo, found, cached=False)


def weights_status(name: str, model: str | None = None) -> WeightsStatus:
    """Whether conductor `name`'s weights (`model`, else its default repository) are on this
    machine and of the right pipeline, from the local cache only (nothing downloads)."""
    spec = conductor_spec(name)
    model = model or spec.default_model or ""
    try:
        where = locate_weights(spec, model, local_files_only=True)
    except MissingWeightsError as exc:
        return WeightsStatus(name, model, False, str(exc), exc.fix_command)
    except ConductorLoadError as exc:
        return WeightsStatus(name, model, False, str(exc), None, getattr(exc, "found", None))
    where_words = {"folder": "local folder", "file": "single file", "hub": "in the local cache"}
    return WeightsStatus(name, model, True, f"{where_words[where.kind]} {model}", None,
                         where.pipeline_class)


def default_dtype(device: str) -> Any:
    """bfloat16 on a GPU (CUDA, MPS), float32 on the CPU."""
    import torch

    return torch.float32 if str(device).split(":")[0] == "cpu" else torch.bfloat16


def load_pipeline(
    name: str,
    model: str | None = None,
    *,
    device: str = "cpu",
    dtype: Any = None,
    local_files_only: bool = True,
    offload: Offload = "none",
) -> tuple[Any, str]:
    """Conductor `name`'s diffusers pipeline, loaded from `model` (Hub id, `save_pretrained`
    folder or single file; default: its official repository) and placed; with the model it
    came from. `load_conductor` wraps it in its conductor class.

    Args:
        device: where it runs (`cpu`, `cuda`, `cuda:1`, `mps`); with `offload` the GPU it
            offloads to.
        dtype: a torch dtype or its name; default bfloat16 on a GPU, float32 on the CPU.
        local_files_only: nothing downloads (the default); a Hub id must be in the cache.
        offload: `none`, `model` or `sequential` CPU offload (needs a GPU device).

    Raises `MissingWeightsError`, `WrongPipelineError` or `ConductorLoadError` in one sentence.
    """
    from tools.types import resolve_dtype

    spec = conductor_spec(name)
    model = model or spec.default_model or ""
    if offload not in ("none", "model", "sequential"):
        raise ConfigError(f"`offload` must be none, model or sequential, got {offload!r}")
    if offload != "none" and str(device).split(":")[0] == "cpu":
        raise ConfigError(
            f"CPU offload moves models to a GPU as they run, but the {name} conductor's device "
            "is the CPU; choose a GPU device or no offload."
        )
    _check_device(name, device)
    try:
        torch_dtype = resolve_dtype(dtype) or default_dtype(device)
    except ValueError as exc:
        raise ConfigError(f"The {name} conductor cannot run in {dtype!r}: {exc}.") from None
    where = locate_weights(spec, model, local_files_only=local_files_only)
    try:
        with _no_loading_bars():
            pipeline = _from_weights(spec, where, torch_dtype, local_files_only)
    except (OSError, ValueError) as exc:
        if local_files_only and where.kind == "hub":
            raise _missing(spec, model, f"the cached copy of {model} is incomplete") from exc
        if local_files_only and where.kind == "file" and _not_in_cache(exc):
            raise _single_file_without_configs(spec, where) from exc
        raise ConductorLoadError(
            f"The {name} conductor could not load {model}: {str(exc).splitlines()[0]}",
            conductor=name, model=model,
        ) from exc  # fmt: skip
    if offload == "model":
        pipeline.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipeline.enable_sequential_cpu_offload(device=device)
    else:
        pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline, model


def _not_in_cache(exc: BaseException) -> bool:
    """Whether diffusers failed because a Hub repository it needs is not in the local cache."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    return isinstance(exc, LocalEntryNotFoundError) or "outgoing traffic has been disabled" in str(exc)


SDXL_INPAINT_CONFIGS = "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"
"""Where diffusers reads an SDXL inpainting single file's pipeline configuration from."""


def _single_file_without_configs(spec: BackendSpec, where: WeightsLocation) -> ConductorLoadError:
    """A single file holds weights, not its pipeline's configuration (nor, for FLUX.1, the text
    encoders and VAE): diffusers reads those from the official repository in the Hub cache."""
    repo = spec.default_model or ""
    if spec.name == "sd-inpaint":
        from brushedit_inpaint.families import base_family

        with contextlib.suppress(Exception):  # unreadable: the SD1.5 repository is the guess
            repo = SDXL_INPAINT_CONFIGS if base_family(where.source) == "sdxl" else repo
    return ConductorLoadError(
        f"The {spec.name} conductor could not load the single file {where.source}: diffusers "
        f"takes its pipeline's configuration (and any part the file lacks) from {repo}, which "
        f"is not in the local Hugging Face cache; fetch it with `hf download {repo}` or allow "
        "downloads (BRUSHEDIT_ALLOW_DOWNLOADS=1).",
        conductor=spec.name, model=where.source,
    )  # fmt: skip


@contextlib.contextmanager
def _no_loading_bars() -> Iterator[None]:
    """diffusers' and transformers' loading bars off while a pipeline loads: the surfaces show
    their own progress (a CLI spinner, server events), and tqdm lines would cut through it."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    restore = [lib for lib in (diffusers_logging, transformers_logging)
               if lib.is_progress_bar_enabled()]
    for lib in restore:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib in restore:
            lib.enable_progress_bar()


def _check_device(name: str, device: str) -> None:
    """`device` names a device torch knows and this machine has, or a `ConfigError` says why."""
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"The {name} conductor's device {device!r} is not a device name (cpu, cuda, cuda:1, mps)."
        ) from None
    missing = (kind == "cuda" and not torch.cuda.is_available()) or (
        kind == "mps" and not torch.backends.mps.is_available())
    if missing:
        raise ConfigError(
            f"The {name} conductor's device {device} is not available on this machine."
        )


def _from_weights(spec: BackendSpec, where: WeightsLocation, dtype: Any, local_files_only: bool) -> Any:
    """The diffusers pipeline `spec` runs, loaded from `where`."""
    import diffusers

    common = {"dtype": dtype, "local_files_only": local_files_only}
    if spec.name == "sd-inpaint":
        return _sd_inpaint(where, common)
    cls = getattr(diffusers, spec.pipeline_class or "")
    if where.kind == "file":
        return cls.from_single_file(where.source, **common)
    extra: dict[str, Any] = {}
    if spec.name == "qwen-image-edit":
        from tools.conductors.qwen_processor import ImageOnlyQwen2VLProcessor

        extra["processor"] = ImageOnlyQwen2VLProcessor.from_pretrained(
            where.source, subfolder="processor", local_files_only=local_files_only
        )
    return cls.from_pretrained(where.source, **common, **extra)


def _sd_inpaint(where: WeightsLocation, common: dict[str, Any]) -> Any:
    """SD1.5 / SDXL / SD3 inpainting through `AutoPipelineForInpainting` (single files by
    their family: SD1.5 or SDXL); SD1.x loads without its safety checker, as BrushNet's bases do."""
    import diffusers

    if where.kind == "file":
        from brushedit_inpaint.families import base_family

        sdxl = base_family(where.source) == "sdxl"
        cls = diffusers.StableDiffusionXLInpaintPipeline if sdxl else (
            diffusers.StableDiffusionInpaintPipeline)
        extra = {} if sdxl else {"safety_checker": None}
        return cls.from_single_file(where.source, **common, **extra)
    sd1 = (where.pipeline_class or "").startswith("StableDiffusion") and not (
        (where.pipeline_class or "").startswith(("StableDiffusionXL", "StableDiffusion3")))
    extra = {"safety_checker": None, "requires_safety_checker": False} if sd1 else {}
    return diffusers.AutoPipelineForInpainting.from_pretrained(where.source, **common, **extra)
