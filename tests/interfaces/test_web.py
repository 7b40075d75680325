"""The web editor: handlers in process, then the whole app in headless Chromium."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from interfaces.trace_view import render_panel
from interfaces.web import (
    MaskChoice,
    ProgressFeed,
    _Actions,
    build_ui,
    option_widget_spec,
    overlay,
    web_message,
)
from tests.interfaces.conftest import make_image, make_mask
from tools.registry import INPAINTER_NAMES
from tools.types import EditOptions, option_bounds

gr = pytest.importorskip("gradio")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]


@pytest.fixture
def actions(offline_factory):
    from interfaces.common import LazyComponents, default_session_opener

    return _Actions(LazyComponents(offline_factory), default_session_opener, None, 10_000_000)


def editor_value(painted: np.ndarray | None = None) -> dict:
    image = make_image()
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    layer = np.zeros_like(rgba)
    if painted is not None:
        layer[..., 3] = painted
    return {"background": rgba, "layers": [layer], "composite": rgba}


OPTION_VALUES = tuple(getattr(EditOptions(inpainter="opencv"), n) for n in EditOptions.model_fields)


def run_once(actions, value, instruction, *, upload=None, current=None, keep=False,
             session=None, **options):
    """Drive the run generator to its end: (last outputs, every status panel it showed)."""
    values = dict(zip(EditOptions.model_fields, OPTION_VALUES, strict=True))
    values.update(options)
    outs = list(actions.run(value, upload, instruction, "", session, current, keep, False,
                            *values.values()))
    return outs[-1], [o[0] for o in outs]


def is_unchanged(value) -> bool:
    return isinstance(value, dict) and value.get("__type__") == "update" and len(value) == 1


def test_mask_tools_operate_on_the_current_mask(actions):
    mask = make_mask()
    value = editor_value()
    current = MaskChoice(mask, "uploaded")
    inverted, view, _ = actions.mask_op("invert", value, current, 4)
    assert (inverted.mask == 255 - mask).all() and view.shape == (64, 96, 3)
    grown, _, _ = actions.mask_op("dilate", value, current, 4)
    assert grown.mask.sum() > mask.sum()
    shrunk, _, _ = actions.mask_op("erode", value, current, 4)
    assert shrunk.mask.sum() < mask.sum()
    moved, _, _ = actions.mask_op("right", value, current, 5)
    assert moved.mask[30, 62 + 4] == 255 and moved.mask[30, 28] == 0
    ellipse, _, _ = actions.mask_op("ellipse", value, current, 1)
    assert ellipse.mask.sum() > mask.sum()
    painted_box, _, _ = actions.mask_op("box", editor_value(painted=mask), None, 1)
    assert (painted_box.mask == mask).all()  # painted layer used when nothing else is there
    assert actions.mask_op("clear", value, current, 1)[:2] == (None, None)
    state, view, status = actions.mask_op("invert", value, None, 1)
    assert is_unchanged(state) and "no mask yet" in status and "be-error" in status


def test_propose_fills_caption_and_mask(actions):
    choice, view, caption, note = actions.propose(editor_value(), "make it winter")
    assert choice.mask.all() and choice.origin == "proposed" and view is not None
    assert caption and "global" in note


def test_run_and_undo_in_process(actions):
    out, _ = run_once(actions, editor_value(painted=make_mask()), "remove the dark square")
    status, result_path, candidates, shown, turns, trace_html, trace_images, session_id = out[:8]
    assert "Turn 1" in status and Path(result_path).is_file() and candidates
    from PIL import Image

    with Image.open(result_path) as stored, Image.open(shown) as next_picture:
        # the result is the editor's next picture (a fresh copy of the same pixels)
        assert (np.asarray(next_picture.convert("RGB")) == np.asarray(stored.convert("RGB"))).all()
    assert len(turns) == 1
    assert "inpaint" in trace_html and trace_images
    undone = actions.undo(session_id, "")
    assert "original image" in undone[0] and undone[2][0][4] is True
    assert undone[6] == []  # the candidates shown were the undone turn's
    refused = actions.undo(None, "")
    assert "nothing to undo" in refused[0] and all(is_unchanged(v) for v in refused[1:])


def test_the_copies_the_page_showed_go_with_the_editor(offline_factory):
    """Each editor shows copies from its own temporary folder; it is removed with the editor,
    so a long-running host does not collect one folder per app."""
    import gc

    from interfaces.common import LazyComponents, default_session_opener

    editor = _Actions(LazyComponents(offline_factory), default_session_opener, None, 10_000_000)
    out, _ = run_once(editor, editor_value(painted=make_mask()), "remove the dark square")
    shown_dir = Path(out[3]).parent
    assert shown_dir.is_dir() and shown_dir.name.startswith("brushedit-web-")
    del editor, out
    gc.collect()
    assert not shown_dir.exists()


def _stepping_actions(tmp_path, **components):
    from interfaces.common import LazyComponents, default_session_opener
    from tests.graphs.helpers import make_components

    built = make_components(tmp_path / "data", **components)
    return _Actions(LazyComponents(lambda: built), default_session_opener, None, 10_000_000), built


def test_stop_stops_the_running_edit_within_a_step(tmp_path):
    """The Stop button's handler, while the run handler streams: the diffusion loop stops
    within a step, the run says it stopped, the turn is filed cancelled and nothing is kept."""
    import threading

    from tests.graphs.helpers import SteppingInpainter, wait_until

    inpainter = SteppingInpainter(total=3000, step_s=0.02)
    actions, built = _stepping_actions(tmp_path, planner="rules", max_attempts=1,
                                       inpainter="brushnet", inpainters={"brushnet": inpainter})
    assert "Nothing is running" in actions.stop(None)
    values = dict(zip(EditOptions.model_fields, OPTION_VALUES, strict=True), inpainter="brushnet")
    outputs: list = []
    runner = threading.Thread(target=lambda: outputs.extend(actions.run(
        editor_value(painted=make_mask()), None, "remove the dark square", "", None, None,
        False, False, *values.values())))
    runner.start()
    wait_until(lambda: inpainter.steps_run >= 3)
    session_id = outputs[0][7]  # the first panel tells the page which session Stop stops
    artifacts = set(built.store.root.rglob("*.png"))
    at_stop = inpainter.steps_run
    assert "Stopping" in actions.stop(session_id)
    runner.join(timeout=30)
    assert not runner.is_alive()
    assert inpainter.steps_run - at_stop <= 2 and inpainter.steps_run < 3000
    status = outputs[-1][0]
    assert "Stopped: turn 1 was cancelled" in status and "be-error" not in status
    assert [t["status"] for t in built.traces.turns(session_id)] == ["cancelled"]
    assert set(built.store.root.rglob("*.png")) == artifacts  # no result stored
    assert "Nothing is running" in actions.stop(session_id)
    built.close()


def test_retries_that_grow_the_mask_say_so(tmp_path):
    from tests.fakes.ollama_server import FakeOllama

    with FakeOllama() as server:
        server.set_verdicts("retry:mask", "accept")
        actions, built = _stepping_actions(tmp_path, vlm=server.vlm(), planner="vlm")
        out, statuses = run_once(actions, editor_value(painted=make_mask()),
                                 "remove the dark square")
    assert "Turn 1" in out[0], out[0]
    assert "after 2 attempt(s)" in out[0]
    grew = re.search(r"grew it: from ([\d.]+)% of the image to ([\d.]+)% by attempt 2", out[0])
    assert grew and float(grew[2]) > float(grew[1]), out[0]
    assert any("the mask grew from" in s for s in statuses)  # said while it ran, too
    built.close()


def test_every_endpoint_has_one_name_and_the_controls_say_what_they_do(offline_factory):
    demo = build_ui(offline_factory)
    named = set(demo.get_api_info()["named_endpoints"])
    assert named == {"/edit", "/stop_edit", "/propose_mask", "/preview_mask", "/undo_turn",
                     *(f"/mask_{op}" for op in ("invert", "dilate", "erode", "box", "ellipse",
                                                "clear", "left", "right", "up", "down"))}
    buttons = [b for b in demo.blocks.values() if isinstance(b, gr.Button)]
    labels = [b.value for b in buttons]
    assert len(labels) == len(set(labels)) and "Undo" not in labels  # the editor has "Undo"
    assert {"Undo turn", "Stop edit", "← Shift left", "Shift right →"} <= set(labels)
    assert all(re.search(r"[A-Za-z]{3}", label) for label in labels)  # words, not only arrows


def test_missing_inputs_are_named_image_first_in_editor_words(actions):
    """Image before instruction, and no CLI flag in any message the editor shows."""
    out, _ = run_once(actions, None, "")
    assert "upload an image" in out[0] and "instruction" not in out[0]
    out, _ = run_once(actions, editor_value(), "  ")
    assert "instruction" in out[0] and "be-error" in out[0]
    _, _, _, note = actions.propose(None, "")
    assert "upload an image" in note
    # a global edit on the removal-only inpainter: the fix is named as the editor's control
    out, _ = run_once(actions, editor_value(), "make it winter")
    assert "be-error" in out[0] and "--" not in out[0]
    assert "brushnet inpainter (Advanced options)" in out[0]
    # a removal with no mask and no segmenter: say how to give one here
    out, _ = run_once(actions, editor_value(), "remove the dark square")
    assert "paint over the area" in out[0] and "--" not in out[0]


def _typed_errors():
    from tools.errors import (
        InvalidRequestError,
        MaskNeededError,
        ModelLoadError,
        UnsupportedEditError,
    )

    return [
        UnsupportedEditError("The opencv inpainter cannot do global edits", inpainter="opencv",
                             category="global"),
        MaskNeededError.no_segmenter("“the dog”"),
        MaskNeededError.no_segmenter("“the dog”", load_error="no weights"),
        MaskNeededError("could not find “the dog” in the image; give a mask of the area to edit",
                        looked_for="“the dog”"),
        InvalidRequestError(field="options.max_attempts", problem="must be at most 10, got 50"),
        InvalidRequestError(field="caption", problem="has 600 characters; the limit is 500"),
        ModelLoadError("the BrushNet inpainter cannot load. Base model: fix: hf download x "
                       "--include 'brushnetX/*'", inpainter="brushnet"),
    ]


@pytest.mark.parametrize("error", _typed_errors(), ids=lambda e: type(e).__name__)
def test_web_messages_never_show_cli_flags(error):
    said = web_message(error)
    assert "--" not in said.replace("--include", "") and said.strip()
    assert "options." not in said and "`caption`" not in said


def test_out_of_range_options_are_one_sentence_naming_the_control(actions):
    out, _ = run_once(actions, editor_value(painted=make_mask()), "remove the dark square",
                      seed=float(2**64))
    assert "Seed must be at most 4294967295" in out[0] and "be-error" in out[0]
    assert all(is_unchanged(v) for v in out[1:])  # nothing else changes on a refusal
    out, _ = run_once(actions, editor_value(painted=make_mask()), "remove the dark square",
                      seed=float("inf"))
    assert "Seed must be a finite number" in out[0]


def test_expected_errors_log_one_line_and_bugs_a_traceback(actions, caplog):
    caplog.set_level(logging.DEBUG)
    run_once(actions, editor_value(), "make it winter")  # refused by the inpainter mid-run
    run_once(actions, None, "x")  # refused before it starts
    mine = [r for r in caplog.records if r.name == "interfaces.web"]
    assert len(mine) == 2 and all(r.levelno == logging.INFO for r in mine)
    assert not [r for r in caplog.records if r.exc_info]  # no traceback anywhere
    assert all("\n" not in r.getMessage() for r in mine)
    caplog.clear()
    broken = _Actions(actions.lazy, lambda *_: 1 / 0, None, 10_000_000)  # a bug, not the user
    out, _ = run_once(broken, editor_value(painted=make_mask()), "remove the dark square")
    assert "Internal error" in out[0] and "server failed unexpectedly" in out[0]
    assert "ZeroDivisionError" not in out[0] and "division" not in out[0]  # details: the log
    assert [r for r in caplog.records if r.exc_info]


def test_error_is_shown_once_and_cleared_by_the_next_run(actions):
    failed, _ = run_once(actions, editor_value(), "make it winter")
    assert failed[0].count("be-error") == 1
    assert all(is_unchanged(v) for v in failed[1:4])  # result, candidates, editor untouched
    ok, statuses = run_once(actions, editor_value(painted=make_mask()), "remove the dark square",
                            session=failed[7])
    assert "be-error" not in statuses[0]  # the first thing a new run shows replaces the error
    assert "be-error" not in ok[0] and "Turn 2" in ok[0]  # the failed turn is turn 1


def test_progress_names_node_attempt_and_diffusion_step(actions):
    feed = ProgressFeed()
    feed.update({"type": "turn", "turn": 2})
    assert feed.update({"type": "node", "node": "inpaint", "status": "start", "attempt": 2})
    assert feed.update({"type": "progress", "node": "inpaint", "step": 1, "total": 10})
    assert not feed.update({"type": "progress", "node": "inpaint", "step": 3, "total": 10})
    shown = feed.html()
    assert "turn 2" in shown and "attempt 2" in shown and "inpaint" in shown
    assert "step 3/10" in shown and "<progress value='3' max='10'>" in shown
    # a real run shows every node as it starts
    _, statuses = run_once(actions, editor_value(painted=make_mask()), "remove the dark square")
    running = [s for s in statuses if "be-progress" in s]
    for node in ("classify", "mask", "inpaint", "verify"):
        assert any(f"data-node='{node}'" in s for s in running), node
    assert any("step 1/1" in s for s in running)


def test_uploaded_mask_is_previewed_at_once_and_kept_only_when_asked(actions):
    mask = make_mask()
    choice, view, note = actions.preview_upload(editor_value(), mask)
    assert choice.origin == "uploaded" and (choice.mask == mask).all()
    assert (view[30, 40] != make_image()[30, 40]).any() and (view[0, 0] == make_image()[0, 0]).all()
    assert "next run" in note
    _, view_alone, note = actions.preview_upload(None, mask)  # no photo yet: the mask alone
    assert view_alone.shape == (64, 96, 3) and "upload the photo" in note
    wrong, _, note = actions.preview_upload(editor_value(), np.full((64, 64), 255, np.uint8))
    assert wrong is None and "aspect ratio" in note
    out, _ = run_once(actions, editor_value(), "remove the dark square", upload=mask)
    assert "uploaded mask" in out[0]
    assert out[8] is None and out[9] is None and out[10] is None  # used once, then cleared
    assert out[12] == ""  # so is the target caption: it belonged to this instruction
    out, _ = run_once(actions, editor_value(), "remove the dark square", upload=mask, keep=True,
                      session=out[7])
    assert out[8].mask.any() and out[8].origin == "kept from turn 2" and out[9] is not None
    again, _ = run_once(actions, editor_value(), "remove the dark square", current=out[8],
                        session=out[7])
    assert "kept from turn 2 mask" in again[0]


def test_trace_timeline_shows_decisions_and_only_the_inpainters_parameters(actions):
    out, _ = run_once(actions, editor_value(painted=make_mask()), "remove the dark square")
    timeline = out[5]
    assert timeline.count("<tr class='trace-step") == 8
    assert "accept" in timeline and "coverage" in timeline and "ms" in timeline
    assert "be-bar" in timeline and "<details>" in timeline  # timing bars, rows that open
    assert "data:image/png;base64," in timeline  # the step's images, inline
    inpaint_row = timeline.split("data-node='inpaint'")[1].split("</tr>")[0]
    assert "seed" in inpaint_row
    for unused in ("guidance_scale", "conditioning_scale", "steps", "negative_prompt"):
        assert unused not in inpaint_row, unused
    brushnet = render_panel([{"node": "inpaint", "turn": 1, "status": "ok", "params": {
        "inpainter": "brushnet", "steps": 30, "guidance_scale": 7.5, "seed": 1}}])
    assert "guidance_scale" in brushnet and "steps" in brushnet
    failed = render_panel([{"node": "inpaint", "status": "error", "error": "Boom: <b>"}])
    assert "be-failed" in failed and "failed: Boom: &lt;b&gt;" in failed


def test_option_widgets_follow_the_model_fields():
    from pydantic import BaseModel, Field

    class Knobs(BaseModel):
        strength: float = Field(default=0.5, ge=0.1, le=0.9, description="How hard.")
        seed: int = Field(default=3, ge=0, le=2**32 - 1, description="Seed.")
        flag: bool = Field(default=True, description="On or off.")

    strength = option_widget_spec("strength", Knobs)
    assert (strength["kind"], strength["minimum"], strength["maximum"]) == ("slider", 0.1, 0.9)
    assert strength["info"] == "How hard." and strength["default"] == 0.5
    assert option_widget_spec("seed", Knobs)["kind"] == "number"  # too wide for a slider
    assert option_widget_spec("flag", Knobs)["kind"] == "checkbox"
    assert option_widget_spec("inpainter")["choices"] == list(INPAINTER_NAMES)
    for name in EditOptions.model_fields:
        spec = option_widget_spec(name)
        if spec["kind"] in ("slider", "number"):
            assert (spec["minimum"], spec["maximum"]) == option_bounds(name)
            assert spec["info"] == EditOptions.model_fields[name].description


def test_trace_panel_escapes_and_overlay_tints():
    html = render_panel([{"node": "<b>x</b>", "status": "ok", "calls": [{"prompt": "<p>"}]}])
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "&lt;p&gt;" in html
    tinted = overlay(__import__("PIL.Image").Image.fromarray(make_image()), make_mask())
    assert (tinted[30, 40] != make_image()[30, 40]).any()
    assert (tinted[0, 0] == make_image()[0, 0]).all()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


EDITOR_READY = "!document.querySelector('#editor').innerText.includes('Upload an image')"
GRADIO_ERROR_BADGES = """() => [...document.querySelectorAll('.error')]
    .filter(e => e.offsetParent !== null && e.innerText.trim() === 'Error').length"""
RECORD_STATUS = """() => {
    window.statusSeen = [];
    const target = document.querySelector('#status');
    new MutationObserver(() => {
        const p = target.querySelector('.be-progress');
        if (p) window.statusSeen.push(p.dataset.node + ' | ' + p.innerText);
    }).observe(target, {subtree: true, childList: true, characterData: true});
}"""


def _upload_photo(page, path: Path, errors: list, playwright) -> None:
    """Drop the photo on the editor; reload when Gradio's editor failed to initialise.

    Under load the editor's canvas can start before its container exists (a page error in
    Gradio's own code) and then never takes a file; a reload gets a fresh one.
    """
    for _attempt in range(5):
        page.wait_for_selector("#editor", timeout=60_000)
        page.wait_for_timeout(2000)
        if errors:
            errors.clear()
            page.reload(wait_until="load")
            continue
        page.locator("#editor input[type=file]").first.set_input_files(str(path))
        try:
            page.wait_for_function(EDITOR_READY, timeout=10_000)
            return
        except playwright.Error:
            errors.clear()
            page.reload(wait_until="load")
    raise AssertionError("the editor never took the photo")


def _paint(page, width: int, height: int, x0: int, x1: int, ys: range) -> None:
    """Paint strokes on the editor over picture pixels x0..x1 at rows `ys`."""
    box = page.locator("#editor canvas").first.bounding_box()
    scale = min(box["width"] / width, box["height"] / height)
    left = box["x"] + (box["width"] - width * scale) / 2
    top = box["y"] + (box["height"] - height * scale) / 2
    for y in ys:
        page.mouse.move(left + x0 * scale, top + y * scale)
        page.mouse.down()
        page.mouse.move(left + x1 * scale, top + y * scale, steps=8)
        page.mouse.up()


@pytest.mark.browser
def test_edit_in_a_real_browser(offline_factory, tmp_path):
    """The editor as a person meets it, in headless Chromium, on OpenCV (no weights).

    One error in one place, cleared by the next run; an uploaded mask previewed at once and
    used once; progress (node and step) while the graph runs; after the edit the editor shows
    the result with no spinner and the browser stops uploading; paint on the result, run
    again, undo.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="pip install playwright (no browser download needed)"
    )
    import time

    from PIL import Image

    width, height = 192, 128
    source, mask_file = tmp_path / "in.png", tmp_path / "mask.png"
    Image.fromarray(make_image(width, height)).save(source)
    Image.fromarray(make_mask(width, height)).save(mask_file)
    demo = build_ui(offline_factory)
    port = _free_port()
    demo.queue().launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True
    )
    shots = tmp_path / "screenshots"
    shots.mkdir()
    uploads: list[float] = []
    errors: list = []

    def uploads_since(moment: float) -> int:
        return sum(1 for t in uploads if t >= moment)

    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            page.on("request", lambda r: "/upload" in r.url and uploads.append(time.time()))
            page.on("pageerror", lambda e: errors.append(e))
            began = time.time()
            page.goto(f"http://127.0.0.1:{port}", wait_until="load")
            _upload_photo(page, source, errors, playwright)
            print(f"photo in the editor after {time.time() - began:.1f} s")
            page.wait_for_timeout(1000)
            try:
                # 1. Nothing typed: one error, in the status panel, and no Gradio badges.
                page.locator("#run").click()
                page.wait_for_selector("#status .be-error", timeout=30_000)
                assert page.locator(".be-error").count() == 1
                assert "instruction" in page.locator("#status").inner_text()
                page.wait_for_timeout(500)
                assert page.evaluate(GRADIO_ERROR_BADGES) == 0
                page.screenshot(path=str(shots / "error.png"), full_page=True)

                # 2. An uploaded mask is shown on the photo before any run.
                page.locator("#mask_upload input[type=file]").first.set_input_files(
                    str(mask_file)
                )
                page.wait_for_selector("#mask_view img", timeout=30_000)
                assert "Mask uploaded" in page.locator("#status").inner_text()
                page.screenshot(path=str(shots / "mask-preview.png"), full_page=True)

                # 3. Run: progress names the nodes and the step; the error is gone.
                page.evaluate(RECORD_STATUS)
                page.locator("#instruction textarea").fill("remove the dark square")
                clicked = time.time()
                page.locator("#run").click()
                page.wait_for_function(
                    "document.querySelector('#status').innerText.includes('Turn 1')",
                    timeout=90_000,
                )
                finished = time.time()
                print(f"edit shown {finished - clicked:.1f} s after the click")
                seen = page.evaluate("window.statusSeen")
                assert any(s.startswith("inpaint") for s in seen), seen
                assert any("step 1/1" in s for s in seen), seen
                assert page.locator(".be-error").count() == 0
                status = page.locator("#status").inner_text()
                assert "opencv" in status and "uploaded mask" in status
                # one snapshot of the editor (background, composite, layer), not a storm
                assert uploads_since(clicked) - uploads_since(finished + 1) <= 4

                # 4. The editor shows the result, no spinner, and the uploads stop.
                page.wait_for_timeout(4000)  # the old editor re-uploaded within 3 s
                assert uploads_since(finished + 1) == 0
                editor_text = page.locator("#editor").inner_text()
                assert "processing" not in editor_text
                assert not re.search(r"\b\d+(\.\d+)?s\b", editor_text), editor_text
                assert page.locator("#mask_view img").count() == 0  # used once, not kept
                nodes = page.locator("#trace tr.trace-step").evaluate_all(
                    "els => els.map(e => e.dataset.node)"
                )
                assert "mask" in nodes and "inpaint" in nodes and "verify" in nodes
                assert "user" in page.locator("#trace").inner_text()  # the uploaded mask
                page.screenshot(path=str(shots / "after-edit.png"), full_page=True)

                # 5. Paint on the result and run again: the painted mask is used.
                _paint(page, width, height, 120, 160, range(70, 100, 5))
                page.locator("#instruction textarea").fill("remove the painted area")
                page.locator("#run").click()
                page.wait_for_function(
                    "document.querySelector('#status').innerText.includes('Turn 2')",
                    timeout=90_000,
                )
                assert "painted mask" in page.locator("#status").inner_text()

                # 6. Undo.
                page.locator("#undo").click()
                page.wait_for_function(
                    "document.querySelector('#status').innerText.includes('Undone')",
                    timeout=30_000,
                )
                turns = page.locator("#turns").inner_text()
                assert "true" in turns.split("remove the painted area")[1]  # undone flag set
                page.screenshot(path=str(shots / "after-undo.png"), full_page=True)
            except (AssertionError, playwright.Error):
                page.screenshot(path=str(shots / "failed.png"), full_page=True)
                print(f"failure screenshot: {shots / 'failed.png'}")
                raise
            browser.close()
    finally:
        demo.close()
    print(f"screenshots in {shots}")
    keep = os.environ.get("BRUSHEDIT_SCREENSHOT_DIR")
    if keep:
        for name in ("error.png", "mask-preview.png", "after-edit.png"):
            shutil.copy(shots / name, Path(keep) / name)


@pytest.mark.browser
def test_stop_and_the_controls_names_in_a_real_browser(tmp_path):
    """In headless Chromium, by the names a screen reader reads: one "Undo" (the editor's
    stroke undo) and "Undo turn", shift buttons in words, and "Stop edit" stopping a long
    diffusion loop within a step, the page saying so."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    playwright = pytest.importorskip("playwright.sync_api")
    from PIL import Image

    from tests.graphs.helpers import SteppingInpainter

    inpainter = SteppingInpainter(total=3000, step_s=0.02)
    _, built = _stepping_actions(tmp_path, planner="rules", max_attempts=1,
                                 inpainter="brushnet", inpainters={"brushnet": inpainter})
    demo = build_ui(lambda: built)
    port = _free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                        quiet=True)
    source, mask_file = tmp_path / "in.png", tmp_path / "mask.png"
    Image.fromarray(make_image(192, 128)).save(source)
    Image.fromarray(make_mask(192, 128)).save(mask_file)
    errors: list = []
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                        headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            page.on("pageerror", lambda e: errors.append(e))
            page.goto(f"http://127.0.0.1:{port}", wait_until="load")
            _upload_photo(page, source, errors, playwright)
            assert page.get_by_role("button", name="Undo turn", exact=True).count() == 1
            assert page.get_by_role("button", name="Undo", exact=True).count() <= 1
            for words in ("Shift left", "Shift right", "Shift up", "Shift down"):
                assert page.get_by_role("button", name=re.compile(words)).count() == 1, words
            page.locator("#mask_upload input[type=file]").first.set_input_files(str(mask_file))
            page.wait_for_selector("#mask_view img", timeout=30_000)
            page.locator("#instruction textarea").fill("remove the dark square")
            page.get_by_role("button", name="Run edit").click()
            page.wait_for_function(
                "document.querySelector('#status').innerText.includes('step')", timeout=60_000)
            at_stop = inpainter.steps_run
            page.get_by_role("button", name="Stop edit").click()
            page.wait_for_function(
                "document.querySelector('#status').innerText.includes('Stopped')",
                timeout=30_000)
            stopped = inpainter.steps_run
            assert stopped - at_stop <= 25, (at_stop, stopped)  # the click's trip, then a step
            page.wait_for_timeout(500)
            assert inpainter.steps_run == stopped < 3000
            assert "nothing of it was kept" in page.locator("#status").inner_text()
            browser.close()
    finally:
        demo.close()
        built.close()


def test_instruction_text_is_normalised_or_refused_in_editor_words(actions):
    """Issue 24 kind 8 in the editor: a bidi override is refused, text the rules cannot read
    is refused in one sentence (a VLM planner can), invisible characters are dropped."""
    value = editor_value(painted=make_mask())
    out, _ = run_once(actions, value, "remove the dark \u202eerauqs")
    assert "be-error" in out[0] and "right-to-left override" in out[0]
    assert "\u202e" not in out[0]
    out, _ = run_once(actions, value, "删除深色方块")
    assert "be-error" in out[0] and "Han (Chinese characters) script" in out[0]
    out, _ = run_once(actions, value, "\ufeff\u200bremove the dark square")
    assert "be-error" not in out[0], out[0]
