"""One timeline, three renderings: the terminal tree, the web panel fragment and the HTML report."""

from __future__ import annotations

import numpy as np
from PIL import Image

from graphs.artifacts import ArtifactStore
from interfaces.trace_view import render_panel, render_report, render_terminal, timeline

HOSTILE = "<script>x</script> [bold red]LOUD[/] \x1b[2J"


def events(image: str = "0" * 64, mask: str = "1" * 64) -> list[dict]:
    return [
        {"node": "classify", "status": "ok", "turn": 1, "attempt": 1, "duration_ms": 12.4,
         "outputs": {"category": "removal", "planner": "rules"},
         "calls": [{"model": "qwen", "prompt": HOSTILE, "raw": "{}", "parsed": {"a": 1}}]},
        {"node": "mask", "status": "ok", "turn": 1, "attempt": 1, "duration_ms": 3,
         "outputs": {"mask_source": "user", "coverage": 0.2},
         "images": {"candidates": [image, "not a hash"], "mask": mask}},
        {"node": "verify", "status": "error", "turn": 1, "attempt": 2, "error": HOSTILE,
         "outputs": {"decision": "retry", "stage": "mask", "reason": "x" * 5000}},
        {"node": "undo", "status": "ok", "turn": None, "outputs": {"undone": [1]}},
    ]


def test_timeline_rows_carry_briefs_images_and_sections():
    rows = timeline(events())
    assert [r["index"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["brief"] == "removal via rules" and rows[0]["ok"]
    assert rows[1]["images"] == [("candidates[0]", "0" * 64), ("mask", "1" * 64)]
    assert rows[2]["brief"].startswith("retry → mask: xxx") and not rows[2]["ok"]
    assert [key for key, _ in rows[2]["sections"]] == ["outputs"]
    assert rows[3]["brief"] == "undid turns [1]" and rows[3]["duration_ms"] is None


def test_the_terminal_tree_groups_by_turn_and_escapes_user_text():
    from rich.console import Console

    text = render_terminal("s<1>", events())
    console = Console(record=True, width=200, color_system=None)
    console.print(text)
    shown = console.export_text()
    assert shown.splitlines()[0] == "session s<1>"
    lines = [line for line in shown.splitlines() if line]
    assert lines[1] == "├── turn 1" and lines[-2] == "└── session"
    assert "[bold red]LOUD[/]" in shown and "\x1b" not in shown and "\\x1b" in shown
    assert "✓ classify attempt 1 · 12 ms — removal via rules" in shown


def test_the_panel_escapes_html_and_cuts_long_sections():
    html = render_panel(events())
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count("<tr class='trace-step") == 4 and html.count("trace-step be-failed") == 1
    assert " …</pre>" in html and "x" * 3900 in html and "x" * 4000 not in html
    assert render_panel([]) == "<p><em>No steps yet.</em></p>"


def test_the_report_embeds_thumbnails_of_stored_images_only(tmp_path):
    store = ArtifactStore(tmp_path / "artifacts")
    image = store.put_image(Image.fromarray(np.full((300, 400, 3), 90, np.uint8)))
    mask = store.put_mask(np.full((30, 40), 255, np.uint8))
    turns = [{"turn": 1, "instruction": HOSTILE, "status": "done", "accepted": True,
              "undone": False}]
    html = render_report("s1", events(image, mask), turns, store)
    assert html.count("data:image/jpeg;base64,") == 1 and html.count("data:image/png;base64,") == 1
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "x" * 5000 in html  # the report keeps every character
    assert "model call 1: qwen" in html
    missing = render_report("s1", events(), [], store)
    assert "data:image" not in missing


def test_the_panel_shows_only_the_inpainters_parameters_and_each_image_once():
    step = {"node": "inpaint", "turn": 1, "status": "ok", "duration_ms": 40,
            "params": {"inpainter": "opencv", "seed": 3, "steps": 30, "effective_steps": 30},
            "inputs": {"options": {"inpainter": "opencv", "guidance_scale": 7.5, "seed": 3}},
            "images": {"result": "2" * 64}}
    again = {"node": "verify", "turn": 1, "status": "ok", "duration_ms": 10,
             "images": {"result": "2" * 64}, "outputs": {"decision": "accept", "reason": "ok"}}
    shown = render_panel([step, again], thumb=lambda digest: f"data:image/png;base64,{digest}")
    assert "seed" in shown and "steps" not in shown and "guidance_scale" not in shown
    assert shown.count("<img src='data:image/png;base64,") == 1  # the repeat is left out
    assert "width:80px" in shown and "width:20px" in shown  # bars relative to the slowest
    assert "accept: ok" in shown and "1·" not in shown  # a turn without an attempt reads "1"
    brushnet = render_panel([{**step, "params": {"inpainter": "brushnet", "steps": 30}}])
    assert "steps" in brushnet
    assert "failed: Boom" in render_panel([{"node": "x", "status": "error", "error": "Boom"}])
