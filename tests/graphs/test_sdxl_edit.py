"""An SDXL base end to end: a tiny SDXL pipeline saved to folders, loaded from settings by the CLI and the graph."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from interfaces.cli import app
from tests.graphs.helpers import object_mask, picture


@pytest.fixture(scope="module")
def sdxl_folders(tmp_path_factory):
    """A tiny SDXL base (as `StableDiffusionXLPipeline.save_pretrained` writes it) and its BrushNet folder."""
    pytest.importorskip("brushedit_inpaint")
    from tests.brushedit_inpaint.sdxl_helpers import save_tiny_sdxl_base

    root = tmp_path_factory.mktemp("sdxl")
    brushnet = save_tiny_sdxl_base(root / "base")
    brushnet.save_pretrained(root / "segmentation_mask_brushnet_ckpt_sdxl_v1")
    return root


@pytest.fixture
def sdxl_env(sdxl_folders, monkeypatch):
    monkeypatch.setenv("BRUSHEDIT_BASE_MODEL", str(sdxl_folders / "base"))
    monkeypatch.setenv("BRUSHEDIT_BRUSHNET", str(sdxl_folders))
    monkeypatch.setenv("BRUSHEDIT_BRUSHNET_SUBFOLDER", "segmentation_mask_brushnet_ckpt_sdxl_v1")
    monkeypatch.setenv("BRUSHEDIT_SDXL_WORKING_SIDE", "64")  # native would be 1024: too slow here
    monkeypatch.setenv("BRUSHEDIT_DEVICE", "cpu")
    return sdxl_folders


def test_cli_edit_with_an_sdxl_base(sdxl_env, tmp_path):
    image, mask, out = tmp_path / "in.png", tmp_path / "mask.png", tmp_path / "out.png"
    picture().save(image)
    Image.fromarray(object_mask()).save(mask)
    res = CliRunner().invoke(app, [
        "edit", str(image), "replace the dark square with a red car", "-o", str(out),
        "--mask", str(mask), "--inpainter", "brushnet", "--planner", "rules", "--steps", "2",
        "--max-attempts", "1", "--session", "xl",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "inpainter brushnet" in res.output
    result = np.asarray(Image.open(out))
    assert result.shape == (64, 64, 3)
    region = object_mask() > 0
    before = np.asarray(picture())
    assert np.abs(result[region].astype(int) - before[region]).max() > 10  # the mask was repainted
    show = CliRunner().invoke(app, ["trace", "show", "xl"])
    assert show.exit_code == 0 and "inpaint" in show.output


def test_graph_runs_the_sdxl_inpainter_at_its_working_side(sdxl_env, tmp_path):
    from graphs.components import build_components
    from graphs.session import EditSession
    from graphs.settings import Settings
    from tools.types import EditOptions

    components = build_components(
        Settings(), inpainter="brushnet", planner="rules", segmenter=False
    )
    try:
        from graphs.handles import load_inpainter

        inpainter = load_inpainter(components.inpainters, "brushnet")
        assert inpainter.is_sdxl and inpainter.sdxl_working_side == 64
        assert type(inpainter.pipeline).__name__ == "StableDiffusionXLBrushNetPipeline"
        shapes = []
        handle = inpainter.pipeline.brushnet.register_forward_pre_hook(
            lambda m, args: shapes.append(tuple(args[0].shape[-2:]))
        )
        session = EditSession.open(components)
        result = session.edit(
            picture().resize((96, 64)), "remove the dark square",
            mask=np.asarray(Image.fromarray(object_mask()).resize((96, 64), Image.NEAREST)),
            options=EditOptions(inpainter="brushnet", steps=2, max_attempts=1),
        )  # fmt: skip
        handle.remove()
        assert result.inpainter == "brushnet" and result.image is not None
        # 96x64 scaled to about 64**2 pixels, aspect kept: 80x56 px, latents 40x28 (tiny VAE: /2)
        assert shapes and set(shapes) == {(28, 40)}
    finally:
        components.close()


def test_doctor_names_the_sdxl_family_and_a_mismatch(sdxl_env, monkeypatch, tmp_path):
    ok = CliRunner().invoke(app, ["doctor"])
    assert ok.exit_code == 0, ok.output
    assert "Model family" in ok.output and "SDXL base and BrushNet" in " ".join(ok.output.split())
    sd15 = tmp_path / "sd15_brushnet"
    sd15.mkdir()
    (sd15 / "config.json").write_text(
        '{"_class_name": "BrushNetModel", "cross_attention_dim": 768}'
    )
    monkeypatch.setenv("BRUSHEDIT_BRUSHNET", str(sd15))
    monkeypatch.setenv("BRUSHEDIT_BRUSHNET_SUBFOLDER", "")
    bad = CliRunner().invoke(app, ["doctor"])
    text = " ".join(bad.output.split())
    assert "cannot be paired" in text and "BRUSHEDIT_BRUSHNET at an SDXL BrushNet" in text
