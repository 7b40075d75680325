"""GPU check: the goldens in half precision, and per-step time at real SD1.5 and SDXL sizes.

Skips (exit 0) without a CUDA device; never part of the test suite. One command, one table, its own
timeout (default 450 s, well inside 8 minutes): when the budget runs out it prints what it measured
and exits 124.

    python benchmarks/gpu_check.py                        # goldens fp16/bf16 + speed table
    python benchmarks/gpu_check.py --shared ../shared     # where the golden fixtures are
    python benchmarks/gpu_check.py --no-compile --sizes 512

Goldens: the tiny reference fixtures re-run in float16 and bfloat16 on the GPU and compared with the
reference's float32 image, through the CPU tests' own builders (tests/inpaint/tiny_parts.py). Tolerances (image in [0, 1]): 2e-2 for float16 (10-bit mantissa) and 5e-2
for bfloat16 (7-bit mantissa); float32 on the GPU must stay within the CPU tests' 1e-3.

Speed: random weights at the real SD1.5 and SDXL configs (no downloads), float16, channels_last,
shared branch, CFG, `--steps` steps; per-step time is the median step-to-step interval after the
first step; peak memory is `torch.cuda.max_memory_allocated`. Compile rows `torch.compile` the UNet
and the branch and report their warm-up (compilation) time separately.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROWS: list[str] = []
DEVICE = "cuda"


def emit(row: str) -> None:
    ROWS.append(row)
    print(row, flush=True)


def _on_timeout(signum, frame):  # pragma: no cover - only on a GPU machine
    print("\n== time budget spent; what was measured:", flush=True)
    for row in ROWS:
        print(row)
    sys.exit(124)


# -- goldens -----------------------------------------------------------------------------------


def _golden_builders():
    """The CPU tests' golden loader and builders (tests/inpaint/tiny_parts.py), so both run the same pipelines."""
    repo = str(Path(__file__).resolve().parents[1])
    if repo not in sys.path:
        sys.path.insert(0, repo)  # run as `python benchmarks/gpu_check.py`: the folder above holds `tests`
    from tests.inpaint import tiny_parts

    return tiny_parts


def _on_device(kwargs: dict, dtype: torch.dtype) -> dict:
    """A golden call with its embeddings and latents on the device in `dtype`, the mask as uint8."""
    kwargs = {k: v.to(DEVICE, dtype) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    kwargs["mask_image"] = kwargs["mask_image"].astype(np.uint8)
    return kwargs


def check_goldens(shared: Path, dtypes: list[torch.dtype]) -> None:
    limits = {torch.float32: 1e-3, torch.float16: 2e-2, torch.bfloat16: 5e-2}
    tolerance = {dtype: limits[dtype] for dtype in dtypes}
    parts = _golden_builders()
    for family, label in ((parts.SD15, "SD1.5"), (parts.SDXL, "SDXL")):
        folder = shared / "reference" / "golden" / family.golden_dir.name
        if not (folder / "config.json").is_file():
            emit(f"golden {folder.name}: fixture not found at {folder} (pass --shared)")
            continue
        golden = parts.load_golden(folder, folder.name)
        expected = golden["tensors"]["pipe.out_image"].numpy()
        for dtype, limit in tolerance.items():
            pipe = parts.golden_pipeline(family, golden).to(DEVICE, dtype)
            with torch.no_grad():
                out = pipe(**_on_device(parts.golden_kwargs(golden), dtype)).images[0]
            diff = float(np.abs(out.astype(np.float32) - expected).max())
            verdict = "ok" if diff <= limit else "OVER"
            emit(f"golden {label} {str(dtype)[6:]:9s} max|diff| {diff:.2e}"
                 f" (tolerance {limit:.0e}): {verdict}")


# -- speed -------------------------------------------------------------------------------------


def _speed_pipe(family: str):
    from diffusers import AutoencoderKL, UNet2DConditionModel, UniPCMultistepScheduler

    from brushedit_inpaint import (
        BrushNetModel,
        StableDiffusionBrushNetPipeline,
        StableDiffusionXLBrushNetPipeline,
    )
    from brushedit_inpaint.configs import (
        SD15_UNET_CONFIG,
        SD15_VAE_CONFIG,
        SDXL_UNET_CONFIG,
        SDXL_VAE_CONFIG,
    )

    sdxl = family == "SDXL"
    with torch.device("cuda"):
        unet = UNet2DConditionModel(**(SDXL_UNET_CONFIG if sdxl else SD15_UNET_CONFIG))
        vae = AutoencoderKL(**(SDXL_VAE_CONFIG if sdxl else SD15_VAE_CONFIG))
        brushnet = BrushNetModel.from_unet(unet)
    scheduler = UniPCMultistepScheduler(beta_start=0.00085, beta_end=0.012,
                                        beta_schedule="scaled_linear")
    common = {"vae": vae, "unet": unet, "brushnet": brushnet, "scheduler": scheduler}
    if sdxl:
        pipe = StableDiffusionXLBrushNetPipeline(text_encoder=None, text_encoder_2=None,
                                                 tokenizer=None, tokenizer_2=None, **common)
    else:
        pipe = StableDiffusionBrushNetPipeline(text_encoder=None, tokenizer=None, **common)
    pipe.set_progress_bar_config(disable=True)
    pipe.to("cuda", torch.float16)
    for model in (pipe.unet, pipe.brushnet, pipe.vae):
        model.to(memory_format=torch.channels_last)
    if sdxl:
        pipe.vae.to(torch.float32)  # SDXL's VAE overflows in float16 (force_upcast)
    return pipe


def _speed_kwargs(family: str, size: int, steps: int) -> dict:
    generator = torch.Generator("cuda").manual_seed(0)
    dim = 2048 if family == "SDXL" else 768
    embeds = torch.randn((1, 77, dim), generator=generator, device="cuda", dtype=torch.float16)
    rng = np.random.default_rng(0)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    kwargs = {"image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "mask_image": mask,
              "prompt_embeds": embeds, "negative_prompt_embeds": torch.zeros_like(embeds),
              "num_inference_steps": steps, "guidance_scale": 7.5, "output_type": "np",
              "height": size, "width": size}
    if family == "SDXL":
        pooled = torch.randn((1, 1280), generator=generator, device="cuda", dtype=torch.float16)
        kwargs |= {"pooled_prompt_embeds": pooled,
                   "negative_pooled_prompt_embeds": torch.zeros_like(pooled)}
    return kwargs


def _per_step(pipe, kwargs) -> float:
    stamps: list[float] = []

    def on_step_end(_pipe, _i, _t, cb_kwargs):
        torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        return cb_kwargs

    torch.cuda.synchronize()
    pipe(**kwargs, callback_on_step_end=on_step_end, generator=torch.Generator("cuda").manual_seed(1))
    return float(np.median(np.diff(stamps)))


def check_speed(sizes: list[int], steps: int, compile_too: bool) -> None:
    emit(f"{'family':6s} {'size':>5s} {'compile':>8s} {'s/step':>8s} {'warm-up s':>10s} "
         f"{'peak GiB':>9s}")
    for family in ("SD1.5", "SDXL"):
        pipe = _speed_pipe(family)
        plain_unet, plain_branch = pipe.unet, pipe.brushnet
        for compiled in ([False, True] if compile_too else [False]):
            if compiled:
                pipe.unet = torch.compile(plain_unet)
                pipe.brushnet = torch.compile(plain_branch)
            for size in sizes:
                kwargs = _speed_kwargs(family, size, steps)
                torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter()
                with torch.no_grad():
                    pipe(**{**kwargs, "num_inference_steps": 2})  # warm-up (and compilation)
                warm = time.perf_counter() - t0
                with torch.no_grad():
                    per_step = _per_step(pipe, kwargs)
                peak = torch.cuda.max_memory_allocated() / 2**30
                emit(f"{family:6s} {size:5d} {('yes' if compiled else 'no'):>8s} "
                     f"{per_step:8.3f} {warm:10.1f} {peak:9.1f}")
        pipe.unet, pipe.brushnet = plain_unet, plain_branch
        del pipe
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared",
                        help="folder holding reference/golden/ (default: ../shared)")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[512, 1024])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--timeout", type=int, default=450, help="seconds before giving up")
    parser.add_argument("--cpu-goldens", action="store_true",
                        help="only re-run the goldens in float32 on the CPU (checks this script)")
    args = parser.parse_args()
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # the dtype-cast notes are about fp16 upcasting
    if args.cpu_goldens:
        global DEVICE
        DEVICE = "cpu"
        check_goldens(args.shared, [torch.float32])
        return
    if not torch.cuda.is_available():
        print("no CUDA device: gpu_check skipped")
        return
    signal.signal(signal.SIGALRM, _on_timeout)
    signal.alarm(args.timeout)
    emit(f"device {torch.cuda.get_device_name()}, torch {torch.__version__}")
    check_goldens(args.shared, [torch.float32, torch.float16, torch.bfloat16])
    check_speed(args.sizes, args.steps, not args.no_compile)
    signal.alarm(0)


if __name__ == "__main__":
    main()
