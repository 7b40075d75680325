"""A hostile platform user against the real `langgraph dev` server, through the SDK only.

Every bad input ends its run with one sentence (the error's type and message reach the client,
no traceback, no server path), a failed or cancelled run leaves the thread usable with its
earlier turns, a garbage resume command leaves the thread resumable, and `/artifacts/` serves
nothing outside the store. One server for the module; the in-process cases are in
test_requests.py.
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import io
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.graphs import test_langgraph_server as base
from tests.graphs.test_langgraph_server import pytestmark, server  # noqa: F401 - a fixture
from tests.tools.image_files import png_header_only

RULES = {"settings": {"planner": "rules", "inpainter": "opencv", "max_attempts": 1}}
"""No VLM, no weights: the rule planner and the OpenCV fill (CPU, milliseconds)."""


def _uri(array: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def web(server):  # noqa: F811
    """A local http.server with the photo, a 404 and a URL that hangs; yields (base URL, files)."""
    root = Path(server[1]) / "www"
    root.mkdir(exist_ok=True)
    photo = base._photo(root)
    data = photo.read_bytes()
    (root / "cut.png").write_bytes(data[: len(data) // 2])
    (root / "notes.png").write_text("not an image\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path == "/hang":
                time.sleep(15)
                return
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def _client_session(url, steps):
    from langgraph_sdk import get_client

    async def go():
        client = get_client(url=url)
        return await steps(client, await base._assistant(client))

    return base._run(go())


def _one_sentence(error, tmp) -> None:
    message = error["message"]
    assert "internal error" not in message.lower() and "Traceback" not in message, error
    assert "\n" not in message, error  # one sentence, no doc links or pydantic listings
    assert str(base.REPO) not in message and str(tmp / "data") not in message, error


def _bad_runs(web_url, root, photo):
    """(case, input, context, error type, message fragment): what a careless client sends."""
    good = {"image": photo, "instruction": "remove the dark square", "mask": base._mask_uri()}
    settings = RULES["settings"]
    bad_input = [
        ("list input", [1, 2], RULES, "InvalidRequestError", "input must be an object"),
        ("text input", "remove it", RULES, "InvalidRequestError", "input must be an object"),
        ("number image", {**good, "image": 5}, RULES, "InvalidRequestError", "`image` must be"),
        ("no instruction", {"image": photo, "mask": base._mask_uri()}, RULES, "InvalidRequestError",
         "instruction is empty"),
        ("huge instruction", {**good, "instruction": "x" * 50_000}, RULES,
         "InvalidTextError", "the limit is"),
        ("non-image file", {**good, "image": str(root / "notes.png")}, RULES,
         "InvalidImageError", "not an image file"),
        ("truncated png", {**good, "image": str(root / "cut.png")}, RULES, "InvalidImageError",
         "truncated"),
        ("bad base64", {**good, "image": "data:image/png;base64,@@@"}, RULES,
         "InvalidImageError", "not valid base64"),
        ("url 404", {**good, "image": f"{web_url}/nope.png"}, RULES, "InvalidImageError",
         "HTTP 404"),
        ("url hangs", {**good, "image": f"{web_url}/hang"}, RULES, "InvalidImageError",
         "could not fetch"),
        ("ftp url", {**good, "image": "ftp://example.com/a.png"}, RULES, "InvalidImageError",
         "ftp:// scheme"),
        ("file url", {**good, "image": "file:///etc/passwd"}, RULES, "InvalidImageError",
         "file:// scheme"),
        ("unknown hash", {**good, "image": "a" * 64}, RULES, "InvalidRequestError",
         "not in the store"),
        ("mask of another size", {**good, "mask": _uri(np.full((90, 40), 255, np.uint8))}, RULES,
         "InvalidMaskError", "aspect ratio"),
        # NaN as JSON text: the SDK's orjson sends a float NaN as null, which is the default
        ("nan option", {**good, "options": {"guidance_scale": "nan"}}, RULES,
         "InvalidRequestError", "`options.guidance_scale` must be a finite number"),
        ("negative seed", {**good, "options": {"seed": -1}}, RULES, "InvalidRequestError",
         "`options.seed`"),
        ("unknown option", {**good, "options": {"frobnicate": 1}}, RULES, "InvalidRequestError",
         "unknown option(s) frobnicate"),
        ("escape in instruction", {**good, "instruction": "remove \x1b[2Jit"}, RULES,
         "InvalidTextError", "`instruction` contains the control character"),
        ("nul in caption", {**good, "caption": "grass\x00"}, RULES, "InvalidTextError",
         "`caption` contains the control character"),
        ("bell in negative prompt", {**good, "options": {"negative_prompt": "dog\x07"}}, RULES,
         "InvalidTextError", "`options.negative_prompt` contains the control character"),
        # issue 24: one caption limit, text the rules cannot read, images too small or too big
        ("long caption", {**good, "caption": "c" * 501}, RULES, "InvalidTextError",
         "`caption` has 501 characters; the limit is 500"),
        ("right-to-left override", {**good, "instruction": "remove the dark \u202eerauqs"},
         RULES, "InvalidTextError", "right-to-left override character (U+202E)"),
        ("Chinese for the rules", {**good, "instruction": "删除深色方块"}, RULES,
         "InstructionNotUnderstoodError", "Han (Chinese characters) script"),
        ("emoji only", {**good, "instruction": "🐱🐶"}, RULES,
         "InstructionNotUnderstoodError", "only symbols"),
        ("10 px image", {**good, "image": _uri(np.zeros((10, 10, 3), np.uint8))}, RULES,
         "ImageTooSmallError", "at least 16 px"),
        ("header-only 49 MP image", {**good, "image": "data:image/png;base64," + base64.b64encode(
            png_header_only(7000, 7000)).decode()}, RULES, "ImageTooLargeError", "7000x7000"),
    ]
    bad_context = [
        ("unknown setting", {"settings": {**settings, "bogus": 1}}, "unknown context settings"),
        ("settings as text", {"settings": "rules"}, "`settings` must be an object"),
        ("max_attempts as text", {"settings": {**settings, "max_attempts": "3"}},
         "`max_attempts` must be a whole number"),
        ("max_image_side 0", {"settings": {**settings, "max_image_side": 0}},
         "`max_image_side` must be a whole number from 64"),
        ("unknown inpainter knob", {"settings": {**settings, "inpainter": "gimp"}},
         "`inpainter` must be"),
        ("dilation as text", {"settings": {**settings, "dilation_step_px": "x"}},
         "`dilation_step_px`"),
    ]
    return bad_input + [(case, good, ctx, "ConfigError", text) for case, ctx, text in bad_context]


def test_every_bad_input_ends_the_run_in_one_sentence(server, web):  # noqa: F811
    url, tmp = server
    cases = _bad_runs(*web, str(web[1] / "photo.png"))

    async def steps(client, assistant):
        async def one(payload, context):
            thread = (await client.threads.create())["thread_id"]
            out = await client.runs.wait(thread, assistant, input=payload, context=context,
                                         raise_error=False)
            return out, (await client.threads.get(thread))["status"]

        return await asyncio.gather(*(one(payload, ctx) for _, payload, ctx, _, _ in cases))

    for (case, _, _, kind, fragment), (out, status) in zip(
            cases, _client_session(url, steps), strict=True):
        error = out.get("__error__") if isinstance(out, dict) else None
        assert error, (case, out)
        assert (error["error"], status) == (kind, "error"), (case, error)
        assert fragment in error["message"], (case, error)
        _one_sentence(error, tmp)


def test_failures_keep_the_thread_and_its_turns(server, web):  # noqa: F811
    url, tmp = server

    async def steps(client, assistant):
        thread = (await client.threads.create())["thread_id"]

        async def turn(payload=None, **kw):
            return await client.runs.wait(thread, assistant, input=payload, context=RULES,
                                          raise_error=False, **kw)

        first = await turn({"image": f"{web[0]}/photo.png", "instruction": "remove the dark "
                            "square", "mask": base._mask_uri()})
        other_size = _uri(np.full((90, 40), 255, np.uint8))
        failed = [await turn({"image": 5, "instruction": "x"}),
                  await turn(command={"resume": {"approve": True}}),  # nothing is paused
                  await turn({"instruction": "remove the dark square"}),  # no mask, no segmenter
                  await turn({"mask": base._mask_uri()}),  # the last turn's instruction is not reused
                  await turn({"instruction": "remove it", "mask": other_size,
                              "review_mask": True, "options": {"seed": 3}})]
        await client.threads.update_state(thread, values={"turn": "x"})  # a stale, bad turn
        # Neither the failed turn's review_mask, options nor turn carry over: this one finishes.
        again = await turn({"image": first["result"]["image"].upper(),  # a hash as a log shows it
                            "instruction": "remove the dark square", "mask": base._mask_uri()})
        last = await turn({"instruction": "remove the dark square", "mask": base._mask_uri()})
        fresh = (await client.threads.create())["thread_id"]
        stray = await client.runs.wait(fresh, assistant, command={"resume": {"approve": True}},
                                       context=RULES, raise_error=False)
        return first, failed, again, last, stray

    first, failed, again, last, stray = _client_session(url, steps)
    assert first["result"]["accepted"] and first["result"]["turn"] == 1
    kinds = [f["__error__"]["error"] for f in failed]
    assert kinds == ["InvalidRequestError", "InvalidRequestError", "MaskNeededError",
                     "InvalidRequestError", "InvalidMaskError"], failed
    assert "nothing on this thread waits for an answer" in failed[1]["__error__"]["message"]
    assert "instruction is empty" in failed[3]["__error__"]["message"]
    assert again["result"]["source_image"] == first["result"]["image"]
    assert "__interrupt__" not in again and again["result"]["attempts"] == 1
    assert last["result"]["source_image"] == first["result"]["image"]  # earlier turns kept
    assert last["result"]["turn"] > again["result"]["turn"] > 1
    assert stray["__error__"]["error"] == "InvalidRequestError"  # was a bare TypeError
    for error in [f["__error__"] for f in failed] + [stray["__error__"]]:
        _one_sentence(error, tmp)


@pytest.mark.slow
def test_review_answers_cancel_and_streams(server, web):  # noqa: F811
    url, tmp = server
    photo = str(web[1] / "photo.png")
    good = {"image": photo, "instruction": "remove the dark square", "mask": base._mask_uri()}

    async def steps(client, assistant):
        thread = (await client.threads.create())["thread_id"]
        await client.runs.wait(thread, assistant, input={**good, "review_mask": True},
                               context=RULES)
        asked = []
        for answer in ({"mask": _uri(np.full((90, 40), 255, np.uint8))}, {"approve": "yes"}):
            await client.runs.wait(thread, assistant, command={"resume": answer}, context=RULES)
            state = await client.threads.get_state(thread)
            asked.append([i["value"].get("error") for t in state["tasks"] for i in t["interrupts"]])
        done = await client.runs.wait(thread, assistant, command={"resume": {"mask": base._mask_uri()}},
                                      context=RULES)
        slow = (await client.threads.create())["thread_id"]
        run = await client.runs.create(slow, assistant, input={**good, "image": f"{web[0]}/hang"},
                                       context=RULES)
        await asyncio.sleep(1)
        await client.runs.cancel(slow, run["run_id"], wait=True)
        after = await client.runs.wait(slow, assistant, input=good, context=RULES)
        streams = {}
        for mode in ("values", "updates", "events"):
            for case, payload in (("good", good), ("bad", {**good, "options": [1]})):
                fresh = (await client.threads.create())["thread_id"]
                streams[mode, case] = [part async for part in client.runs.stream(
                    fresh, assistant, input=payload, context=RULES, stream_mode=mode)]
        return asked, done, after, streams

    asked, done, after, streams = _client_session(url, steps)
    assert "aspect ratio" in asked[0][0] and "`approve` is the text 'yes'" in asked[1][0]
    assert done["result"]["accepted"] and done["result"]["mask"]
    assert after["result"]["accepted"]  # the cancelled run did not wedge the thread
    for mode in ("values", "updates", "events"):
        good_events = {part.event for part in streams[mode, "good"]}
        assert mode in good_events and "error" not in good_events, mode
        errors = [part.data for part in streams[mode, "bad"] if part.event == "error"]
        assert errors and errors[0]["error"] == "InvalidRequestError", (mode, errors)
        assert "`options` must be an object" in errors[0]["message"]
        _one_sentence(errors[0], tmp)
    final = [p.data for p in streams["values", "good"] if p.event == "values"][-1]
    assert final["result"]["accepted"]


def test_artifacts_serve_only_the_store(server):  # noqa: F811
    url, tmp = server

    async def steps(client, assistant):
        thread = (await client.threads.create())["thread_id"]
        return await client.runs.wait(thread, assistant, context=RULES, input={
            "image": str(base._photo(tmp)), "instruction": "remove the dark square",
            "mask": base._mask_uri()})

    digest = _client_session(url, steps)["result"]["image"]
    get = lambda path: httpx.get(url + path, timeout=10)  # noqa: E731
    assert get(f"/artifacts/{digest}").headers["content-type"] == "image/png"
    assert get(f"/artifacts/{digest.upper()}").status_code == 200  # a hash in any case
    assert get(f"/artifacts/{'0' * 64}").status_code == 404
    for path in ("/artifacts/..%2f..%2fetc%2fpasswd", "/artifacts/../../etc/passwd",
                 "/artifacts/%2e%2e/%2e%2e/etc/passwd", f"/artifacts/{digest}.png",
                 f"/artifacts/{digest}%00", "/artifacts/..%2f" + digest[:2] + "%2f" + digest,
                 "/artifacts/" + "a" * 5000):
        response = get(path)
        assert response.status_code in (404, 422), path
        assert "root:" not in response.text and str(tmp) not in response.text, path


def test_knobs_and_run_inputs_are_checked_in_process():
    """The same checks without a server: the knobs' types and ranges, and the run input."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command

    from graphs.app import graph
    from graphs.context import Context, GraphSettings
    from graphs.inputs import as_hash
    from tools.errors import ConfigError, InvalidRequestError

    for bad in ({"max_attempts": True}, {"guidance_step": float("nan")}, {"planner": 3},
                {"max_image_side": 10**9}, {"conditioning_step": "1"}):
        with pytest.raises(ConfigError, match=f"`{next(iter(bad))}` must be"):
            GraphSettings(**bad)
    with pytest.raises(ConfigError, match="`settings` must be an object"):
        Context(settings=["rules"])
    assert as_hash(" " + "AB" * 32 + "\n") == "ab" * 32 and as_hash("photo.png") == "photo.png"
    saver_graph = graph.copy(update={"checkpointer": InMemorySaver()})
    config = {"configurable": {"thread_id": "nobody-paused"}}
    with pytest.raises(InvalidRequestError, match="input must be an object"):
        saver_graph.invoke(["x"], config)
    with pytest.raises(InvalidRequestError, match="nothing on this thread waits"):
        saver_graph.invoke(Command(resume={"approve": True}), config)


def test_bad_fields_and_a_garbage_resume_over_the_sdk(server):  # noqa: F811
    from langgraph_sdk import get_client

    url, tmp = server
    photo = str(base._photo(tmp))

    async def go():
        client = get_client(url=url)
        assistant = await base._assistant(client)
        errors = []
        for bad in ({"image": 5}, {"options": {"seed": 2**40}}, {"instruction": ["x"]}):
            thread = (await client.threads.create())["thread_id"]
            out = await client.runs.wait(thread, assistant, input={
                "image": photo, "instruction": "remove the dark square", "mask": base._mask_uri(),
                "options": {"inpainter": "opencv"}, **bad}, raise_error=False)
            errors.append(out["__error__"])
        thread = (await client.threads.create())["thread_id"]
        await client.runs.wait(thread, assistant, input={
            "image": photo, "instruction": "remove the dark square", "mask": base._mask_uri(),
            "review_mask": True, "options": {"inpainter": "opencv"}})
        await client.runs.wait(thread, assistant, command={"resume": "garbage"})
        state = await client.threads.get_state(thread)
        done = await client.runs.wait(thread, assistant, command={"resume": {"approve": True}})
        return errors, state, done

    errors, state, done = base._run(go())
    assert [e["error"] for e in errors] == ["InvalidRequestError"] * 3, errors
    messages = [e["message"] for e in errors]
    assert "`image` must be a path" in messages[0]
    assert "`options.seed`" in messages[1] and "pydantic" not in messages[1]
    assert "`instruction` must be text" in messages[2]
    interrupts = [i for task in state["tasks"] for i in task["interrupts"]]
    assert interrupts and "must be {'approve': true}" in interrupts[0]["value"]["error"]
    assert done["result"]["accepted"]
