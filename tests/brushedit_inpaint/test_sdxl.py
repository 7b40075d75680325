"""SDXL BrushNet: the state-dict manifest, the branch's text_time input, CFG sharing, micro-conditioning, the
text encoders, inputs. What both families do alike (goldens, sizes, seeds, saving) is in test_pipeline.py and
test_brushnet_model.py, run once per family."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel

from brushedit_inpaint import (
    BrushNetModel,
    StableDiffusionXLBrushNetPipeline,
    unet_forward_with_brushnet,
)
from brushedit_inpaint.configs import SDXL_UNET_CONFIG

from .tiny_parts import SDXL, TINY_SDXL_UNET, golden_branch, golden_kwargs, tiny_call

pytestmark = pytest.mark.families("sdxl")


# -- the model ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", ["from_config", "from_unet"])
def test_sdxl_matches_reference_manifest(build):
    if not SDXL.manifest.is_file():
        pytest.skip(f"state-dict manifest not found at {SDXL.manifest.resolve()}")
    from accelerate import init_empty_weights

    manifest = json.loads(SDXL.manifest.read_text())
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


def test_sdxl_branch_reads_text_time_and_requires_it(golden, golden_models):
    t = golden["tensors"]
    brushnet = golden_models["brushnet"]
    base = golden_branch(brushnet, t)
    other_pooled = {"text_embeds": t["in.text_embeds"] * 0, "time_ids": t["in.time_ids"]}
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


def _small_kwargs(golden, **overrides):
    """The golden embeddings on a 32x32 crop, 1 step, latents out: for behaviour checks, not the golden numbers."""
    t = golden["tensors"]
    kwargs = golden_kwargs(golden, num_inference_steps=1, output_type="latent", latents=None)
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
        # the golden's two halves' pooled embeddings differ: one pass each
        assert batches == [2, 2] and golden_pipe.branch_shared is False
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
        golden_pipe(**golden_kwargs(golden, pooled_prompt_embeds=None))
    assert str(err.value).count(". ") == 0 and str(err.value).endswith(".")
    with pytest.raises(ValueError, match="`negative_pooled_prompt_embeds` is required"):
        golden_pipe(**golden_kwargs(golden, negative_pooled_prompt_embeds=None))


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


def test_sdxl_pipeline_refuses_an_sd15_branch(golden, golden_pipe):
    from .conftest import make_tiny_models

    _, _, sd15_branch = make_tiny_models()
    pipe = StableDiffusionXLBrushNetPipeline(**{**golden_pipe.components, "brushnet": sd15_branch})
    with pytest.raises(ValueError, match=r"Stable Diffusion 1\.5 BrushNet"):
        pipe(**golden_kwargs(golden))


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
    assert tiny_pipe.config.force_zeros_for_empty_prompt is True
    zeros = tiny_pipe.encode_prompt("a cat", None, torch.device("cpu"), 2, True)
    assert (
        zeros[0].shape[0] == 2 and torch.count_nonzero(zeros[1]) == 0
    )  # force_zeros_for_empty_prompt

    by_text = tiny_pipe(
        **tiny_call(num_inference_steps=2, negative_prompt="ugly"), generator=torch.Generator().manual_seed(0)
    ).images
    by_embeds = tiny_pipe(
        **tiny_call(num_inference_steps=2, prompt=None), prompt_embeds=embeds, pooled_prompt_embeds=pooled,
        negative_prompt_embeds=neg, negative_pooled_prompt_embeds=neg_pooled,
        generator=torch.Generator().manual_seed(0),
    ).images  # fmt: skip
    assert np.abs(by_text - by_embeds).max() < 1e-6


def test_sdxl_callbacks_get_the_working_size_time_ids(tiny_pipe):
    steps = []
    tiny_pipe(
        **tiny_call(44, 78, output_type="latent"),  # works at 40x72, output back at 44x78
        generator=torch.Generator().manual_seed(0),
        callback_on_step_end=lambda p, i, t, kw: steps.append(tuple(kw["add_time_ids"][0].tolist())) or kw,
        callback_on_step_end_tensor_inputs=["latents", "add_time_ids"],
    )  # fmt: skip
    assert steps == [(40.0, 72.0, 0.0, 0.0, 40.0, 72.0)]


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
