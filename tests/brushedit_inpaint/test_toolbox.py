"""The diffusers toolbox on the BrushNet pipelines, on tiny random-weight models.

Few-step schedulers with the branch on every step, LoRA (made with peft) in and out, the refusal of another family's
LoRA, textual inversion, IP-Adapter, clip_skip, guidance_rescale, custom timesteps / sigmas, crop-to-mask, and the
`DiffusionPipeline.from_pretrained` and `from_single_file` round trips. The tests marked for both families run once
on SD1.5 and once on SDXL; SDXL's own (two text encoders) are in test_toolbox_sdxl.py.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    LCMScheduler,
    TCDScheduler,
)

from .tiny_parts import SD15, family_models, image_and_mask, tiny_call

# `tiny_pipe` is shared by the tests that leave its models as they are, `fresh_pipe` is for those that load adapters.
pytestmark = pytest.mark.families("sd15")
both_families = pytest.mark.families("sd15", "sdxl")

_SCHEDULER_CONFIG = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}


def _with_scheduler(pipe, scheduler):
    """The same models under another scheduler."""
    other = type(pipe)(**{**pipe.components, "scheduler": scheduler})
    other.set_progress_bar_config(disable=True)
    return other


def _run(pipe, **overrides):
    """One seeded 1-step call on a 16x16 image, blending off: the toolbox tests compare such outputs.

    With a negative prompt: SDXL zeroes an empty one, which would leave CFG little to do.
    """
    generator = torch.Generator().manual_seed(0)
    kwargs = tiny_call(16, 16, seed=3, negative_prompt="ugly", blending=False, generator=generator)
    return pipe(**{**kwargs, **overrides}).images


class _Counter:
    """Counts forward calls of a module through a forward hook."""

    def __init__(self, module):
        self.calls = 0
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, *args):
        self.calls += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


# -- few-step sampling --------------------------------------------------------------------------------------------


_LCM = (LCMScheduler, {}, {"guidance_scale": 1.0})  # LCM-LoRA recipe: 4-8 steps, CFG off (or <= 2)
_TCD = (TCDScheduler, {}, {"guidance_scale": 1.0, "eta": 0.3})  # TCD: `eta` is TCD's gamma
_HYPER = (DDIMScheduler, {"timestep_spacing": "trailing"}, {"guidance_scale": 1.0})  # Hyper-SD


@pytest.mark.parametrize(
    ("scheduler", "steps"),
    [(_LCM, 1), (_LCM, 4), (_TCD, 1), (_TCD, 4), (_HYPER, 3)],
    ids=["lcm-1", "lcm-4", "tcd-1", "tcd-4", "hyper-sd-ddim-trailing-3"],
)
@both_families
def test_few_step_schedulers_run_the_branch_on_every_step(tiny_pipe, scheduler, steps):
    scheduler_cls, scheduler_kwargs, call_kwargs = scheduler
    few = _with_scheduler(tiny_pipe, scheduler_cls(**_SCHEDULER_CONFIG, **scheduler_kwargs))
    seen = []
    with _Counter(few.brushnet) as branch, _Counter(few.unet.conv_in) as unet:
        out = _run(
            few,
            num_inference_steps=steps,
            output_type="latent",
            callback_on_step_end=lambda p, i, t, kw: seen.append(int(t)) or kw,
            **call_kwargs,
        )
    assert branch.calls == steps and unet.calls == steps and few.num_timesteps == steps
    assert len(seen) == steps and len(set(seen)) == steps
    if steps == 4:
        # on the last step too: dropping the branch there alone changes the result
        early = _run(
            few,
            num_inference_steps=steps,
            output_type="latent",
            control_guidance_end=0.75,
            **call_kwargs,
        )
        assert (out - early).abs().max().item() > 1e-5


def test_control_window_counts_on_few_steps(tiny_pipe):
    lcm = _with_scheduler(tiny_pipe, LCMScheduler(**_SCHEDULER_CONFIG))
    with _Counter(lcm.brushnet) as branch:
        _run(lcm, num_inference_steps=4, guidance_scale=1.0, control_guidance_end=0.5)
    assert branch.calls == 2


@both_families
def test_custom_timesteps(tiny_pipe):
    tcd = _with_scheduler(tiny_pipe, TCDScheduler(**_SCHEDULER_CONFIG))
    seen = []
    with _Counter(tcd.brushnet) as branch:
        _run(
            tcd,
            timesteps=[999, 759, 499],
            guidance_scale=1.0,
            callback_on_step_end=lambda p, i, t, kw: seen.append(int(t)) or kw,
        )
    assert seen == [999, 759, 499] and branch.calls == 3


def test_custom_sigmas_and_the_errors(tiny_pipe):
    euler = _with_scheduler(tiny_pipe, EulerDiscreteScheduler(**_SCHEDULER_CONFIG))
    with _Counter(euler.brushnet) as branch:
        _run(euler, sigmas=[14.6, 1.0, 0.0])  # the last sigma is the end point: two steps
    assert branch.calls == 2 and euler.num_timesteps == 2

    with pytest.raises(ValueError, match="does not support custom"):
        _run(tiny_pipe, timesteps=[999, 499])  # UniPC takes no custom timesteps
    with pytest.raises(ValueError, match="`timesteps` or `sigmas`"):
        _run(euler, timesteps=[999], sigmas=[1.0])


# -- LoRA -------------------------------------------------------------------------------------------------------------


def _tiny_lora(tmp_path, family=SD15):
    """A LoRA for the family's tiny UNet, made with peft and saved in diffusers' format."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet, _, _ = family_models(family)
    torch.manual_seed(11)
    unet.add_adapter(
        LoraConfig(
            r=4,
            lora_alpha=4,
            target_modules=["to_q", "to_k", "to_v", "to_out.0"],
            init_lora_weights=False,
        )
    )
    folder = tmp_path / "lora"
    family.pipeline_class().save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet))
    return folder


def _text_encoder_lora():
    """LoRA tensors (diffusers/peft names) for the tiny text encoder's first attention layer."""
    g = torch.Generator().manual_seed(12)
    tensors = {}
    for proj in ("q_proj", "v_proj"):
        key = f"text_encoder.encoder.layers.0.self_attn.{proj}"
        tensors[f"{key}.lora_A.weight"] = torch.randn(4, 16, generator=g)
        tensors[f"{key}.lora_B.weight"] = torch.randn(16, 4, generator=g)
    return tensors


@both_families
def test_lora_changes_the_output_and_unloads_cleanly(family, fresh_pipe, tmp_path):
    pipe = fresh_pipe
    branch_before = {k: v.clone() for k, v in pipe.brushnet.state_dict().items()}
    base = _run(pipe)

    pipe.load_lora_weights(_tiny_lora(tmp_path, family), adapter_name="tiny")
    with_lora = _run(pipe)
    assert np.abs(with_lora - base).max() > 1e-3
    assert not any("lora" in name for name, _ in pipe.brushnet.named_modules())

    pipe.set_adapters(["tiny"], adapter_weights=[0.0])
    assert np.abs(_run(pipe) - base).max() < 1e-6
    pipe.set_adapters(["tiny"], adapter_weights=[1.0])
    half = _run(pipe, cross_attention_kwargs={"scale": 0.5})
    assert np.abs(half - base).max() > 1e-4 and np.abs(half - with_lora).max() > 1e-4

    pipe.fuse_lora()
    assert np.abs(_run(pipe) - with_lora).max() < 1e-4
    pipe.unfuse_lora()  # W + BA - BA: equal to W up to float rounding
    pipe.unload_lora_weights()
    assert not any("lora" in key for key in pipe.unet.state_dict())
    assert np.abs(_run(pipe) - base).max() < 1e-5
    for name, value in pipe.brushnet.state_dict().items():
        assert torch.equal(value, branch_before[name])


def test_text_encoder_lora_loads_or_is_refused_before_anything_changes(fresh_pipe):
    import importlib.metadata

    from packaging import version
    from transformers.integrations.peft import MIN_PEFT_VERSION

    pipe = fresh_pipe
    embeds_base = pipe.encode_prompt("a cat", "cpu", 1, False)[0]
    if version.parse(importlib.metadata.version("peft")) < version.parse(MIN_PEFT_VERSION):
        with pytest.raises(ValueError, match=f"peft >= {MIN_PEFT_VERSION}"):
            pipe.load_lora_weights(_text_encoder_lora())
        assert not getattr(pipe.unet, "peft_config", None)
    else:
        pipe.load_lora_weights(_text_encoder_lora())
        changed = pipe.encode_prompt("a cat", "cpu", 1, False)[0]
        assert (changed - embeds_base).abs().max() > 1e-4
        pipe.unload_lora_weights()
    assert (pipe.encode_prompt("a cat", "cpu", 1, False)[0] - embeds_base).abs().max() < 1e-6


def test_lora_of_another_family_is_refused_in_one_sentence(fresh_pipe):
    pipe = fresh_pipe
    prefix = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2"
    sdxl = {
        f"{prefix}.to_k.lora_A.weight": torch.zeros(4, 2048),
        f"{prefix}.to_k.lora_B.weight": torch.zeros(16, 4),
    }
    with pytest.raises(ValueError, match=r"made for SDXL .* base is a 16-dim") as info:
        pipe.load_lora_weights(sdxl)
    assert info.value.args[0].count(". ") == 0 and info.value.args[0].endswith(".")
    te2 = {
        "text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(
            4, 16
        )
    }
    te2["text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight"] = torch.zeros(
        16, 4
    )
    with pytest.raises(ValueError, match="second text encoder"):
        pipe.load_lora_weights(te2)
    assert not getattr(pipe.unet, "peft_config", None)  # nothing was loaded


def test_lora_family_names():
    from brushedit_inpaint.toolbox import lora_family_error

    sd15 = {
        "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_v.lora.down.weight": torch.zeros(
            4, 768
        )
    }
    assert lora_family_error(sd15, 768, has_text_encoder_2=False) is None
    message = lora_family_error(sd15, 2048, has_text_encoder_2=True)
    assert message.startswith("This LoRA was made for SD1.5") and "base is SDXL" in message


# -- textual inversion, clip_skip, guidance_rescale --------------------------------------------------------------------


def test_textual_inversion(fresh_pipe):
    pipe = fresh_pipe
    vector = torch.randn(16, generator=torch.Generator().manual_seed(2))
    pipe.load_textual_inversion({"<sks>": vector})
    token_id = pipe.tokenizer.convert_tokens_to_ids("<sks>")
    assert torch.equal(pipe.text_encoder.get_input_embeddings().weight[token_id], vector)
    with_token = pipe.encode_prompt("a <sks>", "cpu", 1, False)[0]
    plain = pipe.encode_prompt("a", "cpu", 1, False)[0]
    assert (with_token - plain).abs().max() > 1e-4
    assert np.abs(_run(pipe, prompt="a <sks>") - _run(pipe, prompt="a")).max() > 1e-4


def test_clip_skip(tiny_pipe):
    encoder, tokenizer = tiny_pipe.text_encoder, tiny_pipe.tokenizer
    ids = tokenizer(
        "a cat", padding="max_length", max_length=7, truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        out = encoder(ids.input_ids, output_hidden_states=True)
        norm = getattr(encoder, "final_layer_norm", None) or encoder.text_model.final_layer_norm
        expected = norm(out.hidden_states[-2])
    skipped = tiny_pipe.encode_prompt("a cat", "cpu", 1, False, clip_skip=1)[0]
    assert (skipped - expected).abs().max() < 1e-6
    assert (
        tiny_pipe.encode_prompt("a cat", "cpu", 1, False, clip_skip=0)[0] - out[0]
    ).abs().max() < 1e-6
    assert np.abs(_run(tiny_pipe, clip_skip=1) - _run(tiny_pipe)).max() > 1e-4


@both_families
def test_guidance_rescale(tiny_pipe):
    base = _run(tiny_pipe, guidance_scale=7.5)
    assert np.array_equal(_run(tiny_pipe, guidance_scale=7.5, guidance_rescale=0.0), base)
    assert np.abs(_run(tiny_pipe, guidance_scale=7.5, guidance_rescale=0.7) - base).max() > 1e-4
    with pytest.raises(ValueError, match="`guidance_rescale`"):
        _run(tiny_pipe, guidance_rescale=1.5)


# -- IP-Adapter ---------------------------------------------------------------------------------------------------------


def _tiny_ip_adapter(unet, folder):
    """A tiny CLIP image encoder in `folder/image_encoder` and a matching IP-Adapter in `folder/ip-adapter.safetensors`."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(4)
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            projection_dim=8,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        )
    )
    encoder.save_pretrained(folder / "image_encoder")
    cross_dim, tokens = unet.config.cross_attention_dim, 4
    tensors = {
        "image_proj.proj.weight": torch.randn(cross_dim * tokens, 8) * 0.5,
        "image_proj.proj.bias": torch.zeros(cross_dim * tokens),
        "image_proj.norm.weight": torch.ones(cross_dim),
        "image_proj.norm.bias": torch.zeros(cross_dim),
    }
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        hidden = unet.get_submodule(name.rsplit(".processor", 1)[0]).to_k.weight.shape[0]
        for proj in ("to_k_ip", "to_v_ip"):
            tensors[f"ip_adapter.{key_id}.{proj}.weight"] = torch.randn(hidden, cross_dim) * 0.5
        key_id += 2
    save_file(tensors, folder / "ip-adapter.safetensors")


@both_families
def test_ip_adapter_image_and_embeds(fresh_pipe, tmp_path):
    pipe = fresh_pipe
    base = _run(pipe)
    _tiny_ip_adapter(pipe.unet, tmp_path)
    pipe.load_ip_adapter(str(tmp_path), subfolder="", weight_name="ip-adapter.safetensors")
    assert pipe.image_encoder is not None and pipe.feature_extractor is not None
    reference = PIL.Image.fromarray(
        np.random.default_rng(5).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    )
    with_image = _run(pipe, ip_adapter_image=reference)
    assert np.abs(with_image - base).max() > 1e-4
    embeds = pipe.prepare_ip_adapter_image_embeds(reference, None, "cpu", 1, True)
    assert np.abs(_run(pipe, ip_adapter_image_embeds=embeds) - with_image).max() < 1e-6
    pipe.set_ip_adapter_scale(0.0)
    assert np.abs(_run(pipe, ip_adapter_image=reference) - base).max() < 1e-5
    with pytest.raises(ValueError, match="`ip_adapter_image` or `ip_adapter_image_embeds`"):
        _run(pipe, ip_adapter_image=reference, ip_adapter_image_embeds=embeds)


# -- crop-to-mask -------------------------------------------------------------------------------------------------------


@both_families
def test_padding_mask_crop_edits_a_crop_at_native_size_and_pastes_it_back(tiny_pipe):
    h, w = 120, 200  # a "large" photo for a 32 px native tiny model
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[50:62, 140:160] = 255
    shapes = []
    for blending in (False, True):
        out = tiny_pipe(
            prompt="a cat",
            image=image,
            mask_image=mask,
            num_inference_steps=1,
            output_type="np",
            blending=blending,
            padding_mask_crop=6,
            generator=torch.Generator().manual_seed(0),
            callback_on_step_end=lambda p, i, t, kw: (
                shapes.append(tuple(kw["latents"].shape)) or kw
            ),
        ).images[0]
        assert out.shape == (h, w, 3)
        orig = image.astype(np.float32) / 255
        # crop box: the mask's 20x12 box + 6 px = 32x24 at x 134..166, y 44..68, widened to the 5:3 image aspect
        outside = np.ones((h, w), dtype=bool)
        outside[44 - 1 : 68 + 1, 130:170] = False
        assert np.abs(out[outside] - orig[outside]).max() < 1e-6
        assert np.abs(out[mask > 0] - orig[mask > 0]).max() > 0.05
    # the crop (5:3) works at the tiny model's native long side, 32 px -> 32x16 px, latents at 1/2
    assert shapes == [(1, 4, 8, 16), (1, 4, 8, 16)]


def test_padding_mask_crop_box_and_errors(tiny_pipe):
    from brushedit_inpaint.toolbox import crop_working_size, mask_crop_box

    hole = np.zeros((120, 200), dtype=np.float32)
    hole[50:62, 140:160] = 1
    x1, y1, x2, y2 = mask_crop_box(hole, 6, 200, 120)
    assert x1 <= 134 and x2 >= 166 and y1 <= 44 and y2 >= 68
    assert abs((x2 - x1) / (y2 - y1) - 200 / 120) < 0.1
    assert crop_working_size(300, 400, 512) == (384, 512)
    assert crop_working_size(30, 40, 512) == (384, 512)  # small crops are scaled up
    image, _ = image_and_mask(16, 16, seed=3)
    with pytest.raises(ValueError, match="at least one white pixel"):
        tiny_pipe(prompt="a", image=image, mask_image=np.zeros((16, 16), np.uint8), padding_mask_crop=4)
    with pytest.raises(ValueError, match="`padding_mask_crop`"):
        _run(tiny_pipe, padding_mask_crop=-1)


# -- saving and reloading -----------------------------------------------------------------------------------------------


@both_families
def test_diffusion_pipeline_from_pretrained_reloads_a_saved_folder(family, tiny_pipe, tmp_path):
    pipeline_class = family.pipeline_class()
    folder = tmp_path / "saved"
    tiny_pipe.save_pretrained(folder)
    # the one-import file model_index.json names: pipeline_brushnet_pipeline.py for SD1.5
    assert (folder / f"{pipeline_class.__module__.rsplit('.', 1)[-1]}_brushnet_pipeline.py").is_file()
    with pytest.raises(ValueError, match="trust_remote_code"):
        DiffusionPipeline.from_pretrained(folder)
    generic = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
    assert type(generic) is pipeline_class
    direct = pipeline_class.from_pretrained(folder)  # our class never runs the file
    assert type(direct) is pipeline_class
    for name, module in tiny_pipe.components.items():
        if isinstance(module, torch.nn.Module):
            reloaded = getattr(generic, name).state_dict()
            for key, tensor in module.state_dict().items():
                assert torch.equal(reloaded[key], tensor), f"{name}.{key} changed on reload"
    generic.set_progress_bar_config(disable=True)
    # Same weights, but memory-mapped ones sit at other alignments, so CPU kernels may take another
    # code path: the outputs then differ in the last float32 bits (1.5e-6 measured), never more.
    assert np.abs(_run(generic) - _run(tiny_pipe)).max() < 1e-5


@both_families
def test_from_single_file_on_the_pipeline_class(family, tiny_pipe, tmp_path):
    from safetensors.torch import save_file

    from .ldm_checkpoint import unet_to_ldm, vae_to_ldm

    config = tmp_path / "config"
    tiny_pipe.save_pretrained(config)  # the diffusers-format layout `config=` points at (seed-0 weights)
    unet, vae, _ = family_models(family, seed=1)  # the single file holds different weights
    checkpoint = {**unet_to_ldm(unet), **vae_to_ldm(vae)}
    save_file({k: v.contiguous() for k, v in checkpoint.items()}, tmp_path / "tiny.safetensors")
    pipeline_class = family.pipeline_class()
    loaded = pipeline_class.from_single_file(
        str(tmp_path / "tiny.safetensors"),
        config=str(config),
        brushnet=tiny_pipe.brushnet,
        **{name: getattr(tiny_pipe, name) for name in family.text_parts},
        local_files_only=True,
    )
    assert type(loaded) is pipeline_class and loaded.brushnet is tiny_pipe.brushnet
    for name, source in (("unet", unet), ("vae", vae)):
        expected, got = source.state_dict(), getattr(loaded, name).state_dict()
        assert expected.keys() == got.keys()
        assert all(torch.equal(expected[k], got[k].reshape(expected[k].shape)) for k in expected)
