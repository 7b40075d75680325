"""BrushNetModel and the dense injection into a stock UNet, against the golden reference outputs.

The golden checks run once per family (SD1.5 and SDXL); the rest are SD1.5's (SDXL's own are in test_sdxl.py).
"""

from __future__ import annotations

import json

import pytest
import torch

from brushedit_inpaint import BrushNetModel, unet_forward_with_brushnet
from brushedit_inpaint.configs import SD15_UNET_CONFIG

from .conftest import make_tiny_models
from .tiny_parts import SD15, TINY_UNET, golden_added_cond, golden_branch

pytestmark = pytest.mark.families("sd15")


@pytest.mark.families("sd15", "sdxl")
def test_golden_branch_samples_and_noise_prediction(golden, golden_models):
    t = golden["tensors"]
    out = golden_branch(golden_models["brushnet"], t)
    assert len(out.down_block_res_samples) == 9 and len(out.up_block_res_samples) == 11
    errors = {}
    for i, sample in enumerate(out.down_block_res_samples):
        errors[f"down.{i}"] = (sample - t[f"out.down_sample.{i}"]).abs().max().item()
    errors["mid"] = (out.mid_block_res_sample - t["out.mid_sample"]).abs().max().item()
    for i, sample in enumerate(out.up_block_res_samples):
        errors[f"up.{i}"] = (sample - t[f"out.up_sample.{i}"]).abs().max().item()
    with torch.no_grad():
        noise = unet_forward_with_brushnet(
            golden_models["unet"],
            t["in.sample"],
            t["in.timestep"],
            t["in.encoder_hidden_states"],
            out.down_block_res_samples,
            out.mid_block_res_sample,
            out.up_block_res_samples,
            added_cond_kwargs=golden_added_cond(t),
        ).sample
    errors["noise_pred"] = (noise - t["out.noise_pred"]).abs().max().item()
    assert max(errors.values()) < 1e-4, errors


@pytest.mark.families("sd15", "sdxl")
def test_no_brushnet_path_equals_stock_unet(golden, golden_models):
    t = golden["tensors"]
    unet, added = golden_models["unet"], golden_added_cond(t)
    inputs = (t["in.sample"], t["in.timestep"], t["in.encoder_hidden_states"])
    with torch.no_grad():
        ours = unet_forward_with_brushnet(unet, *inputs, added_cond_kwargs=added)
        stock = unet(*inputs, added_cond_kwargs=added)
    assert torch.equal(ours.sample, stock.sample)
    assert (ours.sample - t["out.noise_pred_without_brushnet"]).abs().max().item() < 1e-4
    # and the injection really changes the prediction
    assert (t["out.noise_pred"] - t["out.noise_pred_without_brushnet"]).abs().max().item() > 1e-2


def test_partial_samples_rejected(golden, golden_models):
    t = golden["tensors"]
    out = golden_branch(golden_models["brushnet"], t)
    with pytest.raises(ValueError, match="together"):
        unet_forward_with_brushnet(
            golden_models["unet"],
            t["in.sample"],
            t["in.timestep"],
            t["in.encoder_hidden_states"],
            down_block_add_samples=out.down_block_res_samples,
        )


def test_conditioning_keyword_aliases(golden, golden_models):
    t = golden["tensors"]
    brushnet = golden_models["brushnet"]
    with torch.no_grad():
        a = brushnet(
            t["in.sample"], t["in.timestep"], brushnet_cond=t["in.brushnet_cond"], return_dict=False
        )
        b = brushnet(
            t["in.sample"], t["in.timestep"], conditioning=t["in.brushnet_cond"], return_dict=False
        )
    assert torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="not both"):
        brushnet(
            t["in.sample"],
            t["in.timestep"],
            brushnet_cond=t["in.brushnet_cond"],
            conditioning=t["in.brushnet_cond"],
        )
    with pytest.raises(ValueError, match="input channels"):
        brushnet(t["in.sample"], t["in.timestep"], brushnet_cond=t["in.brushnet_cond"][:, :4])


def test_sd15_from_unet_matches_reference_manifest():
    if not SD15.manifest.is_file():
        pytest.skip(f"state-dict manifest not found at {SD15.manifest.resolve()}")
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    manifest = json.loads(SD15.manifest.read_text())
    with init_empty_weights():
        brushnet = BrushNetModel.from_unet(UNet2DConditionModel(**SD15_UNET_CONFIG))
    shapes = {name: list(p.shape) for name, p in brushnet.state_dict().items()}
    assert list(shapes) == list(manifest["tensors"]) or set(shapes) == set(manifest["tensors"])
    assert shapes == manifest["tensors"]
    assert sum(p.numel() for p in brushnet.state_dict().values()) == manifest["num_parameters"]
    for key, value in manifest["config"].items():
        ours = brushnet.config[key]
        assert (list(ours) if isinstance(ours, (list, tuple)) else ours) == value, key


def test_from_unet_initialisation_and_zero_taps():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**TINY_UNET).eval()
    brushnet = BrushNetModel.from_unet(unet).eval()
    w = brushnet.conv_in_condition.weight
    assert torch.equal(w[:, :4], unet.conv_in.weight) and torch.equal(
        w[:, 4:8], unet.conv_in.weight
    )
    assert torch.count_nonzero(w[:, 8:]) == 0
    assert torch.equal(brushnet.conv_in_condition.bias, unet.conv_in.bias)
    assert brushnet.conv_in_condition.bias.data_ptr() != unet.conv_in.bias.data_ptr()
    assert torch.equal(brushnet.time_embedding.linear_1.weight, unet.time_embedding.linear_1.weight)
    assert torch.equal(
        brushnet.down_blocks[0].resnets[0].conv1.weight, unet.down_blocks[0].resnets[0].conv1.weight
    )
    assert torch.equal(
        brushnet.up_blocks[2].resnets[2].conv2.weight, unet.up_blocks[2].resnets[2].conv2.weight
    )
    assert torch.equal(
        brushnet.mid_block.resnets[1].conv1.weight, unet.mid_block.resnets[1].conv1.weight
    )
    taps = [p for n, p in brushnet.named_parameters() if n.startswith("brushnet_")]
    assert taps and all(torch.count_nonzero(p) == 0 for p in taps)

    # zero taps: the untrained branch leaves the UNet's prediction unchanged
    sample, cond, ehs = torch.randn(1, 4, 16, 16), torch.randn(1, 5, 16, 16), torch.randn(1, 7, 16)
    with torch.no_grad():
        down, mid, up = brushnet(sample, 10, ehs, brushnet_cond=cond, return_dict=False)
        injected = unet_forward_with_brushnet(unet, sample, 10, ehs, down, mid, up).sample
        plain = unet(sample, 10, ehs).sample
    assert torch.allclose(injected, plain)


def test_save_and_load_round_trip(tmp_path):
    _, _, brushnet = make_tiny_models()
    brushnet.save_pretrained(tmp_path / "bn")
    loaded = BrushNetModel.from_pretrained(tmp_path / "bn")
    for (name, a), (_, b) in zip(
        brushnet.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert (
        json.loads((tmp_path / "bn" / "config.json").read_text())["mid_block_type"] == "MidBlock2D"
    )


def test_unsupported_configs_raise():
    with pytest.raises(ValueError, match="SDXL"):
        BrushNetModel(
            addition_embed_type="text_time",
            block_out_channels=(32, 32),
            norm_num_groups=8,
            down_block_types=("DownBlock2D",) * 2,
            up_block_types=("UpBlock2D",) * 2,
        )
    with pytest.raises(ValueError, match="attention-free"):
        BrushNetModel(
            block_out_channels=(32, 32),
            norm_num_groups=8,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D",) * 2,
        )
