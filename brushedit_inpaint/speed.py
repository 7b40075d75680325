# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""Inference settings that change speed, never results: memory format, the CPU allocator and `torch.compile`.

`channels_last` (NHWC) suits the GPUs' convolution kernels (cuDNN's fp16/bf16 paths); on this project's 2-core CPU
it made the whole SD1.5 denoising step slower (`benchmarks/inpaint_step.py`: 30.3 vs 20.3 s per step at 512 px),
so `memory_format="auto"` picks it on CUDA only.
`torch.compile` pays a long warm-up (minutes on a CPU) for faster later calls: an opt-in for
long-lived processes. The UNet is compiled block by block, because `unet_forward_with_brushnet`
walks its submodules rather than calling `unet.forward`.
On a CPU, glibc's malloc hands every block over 32 MiB (and, as its threshold moves, many smaller ones) back to the
kernel when it is freed, so each denoising step page-faults its activations and oneDNN's weight reorders in afresh:
about 780k minor faults per SD1.5 step at 256 px, 2.8 s of kernel time (`docs/speed.md`). `keep_freed_memory`
makes this process keep freed memory for reuse instead (no faults after the first step).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from typing import Any

import torch

logger = logging.getLogger(__name__)

MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
CPU_ALLOCATOR = ("auto", "keep", None)
# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    r"""
    Make glibc's malloc keep freed memory in this process for reuse: no `mmap` per large block, no trimming.

    Process-wide (it is the C library's setting): the process then holds on to its peak memory instead of returning
    freed blocks to the kernel, and stops paying a page fault for every 4 KiB of every large tensor it allocates.
    The same as starting Python with `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647`.

    Returns:
        `bool`: whether the setting was applied (False where the C library is not glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    if applied:
        logger.info("CPU allocator: glibc malloc keeps freed memory for reuse (no mmap, no trim)")
    return applied


def optimize_for_inference(
    pipe: Any, memory_format: str | None = "auto", compile: bool = False, cpu_allocator: str | None = "auto"
) -> Any:
    r"""
    Put a BrushNet pipeline's UNet, branch and VAE in `memory_format`, and optionally compile them.

    Args:
        pipe: a [`StableDiffusionBrushNetPipeline`] or [`StableDiffusionXLBrushNetPipeline`].
        memory_format (`str`, *optional*, defaults to `"auto"`): `"channels_last"`, `"contiguous"`, `"auto"`
            (channels_last when the UNet is on a CUDA device, else left as it is), or None to leave the modules.
        compile (`bool`, defaults to `False`): `torch.compile` the branch and the UNet's blocks in place.
        cpu_allocator (`str`, *optional*, defaults to `"auto"`): `"keep"` calls [`keep_freed_memory`] (a setting of
            the whole process), `"auto"` does so when the UNet is on the CPU, None leaves the allocator alone.

    Returns:
        The same pipeline.
    """
    if cpu_allocator not in CPU_ALLOCATOR:
        raise ValueError(f"`cpu_allocator` must be one of {CPU_ALLOCATOR}, got {cpu_allocator!r}")
    device_type = _device_type(pipe)
    if cpu_allocator == "keep" or (cpu_allocator == "auto" and device_type == "cpu"):
        keep_freed_memory()
    if memory_format == "auto":
        memory_format = "channels_last" if device_type == "cuda" else None
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


def _device_type(pipe: Any) -> str | None:
    """Where the pipeline computes: its execution device (the GPU under model CPU offload), else the UNet's."""
    try:
        return pipe._execution_device.type
    except AttributeError:
        return getattr(getattr(getattr(pipe, "unet", None), "device", None), "type", None)


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
