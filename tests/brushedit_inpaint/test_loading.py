"""load_pipeline: a working local load, and readable BrushNetLoadError messages for checkpoints that do not fit."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import UniPCMultistepScheduler

from brushedit_inpaint import (
    BrushNetLoadError,
    BrushNetModel,
    StableDiffusionBrushNetPipeline,
    load_pipeline,
)

from .tiny_parts import TINY_UNET


def test_load_local_folders_and_run(saved, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = load_pipeline(str(saved / "base"), str(saved / "brushnet"))
    assert isinstance(pipe, StableDiffusionBrushNetPipeline)
    assert isinstance(pipe.scheduler, UniPCMultistepScheduler)
    assert pipe.scheduler.config.final_sigmas_type == "zero"  # diffusers' default for normal use
    pipe.set_progress_bar_config(disable=True)
    image = torch.rand(3, 32, 32)
    mask = torch.zeros(32, 32)
    mask[8:16, 8:16] = 1
    out = pipe(
        prompt="a cat", image=image, mask_image=mask, num_inference_steps=1, output_type="np"
    ).images
    assert out.shape == (1, 32, 32, 3)


def test_memory_format_auto_on_the_cpu_and_forced_channels_last_change_nothing(saved, monkeypatch):
    import numpy as np

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fast = load_pipeline(str(saved / "base"), str(saved / "brushnet"), memory_format="channels_last")
    plain = load_pipeline(str(saved / "base"), str(saved / "brushnet"))  # auto: contiguous on a CPU
    for pipe, fmt in ((fast, torch.channels_last), (plain, torch.contiguous_format)):
        for module in (pipe.unet, pipe.brushnet, pipe.vae):
            weight = next(p for p in module.parameters() if p.ndim == 4)
            assert weight.is_contiguous(memory_format=fmt)
    kwargs = {"prompt": "a cat", "image": torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)),
              "mask_image": torch.ones(32, 32), "num_inference_steps": 2, "output_type": "np"}
    outs = [p(**kwargs, generator=torch.Generator().manual_seed(1)).images for p in (fast, plain)]
    assert np.abs(outs[0] - outs[1]).max() < 1e-5
    with pytest.raises(ValueError, match="memory_format"):
        load_pipeline(str(saved / "base"), str(saved / "brushnet"), memory_format="nhwc")


def test_compile_marks_the_branch_and_the_unet_blocks(saved, monkeypatch):
    """`compile=True` compiles in place what the injected UNet walk calls (not run here: slow)."""
    from brushedit_inpaint.speed import compile_denoiser

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = load_pipeline(str(saved / "base"), str(saved / "brushnet"))
    compiled = compile_denoiser(pipe)
    assert pipe.brushnet in compiled and pipe.unet.mid_block in compiled
    assert pipe.unet.down_blocks[0].resnets[0] in compiled
    assert all(getattr(m, "_compiled_call_impl", None) is not None for m in compiled)


def test_load_with_named_scheduler_and_subfolder(saved, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = load_pipeline(
        str(saved / "base"), str(saved), brushnet_subfolder="brushnet", scheduler="DDIMScheduler"
    )
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"
    with pytest.raises(BrushNetLoadError, match="not a diffusers scheduler"):
        load_pipeline(str(saved / "base"), str(saved / "brushnet"), scheduler="NoSuchScheduler")


def test_wrong_conditioning_channels(saved, tmp_path):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    bad = BrushNetModel.from_unet(UNet2DConditionModel(**TINY_UNET), conditioning_channels=4)
    bad.save_pretrained(tmp_path / "bad")
    with pytest.raises(BrushNetLoadError, match="conditioning_channels=4"):
        load_pipeline(str(saved / "base"), str(tmp_path / "bad"))


def test_sdxl_brushnet_config_is_named(saved, tmp_path):
    folder = tmp_path / "sdxl"
    folder.mkdir()
    config = json.loads((saved / "brushnet" / "config.json").read_text())
    config.update({"addition_embed_type": "text_time", "cross_attention_dim": 2048})
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(BrushNetLoadError, match="SDXL"):
        load_pipeline(str(saved / "base"), str(folder))


def test_architecture_mismatch(saved, tmp_path):
    from diffusers import UNet2DConditionModel

    other = dict(TINY_UNET, block_out_channels=[16, 32, 64])
    BrushNetModel.from_unet(UNet2DConditionModel(**other)).save_pretrained(tmp_path / "other")
    with pytest.raises(BrushNetLoadError, match="block_out_channels"):
        load_pipeline(str(saved / "base"), str(tmp_path / "other"))


def test_folder_without_config(saved, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BrushNetLoadError, match=r"no config\.json"):
        load_pipeline(str(saved / "base"), str(tmp_path / "empty"))
    with pytest.raises(BrushNetLoadError, match=r"no model_index\.json"):
        load_pipeline(str(tmp_path / "empty"), str(saved / "brushnet"))


def test_missing_paths_and_offline_hub(saved, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BrushNetLoadError, match="does not exist"):
        load_pipeline(str(saved / "base"), str(tmp_path / "nope" / "brushnetX"))
    with pytest.raises(BrushNetLoadError, match="does not exist"):
        load_pipeline(str(tmp_path / "missing.safetensors"), str(saved / "brushnet"))
    with pytest.raises(BrushNetLoadError, match="BrushNet config"):
        load_pipeline(
            str(saved / "base"), "nobody-xyz/no-such-brushnet", brushnet_subfolder="brushnetX"
        )
