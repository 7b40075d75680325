"""What a verifier retry costs: attempt 1 vs attempt 2 (new seed, higher guidance) through the BrushNet inpainter.

The inpainter keeps one `EncodeCache`, so attempt 2 re-runs neither the text encoder nor the VAE encoder: it costs
its denoising loop and its decode. Random weights at the real SD1.5 configs (UNet, VAE, a 12-layer CLIP text
encoder), CFG, `--steps` steps, on the CPU; the same attempts without the cache are timed for comparison.

    python benchmarks/retry_cost.py                 # 512 px, 2 steps (~10 min on 2 cores)
    python benchmarks/retry_cost.py --size 256
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def text_encoder_and_tokenizer(folder: Path):
    """SD1.5's text encoder shape (CLIP ViT-L/14 text tower) with random weights, and a character tokenizer."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = letters + [c + "</w>" for c in letters] + ["<unk>", "<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77,
                              pad_token="<|endoftext|>")
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                            num_attention_heads=12, max_position_embeddings=77, bos_token_id=len(vocab) - 2,
                            eos_token_id=len(vocab) - 1, pad_token_id=len(vocab) - 1)
    return CLIPTextModel(config).eval(), tokenizer


def build_inpainter(folder: Path):
    from diffusers import AutoencoderKL, UNet2DConditionModel, UniPCMultistepScheduler

    from brushedit_inpaint import BrushNetModel, StableDiffusionBrushNetPipeline
    from brushedit_inpaint.configs import SD15_UNET_CONFIG, SD15_VAE_CONFIG
    from brushedit_inpaint.speed import optimize_for_inference
    from tools.inpaint import BrushNetInpainter

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET_CONFIG).eval()
    vae = AutoencoderKL(**SD15_VAE_CONFIG).eval()
    text_encoder, tokenizer = text_encoder_and_tokenizer(folder)
    pipe = StableDiffusionBrushNetPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        brushnet=BrushNetModel.from_unet(unet).eval(),
        scheduler=UniPCMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"),
    )
    pipe.set_progress_bar_config(disable=True)
    return BrushNetInpainter(optimize_for_inference(pipe))


def main() -> None:
    from PIL import Image

    from tools.types import EditOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        inpainter = build_inpainter(Path(tmp))
    rng = np.random.default_rng(0)
    size = args.size
    image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    attempts = [(1, EditOptions(steps=args.steps)), (2, EditOptions(steps=args.steps, guidance_scale=9.0))]

    def run(cached: bool) -> list[float]:
        times = []
        for seed, options in attempts:
            if not cached:
                inpainter.encode_cache = None
            start = time.perf_counter()
            inpainter.inpaint(image, mask, "a small dog", category="local", options=options, seed=seed)
            times.append(time.perf_counter() - start)
            if not cached:
                inpainter.encode_cache = None
        return times

    run(cached=True)  # warm-up: page faults and allocator growth
    inpainter.encode_cache = None
    cached = run(cached=True)
    uncached = run(cached=False)
    print(f"{size}px, {args.steps} steps, {args.threads} threads, SD1.5-size random weights, CFG")
    print(f"with the cache:    attempt 1 {cached[0]:.2f} s, attempt 2 (seed+guidance) {cached[1]:.2f} s "
          f"({cached[1] / cached[0]:.2f} of attempt 1)")
    print(f"without the cache: attempt 1 {uncached[0]:.2f} s, attempt 2 {uncached[1]:.2f} s")
    print(f"cache: {inpainter.encode_cache}")


if __name__ == "__main__":
    main()
