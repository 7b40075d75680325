"""The diffusers toolbox where SDXL differs: two text encoders, and another family's LoRA refused.

What it does as SD1.5 does (schedulers, LoRA, IP-Adapter, crop-to-mask, reloading) runs for both in test_toolbox.py.
"""

from __future__ import annotations

import pytest
import torch

from .test_toolbox import _tiny_lora

pytestmark = pytest.mark.families("sdxl")


def test_sdxl_refuses_an_sd15_lora_in_one_sentence(fresh_pipe, tmp_path):
    with pytest.raises(ValueError, match=r"^This LoRA was made for .*16-dim.* base is .*32-dim"):
        fresh_pipe.load_lora_weights(_tiny_lora(tmp_path))  # LoRA of the tiny SD1.5 UNet
    assert not getattr(fresh_pipe.unet, "peft_config", None)


def test_sdxl_clip_skip_counts_from_the_penultimate_layer(tiny_pipe):
    ids = tiny_pipe.tokenizer("a cat", padding="max_length", max_length=7, return_tensors="pt")
    with torch.no_grad():
        h1 = tiny_pipe.text_encoder(ids.input_ids, output_hidden_states=True).hidden_states
        h2 = tiny_pipe.text_encoder_2(ids.input_ids, output_hidden_states=True).hidden_states
    embeds = tiny_pipe.encode_prompt("a cat", None, "cpu", 1, False)[0]
    assert torch.allclose(embeds, torch.cat([h1[-2], h2[-2]], dim=-1), atol=1e-6)
    skipped = tiny_pipe.encode_prompt("a cat", None, "cpu", 1, False, clip_skip=1)[0]
    assert torch.allclose(skipped, torch.cat([h1[-3], h2[-3]], dim=-1), atol=1e-6)


def test_sdxl_textual_inversion_on_both_encoders(fresh_pipe):
    pipe = fresh_pipe
    g = torch.Generator().manual_seed(2)
    pipe.load_textual_inversion(
        {"<sks>": torch.randn(16, generator=g)},
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
    )
    pipe.load_textual_inversion(
        {"<sks>": torch.randn(16, generator=g)},
        text_encoder=pipe.text_encoder_2,
        tokenizer=pipe.tokenizer_2,
    )
    with_token = pipe.encode_prompt("a <sks>", None, "cpu", 1, False)[0]
    plain = pipe.encode_prompt("a", None, "cpu", 1, False)[0]
    assert (with_token[..., :16] - plain[..., :16]).abs().max() > 1e-4
    assert (with_token[..., 16:] - plain[..., 16:]).abs().max() > 1e-4
