"""Tiny models as single files: a BrushNet whose config a single file can tell, and a full SD1.5 original-format file.

Used by test_diffusers_conformance.py and the docs' snippet runner (doc_snippets.py).
"""

from __future__ import annotations

import torch

from .tiny_parts import TINY_UNET

RELEASED_LIKE_UNET = {**TINY_UNET, "block_out_channels": [32, 64, 64], "norm_num_groups": 32}
"""A tiny UNet with the released models' 32 GroupNorm groups (which a BrushNet single file does not record)."""


def released_like_unet(sdxl: bool = False):
    """A tiny UNet of `RELEASED_LIKE_UNET`; with `sdxl`, SDXL's `text_time` embedding (256-wide time ids, 24 pooled)."""
    from diffusers import UNet2DConditionModel

    config = dict(RELEASED_LIKE_UNET)
    if sdxl:
        config.update(
            addition_embed_type="text_time",
            addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=24 + 6 * 256,
        )
    torch.manual_seed(3)
    return UNet2DConditionModel(**config).eval()


def released_like_brushnet(sdxl: bool = False):
    """A BrushNet `from_unet(released_like_unet(sdxl))` with non-zero taps: its config can be inferred from a file."""
    from brushedit_inpaint import BrushNetModel

    brushnet = BrushNetModel.from_unet(released_like_unet(sdxl))
    with torch.no_grad():
        for name, param in brushnet.named_parameters():
            if name.startswith(("brushnet_", "conv_in_condition")):
                param.normal_(0.0, 0.1)
    return brushnet.eval()


def clip_to_ldm(text_encoder) -> dict[str, torch.Tensor]:
    """An SD1.5 original-format checkpoint's text encoder: the CLIP tensors under `cond_stage_model.transformer.`
    (transformers >= 5 drops the `text_model.` level the original format keeps)."""
    return {
        f"cond_stage_model.transformer.{k if k.startswith('text_model.') else 'text_model.' + k}": v
        for k, v in text_encoder.state_dict().items()
    }


def save_sd15_single_file(path, unet, vae, text_encoder) -> None:
    """An SD1.5 original-format `.safetensors` holding the UNet, VAE and text encoder (what `from_single_file` reads)."""
    from safetensors.torch import save_file

    from .ldm_checkpoint import unet_to_ldm, vae_to_ldm

    checkpoint = {**unet_to_ldm(unet), **vae_to_ldm(vae), **clip_to_ldm(text_encoder)}
    save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(path))
