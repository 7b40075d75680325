"""`brushedit trace export/report -o` never replaces a picture with text."""

from __future__ import annotations

from typer.testing import CliRunner

from interfaces.cli import app
from interfaces.cli_errors import REFUSED_EXIT
from tests.graphs.helpers import object_mask, picture


def test_trace_outputs_named_like_images_are_refused(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    picture().save("photo.png")
    Image.fromarray(object_mask()).save("mask.png")
    runner = CliRunner()
    made = runner.invoke(app, ["edit", "photo.png", "remove the dark square", "-o", "out.png",
                               "--mask", "mask.png", "--inpainter", "opencv", "--planner",
                               "rules", "--session", "s1"])
    assert made.exit_code == 0, made.output
    before = (tmp_path / "photo.png").read_bytes()
    for args in (["trace", "export", "s1", "-o", "photo.png"],
                 ["trace", "report", "s1", "-o", "PHOTO.PNG"]):
        res = runner.invoke(app, args)
        assert res.exit_code == REFUSED_EXIT, res.output
        assert "named like an image" in res.output and "Traceback" not in res.output
    assert (tmp_path / "photo.png").read_bytes() == before
    ok = runner.invoke(app, ["trace", "export", "s1", "-o", "events.jsonl"])
    assert ok.exit_code == 0 and (tmp_path / "events.jsonl").read_text().count("\n") >= 1
