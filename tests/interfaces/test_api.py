"""The HTTP API driven as a client would: multipart uploads, JSON answers, SSE, PNG artifacts."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import numpy as np
import pytest

from interfaces.api import check_bind, create_app
from tests.interfaces.conftest import LOOPBACK, make_image, png

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

INSTRUCTION = "remove the dark square"


@pytest.fixture
def client(offline_factory) -> TestClient:
    app = create_app(offline_factory, max_body_bytes=2_000_000, max_pixels=500_000)
    with TestClient(app, base_url=LOOPBACK) as test_client:
        yield test_client


def new_session(client: TestClient) -> str:
    response = client.post("/sessions")
    assert response.status_code == 201, response.text
    return response.json()["id"]


def post_edit(client, session_id, image=None, mask=None, **data) -> Any:
    files = {}
    if image is not None:
        files["image"] = ("in.png", image, "image/png")
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    data.setdefault("instruction", INSTRUCTION)
    params = {k: data.pop(k) for k in ("wait", "stream") if k in data}
    return client.post(
        f"/sessions/{session_id}/edits", data=data, files=files or None, params=params
    )


def assert_error(response, status: int, kind: str | None = None, words: str = "") -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
    if kind:
        assert body["error"]["type"] == kind
    assert words.lower() in body["error"]["message"].lower(), body
    return body


def test_health(client):
    assert client.get("/healthz").json()["status"] == "ok"


def test_edit_chain_artifacts_trace_and_undo(client, image_png, mask_png):
    session_id = new_session(client)
    first = post_edit(client, session_id, image_png, mask_png, options='{"seed": 7}')
    assert first.status_code == 201, first.text
    body = first.json()
    assert first.headers["location"] == body["links"]["status"]
    assert body["status"] == "done"
    result = body["result"]
    assert result["inpainter"] == "opencv" and result["planner"] == "rules"
    assert result["turn"] == 1 and result["session_id"] == session_id

    png_response = client.get(body["links"]["image"])
    assert png_response.status_code == 200
    assert png_response.headers["content-type"] == "image/png"
    assert png_response.content.startswith(b"\x89PNG")

    # No image: continue from the last result.
    second = post_edit(client, session_id, mask=mask_png, steps="3")
    assert second.status_code == 201, second.text
    assert second.json()["result"]["source_image"] == result["image"]

    turns = client.get(f"/sessions/{session_id}").json()
    assert [t["turn"] for t in turns["turns"]] == [1, 2]
    assert turns["image"] == second.json()["result"]["image"]

    trace = client.get(f"/sessions/{session_id}/trace").json()
    nodes = [e["node"] for e in trace["events"]]
    assert "inpaint" in nodes and "verify" in nodes

    undone = client.post(f"/sessions/{session_id}/undo")
    assert undone.status_code == 200, undone.text
    assert undone.json()["image"] == result["image"]
    assert [t["undone"] for t in undone.json()["turns"]] == [False, True]
    back_to_start = client.post(f"/sessions/{session_id}/undo", json={"turn": 0})
    assert back_to_start.json()["image"] == result["source_image"]


def test_user_caption_reaches_the_result(client, image_png, mask_png):
    session_id = new_session(client)
    response = post_edit(client, session_id, image_png, mask_png, caption=" a  bare wooden table ")
    assert response.status_code == 201, response.text
    assert response.json()["result"]["caption"] == "a bare wooden table"


def test_async_edit_and_status(client, image_png, mask_png):
    session_id = new_session(client)
    started = post_edit(client, session_id, image_png, mask_png, wait="false")
    assert started.status_code == 202
    assert started.headers["location"] == started.json()["links"]["status"]
    status_url = started.json()["links"]["status"]
    for _ in range(300):
        status = client.get(status_url).json()
        if status["status"] != "running":
            break
        time.sleep(0.05)
    assert status["status"] == "done"
    events = client.get(started.json()["links"]["events"]).text
    assert "event: done" in events and "event: node" in events


@pytest.mark.parametrize(
    ("kwargs", "status", "kind", "words"),
    [
        ({"image": b"not an image at all"}, 422, "InvalidImageError", "not an image"),
        ({"image": b""}, 422, "InvalidImageError", "empty"),
        ({"options": "{not json"}, 422, "InvalidRequestError", "not valid JSON"),
        ({"options": '{"stpes": 3}'}, 422, "InvalidRequestError", "unknown option"),
        ({"steps": "0"}, 422, "InvalidRequestError", "options.steps"),
        ({"inpainter": "magic"}, 422, "InvalidRequestError", "inpainter"),
        ({"instruction": "   "}, 422, "InvalidRequestError", "instruction"),
        ({"mask": png(np.zeros((10, 10), np.uint8))}, 422, "InvalidMaskError", "10x10"),
        ({"mask": png(np.full((32, 48), 255, np.uint8))}, 422, "InvalidMaskError", "48x32"),
        ({"mask": png(np.full((64, 64), 255, np.uint8))}, 422, "InvalidMaskError", "96x64"),
        ({"mask": png(np.zeros((64, 96), np.uint8))}, 422, "InvalidMaskError", "empty"),
        ({"caption": "x" * 501}, 422, "InvalidTextError", "`caption` has 501 characters; the limit is 500"),
    ],
)
def test_bad_edits_are_4xx_and_leave_nothing(client, image_png, kwargs, status, kind, words):
    session_id = new_session(client)
    kwargs.setdefault("image", image_png)
    response = post_edit(client, session_id, **kwargs)
    assert_error(response, status, kind, words)
    assert client.get(f"/sessions/{session_id}").json()["turns"] == []


def test_pixel_and_body_limits(client):
    session_id = new_session(client)
    big = png(np.zeros((800, 800, 3), np.uint8))  # 640k pixels > 500k, small file
    assert_error(post_edit(client, session_id, big), 413, "ImageTooLargeError", "over the limit")
    huge = b"\0" * 2_100_000
    assert_error(post_edit(client, session_id, huge), 413, "RequestTooLarge", "over the limit")
    assert client.get(f"/sessions/{session_id}").json()["turns"] == []


def test_lookups_are_validated(client):
    assert_error(client.get("/artifacts/..%2F..%2Fetc%2Fpasswd"), 404, "NotFound")
    assert_error(client.get("/artifacts/passwd"), 422, "InvalidRequestError", "sha256")
    assert_error(client.get("/artifacts/" + "ab" * 32), 404, "NotFoundError")
    assert_error(client.get("/artifacts/" + "AB" * 32), 422, "InvalidRequestError", "hex")
    assert_error(client.get("/sessions/nope"), 404, "NotFoundError", "POST /sessions")
    assert_error(client.get("/sessions/a.b"), 404, "NotFoundError")
    assert_error(post_edit(client, "missing"), 404, "NotFoundError")
    session_id = new_session(client)
    assert_error(post_edit(client, session_id), 422, "InvalidRequestError", "send an `image`")
    assert_error(client.post(f"/sessions/{session_id}/undo"), 422, "InvalidRequestError")
    assert_error(client.get(f"/sessions/{session_id}/edits/xyz"), 404, "NotFoundError")


def test_bearer_token(offline_factory, image_png):
    app = create_app(offline_factory, token="s3cret")
    with TestClient(app, base_url=LOOPBACK) as c:
        assert c.get("/healthz").status_code == 200
        denied = c.post("/sessions")
        assert_error(denied, 401, "Unauthorized", "Bearer")
        assert denied.headers["www-authenticate"].startswith("Bearer")
        assert c.post("/sessions", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = c.post("/sessions", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 201


def test_open_bind_needs_a_token():
    from tools.errors import ConfigError

    with pytest.raises(ConfigError, match="BRUSHEDIT_API_TOKEN"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "token")
    check_bind("127.0.0.1", None)


def test_responses_match_the_openapi_schema(client, image_png, mask_png):
    jsonschema = pytest.importorskip("jsonschema")
    spec = client.get("/openapi.json").json()

    def check(path: str, method: str, response) -> None:
        operation = spec["paths"][path][method]
        declared = operation["responses"][str(response.status_code)]
        schema = declared["content"]["application/json"]["schema"]
        document = {**schema, "components": spec["components"]}
        jsonschema.validate(response.json(), document)

    session = client.post("/sessions")
    check("/sessions", "post", session)
    sid = session.json()["id"]
    edit = post_edit(client, sid, image_png, mask_png)
    check("/sessions/{session_id}/edits", "post", edit)
    check("/sessions/{session_id}", "get", client.get(f"/sessions/{sid}"))
    check("/sessions/{session_id}/trace", "get", client.get(f"/sessions/{sid}/trace"))
    check("/sessions/{session_id}/undo", "post", client.post(f"/sessions/{sid}/undo"))
    check("/healthz", "get", client.get("/healthz"))
    check("/sessions/{session_id}/edits", "post", post_edit(client, sid, b"junk"))
    check("/sessions/{session_id}", "get", client.get("/sessions/missing"))
    check("/artifacts/{digest}", "get", client.get("/artifacts/" + "0" * 64))
    check("/sessions", "get", client.get("/sessions", params={"limit": 1}))
    check("/sessions", "get", client.get("/sessions", params={"limit": 0}))
    check("/sessions/{session_id}/edits", "get", client.get(f"/sessions/{sid}/edits"))
    check("/sessions/{session_id}/edits/{edit_id}", "get",
          client.get(edit.headers["location"]))
    check("/sessions/{session_id}/edits/{edit_id}/resume", "post",
          client.post(edit.headers["location"] + "/resume"))
    check("/sessions/{session_id}/edits", "post",
          client.post(f"/sessions/{sid}/edits", json={"instruction": "x"}))
    check("/sessions/{session_id}/undo", "post",
          client.post(f"/sessions/{sid}/undo", json={"turn": 2**64}))
    assert client.delete(f"/sessions/{sid}").status_code == 204
    check("/sessions/{session_id}", "delete", client.delete(f"/sessions/{sid}"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sse_over_a_real_server(offline_factory, image_png, mask_png):
    """One real uvicorn on loopback: the events arrive as a text/event-stream."""
    import httpx
    import uvicorn

    port = _free_port()
    app = create_app(offline_factory)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=60) as http:
            sid = http.post("/sessions").json()["id"]
            events: list[tuple[str, dict]] = []
            with http.stream(
                "POST", f"/sessions/{sid}/edits", params={"stream": "true"},
                data={"instruction": INSTRUCTION},
                files={"image": ("in.png", image_png, "image/png"),
                       "mask": ("m.png", mask_png, "image/png")},
            ) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                kind = None
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        kind = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        events.append((kind, json.loads(line.removeprefix("data: "))))
            kinds = [k for k, _ in events]
            assert kinds[-1] == "done"
            assert "node" in kinds and "progress" in kinds
            assert all("path" not in data for _, data in events)
            result = events[-1][1]["result"]
            image = http.get(f"/artifacts/{result['image']}")
            assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_make_image_is_editable():
    assert make_image().shape == (64, 96, 3)
