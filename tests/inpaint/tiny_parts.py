"""What the SD1.5 and SDXL test helpers build the same way: golden loading, tiny models, character tokenizers.

Plain functions (not fixtures), so `conftest.py`, `sdxl_helpers.py` and tests in other folders share one copy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"


def load_golden(folder: Path, label: str) -> dict:
    """A golden fixture (configs, weights, inputs, reference outputs), or a skip naming `label` when it is absent."""
    if not (folder / "config.json").is_file():
        pytest.skip(f"{label} not found at {folder.resolve()} (the `shared` folder beside the repo)")
    from safetensors.torch import load_file

    return {
        "config": json.loads((folder / "config.json").read_text()),
        "tensors": load_file(folder / "tensors.safetensors"),
        "unet": load_file(folder / "unet.safetensors"),
        "brushnet": load_file(folder / "brushnet.safetensors"),
        "vae": load_file(folder / "vae.safetensors"),
    }


def models_from_golden(golden: dict) -> dict:
    """The golden fixture's UNet, BrushNet and VAE with its weights loaded strictly, in eval mode."""
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


def tiny_models(unet_config: dict, vae_config: dict, seed: int):
    """A UNet, VAE and a BrushNet `from_unet` with non-zero taps (so injection is visible), deterministic."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from brushedit_inpaint import BrushNetModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**unet_config)
    vae = AutoencoderKL(**vae_config)
    brushnet = BrushNetModel.from_unet(unet)
    with torch.no_grad():
        for name, param in brushnet.named_parameters():
            if name.startswith("brushnet_") or name.startswith("conv_in_condition"):
                param.normal_(0.0, 0.1)
    return unet.eval(), vae.eval(), brushnet.eval()


def char_vocab(tmp_dir: Path) -> list[str]:
    """Write a character-level CLIP vocabulary (and empty merges) to `tmp_dir`; return the tokens."""
    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = letters + [c + "</w>" for c in letters] + ["<unk>", "<|startoftext|>", "<|endoftext|>"]
    tmp_dir.mkdir(parents=True, exist_ok=True)
    (tmp_dir / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (tmp_dir / "merges.txt").write_text("#version: 0.2\n")
    return vocab


def char_tokenizer(tmp_dir: Path):
    """A CLIP tokenizer over the vocabulary `char_vocab` wrote to `tmp_dir`, 7 tokens long."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer(
        str(tmp_dir / "vocab.json"),
        str(tmp_dir / "merges.txt"),
        model_max_length=7,
        pad_token="<|endoftext|>",
    )


def tiny_unipc():
    """UniPC with SD's scaled-linear betas, the scheduler the tiny pipelines run."""
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
