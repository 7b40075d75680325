"""The CLI through typer's CliRunner: edit, trace list/show/export/report, demo, chat, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from interfaces.cli import app
from interfaces.cli_errors import REFUSED_EXIT, USAGE_EXIT
from tests.graphs.helpers import picture


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def test_edit_then_trace_commands(files, tmp_path):
    image, mask = files
    out = tmp_path / "out" / "result.png"
    res = run("edit", str(image), "remove the dark square", "-o", str(out), "--mask", str(mask),
              "--inpainter", "opencv", "--planner", "auto", "--session", "cli1")
    assert res.exit_code == 0, res.output
    assert "accepted" in res.output and "planner rules" in res.output
    result = np.asarray(Image.open(out))
    assert result.shape == (64, 64, 3) and not np.array_equal(result, np.asarray(picture()))
    assert not list(out.parent.glob(".*.tmp"))

    listing = run("trace", "list")
    assert listing.exit_code == 0 and "cli1" in listing.output
    show = run("trace", "show", "cli1")
    assert show.exit_code == 0 and "verify" in show.output and "accept" in show.output
    export = run("trace", "export", "cli1", "--format", "jsonl")
    rows = [json.loads(line) for line in export.stdout.splitlines()]
    assert [r["node"] for r in rows][:2] == ["start", "classify"] and rows[-1]["node"] == "finish"
    report = tmp_path / "report.html"
    rep = run("trace", "report", "cli1", "-o", str(report))
    assert rep.exit_code == 0 and "data:image/" in report.read_text()
    missing = run("trace", "show", "nope")
    assert missing.exit_code == REFUSED_EXIT and "no session 'nope'" in missing.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.png", "remove it", "-o", "x.png"], "does not exist"),
        (["{image}", "remove it", "-o", "{image}", "--mask", "{mask}"], "refusing to overwrite"),
        (["{image}", "remove it", "-o", "x.unknown"], "cannot tell the image format"),
        (["{image}", "remove it", "-o", "x.png", "--inpainter", "dalle"], "brushnet, opencv"),  # click
        (["{image}", "remove the dark square", "-o", "x.png", "--inpainter", "opencv"],
         "--mask"),
    ],
)
def test_bad_input_is_one_line_and_its_exit_status(files, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    image, mask = files
    args = [a.format(image=image, mask=mask) for a in args]
    res = run("edit", *args, "--planner", "rules")
    usage = "dalle" in args  # click refuses the choice: a usage error
    assert res.exit_code == (USAGE_EXIT if usage else REFUSED_EXIT), res.output
    assert message in " ".join(res.output.split())
    assert "Traceback" not in res.output
    assert image.exists() and Image.open(image).size == (64, 64)


def test_demo_runs_offline(tmp_path):
    res = run("demo", "--out", str(tmp_path / "demo"))
    assert res.exit_code == 0, res.output
    assert "planner rules" in res.output and "inpainter opencv" in res.output
    for name in ("coffee_result.png", "astronaut_result.png", "report.html"):
        assert (tmp_path / "demo" / name).is_file()


def test_chat_multi_turn_with_undo(files):
    image, mask = files
    lines = "\n".join(["history", "remove the dark square", "show-mask", "undo", "history",
                       "undo 7", "quit"]) + "\n"
    res = run("chat", str(image), "--mask", str(mask), "--inpainter", "opencv", "--planner",
              "rules", "--session", "talk", input=lines)
    assert res.exit_code == 0, res.output
    assert "accepted" in res.output and "mask:" in res.output
    assert "1. remove the dark square -> accepted (undone)" in res.output
    assert "turn 7 cannot be restored" in res.output
