"""The graph under LangGraph's own server (`langgraph dev`), driven by the official SDK client.

What a LangGraph-platform user does first: read the schemas, send an image by path and a mask as
a data: URI, continue on the same thread without an image, fetch the result from `image_url`,
review a mask through an interrupt and resume it, and read a failure's message.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.tools.conductor_parts import conductor_env
from tools.registry import CONDUCTOR_NAMES

REPO = Path(__file__).resolve().parents[2]
LANGGRAPH = Path(sys.executable).with_name("langgraph")

pytestmark = pytest.mark.skipif(
    not LANGGRAPH.exists() and shutil.which("langgraph") is None,
    reason="langgraph-cli[inmem] is not installed (it is in the dev extra)",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_conductor_dirs):
    """A server set up as its user would for local work: every conductor's weights setting
    names its tiny folder (as a user's .env would), it reads files under the test's folder
    (BRUSHEDIT_INPUT_ROOTS) and fetches loopback URLs (BRUSHEDIT_ALLOW_PRIVATE_URLS)."""
    tmp = tmp_path_factory.mktemp("langgraph")
    yield from running_server(tmp, **conductor_env(tiny_conductor_dirs),
                              BRUSHEDIT_INPUT_ROOTS=str(tmp), BRUSHEDIT_ALLOW_PRIVATE_URLS="1")


def running_server(tmp: Path, **settings: str):
    """Run `langgraph dev` on loopback with its data under `tmp` and these settings (env
    variables); yields (url, tmp) while it runs, then stops it."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("BRUSHEDIT_")}
    env.update({"BRUSHEDIT_DATA_DIR": str(tmp / "data"), "HF_HUB_OFFLINE": "1",
                "HF_HOME": str(tmp / "hf"), "BRUSHEDIT_DEVICE": "cpu",
                "BRUSHEDIT_OLLAMA_HOST": f"http://127.0.0.1:{_free_port()}",  # nobody there
                "LANGSMITH_TRACING": "false", "LANGGRAPH_NO_VERSION_CHECK": "1",
                "PYTHONPATH": str(REPO), **settings})
    exe = str(LANGGRAPH) if LANGGRAPH.exists() else "langgraph"
    log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(  # from another folder, as `langgraph dev --config /abs/...` runs
        [exe, "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port),
         "--config", str(REPO / "langgraph.json")],
        cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    else:
        proc.kill()
    if proc.poll() is not None:
        log.close()
        pytest.fail("langgraph dev did not start:\n" + (tmp / "server.log").read_text()[-3000:])
    yield url, tmp
    os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
    log.close()


def _photo(tmp: Path) -> Path:
    image = np.full((64, 64, 3), 200, np.uint8)
    image[20:40, 20:40] = 30
    path = tmp / "photo.png"
    Image.fromarray(image).save(path)
    return path


def _mask_uri() -> str:
    mask = np.zeros((64, 64), np.uint8)
    mask[18:42, 18:42] = 255
    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _run(coro):
    return asyncio.run(coro)


async def _assistant(client):
    assistants = await client.assistants.search(graph_id="editor")
    return assistants[0]["assistant_id"]


def _on_a_new_thread(url, steps):
    """`await steps(client, assistant, thread)` with the SDK client, on a thread of its own."""
    from langgraph_sdk import get_client

    async def go():
        client = get_client(url=url)
        assistant = await _assistant(client)
        thread = (await client.threads.create())["thread_id"]
        return await steps(client, assistant, thread)

    return _run(go())


def test_schemas_describe_the_public_input_and_output(server):
    from langgraph_sdk import get_client

    async def go():
        client = get_client(url=server[0])
        return await client.assistants.get_schemas(await _assistant(client))

    schemas = _run(go())
    inputs = schemas["input_schema"]["properties"]
    assert {"image", "instruction", "mask", "options", "caption", "review_mask"} <= set(inputs)
    assert "data:" in inputs["image"]["description"] and "URL" in inputs["image"]["description"]
    assert all(prop.get("description") for prop in inputs.values())
    assert set(schemas["output_schema"]["properties"]) == {"result", "progress", "preview"}
    assert "source_image" not in inputs and "user_mask" not in inputs  # internals stay inside
    context = schemas["context_schema"]["properties"]
    assert set(context) == {"settings"}  # the knobs; model and store handles stay out
    knobs = schemas["context_schema"]["$defs"]["GraphSettings"]["properties"]
    assert {"planner", "max_attempts", "inpainter"} <= set(knobs) and "mask_policy" not in knobs


def test_a_run_context_sets_the_knobs_and_a_bad_one_says_why(server):
    url, tmp = server

    async def steps(client, assistant, thread):
        done = await client.runs.wait(thread, assistant, input={
            "image": str(_photo(tmp)), "instruction": "remove the dark square",
            "mask": _mask_uri()}, context={"settings": {"max_attempts": 1, "planner": "rules",
                                                        "inpainter": "opencv"}})
        state = await client.threads.get_state(thread)
        bad = await client.runs.wait(thread, assistant, input={
            "instruction": "remove the dark square", "mask": _mask_uri()},
            context={"settings": {"planner": "magic"}}, raise_error=False)
        return done, state, bad

    done, state, bad = _on_a_new_thread(url, steps)
    assert done["result"]["accepted"] and done["result"]["inpainter"] == "opencv"
    assert state["values"]["max_attempts"] == 1 and state["values"]["planner"] == "rules"
    assert bad["__error__"]["error"] == "ConfigError"
    assert "`planner` must be auto, vlm or rules" in bad["__error__"]["message"]


def test_two_turns_on_one_thread_and_the_result_is_served(server):
    url, tmp = server
    photo = _photo(tmp)
    options = {"inpainter": "opencv"}

    async def steps(client, assistant, thread):
        first = await client.runs.wait(thread, assistant, input={
            "image": str(photo), "instruction": "remove the dark square", "mask": _mask_uri(),
            "options": options})
        second = await client.runs.wait(thread, assistant, input={
            "instruction": "remove the dark square", "mask": _mask_uri(), "options": options})
        # Turn 3 sends no mask: turn 2's must not leak in, and no segmenter is installed here.
        third_error = None
        try:
            await client.runs.wait(thread, assistant, input={
                "instruction": "remove the dark square", "options": options})
        except Exception as exc:  # the SDK raises the run's error with its message
            third_error = str(exc)
        return first, second, third_error

    first, second, third_error = _on_a_new_thread(url, steps)
    one, two = first["result"], second["result"]
    assert one["accepted"] and one["turn"] == 1 and two["turn"] == 2
    assert two["source_image"] == one["image"]  # turn 2 continued from turn 1's result
    assert one["image_url"] == f"/artifacts/{one['image']}"
    response = httpx.get(url + one["image_url"], timeout=10)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    served = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    original = np.asarray(Image.open(photo).convert("RGB"))
    assert served.shape == original.shape
    assert served[25:35, 25:35].mean() > 100  # the dark square is gone
    assert third_error and "MaskNeededError" in third_error and "give a mask" in third_error
    assert httpx.get(f"{url}/artifacts/not-a-hash", timeout=10).status_code == 422
    assert httpx.get(f"{url}/artifacts/{'0' * 64}", timeout=10).status_code == 404


def test_default_options_fail_with_their_reason_not_an_internal_error(server):
    url, tmp = server

    async def steps(client, assistant, thread):
        return await client.runs.wait(thread, assistant, input={
            "image": str(_photo(tmp)), "instruction": "make the square red",
            "mask": _mask_uri()}, raise_error=False)

    out = _on_a_new_thread(url, steps)
    error = out["__error__"]
    assert error["error"] == "ModelLoadError"
    assert "hf download" in error["message"] and "internal error" not in error["message"]


def test_mask_review_interrupt_carries_urls_and_resumes(server):
    url, tmp = server

    async def steps(client, assistant, thread):
        paused = await client.runs.wait(thread, assistant, input={
            "image": str(_photo(tmp)), "instruction": "remove the dark square",
            "mask": _mask_uri(), "review_mask": True, "options": {"inpainter": "opencv"}})
        state = await client.threads.get_state(thread)
        done = await client.runs.wait(thread, assistant, command={"resume": {"approve": True}})
        return paused, state, done

    paused, state, done = _on_a_new_thread(url, steps)
    interrupts = [i for task in state["tasks"] for i in task["interrupts"]]
    payload = interrupts[0]["value"]
    assert payload["kind"] == "mask_review" and payload["turn"] == 1
    assert payload["mask_url"] == f"/artifacts/{payload['mask']}"
    assert payload["image_url"] == f"/artifacts/{payload['image']}"
    assert not any(str(tmp) in str(v) for v in payload.values())  # no server paths
    assert httpx.get(url + payload["mask_url"], timeout=10).status_code == 200
    assert "result" not in paused or paused.get("result") is None
    assert done["result"]["accepted"] and done["result"]["mask"] == payload["mask"]


@pytest.mark.parametrize("name", CONDUCTOR_NAMES)
def test_the_context_knob_runs_each_conductor_and_keeps_the_background(server, name):
    """`context={"settings": {"inpainter": "flux-fill"}}` on `langgraph dev`: the conductor paints
    inside the mask, every pixel outside the blend zone is the photo's, and the prompt is in
    the conductor's style (an edit instruction for instruction editors)."""
    from tools.conductors import blend_zone
    from tools.registry import INPAINTERS

    url, tmp = server
    photo = _photo(tmp)

    async def steps(client, assistant, thread):
        return await client.runs.wait(thread, assistant, input={
            "image": str(photo), "instruction": "replace the dark square with a red ball",
            "mask": _mask_uri(), "options": {"steps": 1}},
            context={"settings": {"max_attempts": 1, "planner": "rules", "inpainter": name}})

    result = _on_a_new_thread(url, steps)["result"]
    assert result["inpainter"] == name
    instruction = INPAINTERS[name].prompt_style == "instruction"
    assert result["caption"].endswith("unchanged.") == instruction, result["caption"]
    served = httpx.get(url + result["image_url"], timeout=10)
    after = np.asarray(Image.open(io.BytesIO(served.content)).convert("RGB"))
    before = np.asarray(Image.open(photo).convert("RGB"))
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(_mask_uri().split(",")[1]))))
    outside = ~blend_zone(mask)
    assert outside.any() and np.array_equal(after[outside], before[outside])
    assert np.abs(after[mask > 0].astype(int) - before[mask > 0]).mean() > 1.0
