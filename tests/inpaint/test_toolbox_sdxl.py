"""The diffusers toolbox on StableDiffusionXLBrushNetPipeline, on the tiny SDXL models (see test_toolbox.py for SD1.5)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import DiffusionPipeline, LCMScheduler, TCDScheduler

from brushedit_inpaint import StableDiffusionXLBrushNetPipeline

from .sdxl_helpers import make_tiny_sdxl_pipeline
from .test_toolbox import _SCHEDULER_CONFIG, _Counter, _tiny_ip_adapter, _tiny_lora


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return make_tiny_sdxl_pipeline(tmp_path_factory.mktemp("sdxl_tok"))


@pytest.fixture
def fresh_pipe(tmp_path):
    return make_tiny_sdxl_pipeline(tmp_path / "tok")


def _run(pipe, **overrides):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[4:8, 4:8] = 255
    kwargs = {
        "prompt": "a cat",
        "negative_prompt": "ugly",
        "image": image,
        "mask_image": mask,
        "num_inference_steps": 1,
        "output_type": "np",
        "blending": False,
        "generator": torch.Generator().manual_seed(0),
    }
    kwargs.update(overrides)
    return pipe(**kwargs).images


def _with_scheduler(pipe, scheduler):
    other = StableDiffusionXLBrushNetPipeline(**{**pipe.components, "scheduler": scheduler})
    other.set_progress_bar_config(disable=True)
    return other


@pytest.mark.parametrize(
    ("scheduler_cls", "steps", "extra"),
    [(LCMScheduler, 4, {}), (TCDScheduler, 1, {"eta": 0.3}), (TCDScheduler, 4, {"eta": 0.3})],
    ids=["lcm-4", "tcd-1", "tcd-4"],
)
def test_sdxl_few_step_schedulers_run_the_branch_on_every_step(pipe, scheduler_cls, steps, extra):
    few = _with_scheduler(pipe, scheduler_cls(**_SCHEDULER_CONFIG))
    with _Counter(few.brushnet) as branch:
        _run(few, num_inference_steps=steps, guidance_scale=1.0, output_type="latent", **extra)
    assert branch.calls == steps and few.num_timesteps == steps


def test_sdxl_custom_timesteps_and_guidance_rescale(pipe):
    tcd = _with_scheduler(pipe, TCDScheduler(**_SCHEDULER_CONFIG))
    seen = []
    with _Counter(tcd.brushnet) as branch:
        _run(
            tcd,
            timesteps=[999, 499],
            guidance_scale=1.0,
            callback_on_step_end=lambda p, i, t, kw: seen.append(int(t)) or kw,
        )
    assert seen == [999, 499] and branch.calls == 2
    base = _run(pipe)
    assert np.abs(_run(pipe, guidance_rescale=0.7) - base).max() > 1e-4


def test_sdxl_lora_changes_the_output_and_unloads_cleanly(fresh_pipe, tmp_path):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from .sdxl_helpers import make_tiny_sdxl_models

    pipe = fresh_pipe
    base = _run(pipe)
    unet, _, _ = make_tiny_sdxl_models()
    torch.manual_seed(11)
    unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_k", "to_v"], init_lora_weights=False)
    )
    StableDiffusionXLBrushNetPipeline.save_lora_weights(
        tmp_path / "lora", unet_lora_layers=get_peft_model_state_dict(unet)
    )
    pipe.load_lora_weights(tmp_path / "lora", adapter_name="tiny")
    with_lora = _run(pipe)
    assert np.abs(with_lora - base).max() > 1e-3
    assert not any("lora" in name for name, _ in pipe.brushnet.named_modules())
    pipe.fuse_lora()
    assert np.abs(_run(pipe) - with_lora).max() < 1e-4
    pipe.unfuse_lora()
    pipe.unload_lora_weights()
    assert np.abs(_run(pipe) - base).max() < 1e-6


def test_sdxl_refuses_an_sd15_lora_in_one_sentence(fresh_pipe, tmp_path):
    with pytest.raises(ValueError, match=r"^This LoRA was made for .*16-dim.* base is .*32-dim"):
        fresh_pipe.load_lora_weights(_tiny_lora(tmp_path))  # LoRA of the tiny SD1.5 UNet
    assert not getattr(fresh_pipe.unet, "peft_config", None)


def test_sdxl_clip_skip_counts_from_the_penultimate_layer(pipe):
    ids = pipe.tokenizer("a cat", padding="max_length", max_length=7, return_tensors="pt")
    with torch.no_grad():
        h1 = pipe.text_encoder(ids.input_ids, output_hidden_states=True).hidden_states
        h2 = pipe.text_encoder_2(ids.input_ids, output_hidden_states=True).hidden_states
    embeds = pipe.encode_prompt("a cat", None, "cpu", 1, False)[0]
    assert torch.allclose(embeds, torch.cat([h1[-2], h2[-2]], dim=-1), atol=1e-6)
    skipped = pipe.encode_prompt("a cat", None, "cpu", 1, False, clip_skip=1)[0]
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


def test_sdxl_ip_adapter(fresh_pipe, tmp_path):
    pipe = fresh_pipe
    base = _run(pipe)
    _tiny_ip_adapter(pipe.unet, tmp_path)
    pipe.load_ip_adapter(str(tmp_path), subfolder="", weight_name="ip-adapter.safetensors")
    reference = PIL.Image.fromarray(
        np.random.default_rng(5).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    )
    with_image = _run(pipe, ip_adapter_image=reference)
    assert np.abs(with_image - base).max() > 1e-4
    pipe.set_ip_adapter_scale(0.0)
    assert np.abs(_run(pipe, ip_adapter_image=reference) - base).max() < 1e-5


def test_sdxl_padding_mask_crop(pipe):
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (120, 200, 3), dtype=np.uint8)
    mask = np.zeros((120, 200), dtype=np.uint8)
    mask[50:62, 140:160] = 255
    shapes = []
    out = _run(
        pipe,
        image=image,
        mask_image=mask,
        padding_mask_crop=6,
        callback_on_step_end=lambda p, i, t, kw: shapes.append(tuple(kw["latents"].shape)) or kw,
    )[0]
    assert out.shape == (120, 200, 3) and shapes == [(1, 4, 8, 16)]
    orig = image.astype(np.float32) / 255
    outside = np.ones((120, 200), dtype=bool)
    outside[43:69, 130:170] = False
    assert np.abs(out[outside] - orig[outside]).max() < 1e-6
    assert np.abs(out[mask > 0] - orig[mask > 0]).max() > 0.05


def test_sdxl_diffusion_pipeline_from_pretrained(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "saved")
    generic = DiffusionPipeline.from_pretrained(tmp_path / "saved", trust_remote_code=True)
    assert type(generic) is StableDiffusionXLBrushNetPipeline
    assert type(StableDiffusionXLBrushNetPipeline.from_pretrained(tmp_path / "saved")) is type(
        generic
    )
    generic.set_progress_bar_config(disable=True)
    assert np.abs(_run(generic) - _run(pipe)).max() < 1e-6
