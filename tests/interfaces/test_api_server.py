"""The HTTP API used as a hostile or careless client would, over a real uvicorn on loopback."""

from __future__ import annotations

import base64
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from tests.interfaces.conftest import make_image, make_mask, png

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from interfaces.api import check_bind, create_app  # noqa: E402

INSTRUCTION = "remove the dark square"
CLI_FLAG = re.compile(r"--[a-z]")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A real uvicorn in a thread; `http` is an httpx client on its base URL."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        self.http = httpx.Client(base_url=self.base, timeout=60)
        return self.http

    def __exit__(self, *exc: Any) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def serve(offline_factory) -> Iterator[Callable[..., Server]]:
    def start(factory: Any = offline_factory, **kwargs: Any) -> Server:
        return Server(create_app(factory, **kwargs))

    yield start


def edit_files(image: bytes | None = None, mask: bytes | None = None) -> dict[str, Any]:
    files = {"image": ("in.png", image or png(make_image()), "image/png")}
    if mask is not False:
        files["mask"] = ("m.png", mask or png(make_mask()), "image/png")
    return files


def error_of(response, status: int, kind: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
    if kind:
        assert body["error"]["type"] == kind, body
    message = body["error"]["message"]
    assert message and "Traceback" not in message and not CLI_FLAG.search(message), message
    return message


# --------------------------------------------------------------------------- auth and docs


def test_docs_and_schema_need_the_token(serve):
    with serve(token="s3cret") as http:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/static/swagger-ui-bundle.js"):
            denied = http.get(path)
            error_of(denied, 401, "Unauthorized")
            assert "Basic" in denied.headers["www-authenticate"]  # browsers ask for it
            assert http.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert http.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
            basic = base64.b64encode(b"anyone:s3cret").decode()
            assert http.get(path, headers={"Authorization": f"Basic {basic}"}).status_code == 200
        # The API itself takes only the bearer form.
        basic = base64.b64encode(b"anyone:s3cret").decode()
        assert http.post("/sessions", headers={"Authorization": f"Basic {basic}"}
                         ).status_code == 401
        assert http.get("/healthz").status_code == 200
        spec = http.get("/openapi.json", headers={"Authorization": "Bearer s3cret"}).json()
        assert "401" in spec["paths"]["/sessions"]["post"]["responses"]
        assert spec["paths"]["/sessions"]["post"]["security"]


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_a_blank_token_is_no_token(serve, blank):
    with serve(token=blank) as http:
        assert http.post("/sessions").status_code == 201  # no token asked, none configured
    from tools.errors import ConfigError

    with pytest.raises(ConfigError, match="BRUSHEDIT_API_TOKEN"):
        check_bind("0.0.0.0", blank)


def test_docs_work_offline_from_the_installed_package(serve):
    with serve() as http:
        for page in ("/docs", "/redoc"):
            html = http.get(page)
            assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
            urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html.text)
            assert urls, html.text
            assert "http://" not in html.text and "https://" not in html.text and "//cdn" \
                not in html.text
            for url in urls:
                assert url.startswith("/"), url
                asset = http.get(url)
                assert asset.status_code == 200, url
                if url.endswith(".js"):
                    assert len(asset.content) > 100_000  # the real bundle, not a stub
        assert http.get("/docs/static/../../etc/passwd").status_code == 404
        error_of(http.get("/docs/static/core.py"), 404, "NotFoundError")


# --------------------------------------------------------------------------- integers


BIG = [2**64, 2**63, -(2**63) - 1, 10**30]


@pytest.mark.parametrize("value", BIG)
def test_integers_out_of_range_are_422_on_every_route(serve, value):
    with serve() as http:
        sid = http.post("/sessions").json()["id"]
        for field in ("seed", "steps", "samples", "max_attempts"):
            message = error_of(http.post(f"/sessions/{sid}/edits", files=edit_files(),
                                         data={"instruction": INSTRUCTION, field: str(value)}),
                               422, "InvalidRequestError")
            assert f"options.{field}" in message and message.endswith(".")
            message = error_of(http.post(f"/sessions/{sid}/edits", files=edit_files(),
                                         data={"instruction": INSTRUCTION,
                                               "options": f'{{"{field}": {value}}}'}),
                               422, "InvalidRequestError")
            assert f"options.{field}" in message
        assert "turn" in error_of(http.post(f"/sessions/{sid}/undo", json={"turn": value}), 422)
        for name in ("limit", "offset"):
            assert name in error_of(http.get("/sessions", params={name: value}), 422)
        first = http.post(f"/sessions/{sid}/edits", files=edit_files(),
                          data={"instruction": INSTRUCTION}).json()
        message = error_of(http.get(first["links"]["events"],
                                    headers={"Last-Event-ID": str(value)}), 422)
        assert "last-event-id" in message.lower()
        assert http.get(f"/sessions/{sid}").json()["turns"][0]["status"] == "done"


# --------------------------------------------------------------------------- REST


def test_sessions_list_in_pages_and_delete(serve):
    with serve() as http:
        ids = [http.post("/sessions").json()["id"] for _ in range(5)]
        first = http.get("/sessions", params={"limit": 2}).json()
        assert first["total"] == 5 and len(first["sessions"]) == 2 and first["next"]
        seen = [s["id"] for s in first["sessions"]]
        page = first
        while page["next"]:
            page = http.get(page["next"]).json()
            seen += [s["id"] for s in page["sessions"]]
        assert sorted(seen) == sorted(ids) and len(seen) == 5
        assert http.get("/sessions", params={"offset": 99}).json()["sessions"] == []

        sid = ids[0]
        edit = http.post(f"/sessions/{sid}/edits", files=edit_files(),
                         data={"instruction": INSTRUCTION})
        assert edit.status_code == 201
        shared = http.post(f"/sessions/{ids[1]}/edits", files=edit_files(),
                           data={"instruction": INSTRUCTION, "seed": "5"})
        assert shared.json()["result"]["source_image"] == edit.json()["result"]["source_image"]
        deleted = http.delete(f"/sessions/{sid}")
        assert deleted.status_code == 204 and deleted.content == b""
        error_of(http.get(f"/sessions/{sid}"), 404, "NotFoundError")
        error_of(http.get(edit.headers["location"]), 404, "NotFoundError")
        error_of(http.delete(f"/sessions/{sid}"), 404, "NotFoundError")
        assert http.get("/sessions").json()["total"] == 4
        # Its images go with it, but those another session uses stay (shared by hash; HEAD
        # works as GET does).
        source = f"/artifacts/{edit.json()['result']['source_image']}"
        assert http.get(source).status_code == 200
        head = http.head(source)
        assert head.status_code == 200 and head.content == b""
        assert http.get(edit.json()["links"]["image"]).status_code == 200  # the same result
        assert int(head.headers["content-length"]) > 0
        assert http.head("/artifacts/" + "0" * 64).status_code == 404


def test_created_edits_have_a_location_and_async_ones_202(serve):
    with serve() as http:
        sid = http.post("/sessions").json()["id"]
        created = http.post(f"/sessions/{sid}/edits", files=edit_files(),
                            data={"instruction": INSTRUCTION})
        assert created.status_code == 201
        assert http.get(created.headers["location"]).json()["status"] == "done"
        started = http.post(f"/sessions/{sid}/edits", files=edit_files(),
                            data={"instruction": INSTRUCTION}, params={"wait": "false"})
        assert started.status_code == 202
        assert started.headers["location"].endswith(started.json()["edit_id"])
        listed = http.get(f"/sessions/{sid}/edits").json()["edits"]
        assert [e["edit_id"] for e in listed] == [created.json()["edit_id"],
                                                   started.json()["edit_id"]]


def test_wrong_methods_get_405_with_allow(serve):
    with serve() as http:
        sid = http.post("/sessions").json()["id"]
        for method, path, allowed in [
            ("PUT", "/sessions", {"GET", "POST"}),
            ("PATCH", f"/sessions/{sid}", {"GET", "DELETE"}),
            ("DELETE", "/healthz", {"GET"}),
            ("GET", f"/sessions/{sid}/undo", {"POST"}),
        ]:
            response = http.request(method, path)
            message = error_of(response, 405, "MethodNotAllowed")
            got = {m.strip() for m in response.headers["allow"].split(",")} - {"HEAD"}
            assert got == allowed, (path, response.headers["allow"])
            assert method in message


def test_chunked_bodies_over_the_limit_get_413(serve):
    sent = []

    def chunks() -> Iterator[bytes]:
        yield (b'--zz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
               b"Content-Type: image/png\r\n\r\n")
        for _ in range(100):
            sent.append(1)
            yield b"x" * 10_000

    with serve(max_body_bytes=200_000) as http:
        sid = http.post("/sessions").json()["id"]
        request = http.build_request(
            "POST", f"/sessions/{sid}/edits", content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=zz"})
        assert "content-length" not in request.headers
        assert request.headers["transfer-encoding"] == "chunked"
        try:
            response = http.send(request)
        except httpx.HTTPError:  # the server may close before all chunks are sent
            pytest.fail("the server dropped the connection instead of answering 413")
        error_of(response, 413, "RequestTooLarge")
        assert http.get(f"/sessions/{sid}").json()["turns"] == []
        assert http.get("/healthz").status_code == 200


def test_malformed_and_mistyped_bodies(serve):
    with serve() as http:
        sid = http.post("/sessions").json()["id"]
        assert "JSON" in error_of(http.post(
            f"/sessions/{sid}/undo", content=b"{bad", headers={"content-type": "application/json"}
        ), 422, "InvalidRequestError")
        error_of(http.post(f"/sessions/{sid}/undo", content=b"turn=1",
                           headers={"content-type": "text/plain"}), 415, "UnsupportedMediaType")
        assert "multipart" in error_of(http.post(f"/sessions/{sid}/edits",
                                                 json={"instruction": INSTRUCTION}), 415)
        assert "cannot be parsed" in error_of(http.post(
            f"/sessions/{sid}/edits", content=b"\x00\xff" * 100,
            headers={"content-type": "multipart/form-data; boundary=zz"}), 400, "BadRequest")
        error_of(http.post(f"/sessions/{sid}/edits", files=edit_files(),
                           data={"instruction": INSTRUCTION,
                                 "options": "[" * 100_000 + "]" * 100_000}),
                 422, "InvalidRequestError")
        assert "cannot be parsed" in error_of(http.post(
            f"/sessions/{sid}/undo", content=b"[" * 100_000 + b"]" * 100_000,
            headers={"content-type": "application/json"}), 400, "BadRequest")
        assert "sed" in error_of(http.post(f"/sessions/{sid}/edits", files=edit_files(),
                                           data={"instruction": INSTRUCTION, "sed": "5"}), 422)
        twice = [("image", ("a.png", png(make_image()), "image/png")),
                 ("image", ("b.png", png(make_image(48, 32)), "image/png"))]
        assert "image" in error_of(http.post(f"/sessions/{sid}/edits", files=twice,
                                             data={"instruction": INSTRUCTION}), 422)
        error_of(http.post(f"/sessions/{sid}/edits", files=edit_files(b"GIF89a-not-really"),
                           data={"instruction": INSTRUCTION}), 422, "InvalidImageError")
        assert http.get(f"/sessions/{sid}").json()["turns"] == []


def test_huge_headers_are_refused_and_the_server_lives_on(serve):
    with serve() as http:
        error_of(http.get("/healthz", headers={"X-Big": "a" * 200_000}), 431,
                 "RequestHeaderFieldsTooLarge")
        many = {f"X-H{i}": "v" * 20 for i in range(3000)}
        error_of(http.get("/sessions", headers=many), 431)
        assert http.get("/healthz").status_code == 200


def test_unknown_ids_and_bad_hashes(serve):
    with serve() as http:
        error_of(http.get("/nope"), 404, "NotFound")
        error_of(http.get("/sessions/" + "x" * 5000), 404, "NotFoundError")
        error_of(http.delete("/sessions/..%2F..%2Fetc"), 404)
        sid = http.post("/sessions").json()["id"]
        error_of(http.get(f"/sessions/{sid}/edits/" + "f" * 32), 404, "NotFoundError")
        error_of(http.get(f"/sessions/{sid}/edits/" + "f" * 500), 404, "NotFoundError")
        error_of(http.post(f"/sessions/{sid}/edits/abc/resume"), 404, "NotFoundError")
        error_of(http.get(f"/sessions/{sid}/edits/abc/events"), 404, "NotFoundError")
        for digest in ("g" * 64, "0" * 63, "0" * 65, "%00" * 10, "A" * 64):
            assert http.get(f"/artifacts/{digest}").status_code in (404, 422)
        error_of(http.get("/artifacts/" + "0" * 64), 404, "NotFoundError")


def test_sse_resumes_after_last_event_id(serve):
    with serve() as http:
        sid = http.post("/sessions").json()["id"]
        with http.stream("POST", f"/sessions/{sid}/edits", params={"stream": "true"},
                         files=edit_files(), data={"instruction": INSTRUCTION}) as live:
            assert live.status_code == 200 and live.headers["location"]
            frames = _frames(live.iter_lines())
        ids = [int(f["id"]) for f in frames if "id" in f]
        assert ids == list(range(1, len(ids) + 1)) and frames[-1]["event"] == "done"
        location = live.headers["location"]
        replay = _frames(http.get(location + "/events").iter_lines())
        assert [f.get("id") for f in replay] == [f.get("id") for f in frames]
        middle = ids[len(ids) // 2]
        rest = _frames(http.get(location + "/events",
                                headers={"Last-Event-ID": str(middle)}).iter_lines())
        assert [int(f["id"]) for f in rest] == ids[middle:]
        assert _frames(http.get(location + "/events",
                                headers={"Last-Event-ID": str(ids[-1])}).iter_lines()) == []


def _frames(lines: Any) -> list[dict[str, str]]:
    frames, current = [], {}
    for line in lines:
        if not line.strip():
            if current:
                frames.append(current)
            current = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            current[key] = value.strip()
    if current:
        frames.append(current)
    return frames


# --------------------------------------------------------------------------- concurrency


def test_concurrent_edits_on_one_session(serve, tmp_path):
    from tests.graphs.helpers import SleepyInpainter, make_components

    components = make_components(
        tmp_path / "slow", planner="rules",
        inpainters={"opencv": SleepyInpainter(tmp_path / "started", seconds=1.5)},
    )
    with serve(lambda: components) as http:
        sid = http.post("/sessions").json()["id"]

        def post(_: int) -> httpx.Response:
            return httpx.post(f"{http.base_url}/sessions/{sid}/edits", files=edit_files(),
                              data={"instruction": INSTRUCTION}, timeout=60)

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(post, range(4)))
        codes = sorted(r.status_code for r in answers)
        assert codes == [201, 409, 409, 409], [r.text for r in answers]
        for r in answers:
            if r.status_code == 409:
                error_of(r, 409, "ConflictError")
        assert [t["status"] for t in http.get(f"/sessions/{sid}").json()["turns"]] == ["done"]
    components.close()


# --------------------------------------------------------------------------- missing models


def test_missing_models_are_503_in_api_words(tmp_path, serve):
    from graphs import Settings, build_components

    settings = Settings(data_dir=tmp_path / "data", base_model=str(tmp_path / "no-base"),
                        brushnet=str(tmp_path / "no-brushnet"), _env_file=None)
    components = build_components(settings, inpainter="brushnet", planner="rules",
                                  segmenter=False)
    with serve(lambda: components) as http:
        sid = http.post("/sessions").json()["id"]
        message = error_of(http.post(f"/sessions/{sid}/edits", files=edit_files(),
                                     data={"instruction": INSTRUCTION}), 503, "ModelLoadError")
        assert "`inpainter=opencv`" in message
        # No segmentation weights and no mask: 503, and the fix is to send a mask.
        message = error_of(http.post(f"/sessions/{sid}/edits", files=edit_files(mask=False),
                                     data={"instruction": INSTRUCTION, "inpainter": "opencv"}),
                           503)
        assert "`mask`" in message
        # A removal-only inpainter asked for an addition: the fix names the field.
        message = error_of(http.post(f"/sessions/{sid}/edits", files=edit_files(),
                                     data={"instruction": "add a red ball",
                                           "inpainter": "opencv"}), 422)
        assert "`inpainter=brushnet`" in message
    components.close()


def test_a_missing_model_server_is_503(tmp_path, serve):
    from graphs import Settings, build_components

    settings = Settings(data_dir=tmp_path / "data", _env_file=None, ollama_timeout=5,
                        ollama_host=f"http://127.0.0.1:{_free_port()}")  # nothing listens
    components = build_components(settings, inpainter="opencv", planner="vlm", segmenter=False)
    with serve(lambda: components) as http:
        sid = http.post("/sessions").json()["id"]
        message = error_of(http.post(f"/sessions/{sid}/edits", files=edit_files(),
                                     data={"instruction": INSTRUCTION}),
                           503, "VLMUnavailableError")
        assert "Ollama" in message
        assert http.get(f"/sessions/{sid}").json()["turns"][0]["status"] == "failed"
    components.close()


def test_mask_of_another_shape_is_an_invalid_mask(serve):
    with serve() as http:
        sid = http.post("/sessions").json()["id"]
        for shape in [(64, 64), (32, 48), (96, 64)]:  # square, half size, transposed
            mask = png(np.full(shape, 255, np.uint8))
            message = error_of(http.post(f"/sessions/{sid}/edits",
                                         files=edit_files(mask=mask),
                                         data={"instruction": INSTRUCTION}),
                               422, "InvalidMaskError")
            assert f"{shape[1]}x{shape[0]}" in message and "96x64" in message
        assert http.get(f"/sessions/{sid}").json()["turns"] == []


# --------------------------------------------------------------------------- OpenAPI


def test_openapi_describes_every_field_and_only_possible_statuses(serve, tmp_path):
    with serve(token="t") as http:
        spec = http.get("/openapi.json", headers={"Authorization": "Bearer t"}).json()
    missing = [f"{name}.{prop}" for name, schema in spec["components"]["schemas"].items()
               for prop, body in schema.get("properties", {}).items()
               if not body.get("description")]
    assert missing == []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            for param in op.get("parameters", []):
                assert param.get("description"), (path, method, param["name"])
            codes = set(op["responses"])
            if path == "/healthz":
                assert codes == {"200"}
                continue
            assert "401" in codes, (path, method)
            for code in codes - {"200", "201", "202", "204"}:
                ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorBody"), (path, method, code)
    get_session = set(spec["paths"]["/sessions/{session_id}"]["get"]["responses"])
    assert get_session == {"200", "401", "404", "503"}
    edits = spec["paths"]["/sessions/{session_id}/edits"]["post"]
    assert {"201", "202", "409", "413", "415", "422", "503"} <= set(edits["responses"])
    assert "422" not in spec["paths"]["/sessions/{session_id}/trace"]["get"]["responses"]
    form = edits["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    body = spec["components"]["schemas"][form.rsplit("/", 1)[1]]["properties"]
    from tools.types import EditOptions

    for name in EditOptions.model_fields:  # every option, with its bounds
        assert name in body
    seed = body["seed"]["anyOf"][0]
    assert seed["maximum"] <= 2**63 and seed["minimum"] >= 0  # JSON floats round 2**63-1


def test_unreachable_database_is_503_and_a_crash_is_a_json_500(serve, tmp_path):
    from graphs import Settings, build_components

    pytest.importorskip("psycopg")
    settings = Settings(data_dir=tmp_path / "data", _env_file=None,
                        database_url=f"postgresql://nobody@127.0.0.1:{_free_port()}/none")
    with serve(lambda: build_components(settings, inpainter="opencv", planner="rules",
                                        segmenter=False)) as http:
        assert "Postgres" in error_of(http.post("/sessions"), 503, "ConfigError")
        assert "Postgres" in error_of(http.get("/sessions"), 503, "ConfigError")
        assert http.get("/healthz").status_code == 200

    def broken() -> Any:
        raise RuntimeError("secret internals")

    with serve(broken) as http:
        response = http.get("/sessions")
        message = error_of(response, 500, "InternalError")
        assert "secret" not in message and "log" in message
