"""What the tests build for each model family (SD1.5 and SDXL): tiny models, text parts, pipelines, goldens.

Plain functions and one `Family` record per family (not fixtures), so `conftest.py`, tests in other folders and
`benchmarks/gpu_check.py` build the same models from one copy. Nothing here imports pytest until it must skip.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"

# The golden fixtures' tiny configs, inlined so tests that only need "some tiny model" run without them.
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
# SDXL's block layout, per-block transformer depth / head dims, text_time embedding (pooled 24 + 6 time ids x 8 =
# 72), cross-attention width 32 = 16 (encoder 1) + 16 (encoder 2).
TINY_SDXL_UNET = {
    **TINY_UNET,
    "cross_attention_dim": 32,
    "attention_head_dim": [2, 4, 4],
    "use_linear_projection": True,
    "transformer_layers_per_block": [1, 2, 2],
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 72,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
}
TINY_SDXL_VAE = {**TINY_VAE, "scaling_factor": 0.13025, "force_upcast": True}


# -- tiny models and text parts ----------------------------------------------------------------------------------


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


def _clip_config(vocab: list[str], num_hidden_layers: int, **extra):
    """A 16-wide CLIP text config over `vocab`, 7 positions (the tokenizer's length)."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=2,
        max_position_embeddings=7,
        bos_token_id=len(vocab) - 2,
        eos_token_id=len(vocab) - 1,
        pad_token_id=len(vocab) - 1,
        **extra,
    )


def sd15_text(tmp_dir: Path) -> dict:
    """A 1-layer CLIP text encoder and a character-level tokenizer written to `tmp_dir` (no downloads)."""
    from transformers import CLIPTextModel

    vocab = char_vocab(tmp_dir)
    torch.manual_seed(0)
    encoder = CLIPTextModel(_clip_config(vocab, 1)).eval()
    return {"text_encoder": encoder, "tokenizer": char_tokenizer(tmp_dir)}


def sdxl_text(tmp_dir: Path) -> dict:
    """Two 2-layer CLIP encoders (the second with a 24-wide projection) and two character-level tokenizers."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    vocab = char_vocab(tmp_dir)
    torch.manual_seed(0)
    encoder = CLIPTextModel(_clip_config(vocab, 2)).eval()
    encoder_2 = CLIPTextModelWithProjection(_clip_config(vocab, 2, projection_dim=24)).eval()
    return {
        "text_encoder": encoder,
        "text_encoder_2": encoder_2,
        "tokenizer": char_tokenizer(tmp_dir),
        "tokenizer_2": char_tokenizer(tmp_dir),
    }


def tiny_unipc():
    """UniPC with SD's scaled-linear betas, the scheduler the tiny pipelines run."""
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)


def _sd15_base(parts: dict):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    return StableDiffusionPipeline(
        **parts,
        scheduler=DDIMScheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _sdxl_base(parts: dict):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    scheduler = EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012
    )
    return StableDiffusionXLPipeline(**parts, scheduler=scheduler, add_watermarker=False)


# -- the families ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """One model family as the tests build it; a test that takes the `family` fixture runs once per family."""

    name: str  # the test id: "sd15" or "sdxl"
    pipeline: str  # the BrushNet pipeline's class name in `brushedit_inpaint`
    text_parts: tuple[str, ...]  # the text encoder and tokenizer components it takes
    unet_config: dict
    vae_config: dict
    make_text: Callable[[Path], dict]  # those text parts, by component name
    make_base: Callable[[dict], object]  # the stock diffusers pipeline a base folder is saved from
    golden_dir: Path

    def pipeline_class(self):
        import brushedit_inpaint

        return getattr(brushedit_inpaint, self.pipeline)

    @property
    def manifest(self) -> Path:
        """The reference BrushNet's state-dict shapes."""
        return SHARED / f"brushnet_{self.name}_state_dict.json"


SD15 = Family(
    name="sd15",
    pipeline="StableDiffusionBrushNetPipeline",
    text_parts=("text_encoder", "tokenizer"),
    unet_config=TINY_UNET,
    vae_config=TINY_VAE,
    make_text=sd15_text,
    make_base=_sd15_base,
    golden_dir=SHARED / "golden" / "brushnet_tiny_seed7",
)
SDXL = Family(
    name="sdxl",
    pipeline="StableDiffusionXLBrushNetPipeline",
    text_parts=("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"),
    unet_config=TINY_SDXL_UNET,
    vae_config=TINY_SDXL_VAE,
    make_text=sdxl_text,
    make_base=_sdxl_base,
    golden_dir=SHARED / "golden" / "brushnet_sdxl_tiny_seed7",
)
FAMILIES = {family.name: family for family in (SD15, SDXL)}


def family_models(family: Family, seed: int = 0):
    """The family's tiny UNet, VAE and BrushNet (non-zero taps), from `seed`."""
    return tiny_models(family.unet_config, family.vae_config, seed)


def tiny_components(family: Family, tmp_dir: Path, seed: int = 0) -> dict:
    """Everything a tiny pipeline of `family` holds but its scheduler, by component name."""
    unet, vae, brushnet = family_models(family, seed)
    return {"vae": vae, "unet": unet, "brushnet": brushnet, **family.make_text(tmp_dir)}


def tiny_pipeline(family: Family, tmp_dir: Path, scheduler=None, seed: int = 0):
    """A complete tiny BrushNet pipeline of `family` (UniPC unless `scheduler`), progress bar off."""
    parts = tiny_components(family, tmp_dir, seed)
    pipe = family.pipeline_class()(**parts, scheduler=scheduler or tiny_unipc())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_base(family: Family, folder: Path, seed: int = 0):
    """Save a tiny base of `family` as its stock diffusers pipeline writes it; return the BrushNet."""
    parts = tiny_components(family, folder / "_tok", seed)
    brushnet = parts.pop("brushnet")
    family.make_base(parts).save_pretrained(folder)
    return brushnet


def image_and_mask(h: int = 48, w: int = 80, seed: int = 1):
    """A random uint8 RGB image and a mask whose white box spans rows h/4..h/2 and columns w/4..w/2."""
    import numpy as np

    image = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[h // 4 : h // 2, w // 4 : w // 2] = 255
    return image, mask


def tiny_call(h: int = 32, w: int = 32, seed: int = 1, **overrides) -> dict:
    """Arguments for a tiny pipeline: `image_and_mask(h, w, seed)`, a prompt, one step, numpy out; `overrides` win."""
    image, mask = image_and_mask(h, w, seed)
    kwargs = {"prompt": "a cat", "image": image, "mask_image": mask, "num_inference_steps": 1}
    return {**kwargs, "output_type": "np", **overrides}


# -- the golden fixtures ---------------------------------------------------------------------------------------


def load_golden(folder: Path, label: str) -> dict:
    """A golden fixture (configs, weights, inputs, reference outputs), or a skip naming `label` when it is absent."""
    if not (folder / "config.json").is_file():
        import pytest

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


def golden_pipeline(family: Family, golden: dict, models: dict | None = None):
    """The family's pipeline on the golden models (`models`, else loaded from `golden`), no text parts."""
    from diffusers import UniPCMultistepScheduler

    config = {k: v for k, v in golden["config"]["scheduler"].items() if not k.startswith("_")}
    # The reference ran diffusers 0.27, whose UniPC ends on sigma_min (brushedit.md, "Scheduler detail"); the SD1.5
    # fixture's config says so itself, the SDXL one leaves it to the default.
    scheduler = UniPCMultistepScheduler(**{"final_sigmas_type": "sigma_min", **config})
    pipe = family.pipeline_class()(
        **dict.fromkeys(family.text_parts), **(models or models_from_golden(golden)), scheduler=scheduler
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


_EMBEDS = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds",
           "negative_pooled_prompt_embeds")  # fmt: skip
_CALL_NUMBERS = ("num_inference_steps", "guidance_scale", "brushnet_conditioning_scale", "output_type")


def golden_kwargs(golden: dict, **overrides) -> dict:
    """The call that reproduces the golden image (its embeddings, SDXL's pooled ones too), with `overrides`."""
    t = golden["tensors"]
    call = golden["config"]["pipeline_call"]
    kwargs = {
        "image": t["pipe.image"].numpy(),
        "mask_image": t["pipe.hole_mask"].numpy() * 255,
        **{name: t[f"pipe.{name}"] for name in _EMBEDS if f"pipe.{name}" in t},
        "latents": t["pipe.latents"],
        **{name: call[name] for name in _CALL_NUMBERS},
        "blending": False,
    }
    kwargs.update(overrides)
    return kwargs



def golden_added_cond(t: dict) -> dict | None:
    """The model-level golden's SDXL micro-conditioning (pooled text and time ids); None for SD1.5's."""
    if "in.text_embeds" not in t:
        return None
    return {"text_embeds": t["in.text_embeds"], "time_ids": t["in.time_ids"]}


def golden_branch(brushnet, t: dict):
    """The branch on the model-level golden inputs, as the reference called it (scale 0.8)."""
    with torch.no_grad():
        return brushnet(
            t["in.sample"],
            t["in.timestep"],
            encoder_hidden_states=t["in.encoder_hidden_states"],
            conditioning=t["in.brushnet_cond"],
            conditioning_scale=0.8,
            added_cond_kwargs=golden_added_cond(t),
        )
