"""Per-step time of BrushNet inpainting at SD1.5 size: our default configuration vs the reference's behaviour.

Builds the real SD1.5 UNet and VAE configs with random weights (no downloads), a BrushNet `from_unet` (with its
zero taps randomised so the branch matters), random 1x77x768 prompt embeddings, and times a CFG edit on the CPU.
One row per lever, each timed in this process against the reference behaviour (the fork's doubled batch, the
branch run on both CFG halves, default memory format), so every lever's effect is visible on its own:

- `shared branch`: one branch pass serves both CFG halves (its samples broadcast, never copied);
- `channels_last`: NHWC memory format for the UNet, the branch and the VAE;
- `compile` (with `--compile`): `torch.compile` of the UNet and the branch, its warm-up reported.

    python benchmarks/inpaint_step.py                 # 512x512 (~15 min on 2 cores)
    python benchmarks/inpaint_step.py --size 256      # quick mode
    python benchmarks/inpaint_step.py --compile       # adds the compile row

Per-step time is the median of the step-to-step intervals from `callback_on_step_end` (the first step, which
includes the VAE encode, is left out), the best of `--repeats` interleaved runs. Peak memory is the process's
`ru_maxrss` (monotone, so reported after each row). The float64 check re-runs every row at `--check-size` and
compares its image with the reference's: the levers change no result.
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import dataclass

import numpy as np
import torch

from brushedit_inpaint.configs import SD15_UNET_CONFIG, SD15_VAE_CONFIG


@dataclass(frozen=True)
class Variant:
    name: str
    batching: str  # "shared" or "doubled"
    channels_last: bool
    compiled: bool = False


REFERENCE = Variant("reference (doubled batch)", "doubled", False)
VARIANTS = [
    REFERENCE,
    Variant("shared branch (our default on a CPU)", "shared", False),
    Variant("channels_last (reference batching)", "doubled", True),
    Variant("shared branch + channels_last (default on CUDA)", "shared", True),
]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def build_models():
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from brushedit_inpaint import BrushNetModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET_CONFIG).eval()
    vae = AutoencoderKL(**SD15_VAE_CONFIG).eval()
    brushnet = BrushNetModel.from_unet(unet).eval()
    with torch.no_grad():
        for name, param in brushnet.named_parameters():
            if name.startswith("brushnet_"):
                param.normal_(0.0, 0.01)
    return unet, vae, brushnet


def make_pipe(unet, vae, brushnet, variant: Variant):
    from diffusers import UniPCMultistepScheduler

    from brushedit_inpaint import StableDiffusionBrushNetPipeline

    fmt = torch.channels_last if variant.channels_last else torch.contiguous_format
    for model in (unet, brushnet, vae):
        model.to(memory_format=fmt)
    scheduler = UniPCMultistepScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000
    )
    pipe = StableDiffusionBrushNetPipeline(
        vae=vae, text_encoder=None, tokenizer=None, unet=unet, brushnet=brushnet, scheduler=scheduler
    )
    if variant.compiled:
        pipe.unet = torch.compile(unet)
        pipe.brushnet = torch.compile(brushnet)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def inputs_for(size: int, seed: int, dtype=torch.float32) -> dict:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 255
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn((1, 4, size // 8, size // 8), generator=generator, dtype=dtype)
    embeds = torch.randn((1, 77, 768), generator=generator, dtype=dtype)
    return {"image": image, "mask_image": mask, "prompt_embeds": embeds,
            "negative_prompt_embeds": torch.zeros_like(embeds), "latents": latents,
            "guidance_scale": 7.5}


def timed_run(pipe, inputs, steps: int, batching: str) -> tuple[np.ndarray, float]:
    """Median time per denoising step (excludes the first step and the VAE decode)."""
    stamps: list[float] = []

    def on_step_end(_pipe, _i, _t, kwargs):
        stamps.append(time.perf_counter())
        return kwargs

    start = time.perf_counter()
    out = pipe(
        **inputs,
        # A fresh generator per run: the masked-image latent is sampled from it, so every row
        # conditions on the same latent.
        generator=torch.Generator().manual_seed(0),
        num_inference_steps=steps,
        branch_cfg_batching=batching,
        callback_on_step_end=on_step_end,
        output_type="np",
        blending=False,
    ).images
    deltas = np.diff([start, *stamps])
    per_step = float(np.median(deltas[1:])) if len(deltas) > 1 else float(deltas[0])
    return out, per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="square image side (multiple of 8)")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps per run (first untimed)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs per row")
    parser.add_argument("--check-size", type=int, default=128, help="image side of the float64 check")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile row")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    unet, vae, brushnet = build_models()
    print(f"built SD1.5-size UNet + BrushNet + VAE in {time.perf_counter() - t0:.1f}s; "
          f"rss {peak_rss_mib():.0f} MiB")
    variants = list(VARIANTS)
    if args.compile:
        variants.append(Variant("shared + channels_last + torch.compile", "shared", True, True))
    inputs = inputs_for(args.size, 0)

    times: dict[str, list[float]] = {v.name: [] for v in variants}
    outputs: dict[str, np.ndarray] = {}
    for variant in variants:  # warm-up: page faults, allocator growth, compilation
        t0 = time.perf_counter()
        timed_run(make_pipe(unet, vae, brushnet, variant), inputs, 2, variant.batching)
        print(f"warm-up {variant.name}: {time.perf_counter() - t0:.1f}s")
    for _ in range(args.repeats):
        for variant in variants:
            out, per_step = timed_run(make_pipe(unet, vae, brushnet, variant), inputs, args.steps,
                                      variant.batching)
            times[variant.name].append(per_step)
            outputs[variant.name] = out

    ref = min(times[REFERENCE.name])
    print(f"\nsize {args.size}, {args.steps} steps, {args.threads} threads, CFG 7.5, fp32")
    print(f"{'row':48s} {'s/step':>8s} {'vs reference':>13s} {'fp32 max|diff|':>15s}")
    for variant in variants:
        best = min(times[variant.name])
        diff = float(np.abs(outputs[variant.name] - outputs[REFERENCE.name]).max())
        print(f"{variant.name:48s} {best:8.3f} {ref / best:12.2f}x {diff:15.2e}")
    print(f"peak rss (ru_maxrss) {peak_rss_mib():.0f} MiB")
    check_equal_in_float64(unet, vae, brushnet, [v for v in variants if not v.compiled], args)


def check_equal_in_float64(unet, vae, brushnet, variants, args) -> None:
    """Every row in float64: a difference above 1e-4 would be a real change of the computation.

    float32 runs differ only by summation order; in float64 that noise is ~1e-12.
    """
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # the cast warning is about fp16 upcasting, moot here
    for model in (unet, vae, brushnet):
        model.to(torch.float64)
    inputs = inputs_for(args.check_size, 1, dtype=torch.float64)
    images = {}
    for variant in variants:
        images[variant.name], _ = timed_run(make_pipe(unet, vae, brushnet, variant), inputs,
                                            args.steps, variant.batching)
    reference = images[REFERENCE.name]
    for name, image in images.items():
        diff = float(np.abs(image - reference).max())
        verdict = "equal within 1e-4" if diff <= 1e-4 else "DIFFERENT"
        print(f"float64 check ({args.check_size}px): {name}: max abs diff {diff:.2e}: {verdict}")


if __name__ == "__main__":
    main()
