"""Per-step time of BrushNet inpainting at SD1.5 size: shared branch (ours) vs. the reference's doubled batch.

Builds the real SD1.5 UNet and VAE configs with random weights (no downloads), a BrushNet `from_unet` (with its
zero taps randomised so the branch matters), random 1x77x768 prompt embeddings, and times a CFG edit on the CPU.

    python benchmarks/inpaint_step.py                 # 512x512, 2 steps (~10 min on 2 busy cores)
    python benchmarks/inpaint_step.py --size 256      # quick mode
    python benchmarks/inpaint_step.py --channels-last --compile --classic-attention

Peak memory is the process's `resource.getrusage(RUSAGE_SELF).ru_maxrss` (peak resident set size, monotone over the
process, so it is reported after each variant); `tracemalloc` is not used (it does not see torch's allocator).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from brushedit_inpaint.configs import SD15_UNET_CONFIG, SD15_VAE_CONFIG


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def build_pipeline(args):
    from diffusers import AutoencoderKL, UNet2DConditionModel, UniPCMultistepScheduler

    from brushedit_inpaint import BrushNetModel, StableDiffusionBrushNetPipeline

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET_CONFIG).eval()
    vae = AutoencoderKL(**SD15_VAE_CONFIG).eval()
    brushnet = BrushNetModel.from_unet(unet).eval()
    with torch.no_grad():
        for name, param in brushnet.named_parameters():
            if name.startswith("brushnet_"):
                param.normal_(0.0, 0.01)
    if args.classic_attention:
        from diffusers.models.attention_processor import AttnProcessor

        unet.set_attn_processor(
            AttnProcessor()
        )  # the pre-torch-2 attention; by default diffusers' SDPA processor runs
    scheduler = UniPCMultistepScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000
    )
    pipe = StableDiffusionBrushNetPipeline(
        vae=vae,
        text_encoder=None,
        tokenizer=None,
        unet=unet,
        brushnet=brushnet,
        scheduler=scheduler,
    )
    if args.channels_last:
        for model in (pipe.unet, pipe.brushnet, pipe.vae):
            model.to(memory_format=torch.channels_last)
    if args.compile:
        pipe.unet = torch.compile(pipe.unet)
        pipe.brushnet = torch.compile(pipe.brushnet)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def timed_run(pipe, inputs, steps: int, batching: str) -> tuple[np.ndarray, torch.Tensor, float]:
    """Time per denoising step with a step-end callback (excludes VAE encode/decode); also return final latents."""
    stamps: list[float] = []
    final: dict[str, torch.Tensor] = {}

    def on_step_end(_pipe, _i, _t, kwargs):
        stamps.append(time.perf_counter())
        final["latents"] = kwargs["latents"]
        return kwargs

    start = time.perf_counter()
    out = pipe(
        **inputs,
        # A fresh generator per run: the masked-image latent is sampled from it, so both modes
        # condition on the same latent (the global RNG would give each run a different one).
        generator=torch.Generator().manual_seed(0),
        num_inference_steps=steps,
        branch_cfg_batching=batching,
        callback_on_step_end=on_step_end,
        output_type="np",
        blending=False,
    ).images
    deltas = np.diff([start, *stamps])
    # The first step includes the VAE encode of the masked image; report the mean of the others when possible.
    per_step = float(np.mean(deltas[1:])) if len(deltas) > 1 else float(deltas[0])
    return out, final["latents"], per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", type=int, default=512, help="square image side in pixels (multiple of 8)"
    )
    parser.add_argument(
        "--steps", type=int, default=3, help="denoising steps per run (the first is not timed)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--check-size", type=int, default=128, help="image side of the float64 equality check"
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="alternate ours/reference runs this many times"
    )
    parser.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the UNet and BrushNet"
    )
    parser.add_argument(
        "--classic-attention",
        action="store_true",
        help="use diffusers' classic AttnProcessor instead of the default SDPA one",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    pipe = build_pipeline(args)
    print(
        f"built SD1.5-size UNet + BrushNet + VAE in {time.perf_counter() - t0:.1f}s; rss {peak_rss_mib():.0f} MiB"
    )

    rng = np.random.default_rng(0)
    size = args.size
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 255
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn((1, 4, size // 8, size // 8), generator=generator)
    embeds = torch.randn((1, 77, 768), generator=generator)
    inputs = {
        "image": image,
        "mask_image": mask,
        "prompt_embeds": embeds,
        "negative_prompt_embeds": torch.zeros_like(embeds),
        "latents": latents,
        "guidance_scale": 7.5,
    }

    # Warm-up: the first pass through fresh weights pays for page faults and allocator growth
    # (and for compilation with --compile); it would otherwise be charged to whichever runs first.
    t0 = time.perf_counter()
    for batching in ("shared", "doubled"):
        timed_run(pipe, inputs, 2, batching)
    print(f"warm-up (both batch shapes): {time.perf_counter() - t0:.1f}s")

    ours, ref = [], []
    out_ours = out_ref = None
    for _ in range(args.repeats):
        out_ours, lat_ours, s = timed_run(pipe, inputs, args.steps, "shared")
        ours.append(s)
        print(f"ours (shared branch):      {s:.3f} s/step; peak rss {peak_rss_mib():.0f} MiB")
        out_ref, lat_ref, s = timed_run(pipe, inputs, args.steps, "doubled")
        ref.append(s)
        print(f"reference (doubled batch): {s:.3f} s/step; peak rss {peak_rss_mib():.0f} MiB")
    flags = [f for f in ("channels_last", "compile", "classic_attention") if getattr(args, f)]
    print(
        f"size {size}, steps {args.steps}, threads {args.threads}, flags {flags or 'none'}: "
        f"ours {min(ours):.3f} s/step, reference {min(ref):.3f} s/step, ratio {min(ref) / min(ours):.2f}x, "
        f"peak rss (ru_maxrss) {peak_rss_mib():.0f} MiB"
    )
    lat_diff = (lat_ours - lat_ref).abs().max().item()
    print(
        f"fp32 max abs diff after {args.steps} steps: latents {lat_diff:.2e} (max |latent| "
        f"{lat_ref.abs().max().item():.1e}), image {np.abs(out_ours - out_ref).max():.2e}"
    )
    check_equal_in_float64(pipe, args)


def check_equal_in_float64(pipe, args) -> None:
    """Same pipeline, same inputs, in float64: the two batchings must compute the same image.

    float32 runs differ only by summation order; in float64 that noise is ~1e-12, so a
    difference above 1e-4 here would be a real change of the computation.
    """
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # the cast warning is about fp16 upcasting, moot here
    pipe.to(torch.float64)
    size = args.check_size
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 255
    generator = torch.Generator().manual_seed(1)
    embeds = torch.randn((1, 77, 768), generator=generator, dtype=torch.float64)
    inputs = {
        "image": image,
        "mask_image": mask,
        "prompt_embeds": embeds,
        "negative_prompt_embeds": torch.zeros_like(embeds),
        "latents": torch.randn((1, 4, size // 8, size // 8), generator=generator, dtype=torch.float64),
        "guidance_scale": 7.5,
    }
    out_ours, lat_ours, _ = timed_run(pipe, inputs, args.steps, "shared")
    out_ref, lat_ref, _ = timed_run(pipe, inputs, args.steps, "doubled")
    image_diff = float(np.abs(out_ours - out_ref).max())
    latent_diff = (lat_ours - lat_ref).abs().max().item()
    verdict = "equal within 1e-4" if max(image_diff, latent_diff) <= 1e-4 else "DIFFERENT"
    print(
        f"float64 check ({size}px, {args.steps} steps): max abs diff image {image_diff:.2e}, "
        f"latents {latent_diff:.2e}: {verdict}"
    )

if __name__ == "__main__":
    main()
