"""Hostile and careless arguments to `load_pipeline` and to both pipelines' `__call__`.

Each must be one `ValueError` (a `BrushNetLoadError` for loading) naming the argument, raised
before any weights load or any denoising step runs: never a TypeError from pathlib, a tensor
error from inside the UNet, an AssertionError from torch.cuda, a NaN image, or (for a huge step
count) a scheduler allocating gigabytes.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from diffusers import UniPCMultistepScheduler

from brushedit_inpaint import BrushNetLoadError, StableDiffusionBrushNetPipeline, load_pipeline

from .conftest import make_tiny_pipeline


@pytest.fixture(scope="module")
def sd15_pipe(tmp_path_factory):
    """The tiny SD1.5 pipeline under UniPC's own defaults (not the tiny pipelines' SD betas)."""
    return make_tiny_pipeline(tmp_path_factory.mktemp("tok"), UniPCMultistepScheduler())


def _kwargs(**overrides):
    image = np.full((32, 32, 3), 128, np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:16, 8:16] = 255
    return {"prompt": "a cat", "image": image, "mask_image": mask, "num_inference_steps": 1,
            "output_type": "np", **overrides}


BAD_CALLS = [
    ({"num_inference_steps": 10**9}, "`num_inference_steps` must be an int from 1 to 1000"),
    ({"num_inference_steps": 2.0}, "`num_inference_steps`"),
    ({"guidance_scale": float("nan")}, "`guidance_scale` must be a finite number"),
    ({"guidance_scale": "7"}, "`guidance_scale`"),
    ({"brushnet_conditioning_scale": float("inf")}, "`brushnet_conditioning_scale`"),
    ({"num_images_per_prompt": 0}, "`num_images_per_prompt`"),
    ({"num_images_per_prompt": -1}, "`num_images_per_prompt`"),
    ({"num_images_per_prompt": 10**6}, "`num_images_per_prompt` must be an int from 1 to 64"),
    ({"generator": 5}, "`generator` must be a torch.Generator"),
    ({"max_side": 0}, "`max_side`"),
    ({"max_side": "big"}, "`max_side`"),
    ({"eta": "x"}, "`eta`"),
    ({"cross_attention_kwargs": ["scale"]}, "`cross_attention_kwargs`"),
    ({"callback_on_step_end": 5}, "`callback_on_step_end` must be callable"),
    ({"callback_on_step_end": lambda *a: None}, "`callback_on_step_end` must return a dict"),
    ({"blending": "no"}, "`blending` must be True or False"),
    ({"return_dict": "no"}, "`return_dict`"),
    ({"prompt": []}, "`prompt` must be a str or a non-empty list"),
    ({"prompt": ["a", 2]}, "`prompt`"),
    ({"negative_prompt": 5}, "`negative_prompt`"),
    ({"image": np.full((32, 32, 3), np.nan, np.float32)}, "`image` holds NaN"),
    ({"image": np.zeros((0, 0, 3), np.uint8), "mask_image": np.zeros((0, 0), np.float32)},
     "`image` is empty"),
    ({"mask_image": np.full((32, 32), np.nan, np.float32)}, "`mask_image` holds NaN"),
]


@pytest.mark.parametrize(("overrides", "words"), BAD_CALLS, ids=[w for _, w in BAD_CALLS])
def test_a_bad_call_argument_is_one_sentence_naming_it(sd15_pipe, overrides, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        sd15_pipe(**_kwargs(**overrides))


@pytest.mark.families("sdxl")
def test_the_sdxl_pipeline_checks_the_same_arguments(tiny_pipe):
    for overrides, words in (({"num_inference_steps": 10**9}, "`num_inference_steps`"),
                             ({"guidance_scale": float("nan")}, "`guidance_scale`"),
                             ({"prompt_2": 3}, "`prompt_2`"),
                             ({"num_images_per_prompt": 0}, "`num_images_per_prompt`")):
        with pytest.raises(ValueError, match=words):
            tiny_pipe(**_kwargs(**overrides))


def test_bad_load_arguments_are_refused_before_loading(saved, tmp_path):
    base, branch = str(saved / "base"), str(saved / "brushnet")
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    listed = tmp_path / "listed"
    listed.mkdir()
    (listed / "config.json").write_text("[1, 2]")
    cases = [
        ((None, branch), {}, "`base` must be a Hub id or a local path"),
        ((5, branch), {}, "`base`"),
        (("", branch), {}, "`base`"),
        ((base, None), {}, "`brushnet`"),
        ((str(fifo), branch), {}, "not a regular file or folder"),
        (("/dev/zero", branch), {}, "not a regular file or folder"),
        ((base, str(fifo)), {}, "is not a folder"),
        ((base, str(listed)), {}, "is not a JSON object"),
        ((base, branch), {"brushnet_subfolder": 3}, "`brushnet_subfolder`"),
        ((base, branch), {"device": "gpu9"}, "is not a torch device"),
        ((base, branch), {"dtype": "fast"}, "`dtype` must be a floating torch dtype"),
        ((base, branch), {"dtype": torch.int8}, "`dtype`"),
    ]
    if not torch.cuda.is_available():
        cases.append(((base, branch), {"device": "cuda"}, "has no CUDA device"))
    for args, kwargs, words in cases:
        with pytest.raises(BrushNetLoadError, match=words.replace("(", r"\(")):
            load_pipeline(*args, **kwargs)


def test_a_damaged_unet_config_is_a_load_error(saved, tmp_path):
    import shutil

    base = tmp_path / "base"
    shutil.copytree(saved / "base", base)
    (base / "unet" / "config.json").write_text("{oops")
    with pytest.raises(BrushNetLoadError, match="Could not read"):
        load_pipeline(str(base), str(saved / "brushnet"))
    (base / "unet" / "config.json").write_text("[]")
    with pytest.raises(BrushNetLoadError, match="not a config"):
        load_pipeline(str(base), str(saved / "brushnet"))


def test_paths_and_dtype_names_are_accepted(saved):
    pipe = load_pipeline(saved / "base", saved / "brushnet", dtype="float32")
    assert isinstance(pipe, StableDiffusionBrushNetPipeline) and pipe.unet.dtype == torch.float32
