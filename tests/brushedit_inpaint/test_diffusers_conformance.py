"""The BrushNet pipelines with diffusers' own helpers, used as a diffusers user would (issue 26), on tiny models.

`AutoPipelineForInpainting`, diffusers' `PipelineCallback`s (CFG cutoff), `strength=`, lists of images,
`BrushNetModel.from_single_file`, `load_pipeline(base=<file>, config=...)`, custom `timesteps` on the default
scheduler, and `dtype=` without deprecation notices. Two steps or fewer per call.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderKL,
    AutoPipelineForInpainting,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
)
from diffusers.callbacks import (
    MultiPipelineCallbacks,
    PipelineCallback,
    SDCFGCutoffCallback,
    SDXLCFGCutoffCallback,
    SDXLControlnetCFGCutoffCallback,
)
from safetensors.torch import save_file

from brushedit_inpaint import BrushNetLoadError, BrushNetModel, load_pipeline

from .ldm_checkpoint import unet_to_ldm
from .single_file_parts import released_like_brushnet, released_like_unet, save_sd15_single_file
from .tiny_parts import (
    SD15,
    TINY_SDXL_UNET,
    TINY_VAE,
    family_models,
    image_and_mask,
    sd15_text,
    tiny_call,
)

# `tiny_pipe` is the session's tiny pipeline of each family these marks name (conftest.py); SD1.5 unless marked.
pytestmark = pytest.mark.families("sd15")
both_families = pytest.mark.families("sd15", "sdxl")


def _seed(n: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(n)


class _Inputs:
    """Records what a module's forward received on each call (pre-hook with kwargs)."""

    def __init__(self, module):
        self.calls: list[tuple[tuple, dict]] = []
        self.handle = module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, _module, args, kwargs):
        self.calls.append((args, kwargs))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


# -- AutoPipelineForInpainting ---------------------------------------------------------------------------------------


@both_families
def test_auto_pipeline_for_inpainting_from_pipe_finds_our_pipeline(family, tiny_pipe):
    auto = AutoPipelineForInpainting.from_pipe(tiny_pipe)
    assert type(auto) is family.pipeline_class()
    for name, component in tiny_pipe.components.items():
        assert getattr(auto, name) is component, f"{name} was not shared"
    auto.set_progress_bar_config(disable=True)
    kwargs = tiny_call(num_inference_steps=2)
    assert np.array_equal(
        auto(**kwargs, generator=_seed()).images, tiny_pipe(**kwargs, generator=_seed()).images
    )
    swapped = AutoPipelineForInpainting.from_pipe(tiny_pipe, scheduler=DDIMScheduler())
    assert isinstance(swapped.scheduler, DDIMScheduler) and swapped.unet is tiny_pipe.unet


def test_auto_pipeline_for_inpainting_from_pretrained(tiny_pipe, tmp_path):
    folder = tmp_path / "saved"
    tiny_pipe.save_pretrained(folder)
    # Our save names the class as ["<file>", "<class>"] for DiffusionPipeline(trust_remote_code=True); diffusers'
    # Auto classes read `_class_name` only as a plain name (documented in docs/inpainting.md).
    with pytest.raises(ValueError, match="AutoPipeline can't find a pipeline"):
        AutoPipelineForInpainting.from_pretrained(folder, trust_remote_code=True)
    index = folder / "model_index.json"
    config = json.loads(index.read_text())
    config["_class_name"] = "StableDiffusionBrushNetPipeline"
    index.write_text(json.dumps(config))
    auto = AutoPipelineForInpainting.from_pretrained(folder)
    assert type(auto) is type(tiny_pipe)
    for key, tensor in tiny_pipe.brushnet.state_dict().items():
        assert torch.equal(auto.brushnet.state_dict()[key], tensor)


# -- callback_on_step_end with diffusers' callbacks ---------------------------------------------------------------


_CUTOFF = {"sd15": SDCFGCutoffCallback, "sdxl": SDXLCFGCutoffCallback}


@both_families
def test_cfg_cutoff_callback_stops_guidance_at_its_step(family, tiny_pipe):
    kwargs = tiny_call(num_inference_steps=2, negative_prompt="ugly")
    plain = tiny_pipe(**kwargs, generator=_seed()).images
    callback = _CUTOFF[family.name](cutoff_step_ratio=None, cutoff_step_index=0)
    with _Inputs(tiny_pipe.unet.conv_in) as unet, _Inputs(tiny_pipe.unet.mid_block) as mid:
        cut = tiny_pipe(**kwargs, generator=_seed(), callback_on_step_end=callback).images
    # step 0 runs both CFG halves, step 1 (after the cutoff at the end of step 0) only the text half
    assert [args[0].shape[0] for args, _ in unet.calls] == [2, 1]
    assert tiny_pipe.guidance_scale == 0.0 and not tiny_pipe.do_classifier_free_guidance
    encoded = tiny_pipe.encode_prompt(
        **({"prompt": "a cat"} if family.name == "sd15" else {"prompt": "a cat", "prompt_2": None}),
        device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=False,
    )
    assert torch.equal(mid.calls[1][1]["encoder_hidden_states"], encoded[0])
    assert np.abs(cut - plain).max() > 1e-4


def test_cutoff_ratio_counts_the_steps(tiny_pipe):
    with _Inputs(tiny_pipe.unet.conv_in) as unet:
        tiny_pipe(**tiny_call(num_inference_steps=4), callback_on_step_end=SDCFGCutoffCallback(cutoff_step_ratio=0.5))
    assert [args[0].shape[0] for args, _ in unet.calls] == [2, 2, 2, 1]


class _Recorder(PipelineCallback):
    """A user's own PipelineCallback: the pipeline passes what `tensor_inputs` names."""

    tensor_inputs = ["latents", "prompt_embeds"]  # noqa: RUF012 (diffusers convention)

    def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
        self.seen = sorted(callback_kwargs)
        return callback_kwargs


def test_pipeline_callbacks_get_their_tensor_inputs(tiny_pipe):
    recorder = _Recorder()
    both = MultiPipelineCallbacks([recorder, SDCFGCutoffCallback(cutoff_step_ratio=1.0)])
    tiny_pipe(**tiny_call(), callback_on_step_end=both)
    assert recorder.seen == ["latents", "prompt_embeds"]
    allowed = r"allowed: \['latents', 'prompt_embeds', 'negative_prompt_embeds'\]"
    with pytest.raises(ValueError, match=r"`callback_on_step_end_tensor_inputs` has \[.*'image'\]; " + allowed):
        tiny_pipe(**tiny_call(), callback_on_step_end=SDXLControlnetCFGCutoffCallback(cutoff_step_ratio=0.5))


# -- strength -----------------------------------------------------------------------------------------------------


@both_families
def test_strength_starts_from_the_noised_image(tiny_pipe):
    image, mask = image_and_mask(32, 32, seed=4)
    noise = torch.randn(1, 4, 16, 16, generator=_seed(9))
    seen = []
    with _Inputs(tiny_pipe.unet.conv_in) as unet:
        tiny_pipe(
            prompt="a cat", image=image, mask_image=mask, num_inference_steps=4, strength=0.5, latents=noise,
            generator=_seed(), output_type="latent",
            callback_on_step_end=lambda p, i, t, kw: seen.append(int(t)) or {},
        )  # fmt: skip
    full = tiny_pipe.scheduler.__class__.from_config(tiny_pipe.scheduler.config)
    full.set_timesteps(4)
    assert seen == [int(t) for t in full.timesteps[2:]] and tiny_pipe.num_timesteps == 2
    # the first UNet input is the image's VAE latent (sampled with the call's generator) noised to that timestep
    pixels = torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None] * 2 - 1
    with torch.no_grad():
        x0 = tiny_pipe.vae.encode(pixels).latent_dist.sample(_seed()) * tiny_pipe.vae.config.scaling_factor
    alpha_bar = full.alphas_cumprod[seen[0]]
    expected = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
    first = unet.calls[0][0][0][:1]  # the negative half; both halves hold the same latents
    assert (first - expected).abs().max() < 1e-4


def test_strength_one_is_the_default_and_bad_strengths_are_named(tiny_pipe):
    kwargs = tiny_call(num_inference_steps=2)
    assert np.array_equal(
        tiny_pipe(**kwargs, generator=_seed()).images,
        tiny_pipe(**kwargs, generator=_seed(), strength=1.0).images,
    )
    for strength in (0, 1.5, float("nan"), "high"):
        with pytest.raises(ValueError, match="`strength` must be a number in"):
            tiny_pipe(**kwargs, strength=strength)
    with pytest.raises(ValueError, match="leaves no denoising step"):
        tiny_pipe(**tiny_call(num_inference_steps=4, strength=0.2))


# -- lists of images --------------------------------------------------------------------------------------------------


@both_families
def test_a_list_of_images_equals_one_call_per_image(tiny_pipe):
    (a, mask_a), (b, mask_b) = image_and_mask(32, 32, seed=5), image_and_mask(32, 32, seed=6)
    mask_b = np.roll(mask_b, 9, axis=1)
    noise = torch.randn(2, 4, 16, 16, generator=_seed(7))
    common = {"prompt": "a cat", "num_inference_steps": 2, "output_type": "np"}
    batch = tiny_pipe(**common, image=[a, b], mask_image=[mask_a, mask_b], latents=noise,
                      generator=[_seed(1), _seed(2)]).images  # fmt: skip
    single_a = tiny_pipe(**common, image=a, mask_image=mask_a, latents=noise[:1], generator=_seed(1)).images
    single_b = tiny_pipe(**common, image=b, mask_image=mask_b, latents=noise[1:], generator=_seed(2)).images
    assert batch.shape == (2, 32, 32, 3)
    # same inputs, batch of 2 vs 1: CPU kernels may round the last float32 bits differently
    assert np.abs(batch[0] - single_a[0]).max() < 1e-5 and np.abs(batch[1] - single_b[0]).max() < 1e-5


def test_prompt_and_image_lists_pair_up_in_order(tiny_pipe):
    (a, mask), (b, _) = image_and_mask(40, 48, seed=5), image_and_mask(40, 48, seed=6)
    out = tiny_pipe(prompt=["a cat", "a dog"], image=[a, b], mask_image=mask, num_images_per_prompt=2,
                    num_inference_steps=1, output_type="np", generator=_seed()).images  # fmt: skip
    assert out.shape == (4, 40, 48, 3)
    far = np.ones(mask.shape, dtype=bool)  # 12 px or more from the mask's box (rows 10:20, columns 12:24)
    far[:32, :36] = False
    for k, source in enumerate([a, a, b, b]):  # blending keeps each output's own image outside the mask
        assert np.abs(out[k][far] - source[far] / 255).max() < 1e-6
    # one image for two prompts, and one prompt for two images, as in diffusers
    assert tiny_pipe(**tiny_call(prompt=["a", "b"]), generator=_seed()).images.shape[0] == 2
    assert tiny_pipe(**tiny_call(image=[a[:32, :32], b[:32, :32]]), generator=_seed()).images.shape[0] == 2


def test_padding_mask_crop_on_a_batch_uses_one_box_around_all_masks(tiny_pipe):
    (a, mask_a), (b, _) = image_and_mask(96, 128, seed=5), image_and_mask(96, 128, seed=6)
    mask_b = np.zeros_like(mask_a)
    mask_b[60:70, 90:100] = 255
    out = tiny_pipe(prompt="a cat", image=[a, b], mask_image=[mask_a, mask_b], padding_mask_crop=4,
                    num_inference_steps=1, output_type="np", generator=_seed()).images  # fmt: skip
    for k, (source, mask) in enumerate(((a, mask_a), (b, mask_b))):
        assert np.abs(out[k][mask > 0] - source[mask > 0] / 255).max() > 0.05  # edited
        assert np.abs(out[k][:8] - source[:8] / 255).max() < 1e-6  # far outside both masks: the original


def test_mismatched_lists_are_refused_in_one_sentence(tiny_pipe):
    image, mask = image_and_mask(32, 32)
    other, other_mask = image_and_mask(32, 40)
    cases = [
        ({"prompt": ["a", "b"], "image": [image] * 3, "mask_image": mask}, "`image` has 3 entries but `prompt` has 2"),
        ({"image": [image] * 3, "mask_image": [mask] * 2}, "`mask_image` has 2 entries but `image` has 3"),
        ({"image": [image, other], "mask_image": [mask, other_mask]}, "must all have the same size"),
        ({"image": [], "mask_image": mask}, "`image` is an empty list"),
        ({"image": [image] * 2, "mask_image": mask, "generator": [_seed()] * 3}, "`generator` is a list of 3"),
    ]
    for overrides, words in cases:
        with pytest.raises(ValueError, match=words.replace("[", r"\[")) as info:
            tiny_pipe(**tiny_call(**overrides))
        assert info.value.args[0].count(". ") == 0


# -- BrushNetModel.from_single_file ----------------------------------------------------------------------------------


def _same_branch(loaded, source) -> bool:
    """Equal weights and (memory-mapped tensors may take other CPU kernels: last float32 bits) equal outputs."""
    expected = source.state_dict()
    weights = all(torch.equal(t, expected[k].to(t.dtype)) for k, t in loaded.state_dict().items())
    return weights and (_branch_outputs(loaded) - _branch_outputs(source)).abs().max() < 1e-5


def _branch_outputs(brushnet, seed: int = 0):
    g = _seed(seed)
    sample = torch.randn(1, 4, 16, 16, generator=g)
    cond = torch.randn(1, 5, 16, 16, generator=g)
    added = None
    if brushnet.config.addition_embed_type == "text_time":
        width = brushnet.config.projection_class_embeddings_input_dim - 6 * brushnet.config.addition_time_embed_dim
        added = {"text_embeds": torch.randn(1, width, generator=g), "time_ids": torch.tensor([[32.0, 32, 0, 0, 32, 32]])}
    with torch.no_grad():
        out = brushnet(sample, 500, encoder_hidden_states=torch.zeros(1, 7, 16), brushnet_cond=cond,
                       added_cond_kwargs=added, return_dict=False)  # fmt: skip
    return torch.cat([t.flatten() for t in (*out[0], out[1], *out[2])])


@pytest.mark.parametrize("sdxl", [False, True], ids=["sd15", "sdxl"])
def test_brushnet_from_single_file_without_a_config(tmp_path, sdxl):
    source = released_like_brushnet(sdxl)
    save_file(source.state_dict(), tmp_path / "brushnet.safetensors")
    loaded = BrushNetModel.from_single_file(tmp_path / "brushnet.safetensors")
    for key in ("block_out_channels", "layers_per_block", "addition_embed_type", "conditioning_channels"):
        assert loaded.config[key] == source.config[key], key
    assert _same_branch(loaded, source)
    half = BrushNetModel.from_single_file(str(tmp_path / "brushnet.safetensors"), dtype=torch.float16)
    assert half.dtype == torch.float16 and not half.training


def test_brushnet_from_single_file_with_a_config_and_its_errors(tiny_pipe, tmp_path):
    tiny_pipe.brushnet.save_pretrained(tmp_path / "folder")  # config.json + weights
    save_file(tiny_pipe.brushnet.state_dict(), tmp_path / "brushnet.safetensors")
    loaded = BrushNetModel.from_single_file(tmp_path / "brushnet.safetensors", config=tmp_path / "folder")
    assert _same_branch(loaded, tiny_pipe.brushnet)
    by_dict = BrushNetModel.from_single_file(tmp_path / "brushnet.safetensors", config=dict(tiny_pipe.brushnet.config))
    assert _same_branch(by_dict, tiny_pipe.brushnet)
    with pytest.warns(FutureWarning, match="torch_dtype"):
        BrushNetModel.from_single_file(tmp_path / "brushnet.safetensors", config=tmp_path / "folder",
                                       torch_dtype=torch.float16)  # fmt: skip

    with pytest.raises(ValueError, match=r"do not fit the 32 GroupNorm groups .* pass `config=`"):
        BrushNetModel.from_single_file(tmp_path / "brushnet.safetensors")  # tiny widths 16/32: groups unknowable
    save_file({k: v.contiguous() for k, v in unet_to_ldm(tiny_pipe.unet).items()}, tmp_path / "sd.safetensors")
    with pytest.raises(ValueError, match=r"not a BrushNet checkpoint.* pass it as `base`"):
        BrushNetModel.from_single_file(tmp_path / "sd.safetensors")
    wider = dict(tiny_pipe.brushnet.config, block_out_channels=[16, 32, 64])
    with pytest.raises(ValueError, match=r"does not fit this BrushNet config: .*another shape"):
        BrushNetModel.from_single_file(tmp_path / "brushnet.safetensors", config=wider)


def test_load_pipeline_takes_a_single_file_brushnet(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    brushnet = released_like_brushnet(sdxl=False)
    unet = released_like_unet()
    base = SD15.make_base({"unet": unet, "vae": AutoencoderKL(**TINY_VAE), **sd15_text(tmp_path / "tok")})
    base.save_pretrained(tmp_path / "base")
    save_file(brushnet.state_dict(), tmp_path / "brushnet.safetensors")
    pipe = load_pipeline(str(tmp_path / "base"), str(tmp_path / "brushnet.safetensors"))
    assert _same_branch(pipe.brushnet, brushnet)
    with pytest.raises(BrushNetLoadError, match="applies to folders and Hub ids"):
        load_pipeline(str(tmp_path / "base"), str(tmp_path / "brushnet.safetensors"), brushnet_subfolder="x")


# -- load_pipeline(base=<single file>, config=...) --------------------------------------------------------------------


def test_load_pipeline_single_file_base_with_config_offline(saved, tiny_pipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    unet, vae, _ = family_models(SD15, seed=1)  # weights unlike the config folder's
    save_sd15_single_file(tmp_path / "base.safetensors", unet, vae, tiny_pipe.text_encoder)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no `torch_dtype` deprecation from our loading
        pipe = load_pipeline(str(tmp_path / "base.safetensors"), str(saved / "brushnet"), config=str(saved / "base"))
    for name, source in (("unet", unet), ("vae", vae), ("text_encoder", tiny_pipe.text_encoder)):
        expected, got = source.state_dict(), getattr(pipe, name).state_dict()
        assert all(torch.equal(expected[k], got[k].reshape(expected[k].shape)) for k in expected), name
    pipe.set_progress_bar_config(disable=True)
    assert pipe(**tiny_call(), generator=_seed()).images.shape == (1, 32, 32, 3)

    with pytest.raises(BrushNetLoadError, match="`config` is for a single-file `base`"):
        load_pipeline(str(saved / "base"), str(saved / "brushnet"), config=str(saved / "base"))
    with pytest.raises(BrushNetLoadError, match="`config` must be a diffusers folder or Hub id"):
        load_pipeline(str(tmp_path / "base.safetensors"), str(saved / "brushnet"), config=3)


def test_load_pipeline_refuses_a_config_of_the_other_family(saved, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sdxl = tmp_path / "sdxl"  # the family is read from the configs alone, before any weights
    (sdxl / "unet").mkdir(parents=True)
    (sdxl / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    (sdxl / "unet" / "config.json").write_text(json.dumps(TINY_SDXL_UNET))
    unet, _, _ = family_models(SD15)
    save_file({k: v.contiguous() for k, v in unet_to_ldm(unet).items()}, tmp_path / "base.safetensors")
    with pytest.raises(BrushNetLoadError, match="is an SDXL model's layout but the single file"):
        load_pipeline(str(tmp_path / "base.safetensors"), str(saved / "brushnet"), config=str(tmp_path / "sdxl"))


# -- custom timesteps on the default scheduler, dtype= -------------------------------------------------------------


def test_custom_timesteps_on_unipc_say_which_scheduler_to_use(tiny_pipe):
    with pytest.raises(ValueError, match="UniPCMultistepScheduler does not support custom `timesteps`") as info:
        tiny_pipe(**tiny_call(), timesteps=[999, 759, 499, 259])
    message = info.value.args[0]
    assert "DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)" in message and "sigmas" in message
    dpm = type(tiny_pipe)(**{**tiny_pipe.components, "scheduler": DPMSolverMultistepScheduler.from_config(
        tiny_pipe.scheduler.config)})  # fmt: skip
    dpm.set_progress_bar_config(disable=True)
    seen = []
    dpm(**tiny_call(), timesteps=[999, 759, 499, 259], callback_on_step_end=lambda p, i, t, kw: seen.append(int(t)) or {})
    assert seen == [999, 759, 499, 259]


def test_loading_uses_dtype_without_deprecation_notices(saved, monkeypatch, recwarn, capfd):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    capfd.readouterr()
    pipe = load_pipeline(str(saved / "base"), str(saved / "brushnet"), dtype="bfloat16")
    assert pipe.unet.dtype == torch.bfloat16 and pipe.brushnet.dtype == torch.bfloat16
    notices = [str(w.message) for w in recwarn if "dtype" in str(w.message) or issubclass(w.category, FutureWarning)]
    assert notices == []
    stderr = capfd.readouterr().err.lower()
    assert "deprecat" not in stderr and "torch_dtype" not in stderr
