"""SDXL BrushNet: the state-dict manifest, the golden branch / injection / pipeline outputs, CFG sharing, inputs."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import UNet2DConditionModel, UniPCMultistepScheduler

from brushedit_inpaint import (
    BrushNetModel,
    StableDiffusionXLBrushNetPipeline,
    unet_forward_with_brushnet,
)
from brushedit_inpaint.configs import SDXL_UNET_CONFIG

from .sdxl_helpers import (
    SDXL_MANIFEST,
    TINY_SDXL_UNET,
    load_sdxl_golden,
    make_tiny_sdxl_pipeline,
    sdxl_golden_models,
)


@pytest.fixture(scope="module")
def golden():
    return load_sdxl_golden()


@pytest.fixture(scope="module")
def models(golden):
    return sdxl_golden_models(golden)


def _added(t, batch=slice(None)):
    return {"text_embeds": t["in.text_embeds"][batch], "time_ids": t["in.time_ids"][batch]}


def _branch(brushnet, t, **kwargs):
    with torch.no_grad():
        return brushnet(
            t["in.sample"],
            t["in.timestep"],
            encoder_hidden_states=t["in.encoder_hidden_states"],
            conditioning=t["in.brushnet_cond"],
            conditioning_scale=0.8,
            added_cond_kwargs=_added(t),
            **kwargs,
        )


# -- the model ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", ["from_config", "from_unet"])
def test_sdxl_matches_reference_manifest(build):
    if not SDXL_MANIFEST.is_file():
        pytest.skip(f"state-dict manifest not found at {SDXL_MANIFEST.resolve()}")
    from accelerate import init_empty_weights

    manifest = json.loads(SDXL_MANIFEST.read_text())
    assert manifest["base_unet_config"] == SDXL_UNET_CONFIG
    with init_empty_weights():
        if build == "from_config":
            brushnet = BrushNetModel.from_config(manifest["config"])
        else:
            brushnet = BrushNetModel.from_unet(UNet2DConditionModel(**SDXL_UNET_CONFIG))
    shapes = {name: list(p.shape) for name, p in brushnet.state_dict().items()}
    assert len(shapes) == len(manifest["tensors"]) == 252
    assert list(shapes) == list(manifest["tensors"])  # name for name, in order
    assert shapes == manifest["tensors"]  # shape for shape
    for key, value in manifest["config"].items():
        ours = brushnet.config[key]
        assert (list(ours) if isinstance(ours, (list, tuple)) else ours) == value, key


def test_sdxl_golden_branch_samples_and_noise_prediction(golden, models):
    t = golden["tensors"]
    out = _branch(models["brushnet"], t)
    assert len(out.down_block_res_samples) == 9 and len(out.up_block_res_samples) == 11
    errors = {f"down.{i}": (s - t[f"out.down_sample.{i}"]).abs().max().item()
              for i, s in enumerate(out.down_block_res_samples)}  # fmt: skip
    errors["mid"] = (out.mid_block_res_sample - t["out.mid_sample"]).abs().max().item()
    errors.update({f"up.{i}": (s - t[f"out.up_sample.{i}"]).abs().max().item()
                   for i, s in enumerate(out.up_block_res_samples)})  # fmt: skip
    with torch.no_grad():
        noise = unet_forward_with_brushnet(
            models["unet"],
            t["in.sample"],
            t["in.timestep"],
            t["in.encoder_hidden_states"],
            out.down_block_res_samples,
            out.mid_block_res_sample,
            out.up_block_res_samples,
            added_cond_kwargs=_added(t),
        ).sample
    errors["noise_pred"] = (noise - t["out.noise_pred"]).abs().max().item()
    assert max(errors.values()) < 1e-4, errors


def test_sdxl_no_brushnet_path_equals_stock_unet(golden, models):
    t = golden["tensors"]
    with torch.no_grad():
        ours = unet_forward_with_brushnet(
            models["unet"], t["in.sample"], t["in.timestep"], t["in.encoder_hidden_states"],
            added_cond_kwargs=_added(t),
        ).sample  # fmt: skip
        stock = models["unet"](
            t["in.sample"], t["in.timestep"], t["in.encoder_hidden_states"],
            added_cond_kwargs=_added(t),
        ).sample  # fmt: skip
    assert torch.equal(ours, stock)
    assert (ours - t["out.noise_pred_without_brushnet"]).abs().max().item() < 1e-4
    assert (t["out.noise_pred"] - t["out.noise_pred_without_brushnet"]).abs().max().item() > 1e-2


def test_sdxl_branch_reads_text_time_and_requires_it(golden, models):
    t = golden["tensors"]
    brushnet = models["brushnet"]
    base = _branch(brushnet, t)
    other_pooled = {**_added(t), "text_embeds": t["in.text_embeds"] * 0}
    with torch.no_grad():
        changed = brushnet(
            t["in.sample"], t["in.timestep"], brushnet_cond=t["in.brushnet_cond"],
            conditioning_scale=0.8, added_cond_kwargs=other_pooled,
        )  # fmt: skip
    assert (changed.mid_block_res_sample - base.mid_block_res_sample).abs().max() > 1e-3
    with pytest.raises(ValueError, match="time_ids"):
        brushnet(
            t["in.sample"], t["in.timestep"], brushnet_cond=t["in.brushnet_cond"],
            added_cond_kwargs={"text_embeds": t["in.text_embeds"]},
        )  # fmt: skip


def test_sdxl_from_unet_copies_embeddings_and_starts_neutral():
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**TINY_SDXL_UNET).eval()
    brushnet = BrushNetModel.from_unet(unet).eval()
    assert brushnet.config.addition_embed_type == "text_time"
    assert list(brushnet.config.transformer_layers_per_block) == [1, 2, 2]
    assert torch.equal(brushnet.add_embedding.linear_1.weight, unet.add_embedding.linear_1.weight)
    assert torch.equal(brushnet.add_embedding.linear_2.bias, unet.add_embedding.linear_2.bias)
    taps = [p for n, p in brushnet.named_parameters() if n.startswith("brushnet_")]
    assert taps and all(torch.count_nonzero(p) == 0 for p in taps)

    sample, cond, ehs = torch.randn(2, 4, 16, 16), torch.randn(2, 5, 16, 16), torch.randn(2, 7, 32)
    added = {
        "text_embeds": torch.randn(2, 24),
        "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]] * 2),
    }
    with torch.no_grad():
        down, mid, up = brushnet(sample, 10, ehs, brushnet_cond=cond, added_cond_kwargs=added,
                                 return_dict=False)  # fmt: skip
        injected = unet_forward_with_brushnet(unet, sample, 10, ehs, down, mid, up,
                                              added_cond_kwargs=added).sample  # fmt: skip
        plain = unet(sample, 10, ehs, added_cond_kwargs=added).sample
    assert torch.allclose(injected, plain)


def test_sdxl_config_errors_are_one_sentence():
    with pytest.raises(ValueError, match="needs `addition_time_embed_dim`"):
        BrushNetModel(addition_embed_type="text_time", block_out_channels=(32, 32), norm_num_groups=8,
                      down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)  # fmt: skip
    with pytest.raises(ValueError, match="'text_time'"):
        BrushNetModel(addition_embed_type="text", block_out_channels=(32, 32), norm_num_groups=8,
                      down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)  # fmt: skip


# -- the pipeline ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden_pipe(golden, models):
    config = {k: v for k, v in golden["config"]["scheduler"].items() if not k.startswith("_")}
    # The reference ran diffusers 0.27, whose UniPC ends on sigma_min (brushedit.md, "Scheduler detail").
    scheduler = UniPCMultistepScheduler(**config, final_sigmas_type="sigma_min")
    pipe = StableDiffusionXLBrushNetPipeline(
        vae=models["vae"], text_encoder=None, text_encoder_2=None, tokenizer=None, tokenizer_2=None,
        unet=models["unet"], brushnet=models["brushnet"], scheduler=scheduler,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _golden_kwargs(golden, **overrides):
    t = golden["tensors"]
    kwargs = {
        "image": t["pipe.image"].numpy(),
        "mask_image": PIL.Image.fromarray(t["pipe.hole_mask"].numpy() * 255).convert("RGB"),
        "prompt_embeds": t["pipe.prompt_embeds"],
        "negative_prompt_embeds": t["pipe.negative_prompt_embeds"],
        "pooled_prompt_embeds": t["pipe.pooled_prompt_embeds"],
        "negative_pooled_prompt_embeds": t["pipe.negative_pooled_prompt_embeds"],
        "latents": t["pipe.latents"],
        "num_inference_steps": 6,
        "guidance_scale": 5.0,
        "brushnet_conditioning_scale": 1.0,
        "blending": False,
        "output_type": "np",
    }
    kwargs.update(overrides)
    return kwargs


def test_sdxl_golden_pipeline_image(golden, golden_pipe):
    out = golden_pipe(**_golden_kwargs(golden)).images
    expected = golden["tensors"]["pipe.out_image"].numpy()
    assert out.shape == (1, *expected.shape)
    assert np.abs(out[0] - expected).max() < 1e-3
    assert golden_pipe.branch_shared is False  # the two halves' pooled embeddings differ


def _small_kwargs(golden, **overrides):
    """The golden embeddings on a 32x32 crop, 1 step, latents out: for behaviour checks, not the golden numbers."""
    t = golden["tensors"]
    kwargs = _golden_kwargs(golden, num_inference_steps=1, output_type="latent", latents=None)
    kwargs["image"] = t["pipe.image"].numpy()[16:48, 16:48]
    kwargs["mask_image"] = t["pipe.hole_mask"].numpy()[16:48, 16:48] * 255
    kwargs["generator"] = torch.Generator().manual_seed(0)
    kwargs.update(overrides)
    return kwargs


def _close(a, b):
    return torch.allclose(a, b, rtol=1e-5, atol=1e-4)  # CPU threads reorder sums; latents reach ~30


def test_sdxl_branch_shared_only_when_its_inputs_agree(golden, golden_pipe):
    t = golden["tensors"]
    batches = []
    handle = golden_pipe.brushnet.register_forward_hook(
        lambda m, args, out: batches.append(args[0].shape[0])
    )
    try:
        golden_pipe(**_small_kwargs(golden, num_inference_steps=2))
        assert batches == [2, 2] and not golden_pipe.branch_shared
        # same pooled embedding and time ids in both halves: one pass per step serves both
        same = {"negative_pooled_prompt_embeds": t["pipe.pooled_prompt_embeds"]}
        batches.clear()
        shared = golden_pipe(**_small_kwargs(golden, num_inference_steps=2, **same)).images
        assert batches == [1, 1] and golden_pipe.branch_shared
        batches.clear()
        doubled = golden_pipe(
            **_small_kwargs(golden, num_inference_steps=2, **same, branch_cfg_batching="doubled")
        ).images
        assert batches == [2, 2] and not golden_pipe.branch_shared
        assert _close(shared, doubled)
        # a different negative micro-conditioning makes the halves differ again
        batches.clear()
        golden_pipe(
            **_small_kwargs(golden, num_inference_steps=2, **same, negative_original_size=(16, 16))
        )
        assert batches == [2, 2] and not golden_pipe.branch_shared
    finally:
        handle.remove()


def test_sdxl_micro_conditioning_reaches_unet_and_branch(golden, golden_pipe):
    base = golden_pipe(**_small_kwargs(golden)).images
    for overrides in (
        {"crops_coords_top_left": (8, 0)},
        {"original_size": (16, 16)},
        {"target_size": (64, 64)},
    ):
        moved = golden_pipe(**_small_kwargs(golden, **overrides)).images
        assert (moved - base).abs().max().item() > 1e-3, overrides
    defaults = {"original_size": (32, 32), "target_size": (32, 32), "crops_coords_top_left": (0, 0)}
    assert _close(golden_pipe(**_small_kwargs(golden, **defaults)).images, base)


def test_sdxl_missing_pooled_embeddings_is_one_sentence(golden, golden_pipe):
    with pytest.raises(
        ValueError, match=r"`pooled_prompt_embeds` is required with `prompt_embeds`"
    ) as err:
        golden_pipe(**_golden_kwargs(golden, pooled_prompt_embeds=None))
    assert str(err.value).count(". ") == 0 and str(err.value).endswith(".")
    with pytest.raises(ValueError, match="`negative_pooled_prompt_embeds` is required"):
        golden_pipe(**_golden_kwargs(golden, negative_pooled_prompt_embeds=None))


def test_sdxl_zero_negative_without_encoders(golden, golden_pipe):
    # SDXL's force_zeros_for_empty_prompt: no negative embeddings needed, zeros are used
    t = golden["tensors"]
    implicit = golden_pipe(
        **_small_kwargs(golden, negative_prompt_embeds=None, negative_pooled_prompt_embeds=None)
    ).images
    zeros = {
        "negative_prompt_embeds": torch.zeros_like(t["pipe.negative_prompt_embeds"]),
        "negative_pooled_prompt_embeds": torch.zeros_like(t["pipe.negative_pooled_prompt_embeds"]),
    }
    assert _close(implicit, golden_pipe(**_small_kwargs(golden, **zeros)).images)
    with pytest.raises(
        ValueError, match="`negative_prompt_embeds` and `negative_pooled_prompt_embeds`"
    ):
        golden_pipe(
            **_small_kwargs(
                golden,
                negative_prompt_embeds=None,
                negative_pooled_prompt_embeds=None,
                negative_prompt="ugly",
            )
        )


def test_sdxl_pipeline_refuses_an_sd15_branch(golden, models, golden_pipe):
    from .conftest import make_tiny_models

    _, _, sd15_branch = make_tiny_models()
    pipe = StableDiffusionXLBrushNetPipeline(**{**golden_pipe.components, "brushnet": sd15_branch})
    with pytest.raises(ValueError, match=r"Stable Diffusion 1\.5 BrushNet"):
        pipe(**_golden_kwargs(golden))


@pytest.fixture(scope="module")
def tiny_pipe(tmp_path_factory):
    return make_tiny_sdxl_pipeline(tmp_path_factory.mktemp("sdxl_tok"))


def _image_and_mask(h=48, w=80):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[h // 4 : h // 2, w // 4 : w // 2] = 255
    return image, mask


def test_sdxl_text_encoders_prompt_2_and_embeddings_agree(tiny_pipe):
    embeds, neg, pooled, neg_pooled = tiny_pipe.encode_prompt(
        "a cat", None, torch.device("cpu"), 1, True, negative_prompt="ugly"
    )
    assert embeds.shape == (1, 7, 32) and pooled.shape == (1, 24) and neg.shape == embeds.shape
    other, _, other_pooled, _ = tiny_pipe.encode_prompt(
        "a cat", "a dog", torch.device("cpu"), 1, False
    )
    assert torch.equal(other[..., :16], embeds[..., :16])  # encoder 1 still reads `prompt`
    assert not torch.equal(other[..., 16:], embeds[..., 16:]) and not torch.equal(
        other_pooled, pooled
    )
    zeros = tiny_pipe.encode_prompt("a cat", None, torch.device("cpu"), 2, True)
    assert (
        zeros[0].shape[0] == 2 and torch.count_nonzero(zeros[1]) == 0
    )  # force_zeros_for_empty_prompt

    image, mask = _image_and_mask(32, 32)
    common = {"image": image, "mask_image": mask, "num_inference_steps": 2, "output_type": "np",
              "negative_prompt": "ugly"}  # fmt: skip
    by_text = tiny_pipe(prompt="a cat", generator=torch.Generator().manual_seed(0), **common).images
    by_embeds = tiny_pipe(
        prompt_embeds=embeds, pooled_prompt_embeds=pooled, negative_prompt_embeds=neg,
        negative_pooled_prompt_embeds=neg_pooled, generator=torch.Generator().manual_seed(0),
        **{k: v for k, v in common.items() if k != "negative_prompt"},
    ).images  # fmt: skip
    assert np.abs(by_text - by_embeds).max() < 1e-6


def test_sdxl_non_square_keeps_size_blending_and_callbacks(tiny_pipe):
    image, mask = _image_and_mask(44, 78)  # works at 40x72, output back at 44x78
    steps = []
    out = tiny_pipe(
        prompt="a cat", image=image, mask_image=mask, num_inference_steps=1,
        generator=torch.Generator().manual_seed(0), output_type="np",
        callback_on_step_end=lambda p, i, t, kw: steps.append((i, tuple(kw["latents"].shape),
                                                              tuple(kw["add_time_ids"][0].tolist()))) or kw,
        callback_on_step_end_tensor_inputs=["latents", "add_time_ids"],
    ).images[0]  # fmt: skip
    assert out.shape == (44, 78, 3)
    assert steps == [(i, (1, 4, 20, 36), (40.0, 72.0, 0.0, 0.0, 40.0, 72.0)) for i in range(1)]
    orig = image.astype(np.float32) / 255
    hole = mask > 0
    far = np.ones_like(hole)
    far[: 22 + 12, : 39 + 12] = False  # beyond the 21x21 blur reach
    assert np.abs(out[far] - orig[far]).max() < 1e-6
    assert np.abs(out[hole] - orig[hole]).max() > 0.05


def test_sdxl_seeded_output_types_and_batches(tiny_pipe):
    image, mask = _image_and_mask(32, 32)
    kwargs = {"prompt": ["a", "b"], "image": PIL.Image.fromarray(image),
              "mask_image": PIL.Image.fromarray(mask), "num_inference_steps": 1}  # fmt: skip
    torch.manual_seed(1)
    a = tiny_pipe(**kwargs, generator=torch.Generator().manual_seed(5), output_type="np").images
    torch.manual_seed(2)
    b = tiny_pipe(**kwargs, generator=torch.Generator().manual_seed(5), output_type="np").images
    assert a.shape == (2, 32, 32, 3) and np.array_equal(a, b)
    pil = tiny_pipe(**kwargs).images
    assert len(pil) == 2 and pil[0].size == (32, 32)
    pt = tiny_pipe(**kwargs, output_type="pt", num_images_per_prompt=2).images
    assert pt.shape == (4, 3, 32, 32) and pt.min() >= 0.0 and pt.max() <= 1.0


def test_sdxl_fp16_vae_runs_in_float32_only_when_it_must(tiny_pipe):
    vae = tiny_pipe.vae
    try:
        vae.to(torch.float16)
        with tiny_pipe._vae_in_float32():
            assert vae.dtype == torch.float32
        assert vae.dtype == torch.float16
        vae.register_to_config(force_upcast=False)
        with tiny_pipe._vae_in_float32():
            assert vae.dtype == torch.float16
    finally:
        vae.register_to_config(force_upcast=True)
        vae.to(torch.float32)


@pytest.mark.parametrize(
    ("overrides", "argument"),
    [
        ({"image": None}, "`image`"),
        ({"mask_image": None}, "`mask_image`"),
        ({"prompt": None}, "`prompt`"),
        ({"prompt_2": 3}, "`prompt_2`"),
        ({"negative_prompt_embeds": torch.zeros(1, 7, 32)}, "`negative_prompt"),
        ({"height": 30}, "`height`"),
        ({"output_type": "jpeg"}, "`output_type`"),
        ({"branch_cfg_batching": "twice"}, "`branch_cfg_batching`"),
        ({"mask_image": np.zeros((10, 10), dtype=np.uint8)}, "`mask_image`"),
        ({"callback_on_step_end_tensor_inputs": ["noise"]}, "`callback_on_step_end_tensor_inputs`"),
    ],
)
def test_sdxl_invalid_inputs_name_the_argument(tiny_pipe, overrides, argument):
    image, mask = _image_and_mask(32, 32)
    kwargs = {"prompt": "x", "image": image, "mask_image": mask, "num_inference_steps": 1}
    kwargs.update(overrides)
    with pytest.raises(ValueError, match=argument):
        tiny_pipe(**kwargs)


def test_sdxl_pipeline_save_and_from_pretrained(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "pipe")
    brushnet = BrushNetModel.from_pretrained(tmp_path / "pipe" / "brushnet")
    assert brushnet.config.addition_embed_type == "text_time"
    loaded = StableDiffusionXLBrushNetPipeline.from_pretrained(tmp_path / "pipe", brushnet=brushnet)
    assert loaded.config.force_zeros_for_empty_prompt is True
    loaded.set_progress_bar_config(disable=True)
    image, mask = _image_and_mask(32, 32)
    kwargs = {
        "prompt": "a",
        "image": image,
        "mask_image": mask,
        "num_inference_steps": 1,
        "output_type": "np",
    }
    a = tiny_pipe(**kwargs, generator=torch.Generator().manual_seed(0)).images
    b = loaded(**kwargs, generator=torch.Generator().manual_seed(0)).images
    assert np.abs(a - b).max() < 1e-5
