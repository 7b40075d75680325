"""Both BrushNet pipelines (SD1.5 and SDXL, one run per `family`): golden reproduction, sizes, blending, seeds,
output types, validation, saving. SD1.5's shared-branch speed-up and control window too; SDXL's own in test_sdxl.py."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from brushedit_inpaint import BrushNetModel, StableDiffusionBrushNetPipeline

from .tiny_parts import golden_kwargs, tiny_call


@pytest.mark.parametrize("mask_as", ["array", "rgb image"])
def test_golden_pipeline_image(golden, golden_pipe, mask_as):
    kwargs = golden_kwargs(golden)
    if mask_as == "rgb image":  # as the reference took it
        kwargs["mask_image"] = PIL.Image.fromarray(kwargs["mask_image"]).convert("RGB")
    out = golden_pipe(**kwargs).images
    expected = golden["tensors"]["pipe.out_image"].numpy()
    assert out.shape == (1, *expected.shape)
    assert np.abs(out[0] - expected).max() < 1e-3


@pytest.mark.families("sd15")
def test_shared_branch_equals_doubled_batch(golden, golden_pipe, golden_models):
    # model level: the branch ignores the text, so both CFG halves get identical samples
    t = golden["tensors"]
    brushnet = golden_models["brushnet"]
    x, cond, ehs = t["in.sample"][:1], t["in.brushnet_cond"][:1], t["in.encoder_hidden_states"]
    with torch.no_grad():
        single = brushnet(x, 500, ehs[:1], brushnet_cond=cond, return_dict=False)
        doubled = brushnet(
            torch.cat([x, x]), 500, ehs, brushnet_cond=torch.cat([cond, cond]), return_dict=False
        )
    for a, b in zip(
        [*single[0], single[1], *single[2]], [*doubled[0], doubled[1], *doubled[2]], strict=True
    ):
        assert (a - b[:1]).abs().max().item() < 1e-5 and (a - b[1:]).abs().max().item() < 1e-5
    # pipeline level
    shared_image = golden_pipe(**golden_kwargs(golden)).images
    doubled_image = golden_pipe(**golden_kwargs(golden, branch_cfg_batching="doubled")).images
    assert np.abs(shared_image - doubled_image).max() < 1e-4


@pytest.mark.families("sd15")
@pytest.mark.parametrize("channels_last", [False, True])
def test_shared_branch_broadcasts_over_several_images_per_prompt(tiny_pipe, channels_last):
    """One branch pass for both CFG halves, broadcast (not copied) over 2 images per prompt."""
    kwargs = tiny_call(48, 80, prompt="a dog", num_inference_steps=2, num_images_per_prompt=2, blending=False)
    models = (tiny_pipe.unet, tiny_pipe.brushnet, tiny_pipe.vae)
    try:
        if channels_last:
            for model in models:
                model.to(memory_format=torch.channels_last)
        shared = tiny_pipe(**kwargs, generator=torch.Generator().manual_seed(3)).images
        doubled = tiny_pipe(
            **kwargs, generator=torch.Generator().manual_seed(3), branch_cfg_batching="doubled"
        ).images
    finally:
        for model in models:
            model.to(memory_format=torch.contiguous_format)
    assert shared.shape[0] == 2 and not np.allclose(shared[0], shared[1])
    assert np.abs(shared - doubled).max() < 1e-5


@pytest.mark.families("sd15")
def test_branch_skipped_outside_control_window(golden, golden_pipe):
    calls = []
    handle = golden_pipe.brushnet.register_forward_hook(lambda *a: calls.append(1))
    try:
        # with 6 steps and end=0.1 every step has (i+1)/6 > 0.1: the reference multiplies by 0 on all of them
        skipped = golden_pipe(
            **golden_kwargs(golden, control_guidance_end=0.1, output_type="latent")
        ).images
    finally:
        handle.remove()
    assert calls == []
    zero_scale = golden_pipe(
        **golden_kwargs(golden, brushnet_conditioning_scale=0.0, output_type="latent")
    ).images
    assert (skipped - zero_scale).abs().max().item() < 1e-5
    assert StableDiffusionBrushNetPipeline.brushnet_keep(4, 0.25, 0.75) == [0.0, 1.0, 1.0, 0.0]


def test_non_square_keeps_size_and_blending_keeps_background(tiny_pipe):
    kwargs = tiny_call(44, 78, num_inference_steps=2)  # not multiples of 8: works at 40x72, out at 44x78
    image, mask = kwargs["image"], kwargs["mask_image"]
    steps = []
    out = tiny_pipe(
        **kwargs,
        generator=torch.Generator().manual_seed(0),
        callback_on_step_end=lambda p, i, t, kw: (
            steps.append((i, tuple(kw["latents"].shape))) or kw
        ),
    ).images[0]
    assert out.shape == (44, 78, 3)
    assert steps == [(0, (1, 4, 20, 36)), (1, (1, 4, 20, 36))]
    orig = image.astype(np.float32) / 255
    hole = mask > 0
    far = np.ones_like(hole)
    far[max(0, 11 - 12) : 22 + 12, max(0, 19 - 12) : 39 + 12] = False  # beyond the 21x21 blur reach
    assert np.abs(out[far] - orig[far]).max() < 1e-6
    assert np.abs(out[hole] - orig[hole]).max() > 0.05  # the hole is regenerated


def test_seeded_and_independent_of_global_rng(tiny_pipe):
    kwargs = tiny_call(48, 80, prompt="a dog", num_inference_steps=2)
    kwargs["image"], kwargs["mask_image"] = map(PIL.Image.fromarray, (kwargs["image"], kwargs["mask_image"]))
    torch.manual_seed(123)
    a = tiny_pipe(**kwargs, generator=torch.Generator().manual_seed(5)).images
    torch.manual_seed(999)
    b = tiny_pipe(**kwargs, generator=torch.Generator().manual_seed(5)).images
    c = tiny_pipe(**kwargs, generator=torch.Generator().manual_seed(6)).images
    assert a.shape == (1, 48, 80, 3) and np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_output_types_and_pil(tiny_pipe):
    kwargs = tiny_call(prompt=["a", "b"], generator=torch.Generator().manual_seed(0))
    assert tiny_pipe(**kwargs).images.shape == (2, 32, 32, 3)
    pil = tiny_pipe(**{**kwargs, "output_type": "pil"}).images
    assert len(pil) == 2 and pil[0].size == (32, 32)
    pt = tiny_pipe(**{**kwargs, "output_type": "pt", "num_images_per_prompt": 2}).images
    assert pt.shape == (4, 3, 32, 32) and pt.min() >= 0.0 and pt.max() <= 1.0


def _refused(pipe, overrides, argument):
    with pytest.raises(ValueError, match=argument):
        pipe(**tiny_call(**{"prompt": "x", **overrides}))


@pytest.mark.parametrize(
    ("overrides", "argument"),
    [
        ({"image": None}, "`image`"),
        ({"mask_image": None}, "`mask_image`"),
        ({"prompt": None}, "`prompt`"),
        ({"prompt_embeds": torch.zeros(1, 7, 16)}, "`prompt`"),
        ({"control_guidance_start": 0.8, "control_guidance_end": 0.2}, "`control_guidance_start`"),
        ({"height": 30}, "`height`"),
        ({"output_type": "jpeg"}, "`output_type`"),
        ({"num_inference_steps": 0}, "`num_inference_steps`"),
        ({"branch_cfg_batching": "twice"}, "`branch_cfg_batching`"),
        ({"mask_image": np.zeros((10, 10), dtype=np.uint8)}, "`mask_image`"),
        ({"image": np.full((32, 32, 3), 2.0)}, "`image`"),
        ({"callback_on_step_end_tensor_inputs": ["noise"]}, "`callback_on_step_end_tensor_inputs`"),
    ],
)
def test_invalid_inputs_name_the_argument(tiny_pipe, overrides, argument):
    _refused(tiny_pipe, overrides, argument)


@pytest.mark.families("sdxl")
@pytest.mark.parametrize(
    ("overrides", "argument"),
    [
        ({"prompt_2": 3}, "`prompt_2`"),
        ({"negative_prompt_embeds": torch.zeros(1, 7, 32)}, "`negative_prompt"),
    ],
)
def test_sdxl_invalid_inputs_name_the_argument(tiny_pipe, overrides, argument):
    _refused(tiny_pipe, overrides, argument)


@pytest.mark.families("sd15")
def test_missing_negative_embeds_without_text_encoder(golden, golden_pipe):
    with pytest.raises(ValueError, match="`negative_prompt_embeds`"):
        golden_pipe(**golden_kwargs(golden, negative_prompt_embeds=None))


def _flags(pipe) -> dict:
    """The plain settings a pipeline keeps in its config (components are stored as [library, class])."""
    return {k: v for k, v in pipe.config.items() if not k.startswith("_") and not isinstance(v, list | tuple)}


def test_pipeline_save_and_from_pretrained_with_brushnet_override(family, tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "pipe")
    brushnet = BrushNetModel.from_pretrained(tmp_path / "pipe" / "brushnet")
    assert brushnet.config.addition_embed_type == family.unet_config.get("addition_embed_type")
    pipeline_class = family.pipeline_class()
    loaded = pipeline_class.from_pretrained(tmp_path / "pipe", brushnet=brushnet)
    assert loaded.brushnet is brushnet
    assert type(loaded.scheduler).__name__ == "UniPCMultistepScheduler"
    encoders = [name for name in family.text_parts if name.startswith("text_encoder")]
    offload = "->".join([*encoders, "image_encoder", "brushnet", "unet", "vae"])
    assert pipeline_class.model_cpu_offload_seq == offload
    assert _flags(loaded) == _flags(tiny_pipe)  # SDXL's force_zeros_for_empty_prompt
    loaded.set_progress_bar_config(disable=True)
    kwargs = tiny_call(prompt="a")
    a = tiny_pipe(**kwargs, generator=torch.Generator().manual_seed(0)).images
    b = loaded(**kwargs, generator=torch.Generator().manual_seed(0)).images
    assert np.abs(a - b).max() < 1e-5
