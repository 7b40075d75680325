# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""Inference settings that change speed, never results: memory format and `torch.compile`.

`channels_last` (NHWC) suits the GPUs' convolution kernels (cuDNN's fp16/bf16 paths); on this project's 2-core CPU
it made the whole SD1.5 denoising step slower (`benchmarks/inpaint_step.py`: 30.3 vs 20.3 s per step at 512 px),
so `memory_format="auto"` picks it on CUDA only.
`torch.compile` pays a long warm-up (minutes on a CPU) for faster later calls: an opt-in for
long-lived processes. The UNet is compiled block by block, because `unet_forward_with_brushnet`
walks its submodules rather than calling `unet.forward`.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)

MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def optimize_for_inference(
    pipe: Any, memory_format: str | None = "auto", compile: bool = False
) -> Any:
    r"""
    Put a BrushNet pipeline's UNet, branch and VAE in `memory_format`, and optionally compile them.

    Args:
        pipe: a [`StableDiffusionBrushNetPipeline`] or [`StableDiffusionXLBrushNetPipeline`].
        memory_format (`str`, *optional*, defaults to `"auto"`): `"channels_last"`, `"contiguous"`, `"auto"`
            (channels_last when the UNet is on a CUDA device, else left as it is), or None to leave the modules.
        compile (`bool`, defaults to `False`): `torch.compile` the branch and the UNet's blocks in place.

    Returns:
        The same pipeline.
    """
    if memory_format == "auto":
        device = getattr(getattr(pipe, "unet", None), "device", None)
        memory_format = "channels_last" if getattr(device, "type", None) == "cuda" else None
    if memory_format is not None:
        if memory_format not in MEMORY_FORMATS:
            raise ValueError(
                f"`memory_format` must be one of {', '.join(MEMORY_FORMATS)}, auto or None, got {memory_format!r}"
            )
        for name in ("unet", "brushnet", "vae"):
            module = getattr(pipe, name, None)
            if module is not None:
                module.to(memory_format=MEMORY_FORMATS[memory_format])
    if compile:
        compile_denoiser(pipe)
    return pipe


def compile_denoiser(pipe: Any) -> list[torch.nn.Module]:
    """`torch.compile` (in place) the branch and every block the UNet walk calls; returns what was compiled."""
    unet = pipe.unet
    modules: list[torch.nn.Module] = [pipe.brushnet]
    for block in (*unet.down_blocks, *unet.up_blocks):
        for group in ("resnets", "attentions", "downsamplers", "upsamplers"):
            modules.extend(getattr(block, group, None) or [])
    if unet.mid_block is not None:
        modules.append(unet.mid_block)
    for module in modules:
        module.compile()
    logger.info(
        "torch.compile: %d modules will compile on the first call (minutes on a CPU); later calls are faster",
        len(modules),
    )
    return modules
