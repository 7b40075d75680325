"""Cost that follows the mask, not the photo: a 2048x1536 photo with a 300x300 mask, full frame vs crop.

Full frame: the pipeline shrinks the whole photo to its working size (longer side `max_side`, 1024), edits it and
scales the result back up. Crop (`padding_mask_crop`): it edits only a crop around the mask at the model's native
size and pastes it back, so the rest of the photo keeps its own pixels. Both run the same random-weight models (the
real SD1.5 UNet/VAE configs, or `--tiny` ones for a quick look), CFG 7.5, with and without the blur blend.

    python benchmarks/crop_to_mask.py            # SD1.5 sizes (~15 min on 2 cores)
    python benchmarks/crop_to_mask.py --tiny     # tiny models: the same pixel counts, seconds

Printed per row: seconds per edit (median of `--repeats`), the working size, and background fidelity outside the
mask (PSNR / SSIM against the photo, the paper's definitions in `tools.metrics`).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def build(tiny: bool):
    from diffusers import AutoencoderKL, UNet2DConditionModel, UniPCMultistepScheduler

    from brushedit_inpaint import BrushNetModel, StableDiffusionBrushNetPipeline
    from brushedit_inpaint.configs import SD15_UNET_CONFIG, SD15_VAE_CONFIG

    torch.manual_seed(0)
    if tiny:
        unet_cfg = {"sample_size": 64, "block_out_channels": [32, 64], "layers_per_block": 1,
                    "cross_attention_dim": 32, "attention_head_dim": 4, "norm_num_groups": 8,
                    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
                    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}
        vae_cfg = {"block_out_channels": [16, 32, 32, 32], "latent_channels": 4, "norm_num_groups": 8,
                   "down_block_types": ["DownEncoderBlock2D"] * 4,
                   "up_block_types": ["UpDecoderBlock2D"] * 4, "layers_per_block": 1}
        dim = 32
    else:
        unet_cfg, vae_cfg, dim = SD15_UNET_CONFIG, SD15_VAE_CONFIG, 768
    unet = UNet2DConditionModel(**unet_cfg).eval()
    vae = AutoencoderKL(**vae_cfg).eval()
    brushnet = BrushNetModel.from_unet(unet).eval()
    scheduler = UniPCMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    pipe = StableDiffusionBrushNetPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet,
                                           brushnet=brushnet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe, dim


def photo_and_mask(width: int, height: int, side: int):
    from PIL import Image
    from skimage import data

    photo = np.asarray(Image.fromarray(data.astronaut()).resize((width, height), Image.Resampling.LANCZOS))
    mask = np.zeros((height, width), np.uint8)
    y, x = int(height * 0.55), int(width * 0.6)
    mask[y: y + side, x: x + side] = 255
    return photo, mask


def main() -> None:
    from tools.metrics import masked_psnr, masked_ssim

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random models (same pixel counts)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe, dim = build(args.tiny)
    photo, mask = photo_and_mask(2048, 1536, 300)
    generator = torch.Generator().manual_seed(0)
    embeds = torch.randn((1, 77, dim), generator=generator)
    common = {"image": photo, "mask_image": mask, "prompt_embeds": embeds,
              "negative_prompt_embeds": torch.zeros_like(embeds), "num_inference_steps": args.steps,
              "guidance_scale": 7.5, "output_type": "np"}
    sizes: dict[str, tuple[int, int]] = {}

    def size_probe(p, _i, _t, kwargs):
        sizes[mode] = tuple(int(s) * p.vae_scale_factor for s in kwargs["latents"].shape[-2:])
        return kwargs

    print(f"photo 2048x1536, mask 300x300, {args.steps} steps, "
          f"{'tiny' if args.tiny else 'SD1.5-size'} models, {args.threads} threads")
    print(f"{'mode':10s} {'blend':>5s} {'s/edit':>8s} {'working HxW':>12s} {'PSNR out':>9s} {'SSIM out':>9s}")
    results = {}
    for blending in (True, False):
        for mode, extra in (("full frame", {}), ("crop", {"padding_mask_crop": 32})):
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                out = pipe(**common, **extra, blending=blending, callback_on_step_end=size_probe,
                           generator=torch.Generator().manual_seed(1)).images[0]
                times.append(time.perf_counter() - start)
            result = (out * 255).round().astype(np.uint8)
            psnr, ssim = masked_psnr(photo, result, mask), masked_ssim(photo, result, mask)
            results[(mode, blending)] = float(np.median(times))
            h, w = sizes[mode]
            print(f"{mode:10s} {blending!s:>5s} {np.median(times):8.2f} {f'{h}x{w}':>12s} "
                  f"{psnr:9.2f} {ssim:9.4f}")
    for blending in (True, False):
        ratio = results[("full frame", blending)] / results[("crop", blending)]
        print(f"blending={blending}: the crop edit is {ratio:.2f}x faster than the full frame")


if __name__ == "__main__":
    main()
