"""Tiny components for the BrushNet tests (configs of the golden fixture; random weights from fixed seeds)."""

from __future__ import annotations

from pathlib import Path

import pytest
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

torch.set_num_threads(2)

GOLDEN_DIR = SHARED / "golden" / "brushnet_tiny_seed7"
MANIFEST = SHARED / "brushnet_sd15_state_dict.json"

# The golden fixture's tiny configs, inlined so tests that only need "some tiny model" run without it.
TINY_UNET = {
    "sample_size": 16,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [16, 32, 32],
    "layers_per_block": 2,
    "cross_attention_dim": 16,
    "attention_head_dim": 4,
    "norm_num_groups": 8,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
TINY_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    "block_out_channels": [16, 32],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": 32,
}


@pytest.fixture(scope="session")
def golden():
    """The golden fixture (configs, weights, inputs and reference outputs), or a skip when it is absent."""
    return load_golden(GOLDEN_DIR, "golden fixture")


@pytest.fixture(scope="session")
def golden_models(golden):
    return models_from_golden(golden)


def make_tiny_models(seed: int = 0):
    """Tiny SD1.5 UNet, VAE and a BrushNet with non-zero taps (so injection is visible), deterministic."""
    return tiny_models(TINY_UNET, TINY_VAE, seed)


def make_tiny_text(tmp_dir: Path):
    """A 1-layer CLIP text encoder and a character-level CLIP tokenizer written to `tmp_dir` (no downloads)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    vocab = char_vocab(tmp_dir)
    tokenizer = char_tokenizer(tmp_dir)
    torch.manual_seed(0)
    text_config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=7,
        bos_token_id=len(vocab) - 2,
        eos_token_id=len(vocab) - 1,
        pad_token_id=len(vocab) - 1,
    )
    return CLIPTextModel(text_config).eval(), tokenizer


def make_tiny_pipeline(tmp_dir: Path, scheduler=None, seed: int = 0):
    """A complete tiny `StableDiffusionBrushNetPipeline` (text encoder, UniPC unless `scheduler`), progress bar off."""
    from brushedit_inpaint import StableDiffusionBrushNetPipeline

    unet, vae, brushnet = make_tiny_models(seed)
    text_encoder, tokenizer = make_tiny_text(tmp_dir)
    pipe = StableDiffusionBrushNetPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        brushnet=brushnet,
        scheduler=scheduler or tiny_unipc(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
