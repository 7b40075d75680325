"""Tiny random-weight checkpoints of every diffusers conductor, written the way real ones are.

Each builder makes the pipeline its conductor expects (FLUX.1 Fill, FLUX.1 Kontext inpaint,
Qwen-Image-Edit inpaint, FLUX.2 klein inpaint, Stable Diffusion inpaint) from configs a few
channels wide, after diffusers' own fast tests (tests/pipelines/flux/test_pipeline_flux_fill.py,
test_pipeline_flux_kontext_inpaint.py, qwenimage/test_qwenimage_edit.py,
flux2/test_pipeline_flux2_klein_inpaint.py, stable_diffusion/test_stable_diffusion_inpaint.py),
and saves it with `save_pretrained`, so `tools.conductors.load_conductor` reads it exactly as it
reads a downloaded checkpoint. Their tokenizers come from a small vocabulary written here, not
from the Hub. The text encoders keep the real models' prompt handling working unchanged: the
FLUX.2 klein encoder has the 27 layers its default `text_encoder_out_layers` reads, and the Qwen
template tokenizes to more than the 64 tokens the pipeline drops.

Plain functions (no pytest), so graph, CLI and LangGraph-server tests and `benchmarks/` build
the same folders: `save_tiny_conductor(name, folder)` or `save_tiny_conductors(root)`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from tests.brushedit_inpaint.tiny_parts import (
    TINY_UNET,
    TINY_VAE,
    char_tokenizer,
    char_vocab,
    sd15_text,
)

LETTERS = "abcdefghijklmnopqrstuvwxyz"

QWEN_SPECIAL = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>",
)  # fmt: skip
"""The special tokens the Qwen chat template and the Qwen2-VL processor use."""

QWEN3_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n"
    "{% endif %}{% endif %}"
)
"""Qwen3's chat template, cut to what FLUX.2 klein's prompt encoding uses."""


# -- text parts ------------------------------------------------------------------------------------


def t5_text(tmp_dir: Path) -> dict:
    """A 1-layer, 32-wide T5 encoder and a character-level Unigram T5 tokenizer."""
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(c, -3.0) for c in LETTERS] + [("▁" + c, -2.5) for c in LETTERS]
    tokenizer = T5TokenizerFast(vocab=vocab, extra_ids=0)
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=32, num_layers=1, num_heads=4,
        relative_attention_num_buckets=8, decoder_start_token_id=0,
    )  # fmt: skip
    return {"text_encoder_2": T5EncoderModel(config).eval(), "tokenizer_2": tokenizer}


def flux_text(tmp_dir: Path) -> dict:
    """FLUX.1's two text encoders: CLIP (16 wide, pooled) and T5 (32 wide)."""
    clip = sd15_text(tmp_dir / "clip")
    return {**clip, **t5_text(tmp_dir)}


def qwen_byte_tokenizer():
    """A byte-level BPE Qwen2 tokenizer with no merges: one token per byte, plus Qwen's specials."""
    from transformers import Qwen2TokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    alphabet = sorted(set(bytes_to_unicode().values()))
    vocab = {token: i for i, token in enumerate(alphabet)}
    tokenizer = Qwen2TokenizerFast(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL[1:])})
    tokenizer.add_tokens([QWEN_SPECIAL[0]], special_tokens=True)
    return tokenizer


# -- the five conductors ---------------------------------------------------------------------------


def _flux_vae(latent_channels: int):
    """FLUX.1's AutoencoderKL shape at one block (scale factor 1), as diffusers' tests build it."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,),
        layers_per_block=1, latent_channels=latent_channels, norm_num_groups=1,
        use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
        scaling_factor=1.5035,
    )  # fmt: skip


def _flux_transformer(in_channels: int, out_channels: int | None, guidance: bool):
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    return FluxTransformer2DModel(
        patch_size=1, in_channels=in_channels, out_channels=out_channels, num_layers=1,
        num_single_layers=1, attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
        pooled_projection_dim=16, axes_dims_rope=[4, 4, 8], guidance_embeds=guidance,
    )  # fmt: skip


def build_flux_fill(tmp_dir: Path):
    """FluxFillPipeline: 2 latent channels, so the transformer takes 8 + 8 (masked image) + 4
    (mask at scale factor 1, packed 2x2) = 20 channels."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxFillPipeline

    return FluxFillPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=_flux_vae(2),
        transformer=_flux_transformer(20, 8, guidance=True), **flux_text(tmp_dir),
    )  # fmt: skip


def build_flux_kontext(tmp_dir: Path):
    """FluxKontextInpaintPipeline: 1 latent channel (packed: 4), guidance-distilled like Kontext dev."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxKontextInpaintPipeline

    return FluxKontextInpaintPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=_flux_vae(1),
        transformer=_flux_transformer(4, None, guidance=True), image_encoder=None,
        feature_extractor=None, **flux_text(tmp_dir),
    )  # fmt: skip


def build_qwen_image_edit(tmp_dir: Path):
    """QwenImageEditInpaintPipeline with a 2-layer Qwen2.5-VL and a VAE of scale factor 16.

    The pipeline always works at about one megapixel, whatever size it is given, so the VAE
    downsamples 16x (four stages, two channels wide, no extra resnets) to keep that cheap on a
    CPU (a few seconds per edit); the VL processor sees at most 56 x 56 pixels (16 patches).
    """
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditInpaintPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    tokenizer = qwen_byte_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL}
    torch.manual_seed(0)
    text_encoder = Qwen2_5_VLForConditionalGeneration(
        Qwen2_5_VLConfig(
            text_config={
                "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2,
                "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": len(tokenizer),
                "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default",
                                 "type": "default"},
                "rope_theta": 1000000.0, "max_position_embeddings": 1024,
                "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            },
            vision_config={
                "depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2,
                "out_hidden_size": 16, "fullatt_block_indexes": [1], "window_size": 28,
            },
            vocab_size=len(tokenizer), image_token_id=ids["<|image_pad|>"],
            video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
            vision_end_token_id=ids["<|vision_end|>"],
        )
    ).eval()  # fmt: skip
    from tools.conductors.qwen_processor import ImageOnlyQwen2VLProcessor

    processor = ImageOnlyQwen2VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=56 * 56),
        tokenizer=tokenizer,
    )
    torch.manual_seed(0)
    vae = AutoencoderKLQwenImage(
        base_dim=2, z_dim=4, dim_mult=[1, 1, 1, 1, 1], num_res_blocks=0,
        temperal_downsample=[False, True, True, True], latents_mean=[0.0] * 4,
        latents_std=[1.0] * 4,
    )  # fmt: skip
    torch.manual_seed(0)
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=16, out_channels=4, num_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=16, guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
    )  # fmt: skip
    return QwenImageEditInpaintPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
        tokenizer=tokenizer, processor=processor, transformer=transformer,
    )  # fmt: skip


def build_flux2_klein(tmp_dir: Path):
    """Flux2KleinInpaintPipeline, step-distilled like FLUX.2 klein 4B: a 27-layer, 8-wide Qwen3
    (the pipeline stacks layers 9, 18 and 27: 24 = the transformer's text width)."""
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinInpaintPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = qwen_byte_tokenizer()
    tokenizer.chat_template = QWEN3_CHAT_TEMPLATE
    torch.manual_seed(0)
    text_encoder = Qwen3ForCausalLM(
        Qwen3Config(
            hidden_size=8, intermediate_size=8, num_hidden_layers=27, num_attention_heads=2,
            num_key_value_heads=1, head_dim=4, vocab_size=len(tokenizer),
            max_position_embeddings=1024,
        )
    ).eval()  # fmt: skip
    torch.manual_seed(0)
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=24, timestep_guidance_channels=256,
        axes_dims_rope=[4, 4, 4, 4], guidance_embeds=False,
    )  # fmt: skip
    torch.manual_seed(0)
    vae = AutoencoderKLFlux2(
        sample_size=32, in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",), block_out_channels=(4,), layers_per_block=1,
        latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
    )  # fmt: skip
    return Flux2KleinInpaintPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
        tokenizer=tokenizer, transformer=transformer, is_distilled=True,
    )  # fmt: skip


def build_sd_inpaint(tmp_dir: Path):
    """StableDiffusionInpaintPipeline: the SD1.5 tiny parts with a 9-channel inpainting UNet."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionInpaintPipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**{**TINY_UNET, "in_channels": 9})
    vae = AutoencoderKL(**TINY_VAE)
    return StableDiffusionInpaintPipeline(
        unet=unet.eval(), vae=vae.eval(), scheduler=DDIMScheduler(steps_offset=1), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False, **sd15_text(tmp_dir),
    )  # fmt: skip


TINY_BUILDERS: dict[str, Callable[[Path], object]] = {
    "flux-fill": build_flux_fill,
    "flux-kontext": build_flux_kontext,
    "qwen-image-edit": build_qwen_image_edit,
    "flux2-klein": build_flux2_klein,
    "sd-inpaint": build_sd_inpaint,
}
"""The tiny pipeline of each conductor, by its registry name."""


def save_tiny_conductor(name: str, folder: Path) -> Path:
    """Build the tiny pipeline of conductor `name` and `save_pretrained` it to `folder`."""
    pipe = TINY_BUILDERS[name](folder.parent / f".{folder.name}-text")
    pipe.save_pretrained(folder)
    if name == "qwen-image-edit":
        as_published_qwen_processor(folder)
    return folder


def as_published_qwen_processor(folder: Path) -> None:
    """Name the processor as Qwen's checkpoints do (`transformers.Qwen2VLProcessor`).

    The tiny pipeline is built with `ImageOnlyQwen2VLProcessor` (transformers' own processor
    needs torchvision, which this machine lacks), so `save_pretrained` records that class;
    published checkpoints record Qwen2VLProcessor, and the loader must read those.
    """
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text())
    index["processor"] = ["transformers", "Qwen2VLProcessor"]
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    config_path = folder / "processor" / "processor_config.json"
    config = json.loads(config_path.read_text())
    config["processor_class"] = "Qwen2VLProcessor"
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def save_tiny_conductors(root: Path, names: tuple[str, ...] | None = None) -> dict[str, Path]:
    """`save_tiny_conductor` for each of `names` (all by default), one folder each under `root`."""
    return {name: save_tiny_conductor(name, root / name) for name in names or tuple(TINY_BUILDERS)}


def conductor_env(dirs: dict[str, Path], working_side: int = 64) -> dict[str, str]:
    """Settings that point each conductor at its tiny folder (`BRUSHEDIT_<NAME>_MODEL`), paint
    at `working_side` pixels squared and run on the CPU: what a user exports, for subprocesses
    and `monkeypatch.setenv`."""
    from tools.registry import model_env

    return {**{model_env(name): str(folder) for name, folder in dirs.items()},
            "BRUSHEDIT_CONDUCTOR_WORKING_SIDE": str(working_side), "BRUSHEDIT_DEVICE": "cpu"}


__all__ = [
    "TINY_BUILDERS",
    "char_tokenizer",
    "char_vocab",
    "conductor_env",
    "qwen_byte_tokenizer",
    "save_tiny_conductor",
    "save_tiny_conductors",
]
