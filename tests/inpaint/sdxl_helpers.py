"""Tiny SDXL components (the golden fixture's configs, random weights from fixed seeds) and the SDXL golden loader.

Plain functions rather than conftest fixtures, so tests in other folders (tools, graphs) can build the same models.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .tiny_parts import (
    SHARED,
    char_tokenizer,
    char_vocab,
    load_golden,
    models_from_golden,
    tiny_models,
    tiny_unipc,
)

SDXL_GOLDEN_DIR = SHARED / "golden" / "brushnet_sdxl_tiny_seed7"
SDXL_MANIFEST = SHARED / "brushnet_sdxl_state_dict.json"

# The SDXL golden fixture's tiny UNet: SDXL's block layout, per-block transformer depth / head dims, text_time
# embedding (pooled 24 + 6 time ids x 8 = 72), cross-attention width 32 = 16 (encoder 1) + 16 (encoder 2).
TINY_SDXL_UNET = {
    "sample_size": 16,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [16, 32, 32],
    "layers_per_block": 2,
    "cross_attention_dim": 32,
    "attention_head_dim": [2, 4, 4],
    "norm_num_groups": 8,
    "use_linear_projection": True,
    "transformer_layers_per_block": [1, 2, 2],
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 72,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
}
TINY_SDXL_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    "block_out_channels": [16, 32],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": 32,
    "scaling_factor": 0.13025,
    "force_upcast": True,
}


def load_sdxl_golden() -> dict:
    """The SDXL golden fixture (configs, weights, inputs, reference outputs), or a skip when it is absent."""
    return load_golden(SDXL_GOLDEN_DIR, "SDXL golden fixture")


def sdxl_golden_models(golden: dict) -> dict:
    return models_from_golden(golden)


def make_tiny_sdxl_models(seed: int = 0):
    """Tiny SDXL UNet, VAE and a BrushNet `from_unet` with non-zero taps (so injection is visible)."""
    return tiny_models(TINY_SDXL_UNET, TINY_SDXL_VAE, seed)


def make_tiny_sdxl_text(tmp_dir: Path):
    """Two 1-layer CLIP encoders (16 wide; the second with a 24-wide projection) and character-level tokenizers."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    vocab = char_vocab(tmp_dir)

    config = {
        "vocab_size": len(vocab),
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 7,
        "bos_token_id": len(vocab) - 2,
        "eos_token_id": len(vocab) - 1,
        "pad_token_id": len(vocab) - 1,
    }
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(**config)).eval()
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**config, projection_dim=24)).eval()
    return text_encoder, text_encoder_2, char_tokenizer(tmp_dir), char_tokenizer(tmp_dir)


def make_tiny_sdxl_pipeline(tmp_dir: Path, seed: int = 0):
    """A complete tiny `StableDiffusionXLBrushNetPipeline` (both encoders, UniPC), progress bar off."""
    from brushedit_inpaint import StableDiffusionXLBrushNetPipeline

    unet, vae, brushnet = make_tiny_sdxl_models(seed)
    text_encoder, text_encoder_2, tokenizer, tokenizer_2 = make_tiny_sdxl_text(tmp_dir)
    pipe = StableDiffusionXLBrushNetPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        brushnet=brushnet,
        scheduler=tiny_unipc(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_sdxl_base(folder: Path, seed: int = 0):
    """Save a tiny SDXL base as `StableDiffusionXLPipeline.save_pretrained` writes it; returns the BrushNet."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    unet, vae, brushnet = make_tiny_sdxl_models(seed)
    text_encoder, text_encoder_2, tokenizer, tokenizer_2 = make_tiny_sdxl_text(folder / "_tok")
    StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=EulerDiscreteScheduler(
            beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012
        ),
        add_watermarker=False,
    ).save_pretrained(folder)
    return brushnet
