# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""Load an SD1.5 base plus a BrushNet checkpoint into [`StableDiffusionBrushNetPipeline`], with readable errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from diffusers.utils import logging

from .brushnet import BrushNetModel
from .pipeline import StableDiffusionBrushNetPipeline

logger = logging.get_logger(__name__)

_SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")


class BrushNetLoadError(ValueError):
    """A base model or BrushNet checkpoint is missing or does not fit this pipeline; the message says why."""


def _looks_like_path(name: str) -> bool:
    """Hub ids are `owner/name`; anything absolute, relative-dotted, deeper or with a file suffix is a path."""
    if os.path.isabs(name) or name.startswith((".", "~")) or name.endswith(_SINGLE_FILE_SUFFIXES):
        return True
    return name.count("/") > 1 or "\\" in name


def _check_brushnet_config(config: dict[str, Any], source: str) -> None:
    if config.get("addition_embed_type") is not None or config.get("cross_attention_dim") == 2048:
        raise BrushNetLoadError(
            f"{source} is an SDXL BrushNet (addition_embed_type={config.get('addition_embed_type')!r}, "
            f"cross_attention_dim={config.get('cross_attention_dim')}); this pipeline is for SD1.5 BrushNets "
            "such as BrushEdit's `brushnetX`."
        )
    in_ch, cond_ch = config.get("in_channels", 4), config.get("conditioning_channels", 5)
    if in_ch != 4 or cond_ch != 5:
        raise BrushNetLoadError(
            f"{source} has in_channels={in_ch}, conditioning_channels={cond_ch}; a BrushNet needs 4 + 5 = 9 input "
            "channels (noisy latent 4, masked-image latent 4, mask 1)."
        )


def _check_unet_config(config: Any, source: str) -> None:
    if config.get("addition_embed_type") is not None or config.get("cross_attention_dim") == 2048:
        raise BrushNetLoadError(
            f"The base model {source} looks like SDXL (addition_embed_type={config.get('addition_embed_type')!r}, "
            f"cross_attention_dim={config.get('cross_attention_dim')}); use a Stable Diffusion 1.5 base."
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


def _load_base_components(base: str, dtype: torch.dtype, local_files_only: bool) -> dict[str, Any]:
    from diffusers import StableDiffusionPipeline

    path = Path(base).expanduser()
    try:
        if path.is_file():
            if path.suffix not in _SINGLE_FILE_SUFFIXES:
                raise BrushNetLoadError(
                    f"Base model file {base} must be a .safetensors or .ckpt single-file checkpoint."
                )
            base_pipe = StableDiffusionPipeline.from_single_file(
                str(path), torch_dtype=dtype, local_files_only=local_files_only, safety_checker=None
            )
        elif path.is_dir():
            if not (path / "model_index.json").is_file():
                raise BrushNetLoadError(
                    f"Base model folder {base} has no model_index.json: expected a diffusers-format Stable Diffusion "
                    "folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/)."
                )
            base_pipe = StableDiffusionPipeline.from_pretrained(
                str(path), torch_dtype=dtype, safety_checker=None, requires_safety_checker=False
            )
        elif _looks_like_path(base):
            raise BrushNetLoadError(f"Base model path {base} does not exist.")
        else:
            base_pipe = StableDiffusionPipeline.from_pretrained(
                base,
                torch_dtype=dtype,
                local_files_only=local_files_only,
                safety_checker=None,
                requires_safety_checker=False,
            )
    except BrushNetLoadError:
        raise
    except (OSError, ValueError) as exc:
        raise BrushNetLoadError(f"Could not load the base model {base!r}: {exc}") from exc
    components = dict(base_pipe.components)
    return {k: components.get(k) for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}


def _load_brushnet(
    brushnet: str, subfolder: str | None, dtype: torch.dtype, local_files_only: bool
) -> BrushNetModel:
    source = brushnet if subfolder is None else f"{brushnet} (subfolder {subfolder!r})"
    path = Path(brushnet).expanduser()
    if path.exists():
        folder = path / subfolder if subfolder else path
        if not (folder / "config.json").is_file():
            raise BrushNetLoadError(
                f"BrushNet folder {folder} has no config.json: expected a diffusers-format BrushNet folder "
                "(config.json + diffusion_pytorch_model.safetensors), e.g. BrushEdit's `brushnetX/`."
            )
    elif _looks_like_path(brushnet):
        raise BrushNetLoadError(f"BrushNet path {brushnet} does not exist.")
    try:
        config = BrushNetModel.load_config(
            brushnet, subfolder=subfolder, local_files_only=local_files_only
        )
    except (OSError, ValueError) as exc:
        raise BrushNetLoadError(f"Could not read the BrushNet config of {source}: {exc}") from exc
    _check_brushnet_config(config, f"BrushNet {source}")
    try:
        return BrushNetModel.from_pretrained(
            brushnet, subfolder=subfolder, torch_dtype=dtype, local_files_only=local_files_only
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise BrushNetLoadError(f"Could not load the BrushNet weights of {source}: {exc}") from exc


def load_pipeline(
    base: str,
    brushnet: str,
    brushnet_subfolder: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    scheduler: Any = None,
    local_files_only: bool = False,
    cpu_offload: bool = False,
) -> StableDiffusionBrushNetPipeline:
    r"""
    Build a ready-to-call [`StableDiffusionBrushNetPipeline`].

    Args:
        base (`str`): SD1.5 base: a Hub id, a local diffusers folder, or a single `.safetensors`/`.ckpt` file
            (loaded with `StableDiffusionPipeline.from_single_file`; offline, that needs the SD1.5 config cached).
        brushnet (`str`): BrushNet checkpoint: a Hub id (e.g. `"TencentARC/BrushEdit"`) or a local folder.
        brushnet_subfolder (`str`, *optional*): e.g. `"brushnetX"` inside the BrushEdit repository.
        device (`str`, defaults to `"cpu"`): Where to run (ignored for placement when `cpu_offload=True`).
        dtype (`torch.dtype`, defaults to `torch.float32`): `torch.float16`/`torch.bfloat16` on GPUs.
        scheduler (*optional*): None for UniPC (diffusers' defaults), a scheduler class, its name, or an instance.
        local_files_only (`bool`, defaults to `False`): Never touch the network.
        cpu_offload (`bool`, defaults to `False`): `enable_model_cpu_offload` on `device` instead of moving there.

    Raises:
        BrushNetLoadError: missing files, or a checkpoint that does not fit (wrong channels, SDXL, inpainting UNet).
    """
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

    branch = _load_brushnet(brushnet, brushnet_subfolder, dtype, local_files_only)
    components = _load_base_components(base, dtype, local_files_only)
    _check_unet_config(components["unet"].config, base)
    _check_pair(components["unet"].config, branch.config, brushnet)

    pipe = StableDiffusionBrushNetPipeline(
        vae=components["vae"],
        text_encoder=components["text_encoder"],
        tokenizer=components["tokenizer"],
        unet=components["unet"],
        brushnet=branch,
        scheduler=_make_scheduler(scheduler, components["scheduler"].config),
    )
    if cpu_offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    return pipe
