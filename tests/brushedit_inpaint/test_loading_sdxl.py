"""load_pipeline with SDXL: family detection, refused mismatched pairs, the released SDXL checkpoints' layouts."""

from __future__ import annotations

import json

import pytest
import torch

from brushedit_inpaint import (
    BrushNetLoadError,
    StableDiffusionBrushNetPipeline,
    StableDiffusionXLBrushNetPipeline,
    base_family,
    brushnet_family,
    load_pipeline,
)

from .tiny_parts import SD15, SDXL, TINY_SDXL_VAE, save_tiny_base

RELEASED = ("random_mask_brushnet_ckpt_sdxl_v0", "segmentation_mask_brushnet_ckpt_sdxl_v1")


def _as_released(folder):
    """Make a saved folder look like BrushNet's release (saved by their diffusers fork, 0.27.0.dev0)."""
    config = json.loads((folder / "config.json").read_text())
    config["_diffusers_version"] = "0.27.0.dev0"
    (folder / "config.json").write_text(json.dumps(config, indent=2))


@pytest.fixture(scope="module")
def saved(tmp_path_factory, monkeypatch_module):
    """A tiny SDXL base, a `data/ckpt`-style folder of the two SDXL BrushNets, and a tiny SD1.5 base + BrushNet."""
    monkeypatch_module.setenv("HF_HUB_OFFLINE", "1")
    root = tmp_path_factory.mktemp("sdxl_models")
    sdxl_branch = save_tiny_base(SDXL, root / "sdxl_base")
    for name in RELEASED:
        sdxl_branch.save_pretrained(root / "ckpt" / name)
        _as_released(root / "ckpt" / name)
    sd15_branch = save_tiny_base(SD15, root / "sd15_base")
    sd15_branch.save_pretrained(root / "sd15_brushnet")
    return root


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _run(pipe):
    pipe.set_progress_bar_config(disable=True)
    image = torch.rand(3, 32, 40)
    mask = torch.zeros(32, 40)
    mask[8:16, 8:24] = 1
    return pipe(
        prompt="a cat", image=image, mask_image=mask, num_inference_steps=1, output_type="np"
    ).images


def test_sdxl_base_and_both_released_layouts_load_and_run(saved):
    # the checkpoint folder itself
    pipe = load_pipeline(str(saved / "sdxl_base"), str(saved / "ckpt" / RELEASED[1]))
    assert isinstance(pipe, StableDiffusionXLBrushNetPipeline)
    assert pipe.brushnet.config.addition_embed_type == "text_time"
    assert pipe.text_encoder_2 is not None and pipe.tokenizer_2 is not None
    assert type(pipe.scheduler).__name__ == "UniPCMultistepScheduler"
    assert _run(pipe).shape == (1, 32, 40, 3)
    # the download folder plus the checkpoint's name as the subfolder
    other = load_pipeline(
        str(saved / "sdxl_base"), str(saved / "ckpt"), brushnet_subfolder=RELEASED[0]
    )
    for (name, a), (_, b) in zip(pipe.brushnet.state_dict().items(),
                                 other.brushnet.state_dict().items(), strict=True):  # fmt: skip
        assert torch.equal(a, b), name


def test_download_folder_with_several_checkpoints_names_them(saved):
    with pytest.raises(BrushNetLoadError, match=RELEASED[0] + ", " + RELEASED[1]) as err:
        load_pipeline(str(saved / "sdxl_base"), str(saved / "ckpt"))
    assert "subfolder" in str(err.value)


def test_single_checkpoint_folder_inside_a_download_folder_is_found(saved, tmp_path):
    import shutil

    shutil.copytree(saved / "ckpt" / RELEASED[0], tmp_path / "hub_download" / RELEASED[0])
    pipe = load_pipeline(str(saved / "sdxl_base"), str(tmp_path / "hub_download"))
    assert isinstance(pipe, StableDiffusionXLBrushNetPipeline)


def test_fp16_only_export_loads(saved, tmp_path):
    from brushedit_inpaint import BrushNetModel

    branch = BrushNetModel.from_pretrained(saved / "ckpt" / RELEASED[0])
    branch.to(torch.float16).save_pretrained(tmp_path / "fp16", variant="fp16")
    assert not (tmp_path / "fp16" / "diffusion_pytorch_model.safetensors").exists()
    pipe = load_pipeline(str(saved / "sdxl_base"), str(tmp_path / "fp16"))
    assert torch.allclose(
        pipe.brushnet.conv_in_condition.weight,
        branch.conv_in_condition.weight.float(),
    )


@pytest.mark.parametrize(
    ("base", "brushnet", "words"),
    [
        ("sd15_base", f"ckpt/{RELEASED[1]}", ("is an SDXL BrushNet", "is Stable Diffusion 1.5")),
        ("sdxl_base", "sd15_brushnet", ("is a Stable Diffusion 1.5 BrushNet", "is SDXL")),
    ],
)
def test_mismatched_family_is_one_sentence(saved, base, brushnet, words):
    with pytest.raises(BrushNetLoadError) as err:
        load_pipeline(str(saved / base), str(saved / brushnet))
    message = str(err.value)
    assert all(w in message for w in words), message
    assert message.count(". ") == 0 and message.endswith(".") and "\n" not in message


def test_family_detection_from_configs_and_single_file_keys(saved, tmp_path):
    from safetensors.torch import save_file

    assert base_family(str(saved / "sdxl_base")) == "sdxl"
    assert base_family(str(saved / "sd15_base")) == "sd15"
    assert (
        brushnet_family(json.loads((saved / "ckpt" / RELEASED[0] / "config.json").read_text()))
        == "sdxl"
    )
    assert (
        brushnet_family(json.loads((saved / "sd15_brushnet" / "config.json").read_text())) == "sd15"
    )
    # a folder without unet/ falls back to model_index.json
    (tmp_path / "index_only").mkdir()
    (tmp_path / "index_only" / "model_index.json").write_text(
        '{"_class_name": "StableDiffusionXLPipeline"}'
    )
    assert base_family(str(tmp_path / "index_only")) == "sdxl"
    # single files: original (LDM) key names, read from the header only
    save_file({"model.diffusion_model.label_emb.0.0.weight": torch.zeros(1),
               "conditioner.embedders.1.model.ln_final.weight": torch.zeros(1)}, tmp_path / "xl.safetensors")  # fmt: skip
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1),
               "cond_stage_model.transformer.text_model.final_layer_norm.weight": torch.zeros(1)},
              tmp_path / "v15.safetensors")  # fmt: skip
    assert base_family(str(tmp_path / "xl.safetensors")) == "sdxl"
    assert base_family(str(tmp_path / "v15.safetensors")) == "sd15"
    (tmp_path / "broken.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(BrushNetLoadError, match="Could not read the single-file checkpoint"):
        base_family(str(tmp_path / "broken.safetensors"))


def test_replacement_vae(saved, tmp_path):
    from diffusers import AutoencoderKL

    torch.manual_seed(3)
    AutoencoderKL(**{**TINY_SDXL_VAE, "force_upcast": False}).save_pretrained(tmp_path / "vae_fix")
    pipe = load_pipeline(
        str(saved / "sdxl_base"), str(saved / "ckpt" / RELEASED[0]), vae=str(tmp_path / "vae_fix")
    )
    assert pipe.vae.config.force_upcast is False
    with pytest.raises(BrushNetLoadError, match="VAE path"):
        load_pipeline(
            str(saved / "sdxl_base"), str(saved / "ckpt" / RELEASED[0]), vae=str(tmp_path / "no")
        )


def test_sd15_pair_still_gives_the_sd15_pipeline(saved):
    pipe = load_pipeline(str(saved / "sd15_base"), str(saved / "sd15_brushnet"))
    assert type(pipe) is StableDiffusionBrushNetPipeline
