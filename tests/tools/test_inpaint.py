"""Inpainting backends: the registry, the OpenCV fill, and BrushNet on a tiny random pipeline."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from tools.errors import InvalidRequestError, ModelLoadError, UnsupportedEditError
from tools.inpaint import (
    INPAINTERS,
    BrushNetInpainter,
    Inpainter,
    InpaintRequest,
    OpenCVInpainter,
    get_inpainter,
)
from tools.masks import empty_mask, full_mask
from tools.types import EditCategory, EditOptions


def striped_image(width: int = 40, height: int = 32) -> Image.Image:
    array = np.zeros((height, width, 3), np.uint8)
    array[:, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    array[:, :, 1] = 120
    return Image.fromarray(array, "RGB")


def centre_mask(width: int = 40, height: int = 32) -> np.ndarray:
    mask = empty_mask((width, height))
    mask[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 255
    return mask


def test_registry_and_unknown_names():
    assert set(INPAINTERS) == {"brushnet", "opencv", "flux-fill", "flux-kontext",
                               "qwen-image-edit", "flux2-klein", "sd-inpaint"}
    assert all(
        issubclass(cls, Inpainter) and INPAINTERS[cls.name] is cls for cls in INPAINTERS.values()
    )
    assert isinstance(get_inpainter("opencv", radius=3), OpenCVInpainter)
    with pytest.raises(
        InvalidRequestError,
        match=r"Unknown inpainter 'x'\. Available: brushnet, flux-fill, flux-kontext, flux2-klein, "
        r"opencv, qwen-image-edit, sd-inpaint$",
    ):
        get_inpainter("x")


def test_opencv_removes_by_filling_from_the_surroundings():
    image = striped_image()
    source = np.asarray(image)
    # paint a black square on the gradient, then remove it
    damaged = source.copy()
    mask = centre_mask()
    damaged[mask > 0] = 0
    steps = []
    out = OpenCVInpainter(radius=3).inpaint(
        Image.fromarray(damaged), mask, "", category=EditCategory.REMOVAL,
        options=EditOptions(samples=2, inpainter="opencv"),
        progress=lambda d, t: steps.append((d, t)),
    )  # fmt: skip
    assert len(out) == 2 and all(im.size == image.size and im.mode == "RGB" for im in out)
    result = np.asarray(out[0])
    np.testing.assert_array_equal(result[mask == 0], damaged[mask == 0])  # outside untouched
    err_before = np.abs(damaged[mask > 0].astype(int) - source[mask > 0]).mean()
    err_after = np.abs(result[mask > 0].astype(int) - source[mask > 0]).mean()
    assert err_after < err_before / 4
    assert steps == [(1, 1)]


@pytest.mark.parametrize(
    "category",
    [EditCategory.LOCAL, EditCategory.ADDITION, EditCategory.GLOBAL, EditCategory.BACKGROUND],
)
def test_opencv_refuses_generative_edits_and_suggests_brushnet(category):
    inpainter = OpenCVInpainter()
    assert inpainter.supports(EditCategory.REMOVAL) and not inpainter.supports(category)
    with pytest.raises(UnsupportedEditError, match="the `brushnet` inpainter"):
        inpainter.inpaint(
            striped_image(), centre_mask(), "a dog", category=category, options=EditOptions()
        )


def test_inputs_are_checked():
    inpainter = OpenCVInpainter()
    options = EditOptions()
    with pytest.raises(Exception, match="the image is 40x32"):
        inpainter.inpaint(
            striped_image(), empty_mask((8, 8)), "", category="removal", options=options
        )
    with pytest.raises(InvalidRequestError, match="marks no pixels"):
        inpainter.inpaint(
            striped_image(), empty_mask((40, 32)), "", category="removal", options=options
        )
    with pytest.raises(ValueError, match="`radius`"):
        OpenCVInpainter(radius=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image": "photo.png"}, "`image` must be a PIL image, got str"),
        ({"prompt": 3}, "`prompt` must be a string, got int"),
        ({"options": {}}, "`options` must be an EditOptions, got dict"),
        ({"category": "nonsense"}, "`category` must be one of addition, removal"),
        ({"category": None}, "`category` must be one of"),
        ({"seed": -1}, "`seed` must be an integer from 0 to 4294967295, got -1"),
        ({"seed": 2**32}, "got 4294967296"),
        ({"seed": True}, "got True"),
        ({"seed": 1.5}, "got 1.5"),
        ({"seed": "7"}, "got '7'"),
    ],
)
def test_bad_arguments_are_one_sentence(overrides, message):
    """Every backend refuses what it cannot use with `InvalidRequestError`, never a bare error."""
    call = {"image": striped_image(), "mask": centre_mask(), "prompt": "", "category": "removal",
            "options": EditOptions(), **overrides}
    with pytest.raises(InvalidRequestError, match=re.escape(message)):
        OpenCVInpainter().inpaint(call.pop("image"), call.pop("mask"), call.pop("prompt"), **call)


def test_a_numpy_integer_seed_is_a_seed():
    out = OpenCVInpainter().inpaint(
        striped_image(), centre_mask(), "", category="removal", options=EditOptions(),
        seed=np.int64(5),
    )
    assert out[0].size == striped_image().size


# --- BrushNet on tiny random components ------------------------------------------------------


def build_tiny_pipeline(tmp_path):
    """A StableDiffusionBrushNetPipeline with tiny random UNet/VAE/BrushNet and CLIP text model."""
    brushedit_inpaint = pytest.importorskip("brushedit_inpaint")
    try:
        pipeline_cls = brushedit_inpaint.StableDiffusionBrushNetPipeline
        brushnet_cls = brushedit_inpaint.BrushNetModel
    except (AttributeError, ImportError) as exc:
        pytest.skip(f"brushedit_inpaint has no pipeline yet ({exc})")
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel, UniPCMultistepScheduler
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=[16, 32, 32],
        layers_per_block=1, cross_attention_dim=16, attention_head_dim=4, norm_num_groups=8,
        down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    )  # fmt: skip
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[16, 32], layers_per_block=1,
        latent_channels=4, norm_num_groups=8, sample_size=32,
    )  # fmt: skip
    brushnet = brushnet_cls.from_unet(unet)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = [*letters, *(c + "</w>" for c in letters), "<unk>", "<|startoftext|>", "<|endoftext|>"]
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(
        str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), model_max_length=8,
        pad_token="<|endoftext|>",
    )  # fmt: skip
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
            num_attention_heads=2, max_position_embeddings=8, bos_token_id=len(vocab) - 2,
            eos_token_id=len(vocab) - 1, pad_token_id=len(vocab) - 1,
        )
    )  # fmt: skip
    pipe = pipeline_cls(
        vae=vae.eval(), text_encoder=text_encoder.eval(), tokenizer=tokenizer, unet=unet.eval(),
        brushnet=brushnet.eval(), scheduler=UniPCMultistepScheduler(),
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def tiny_brushnet(tmp_path_factory, torch_threads):
    return BrushNetInpainter(build_tiny_pipeline(tmp_path_factory.mktemp("tiny_clip")))


def test_brushnet_returns_samples_at_the_input_size_reproducibly(tiny_brushnet):
    image, mask = striped_image(36, 28), centre_mask(36, 28)
    options = EditOptions(steps=2, samples=2, guidance_scale=2.0, seed=7)
    steps = []
    out = tiny_brushnet.inpaint(
        image, mask, "a cat", category=EditCategory.LOCAL, options=options,
        progress=lambda done, total: steps.append((done, total)),
    )  # fmt: skip
    assert len(out) == 2 and all(im.size == (36, 28) and im.mode == "RGB" for im in out)
    assert steps == [(1, 2), (2, 2)]
    again = tiny_brushnet.inpaint(image, mask, "a cat", category="local", options=options)
    np.testing.assert_array_equal(np.asarray(out[0]), np.asarray(again[0]))
    other_seed = tiny_brushnet.inpaint(
        image, mask, "a cat", category="local", options=options, seed=8
    )
    assert not np.array_equal(np.asarray(out[0]), np.asarray(other_seed[0]))


def test_brushnet_runs_at_the_loaders_minimum_size(tiny_brushnet):
    """The smallest images the loader accepts (`MIN_SIDE`, either way round) go through."""
    from tools.image_limits import MIN_SIDE

    options = EditOptions(steps=1, samples=1, seed=3)
    for size in [(MIN_SIDE, MIN_SIDE), (MIN_SIDE + 1, MIN_SIDE), (4 * MIN_SIDE, MIN_SIDE),
                 (MIN_SIDE, 4 * MIN_SIDE)]:
        [out] = tiny_brushnet.inpaint(striped_image(*size), centre_mask(*size), "a cat",
                                      category=EditCategory.LOCAL, options=options)
        assert out.size == size


def test_brushnet_stops_when_cancelled(tiny_brushnet):
    from tools.errors import EditCancelledError

    image, mask = striped_image(36, 28), centre_mask(36, 28)
    with pytest.raises(EditCancelledError, match="brushnet edit was cancelled after step 1 of 3"):
        tiny_brushnet.inpaint(image, mask, "a cat", category="local",
                              options=EditOptions(steps=3), cancel=lambda: True)


def test_brushnet_blending_keeps_pixels_far_from_the_mask(tiny_brushnet):
    image = striped_image(48, 40)
    mask = empty_mask((48, 40))
    mask[:8, :8] = 255  # a corner: most of the image is far from the 21 px blend seam
    out = tiny_brushnet.inpaint(
        image,
        mask,
        "",
        category=EditCategory.REMOVAL,
        options=EditOptions(steps=1, guidance_scale=1.0),
    )[0]
    far = np.asarray(out)[30:, 30:].astype(int) - np.asarray(image)[30:, 30:]
    assert np.abs(far).max() <= 1


def test_brushnet_pipeline_kwargs_follow_the_options(tiny_brushnet):
    options = EditOptions(
        steps=3, guidance_scale=5.0, conditioning_scale=0.7, samples=2, blending=False
    )
    mask = centre_mask()
    kwargs = tiny_brushnet.pipeline_kwargs(
        InpaintRequest(
            striped_image(), mask, "a dog", EditCategory.REMOVAL, options, seed=3,
            negative_prompt="blurry",
        )
    )  # fmt: skip
    assert kwargs["num_inference_steps"] == 3 and kwargs["guidance_scale"] == 5.0
    assert kwargs["brushnet_conditioning_scale"] == 0.7 and kwargs["num_images_per_prompt"] == 2
    assert kwargs["blending"] is False and kwargs["negative_prompt"] == "blurry"
    assert kwargs["output_type"] == "pil" and kwargs["prompt"] == "a dog"
    assert kwargs["mask_image"].mode == "L"
    np.testing.assert_array_equal(np.asarray(kwargs["mask_image"]), mask)  # white = repaint
    assert kwargs["generator"].initial_seed() == 3


def test_brushnet_edits_a_large_photo_through_a_crop_around_the_mask(tiny_brushnet):
    from tools.inpaint import CROP_PADDING, crop_padding

    small = centre_mask()
    assert crop_padding((40, 32), small) is None  # within the working size: whole image
    big = np.zeros((1100, 1300), dtype=np.uint8)
    big[500:540, 600:660] = 255
    assert crop_padding((1300, 1100), big) == CROP_PADDING
    wide = np.zeros((1100, 1300), dtype=np.uint8)
    wide[100:1000, 100:1200] = 255
    assert crop_padding((1300, 1100), wide) is None  # the crop would be most of the photo
    photo = Image.fromarray(
        np.random.default_rng(0).integers(0, 256, (1100, 1300, 3), dtype=np.uint8)
    )
    options = EditOptions(steps=1, guidance_scale=1.0)
    kwargs = tiny_brushnet.pipeline_kwargs(
        InpaintRequest(photo, big, "a cat", EditCategory.LOCAL, options, seed=1, negative_prompt="")
    )
    assert kwargs["padding_mask_crop"] == CROP_PADDING
    out = np.asarray(
        tiny_brushnet.inpaint(photo, big, "a cat", category=EditCategory.LOCAL, options=options)[0]
    )
    assert out.shape == (1100, 1300, 3)
    far = np.ones((1100, 1300), dtype=bool)
    far[
        500 - CROP_PADDING - 80 : 540 + CROP_PADDING + 80,
        600 - CROP_PADDING - 80 : 660 + CROP_PADDING + 80,
    ] = False
    assert np.array_equal(out[far], np.asarray(photo)[far])  # untouched outside the crop
    assert (
        np.abs(out[500:540, 600:660].astype(int) - np.asarray(photo)[500:540, 600:660]).max() > 10
    )


def test_brushnet_does_every_category(tiny_brushnet):
    assert all(tiny_brushnet.supports(c) for c in EditCategory)
    out = tiny_brushnet.inpaint(
        striped_image(), full_mask((40, 32)), "winter", category=EditCategory.GLOBAL,
        options=EditOptions(steps=1),
    )  # fmt: skip
    assert len(out) == 1 and out[0].size == (40, 32)


def test_brushnet_missing_weights_raise_model_load_error(tmp_path):
    pytest.importorskip("brushedit_inpaint")
    with pytest.raises(ModelLoadError, match="hf download"):
        BrushNetInpainter.from_pretrained(
            str(tmp_path / "no-base"), str(tmp_path / "no-brushnet"), local_files_only=True
        )
    with pytest.raises(ModelLoadError):
        get_inpainter("brushnet", base=str(tmp_path / "a"), brushnet=str(tmp_path / "b"))


def test_brushnet_retries_share_one_encode_cache(tiny_brushnet):
    """The verifier's retries (new seed, higher guidance) reuse the inpainter's encodings."""
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (32, 40, 3), np.uint8))
    mask = centre_mask()
    first = tiny_brushnet.inpaint(image, mask, "a cat", category="local",
                                  options=EditOptions(steps=2), seed=1)
    cache = tiny_brushnet.encode_cache
    assert cache is not None and cache.misses.get("masked_image") >= 1
    hits = dict(cache.hits)
    tiny_brushnet.inpaint(image, mask, "a cat", category="local",
                          options=EditOptions(steps=2, guidance_scale=9.0), seed=2)
    assert cache.hits.get("masked_image", 0) == hits.get("masked_image", 0) + 1
    assert first


def test_large_holes_take_the_fast_fill():
    """xphoto's fills take minutes on large holes: above the cap the Telea fill runs instead."""
    from tools.inpaint import XPHOTO_MAX_HOLE_PX

    image = np.random.default_rng(3).integers(0, 256, (300, 300, 3), np.uint8)
    mask = np.zeros((300, 300), np.uint8)
    mask[10:290, 10:290] = 255
    assert np.count_nonzero(mask) > XPHOTO_MAX_HOLE_PX
    fast = OpenCVInpainter(method="fsr_fast").fill(image, mask)
    assert np.array_equal(fast, OpenCVInpainter(method="telea").fill(image, mask))
