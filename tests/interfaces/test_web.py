"""The web editor: handlers in process, then the whole app in headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from graphs.interfaces.web import _Actions, build_ui, overlay, render_trace
from tests.interfaces.conftest import make_image, make_mask

gr = pytest.importorskip("gradio")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]


@pytest.fixture
def actions(offline_factory):
    from graphs.interfaces.common import LazyComponents, default_session_opener

    return _Actions(LazyComponents(offline_factory), default_session_opener, None, 10_000_000)


def editor_value(painted: np.ndarray | None = None) -> dict:
    image = make_image()
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    layer = np.zeros_like(rgba)
    if painted is not None:
        layer[..., 3] = painted
    return {"background": rgba, "layers": [layer], "composite": rgba}


def test_mask_tools_operate_on_the_current_mask(actions):
    mask = make_mask()
    value = editor_value()
    inverted, view = actions.mask_op("invert", value, mask, 4)
    assert (inverted == 255 - mask).all() and view.shape == (64, 96, 3)
    grown, _ = actions.mask_op("dilate", value, mask, 4)
    assert grown.sum() > mask.sum()
    shrunk, _ = actions.mask_op("erode", value, mask, 4)
    assert shrunk.sum() < mask.sum()
    moved, _ = actions.mask_op("right", value, mask, 5)
    assert moved[30, 62 + 4] == 255 and moved[30, 28] == 0
    ellipse, _ = actions.mask_op("ellipse", value, mask, 1)
    assert ellipse.sum() > mask.sum()
    painted_box, _ = actions.mask_op("box", editor_value(painted=mask), None, 1)
    assert (painted_box == mask).all()  # painted layer used when nothing was proposed
    assert actions.mask_op("clear", value, mask, 1) == (None, None)
    with pytest.raises(gr.Error, match="no mask yet"):
        actions.mask_op("invert", value, None, 1)


def test_propose_fills_caption_and_mask(actions):
    mask, view, caption, note = actions.propose(editor_value(), "make it winter")
    assert mask.all() and view is not None and caption and "global" in note


def test_run_and_undo_in_process(actions):
    out = actions.run(
        editor_value(painted=make_mask()), None, "remove the dark square", "", None, None,
        steps=5, guidance=7.5, cond_scale=1.0, seed=1, randomise=False, samples=1,
        blending=True, inpainter="opencv", progress=lambda *a, **k: None,
    )
    status, result_path, candidates, editor, turns, trace_html, trace_images, session_id = out[:8]
    assert "Turn 1" in status and Path(result_path).is_file() and candidates
    from PIL import Image

    with Image.open(result_path) as stored:  # the result is the editor's next picture
        assert (editor["background"][..., :3] == np.asarray(stored.convert("RGB"))).all()
    assert len(turns) == 1
    assert "inpaint" in trace_html and trace_images
    undone = actions.undo(session_id, "")
    assert "original image" in undone[0] and undone[2][0][4] is True
    with pytest.raises(gr.Error, match="nothing to undo"):
        actions.undo(None, "")
    with pytest.raises(gr.Error, match="upload an image"):
        actions.run(None, None, "x", "", None, None, 1, 1, 1, 1, False, 1, True, None)


def test_render_trace_escapes_and_overlay_tints():
    html = render_trace([{"node": "<b>x</b>", "status": "ok", "calls": [{"prompt": "<p>"}]}])
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "&lt;p&gt;" in html
    tinted = overlay(__import__("PIL.Image").Image.fromarray(make_image()), make_mask())
    assert (tinted[30, 40] != make_image()[30, 40]).any()
    assert (tinted[0, 0] == make_image()[0, 0]).all()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.browser
def test_edit_in_a_real_browser(offline_factory, tmp_path):
    """Upload, paint a mask with the mouse, run on OpenCV, see result and trace, undo."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="pip install playwright (no browser download needed)"
    )
    from PIL import Image

    source = tmp_path / "in.png"
    Image.fromarray(make_image(192, 128)).save(source)
    demo = build_ui(offline_factory)
    port = _free_port()
    demo.queue().launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True
    )
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            page.goto(f"http://127.0.0.1:{port}", wait_until="load")
            page.wait_for_selector("#editor", timeout=60_000)
            loaded = "!document.querySelector('#editor').innerText.includes('Upload an image')"
            for _attempt in range(4):  # the first upload can land before hydration finishes
                page.wait_for_timeout(2000)
                page.locator("#editor input[type=file]").first.set_input_files(str(source))
                try:
                    page.wait_for_function(loaded, timeout=15_000)
                    break
                except playwright.Error:
                    continue
            page.wait_for_function(loaded, timeout=1_000)
            page.wait_for_timeout(1000)
            canvas = page.locator("#editor canvas").first
            box = canvas.bounding_box()
            # The picture is drawn centred and scaled to fit the canvas: paint over its dark
            # square (pixels x 30..60, y 20..40 of 192x128) in a few horizontal strokes.
            scale = min(box["width"] / 192, box["height"] / 128)
            left = box["x"] + (box["width"] - 192 * scale) / 2
            top = box["y"] + (box["height"] - 128 * scale) / 2
            for y in range(22, 40, 4):
                page.mouse.move(left + 30 * scale, top + y * scale)
                page.mouse.down()
                page.mouse.move(left + 60 * scale, top + y * scale, steps=8)
                page.mouse.up()
            page.locator("#instruction textarea").fill("remove the dark square")
            page.locator("#run").click()
            try:
                page.wait_for_selector("#result img", timeout=90_000)
            except playwright.Error:
                page.screenshot(path=str(shots / "failed.png"), full_page=True)
                print(f"failure screenshot: {shots / 'failed.png'}")
                raise
            page.wait_for_function(
                "document.querySelectorAll('#trace details').length > 0", timeout=30_000
            )
            status = page.locator("#status").inner_text()
            assert "Turn 1" in status and "opencv" in status
            nodes = page.locator("#trace details").evaluate_all(
                "els => els.map(e => e.dataset.node)"
            )
            assert "mask" in nodes and "inpaint" in nodes and "verify" in nodes
            assert "user" in page.locator("#trace").inner_html()  # the painted mask was used
            page.wait_for_function(  # the result becomes the editor's next picture
                "!document.querySelector('#editor').innerText.includes('processing')",
                timeout=30_000,
            )
            page.wait_for_timeout(500)
            page.screenshot(path=str(shots / "after-edit.png"), full_page=True)
            page.locator("#undo").click()
            page.wait_for_function(
                "document.querySelector('#status').innerText.includes('Undone')", timeout=30_000
            )
            turns = page.locator("#turns").inner_text()
            assert "true" in turns.split("remove the dark square")[1]  # undone flag set
            page.screenshot(path=str(shots / "after-undo.png"), full_page=True)
            browser.close()
    finally:
        demo.close()
    print(f"screenshots in {shots}")
    keep = os.environ.get("BRUSHEDIT_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shots / "after-edit.png", Path(keep) / "after-edit.png")
