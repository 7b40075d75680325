"""Tiny components for the BrushNet tests (configs of the golden fixture; random weights from fixed seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

GOLDEN_DIR = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "reference"
    / "golden"
    / "brushnet_tiny_seed7"
)
MANIFEST = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "reference"
    / "brushnet_sd15_state_dict.json"
)

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
    if not (GOLDEN_DIR / "config.json").is_file():
        pytest.skip(
            f"golden fixture not found at {GOLDEN_DIR.resolve()} (the `shared` folder beside the repo)"
        )
    from safetensors.torch import load_file

    config = json.loads((GOLDEN_DIR / "config.json").read_text())
    return {
        "config": config,
        "tensors": load_file(GOLDEN_DIR / "tensors.safetensors"),
        "unet": load_file(GOLDEN_DIR / "unet.safetensors"),
        "brushnet": load_file(GOLDEN_DIR / "brushnet.safetensors"),
        "vae": load_file(GOLDEN_DIR / "vae.safetensors"),
    }


@pytest.fixture(scope="session")
def golden_models(golden):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from brushedit_inpaint import BrushNetModel

    cfg = golden["config"]
    unet = UNet2DConditionModel(**cfg["unet"])
    unet.load_state_dict(golden["unet"], strict=True)
    brushnet = BrushNetModel(**cfg["brushnet"])
    brushnet.load_state_dict(golden["brushnet"], strict=True)
    vae = AutoencoderKL(**cfg["vae"])
    vae.load_state_dict(golden["vae"], strict=True)
    return {"unet": unet.eval(), "brushnet": brushnet.eval(), "vae": vae.eval()}


def make_tiny_models(seed: int = 0):
    """Tiny UNet, VAE and a BrushNet with non-zero taps (so injection is visible), deterministic."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from brushedit_inpaint import BrushNetModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**TINY_UNET)
    vae = AutoencoderKL(**TINY_VAE)
    brushnet = BrushNetModel.from_unet(unet)
    with torch.no_grad():
        for name, param in brushnet.named_parameters():
            if name.startswith("brushnet_") or name.startswith("conv_in_condition"):
                param.normal_(0.0, 0.1)
    return unet.eval(), vae.eval(), brushnet.eval()


def make_tiny_text(tmp_dir: Path):
    """A 1-layer CLIP text encoder and a character-level CLIP tokenizer written to `tmp_dir` (no downloads)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = letters + [c + "</w>" for c in letters] + ["<unk>", "<|startoftext|>", "<|endoftext|>"]
    tmp_dir.mkdir(parents=True, exist_ok=True)
    (tmp_dir / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (tmp_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(
        str(tmp_dir / "vocab.json"),
        str(tmp_dir / "merges.txt"),
        model_max_length=7,
        pad_token="<|endoftext|>",
    )
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
