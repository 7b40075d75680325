"""The conductors through every surface a person uses, on tiny checkpoints named the way a user
names real ones (`BRUSHEDIT_<NAME>_MODEL=<folder>`): the CLI (a real `brushedit edit` process for
FLUX.1 Fill, in-process for the others), the HTTP API, MCP, the web editor, the LangChain tool and
`brushedit doctor`. Each edit keeps every pixel outside the blend zone; each bad setup is one line
in the surface's own words.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from interfaces.cli import app
from interfaces.cli_errors import FAILED_EXIT, REFUSED_EXIT, USAGE_EXIT
from tests.interfaces.conftest import LOOPBACK
from tests.tools.conductor_parts import conductor_env
from tools.conductors import blend_zone
from tools.registry import CONDUCTOR_NAMES

INSTRUCTION = "replace the dark square with a red ball"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def conductor_setup(monkeypatch, tiny_conductor_dirs) -> dict[str, str]:
    """Every conductor's weights setting pointed at its tiny folder (what a user exports)."""
    env = conductor_env(tiny_conductor_dirs)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("BRUSHEDIT_MAX_ATTEMPTS", "1")
    return env


def kept_background(source: Path | np.ndarray, result: Path | np.ndarray, mask: Path) -> bool:
    """Every pixel outside the blend zone of `mask` is the source's; inside, something changed."""
    def pixels(x):
        return np.asarray(Image.open(x).convert("RGB")) if isinstance(x, Path) else x[..., :3]

    before, after = pixels(source), pixels(result)
    area = np.asarray(Image.open(mask).convert("L"))
    outside = ~blend_zone(area)
    changed = np.abs(after[area > 0].astype(int) - before[area > 0]).mean() > 1.0
    return bool(outside.any() and np.array_equal(after[outside], before[outside]) and changed)


# -- the command line --------------------------------------------------------------------------


def test_brushedit_edit_with_flux_fill_as_a_user_runs_it(tmp_path, tiny_conductor_dirs, files):
    """The issue's command, in a real process: `brushedit edit photo "..." --mask m.png
    --inpainter flux-fill --planner rules -o out.png` with BRUSHEDIT_FLUX_FILL_MODEL set."""
    photo, mask = files
    out = tmp_path / "out.png"
    env = {**os.environ, **conductor_env(tiny_conductor_dirs), "BRUSHEDIT_MAX_ATTEMPTS": "1",
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    exe = Path(sys.executable).with_name("brushedit")
    done = subprocess.run(
        [str(exe), "edit", str(photo), INSTRUCTION, "--mask", str(mask), "--inpainter",
         "flux-fill", "--planner", "rules", "--steps", "2", "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "inpainter flux-fill" in done.stdout and "Traceback" not in done.stderr
    assert kept_background(photo, out, mask)


@pytest.mark.parametrize("name", [n for n in CONDUCTOR_NAMES if n != "flux-fill"])
def test_brushedit_edit_takes_every_conductor(name, conductor_setup, tmp_path, files):
    photo, mask = files
    out = tmp_path / f"{name}.png"
    result = CliRunner().invoke(app, [
        "edit", str(photo), INSTRUCTION, "--mask", str(mask), "--inpainter", name,
        "--planner", "rules", "--steps", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"inpainter {name}" in result.output and kept_background(photo, out, mask)


@pytest.mark.parametrize(("setting", "args", "words", "code"), [
    ({"BRUSHEDIT_FLUX_KONTEXT_MODEL": "flux-fill"}, ["--inpainter", "flux-kontext"],
     ["holds a FluxFillPipeline checkpoint", "needs a FluxKontextInpaintPipeline one",
      "`--inpainter flux-fill` loads it"], FAILED_EXIT),
    ({"BRUSHEDIT_QWEN_IMAGE_EDIT_MODEL": "absent"}, ["--inpainter", "qwen-image-edit"],
     ["weights are not on this machine", "hf download Qwen/Qwen-Image-Edit --local-dir",
      "set BRUSHEDIT_QWEN_IMAGE_EDIT_MODEL to that folder"], FAILED_EXIT),
    ({}, ["--inpainter", "flux-fill", "--steps", "0"],
     ["Invalid value for '--steps'", "0 is not in the range 1<=x<=200"], USAGE_EXIT),
])
def test_a_bad_conductor_setup_is_one_cli_line(setting, args, words, code, conductor_setup,
                                               monkeypatch, tmp_path, tiny_conductor_dirs, files):
    """A setup that cannot run is one line and exit 4 (fix the setup); a bad flag is click's
    usage error, exit 2."""
    photo, mask = files
    for key, value in setting.items():
        where = tiny_conductor_dirs.get(value, tmp_path / value)
        monkeypatch.setenv(key, str(where))
    result = CliRunner().invoke(app, ["edit", str(photo), INSTRUCTION, "--mask", str(mask),
                                      "--planner", "rules", *args, "-o", str(tmp_path / "o.png")])
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 or args[-1] == "0", result.output  # typer words its own bound error
    assert all(word in result.output for word in words), result.output


def test_a_global_edit_on_a_fill_model_names_the_editors_that_can(conductor_setup, tmp_path,
                                                                  files):
    photo, _ = files
    result = CliRunner().invoke(app, ["edit", str(photo), "make it winter", "--inpainter",
                                      "flux-fill", "--planner", "rules", "-o",
                                      str(tmp_path / "o.png")])
    assert result.exit_code == REFUSED_EXIT, result.output
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert "cannot do a global edit" in line and "`--inpainter flux-kontext`" in line
    assert "`--inpainter qwen-image-edit`" in line and "`--inpainter flux2-klein`" in line


def test_demo_runs_the_chosen_conductor(conductor_setup, tmp_path):
    result = CliRunner().invoke(app, ["demo", "--inpainter", "flux2-klein", "--out",
                                      str(tmp_path / "demo")])  # its own 4 steps: seconds
    assert result.exit_code == 0, result.output
    assert result.output.count("inpainter flux2-klein") == 3  # the header and both examples
    assert (tmp_path / "demo" / "coffee_result.png").is_file()


def test_doctor_has_a_row_per_conductor_and_says_which_are_usable(monkeypatch, tmp_path,
                                                                  tiny_conductor_dirs):
    monkeypatch.setenv("BRUSHEDIT_DEVICE", "cpu")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("BRUSHEDIT_FLUX2_KLEIN_MODEL", str(tiny_conductor_dirs["flux2-klein"]))
    monkeypatch.setenv("BRUSHEDIT_FLUX_KONTEXT_MODEL", str(tiny_conductor_dirs["flux-fill"]))
    result = CliRunner().invoke(app, ["doctor"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    rows = {name: text.split(f"Conductor {name}")[1][:260] for name in CONDUCTOR_NAMES}
    assert rows["flux2-klein"].split()[1] == "ok" and "float32 on cpu" in rows["flux2-klein"]
    assert "FLUX.2 klein 4B" in rows["flux2-klein"]
    assert "missing" in rows["flux-kontext"] and "FluxFillPipeline" in rows["flux-kontext"]
    assert "not installed" in rows["qwen-image-edit"] and "Qwen-Image-Edit" in rows[
        "qwen-image-edit"]
    assert "Usable inpainters: opencv, flux2-klein" in text
    assert ("`hf auth login` and accept its licence on the Hub, then hf download "
            "black-forest-labs/FLUX.1-Fill-dev --local-dir <folder>, then set "
            "BRUSHEDIT_FLUX_FILL_MODEL to that folder") in text
    # --strict counts the broken Kontext setting (set, unusable), not extras left at defaults
    from graphs.settings import load_settings
    from interfaces.doctor import failed, run_checks

    conductors = [c for c in run_checks(load_settings()) if c.name.startswith("Conductor")]
    assert failed(conductors)
    assert not failed([c for c in conductors if c.name != "Conductor flux-kontext"])


# -- the servers and the tool ------------------------------------------------------------------


@pytest.fixture
def conductor_factory(conductor_setup, tmp_path):
    """Components as `brushedit serve/mcp/ui` build them from `Settings` (default flux2-klein)."""
    from graphs import build_components
    from graphs.settings import load_settings

    built = []

    def factory():
        if not built:
            built.append(build_components(load_settings(data_dir=tmp_path / "data"),
                                          inpainter="flux2-klein", planner="rules",
                                          segmenter=False))
        return built[0]

    yield factory
    for components in built:
        components.close()


def test_the_http_api_runs_a_conductor_and_words_its_errors(conductor_factory, tmp_path, files,
                                                           monkeypatch):
    from fastapi.testclient import TestClient

    from interfaces.api import create_app

    photo, mask = files
    monkeypatch.setenv("BRUSHEDIT_QWEN_IMAGE_EDIT_MODEL", str(tmp_path / "absent"))
    with TestClient(create_app(conductor_factory), base_url=LOOPBACK) as client:
        session = client.post("/sessions").json()["id"]
        sent = {"image": ("p.png", photo.read_bytes(), "image/png"),
                "mask": ("m.png", mask.read_bytes(), "image/png")}
        done = client.post(f"/sessions/{session}/edits", files=sent, data={
            "instruction": INSTRUCTION, "inpainter": "flux-kontext", "steps": "1"})
        assert done.status_code == 201, done.text
        result = done.json()["result"]
        assert result["inpainter"] == "flux-kontext" and result["caption"].endswith("unchanged.")
        png = np.asarray(Image.open(__import__("io").BytesIO(
            client.get(done.json()["links"]["image"]).content)).convert("RGB"))
        assert kept_background(photo, png, mask)
        spec = client.get("/openapi.json").json()
        assert set(CONDUCTOR_NAMES) <= set(json.dumps(spec).split('"'))  # the enum lists them
        missing = client.post(f"/sessions/{session}/edits", files=sent, data={
            "instruction": INSTRUCTION, "inpainter": "qwen-image-edit"})
    assert missing.status_code == 503, missing.text
    message = missing.json()["error"]["message"]
    assert "whoever runs this server fetches them with `hf download Qwen/Qwen-Image-Edit" in message
    assert "sets BRUSHEDIT_QWEN_IMAGE_EDIT_MODEL to that folder" in message
    assert "--inpainter" not in message


def test_mcp_runs_a_conductor(conductor_factory, files):
    import anyio
    import mcp

    from interfaces.mcp_server import create_mcp_server
    from tests.interfaces.test_mcp import b64, text_json

    photo, mask = files
    server = create_mcp_server(conductor_factory)

    async def main():
        async with mcp.Client(server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            schema = json.dumps(tools["edit_image"].input_schema)
            assert all(name in schema for name in CONDUCTOR_NAMES)
            return await client.call_tool("edit_image", {
                "instruction": INSTRUCTION, "image": b64(photo.read_bytes()),
                "mask": b64(mask.read_bytes()),
                "options": {"inpainter": "sd-inpaint", "steps": 1}})

    result = anyio.run(main)
    assert not result.is_error, result
    info = text_json(result)
    assert info["inpainter"] == "sd-inpaint" and "unchanged" not in info["caption"]
    import base64
    import io

    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(result.content[0].data))))
    assert kept_background(photo, out, mask)


def test_the_web_editor_lists_and_runs_a_conductor(conductor_factory):
    from interfaces.common import LazyComponents, default_session_opener, inpainter_names
    from interfaces.web import _Actions
    from tests.interfaces.conftest import make_image, make_mask
    from tests.interfaces.test_web import editor_value, run_once

    actions = _Actions(LazyComponents(conductor_factory), default_session_opener, None,
                       10_000_000)
    names = inpainter_names(conductor_factory())
    assert names[0] == "flux2-klein" and set(CONDUCTOR_NAMES) <= set(names)
    states = dict(zip(__import__("tools.types").types.EditOptions.model_fields,
                      actions.option_states("flux2-klein"), strict=True))
    assert "Empty: flux2-klein's own (4)" in states["steps"]["info"]
    assert "Empty: flux-fill's own (30)" in actions.option_states("flux-fill")[2]["info"]
    out, _ = run_once(actions, editor_value(painted=make_mask()), INSTRUCTION,
                      inpainter="flux2-klein", steps=None)
    assert "inpainter <code>flux2-klein</code>" in out[0], out[0]
    mask = Path(conductor_factory().store.root.parent / "web-mask.png")
    Image.fromarray(make_mask()).save(mask)
    assert kept_background(make_image(), Path(out[1]), mask)


def test_the_langchain_tool_runs_a_conductor(conductor_factory, files):
    from interfaces.langchain_tool import make_edit_tool

    photo, mask = files
    out = make_edit_tool(conductor_factory()).invoke({
        "instruction": INSTRUCTION, "image": str(photo), "mask": str(mask),
        "options": {"inpainter": "flux-fill", "steps": 1}})
    assert out["inpainter"] == "flux-fill" and out["caption"] == "a red ball"
    assert kept_background(photo, Path(out["image_path"]), mask)
