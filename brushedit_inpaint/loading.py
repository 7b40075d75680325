# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""Load a base model plus a BrushNet checkpoint into the matching pipeline, with readable errors.

The family (Stable Diffusion 1.5 or SDXL) is read from the base's config (Hub id, diffusers folder or the key names
of a single file) and from the BrushNet's `config.json` before any weights are loaded, so a mismatched pair fails in
one sentence: an SD1.5 base gives [`StableDiffusionBrushNetPipeline`], an SDXL base
[`StableDiffusionXLBrushNetPipeline`].
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from diffusers.utils import logging

from .brushnet import BrushNetModel
from .families import (
    _SINGLE_FILE_SUFFIXES,
    A_FAMILY,
    FAMILY_NAMES,
    BrushNetLoadError,
    Family,
    _looks_like_path,
    _unet_family,
    base_family,
    brushnet_family,
)
from .pipeline import StableDiffusionBrushNetPipeline
from .pipeline_sdxl import StableDiffusionXLBrushNetPipeline
from .speed import optimize_for_inference

logger = logging.get_logger(__name__)

_SUGGESTED_BRUSHNET = {
    "sd15": "an SD1.5 BrushNet such as BrushEdit's `brushnetX`",
    "sdxl": "an SDXL BrushNet such as `random_mask_brushnet_ckpt_sdxl_v0` or "
    "`segmentation_mask_brushnet_ckpt_sdxl_v1`",
}


def _check_family_pair(base_kind: Family, branch_kind: Family, base: str, brushnet: str) -> None:
    if base_kind != branch_kind:
        raise BrushNetLoadError(
            f"BrushNet {brushnet} is {A_FAMILY[branch_kind]} BrushNet but the base model {base} is "
            f"{FAMILY_NAMES[base_kind]}: use {_SUGGESTED_BRUSHNET[base_kind]} with this base, or "
            f"{A_FAMILY[branch_kind]} base."
        )


def _check_brushnet_config(config: dict[str, Any], source: str) -> None:
    in_ch, cond_ch = config.get("in_channels", 4), config.get("conditioning_channels", 5)
    if in_ch != 4 or cond_ch != 5:
        raise BrushNetLoadError(
            f"{source} has in_channels={in_ch}, conditioning_channels={cond_ch}; a BrushNet needs 4 + 5 = 9 input "
            "channels (noisy latent 4, masked-image latent 4, mask 1)."
        )


def _check_unet_config(config: Any, source: str, family: Family) -> None:
    if _unet_family(config) != family:
        raise BrushNetLoadError(
            f"The base model {source} has a {FAMILY_NAMES[_unet_family(config)]} UNet although its config says "
            f"{FAMILY_NAMES[family]}; re-export it as one diffusers folder."
        )
    if config.get("in_channels") != 4:
        raise BrushNetLoadError(
            f"The base UNet of {source} has in_channels={config.get('in_channels')}; BrushNet needs a text-to-image "
            "UNet with 4 input channels, not an inpainting UNet (9 channels)."
        )


def _check_pair(unet_config: Any, brushnet_config: Any, brushnet_source: str) -> None:
    for key in ("block_out_channels", "layers_per_block"):
        if list(_as_list(unet_config.get(key))) != list(_as_list(brushnet_config.get(key))):
            raise BrushNetLoadError(
                f"BrushNet {brushnet_source} has {key}={brushnet_config.get(key)} but the base UNet has "
                f"{unet_config.get(key)}: they were not built for the same architecture."
            )


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _make_scheduler(scheduler: Any, base_config: Any):
    import diffusers

    if scheduler is None:
        return diffusers.UniPCMultistepScheduler.from_config(base_config)
    if isinstance(scheduler, str):
        cls = getattr(diffusers, scheduler, None)
        if cls is None or not hasattr(cls, "from_config"):
            raise BrushNetLoadError(
                f"`scheduler`={scheduler!r} is not a diffusers scheduler class name."
            )
        return cls.from_config(base_config)
    if isinstance(scheduler, type):
        return scheduler.from_config(base_config)
    if hasattr(scheduler, "step") and hasattr(scheduler, "set_timesteps"):
        return scheduler
    raise BrushNetLoadError(
        f"`scheduler` must be None, a diffusers scheduler class, its name or an instance; got {type(scheduler)}."
    )


_BASE_COMPONENTS = {
    "sd15": ("vae", "text_encoder", "tokenizer", "unet", "scheduler"),
    "sdxl": (
        "vae",
        "text_encoder",
        "text_encoder_2",
        "tokenizer",
        "tokenizer_2",
        "unet",
        "scheduler",
    ),
}


def _load_base_components(
    base: str,
    dtype: torch.dtype,
    local_files_only: bool,
    family: Family = "sd15",
    config: str | None = None,
) -> dict[str, Any]:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if family == "sdxl":
        pipeline_cls, extra = StableDiffusionXLPipeline, {"add_watermarker": False}
    else:
        pipeline_cls = StableDiffusionPipeline
        extra = {"safety_checker": None, "requires_safety_checker": False}
    path = Path(base).expanduser()
    try:
        if path.is_file():
            if path.suffix not in _SINGLE_FILE_SUFFIXES:
                raise BrushNetLoadError(
                    f"Base model file {base} must be a .safetensors or .ckpt single-file checkpoint."
                )
            single = {"safety_checker": None} if family == "sd15" else {}
            if config is not None:
                single["config"] = config
            base_pipe = pipeline_cls.from_single_file(
                str(path), dtype=dtype, local_files_only=local_files_only, **single
            )
        elif path.is_dir():
            if not (path / "model_index.json").is_file():
                raise BrushNetLoadError(
                    f"Base model folder {base} has no model_index.json: expected a diffusers-format Stable Diffusion "
                    "folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/)."
                )
            base_pipe = pipeline_cls.from_pretrained(str(path), dtype=dtype, **extra)
        elif _looks_like_path(base):
            raise BrushNetLoadError(f"Base model path {base} does not exist.")
        else:
            base_pipe = pipeline_cls.from_pretrained(
                base, dtype=dtype, local_files_only=local_files_only, **extra
            )
    except BrushNetLoadError:
        raise
    except (OSError, ValueError) as exc:
        raise BrushNetLoadError(f"Could not load the base model {base!r}: {exc}") from exc
    components = dict(base_pipe.components)
    out = {k: components.get(k) for k in _BASE_COMPONENTS[family]}
    if family == "sdxl":
        out["force_zeros_for_empty_prompt"] = base_pipe.config.get(
            "force_zeros_for_empty_prompt", True
        )
    return out


def _check_single_file_config(
    config: Any, base: str, family: Family, local_files_only: bool
) -> str | None:
    """`config` as a str, after checking it goes with a single-file `base` of the same family."""
    if config is None:
        return None
    if isinstance(config, os.PathLike):
        config = os.fspath(config)
    if not isinstance(config, str) or not config.strip():
        raise BrushNetLoadError(f"`config` must be a diffusers folder or Hub id (a str), got {config!r:.80}.")
    if not Path(base).expanduser().is_file():
        raise BrushNetLoadError(
            f"`config` is for a single-file `base`; {base} is a folder or Hub id, which carries its own config."
        )
    config_family = base_family(config, local_files_only=local_files_only)
    if config_family != family:
        raise BrushNetLoadError(
            f"`config` {config} is {A_FAMILY[config_family]} model's layout but the single file {base} holds "
            f"{A_FAMILY[family]} model: pass the config of the file's family."
        )
    return str(Path(config).expanduser()) if Path(config).expanduser().exists() else config


def _load_vae(vae: str, dtype: torch.dtype, local_files_only: bool) -> Any:
    from diffusers import AutoencoderKL

    path = Path(vae).expanduser()
    if not path.exists() and _looks_like_path(vae):
        raise BrushNetLoadError(f"VAE path {vae} does not exist.")
    try:
        return AutoencoderKL.from_pretrained(vae, dtype=dtype, local_files_only=local_files_only)
    except (OSError, ValueError, RuntimeError) as exc:
        raise BrushNetLoadError(f"Could not load the VAE {vae!r}: {exc}") from exc


def _find_brushnet_folder(path: Path, subfolder: str | None) -> tuple[Path, str | None]:
    """The folder holding config.json: `path/subfolder`, `path`, or `path`'s only BrushNet subfolder.

    The released checkpoints come as one folder each (`random_mask_brushnet_ckpt_sdxl_v0/`,
    `segmentation_mask_brushnet_ckpt_sdxl_v1/`, BrushEdit's `brushnetX/`: config.json +
    diffusion_pytorch_model.safetensors), often inside a download folder such as `data/ckpt/`.
    """
    folder = path / subfolder if subfolder else path
    if (folder / "config.json").is_file():
        return path, subfolder
    candidates = sorted(
        p.name for p in folder.iterdir() if p.is_dir() and (p / "config.json").is_file()
    ) if folder.is_dir() else []  # fmt: skip
    if len(candidates) == 1:
        logger.info(f"Using the BrushNet in {folder / candidates[0]}.")
        return folder, candidates[0]
    found = f"; it holds {', '.join(candidates)}: pass one as the subfolder" if candidates else ""
    raise BrushNetLoadError(
        f"BrushNet folder {folder} has no config.json{found} (expected a diffusers-format BrushNet folder: "
        "config.json + diffusion_pytorch_model.safetensors, e.g. BrushEdit's `brushnetX/` or "
        "`segmentation_mask_brushnet_ckpt_sdxl_v1/`)."
    )


def _weights_variant(folder: Path) -> str | None:
    """`"fp16"` when a local folder has only `diffusion_pytorch_model.fp16.*` weights (half-precision exports)."""
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    plain = {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"}
    if names & plain or not any(n.startswith("diffusion_pytorch_model.fp16.") for n in names):
        return None
    return "fp16"


def _read_brushnet_config(
    brushnet: str, subfolder: str | None, local_files_only: bool
) -> tuple[str, str | None, dict[str, Any]]:
    """Locate the BrushNet and read its config: (where, subfolder, config), checked for the 9 input channels.

    A `.safetensors` file is a single-file BrushNet: its config is inferred from the tensor shapes.
    """
    path = Path(brushnet).expanduser()
    if path.is_file() and path.suffix == ".safetensors":
        return _read_single_file_brushnet(path, subfolder)
    if path.exists() and not path.is_dir():
        raise BrushNetLoadError(
            f"BrushNet path {brushnet} is not a folder or a .safetensors file; pass the folder holding config.json "
            "and the weights, or the weights as one .safetensors file."
        )
    if path.exists():
        path, subfolder = _find_brushnet_folder(path, subfolder)
        brushnet = str(path)
    elif _looks_like_path(brushnet):
        raise BrushNetLoadError(f"BrushNet path {brushnet} does not exist.")
    source = brushnet if subfolder is None else f"{brushnet} (subfolder {subfolder!r})"
    try:
        config = BrushNetModel.load_config(
            brushnet, subfolder=subfolder, local_files_only=local_files_only
        )
    except (OSError, ValueError) as exc:
        raise BrushNetLoadError(f"Could not read the BrushNet config of {source}: {exc}") from exc
    if not isinstance(config, dict):
        raise BrushNetLoadError(
            f"The BrushNet config of {source} is not a JSON object (it holds a {type(config).__name__})."
        )
    _check_brushnet_config(config, f"BrushNet {source}")
    return brushnet, subfolder, config


def _read_single_file_brushnet(path: Path, subfolder: str | None) -> tuple[str, None, dict[str, Any]]:
    from .single_file import infer_brushnet_config, read_checkpoint_shapes

    if subfolder is not None:
        raise BrushNetLoadError(
            f"`brushnet_subfolder`={subfolder!r} applies to folders and Hub ids, but BrushNet {path} is one file."
        )
    try:
        config = infer_brushnet_config(read_checkpoint_shapes(path), f"BrushNet {path}")
    except (OSError, ValueError) as exc:  # safetensors raises its own errors for damaged headers, as OSError/ValueError
        raise BrushNetLoadError(f"Could not read the BrushNet file {path}: {exc}") from exc
    _check_brushnet_config(config, f"BrushNet {path}")
    return str(path), None, config


def _load_brushnet(
    brushnet: str, subfolder: str | None, dtype: torch.dtype, local_files_only: bool
) -> BrushNetModel:
    source = brushnet if subfolder is None else f"{brushnet} (subfolder {subfolder!r})"
    path = Path(brushnet).expanduser()
    if path.is_file():
        try:
            return BrushNetModel.from_single_file(str(path), dtype=dtype)
        except (OSError, ValueError, RuntimeError) as exc:
            raise BrushNetLoadError(f"Could not load the BrushNet weights of {source}: {exc}") from exc
    variant = _weights_variant(path / subfolder if subfolder else path) if path.exists() else None
    try:
        return BrushNetModel.from_pretrained(
            brushnet,
            subfolder=subfolder,
            dtype=dtype,
            local_files_only=local_files_only,
            variant=variant,
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise BrushNetLoadError(f"Could not load the BrushNet weights of {source}: {exc}") from exc


_DTYPE_NAMES = {
    "float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
    "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}


def _check_arguments(
    base: Any, brushnet: Any, subfolder: Any, device: Any, dtype: Any
) -> tuple[str, str, Any, torch.dtype]:
    """`load_pipeline`'s arguments, checked before any file is read: one `BrushNetLoadError` each."""
    names = []
    for name, value in (("base", base), ("brushnet", brushnet)):
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip() or "\x00" in value:
            raise BrushNetLoadError(
                f"`{name}` must be a Hub id or a local path (a non-empty str), got {value!r:.80}."
            )
        names.append(value)
    if subfolder is not None and not isinstance(subfolder, str):
        raise BrushNetLoadError(f"`brushnet_subfolder` must be a str or None, got {subfolder!r:.80}.")
    try:
        where = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise BrushNetLoadError(
            f"`device`={device!r:.80} is not a torch device (e.g. \"cpu\", \"cuda\", \"cuda:1\", \"mps\")."
        ) from None
    if where.type == "cuda" and not torch.cuda.is_available():
        raise BrushNetLoadError(f"`device`={device!r} but this torch has no CUDA device; use \"cpu\".")
    if where.type == "cuda" and where.index is not None and where.index >= torch.cuda.device_count():
        raise BrushNetLoadError(
            f"`device`={device!r} but only {torch.cuda.device_count()} CUDA device(s) are visible."
        )
    if where.type == "mps" and not torch.backends.mps.is_available():
        raise BrushNetLoadError(f"`device`={device!r} but MPS is not available here; use \"cpu\".")
    if isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in _DTYPE_NAMES:
        dtype = _DTYPE_NAMES[dtype.lower().removeprefix("torch.")]
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise BrushNetLoadError(
            f"`dtype` must be a floating torch dtype (torch.float32, torch.float16, torch.bfloat16), got {dtype!r:.80}."
        )
    return names[0], names[1], device, dtype


def load_pipeline(
    base: str,
    brushnet: str,
    brushnet_subfolder: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    scheduler: Any = None,
    local_files_only: bool = False,
    cpu_offload: bool = False,
    memory_format: str | None = "auto",
    compile: bool = False,
    vae: str | None = None,
    cpu_allocator: str | None = "auto",
    config: str | os.PathLike | None = None,
) -> StableDiffusionBrushNetPipeline | StableDiffusionXLBrushNetPipeline:
    r"""
    Build a ready-to-call BrushNet pipeline for an SD1.5 or an SDXL base.

    The family is read from the base's config and the BrushNet's `config.json` first; a mismatched pair (an SDXL
    BrushNet on an SD1.5 base or the reverse) raises before any weights are loaded.

    Args:
        base (`str`): SD1.5 or SDXL base: a Hub id, a local diffusers folder, or a single `.safetensors`/`.ckpt`
            file (loaded with `from_single_file` of `StableDiffusionPipeline` / `StableDiffusionXLPipeline`;
            offline, that needs `config`, or the base's diffusers config in the Hugging Face cache).
        brushnet (`str`): BrushNet checkpoint: a Hub id (e.g. `"TencentARC/BrushEdit"`), a local folder, e.g.
            BrushNet's `segmentation_mask_brushnet_ckpt_sdxl_v1/` or the download folder holding it, or the weights
            as one `.safetensors` file (config inferred, see [`BrushNetModel.from_single_file`]).
        brushnet_subfolder (`str`, *optional*): e.g. `"brushnetX"` inside the BrushEdit repository, or
            `"random_mask_brushnet_ckpt_sdxl_v0"` inside a folder of checkpoints.
        device (`str`, defaults to `"cpu"`): Where to run (ignored for placement when `cpu_offload=True`).
        dtype (`torch.dtype`, defaults to `torch.float32`): `torch.float16`/`torch.bfloat16` on GPUs (SDXL's VAE
            is then run in float32 for its two passes unless it is a fp16-fixed VAE).
        scheduler (*optional*): None for UniPC (diffusers' defaults), a scheduler class, its name, or an instance.
        local_files_only (`bool`, defaults to `False`): Never touch the network.
        cpu_offload (`bool`, defaults to `False`): `enable_model_cpu_offload` on `device` instead of moving there.
        memory_format (`str`, *optional*, defaults to `"auto"`): memory format of the UNet, the branch and the
            VAE: `"auto"` is `"channels_last"` on CUDA (measured slower on a CPU) and PyTorch's default elsewhere;
            `"channels_last"` / `"contiguous"` force one. Results are unchanged.
        compile (`bool`, defaults to `False`): `torch.compile` the branch and the UNet's blocks; the first call
            then compiles (minutes on a CPU). For long-lived processes.
        vae (`str`, *optional*): A VAE to use instead of the base's (Hub id or folder), e.g.
            `"madebyollin/sdxl-vae-fp16-fix"`, which runs SDXL in float16 without the float32 VAE passes.
        cpu_allocator (`str`, *optional*, defaults to `"auto"`): on a CPU, make this process's malloc keep freed
            memory for reuse, so steps stop page-faulting their tensors in (`speed.keep_freed_memory`; process-wide);
            `"keep"` always, None never. Results are unchanged.
        config (`str` or `os.PathLike`, *optional*): For a single-file `base` only: the diffusers folder or Hub id
            whose layout the file's weights are read into (component configs, tokenizers, scheduler), e.g. a local
            `stable-diffusion-v1-5` or `stable-diffusion-xl-base-1.0` folder: what makes a single file load offline.

    Returns:
        [`StableDiffusionBrushNetPipeline`] for an SD1.5 base, [`StableDiffusionXLBrushNetPipeline`] for SDXL.

    Raises:
        BrushNetLoadError: missing files, or a checkpoint that does not fit (wrong family, wrong channels,
            inpainting UNet, different block layout).
    """
    base, brushnet, device, dtype = _check_arguments(base, brushnet, brushnet_subfolder, device, dtype)
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        local_files_only = True
    if (
        torch.device(device).type == "cpu"
        and dtype in (torch.float16, torch.bfloat16)
        and not cpu_offload
    ):
        logger.warning(
            "Half precision on the CPU is slow and may be unsupported; float32 is recommended there."
        )

    where, subfolder, branch_config = _read_brushnet_config(
        brushnet, brushnet_subfolder, local_files_only
    )
    family = base_family(base, local_files_only=local_files_only)
    config = _check_single_file_config(config, base, family, local_files_only)
    _check_family_pair(family, brushnet_family(branch_config), base, brushnet)
    branch = _load_brushnet(where, subfolder, dtype, local_files_only)
    components = _load_base_components(base, dtype, local_files_only, family, config)
    if vae is not None:
        components["vae"] = _load_vae(vae, dtype, local_files_only)
    _check_unet_config(components["unet"].config, base, family)
    _check_pair(components["unet"].config, branch.config, brushnet)

    components["scheduler"] = _make_scheduler(scheduler, components["scheduler"].config)
    pipeline_cls = (
        StableDiffusionXLBrushNetPipeline if family == "sdxl" else StableDiffusionBrushNetPipeline
    )
    pipe = pipeline_cls(**components, brushnet=branch)
    if cpu_offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    return optimize_for_inference(
        pipe, memory_format=memory_format, compile=compile, cpu_allocator=cpu_allocator
    )
