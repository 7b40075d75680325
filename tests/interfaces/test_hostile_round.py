"""Issue 24's hostile round, rerun on every surface as a hostile client sends it.

Real HTTP requests to the real API app (uvicorn on loopback), the MCP SDK's client, the CLI,
the LangChain tool and the web editor (gradio_client against the launched editor, its
handlers in process). One server of each kind for the module; the LangGraph server's cases are
in tests/graphs/test_langgraph_server_refusals.py, the multi-process ones (two servers on one
data folder, a full disk) in test_hostile_processes.py.
"""

from __future__ import annotations

import base64
import io
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from interfaces.cli_errors import REFUSED_EXIT
from tests.interfaces.conftest import make_image, make_mask, png
from tests.interfaces.test_api_server import Server
from tests.tools.image_files import (
    exif_with_orientation,
    png_bytes,
    png_header_only,
    stored_for_orientation,
)

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
mcp = pytest.importorskip("mcp")

INSTRUCTION = "remove the dark square"
RLO = "remove the dark \u202eerauqs\u202c"
SECRET_PATH = "/srv/brushedit-secret/artifacts/b1"


# -- what a hostile client sends ---------------------------------------------------------------


def grey16_mask() -> tuple[bytes, float]:
    """A 16-bit mask: a 25%-grey background and a white square; (PNG, the square's share)."""
    mask = np.full((64, 96), 16384, np.uint16)
    mask[18:42, 28:62] = 65535
    return png_bytes(mask, 16), (24 * 34) / (64 * 96)


def exif_pair(orientation: int = 6) -> tuple[bytes, bytes]:
    """A photo and its mask, both stored as a camera does with the same EXIF orientation."""
    upright, mask = make_image(64, 96), make_mask(64, 96)  # displayed 64 wide, 96 tall
    exif = exif_with_orientation(orientation)
    photo = Image.fromarray(stored_for_orientation(upright, orientation))
    stored_mask = Image.fromarray(stored_for_orientation(mask, orientation))
    out = []
    for image in (photo, stored_mask):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", exif=exif, quality=95)
        out.append(buffer.getvalue())
    return out[0], out[1]


def broken_inpainter() -> Any:
    """An inpainter that fails as a bug does, its text holding a server path."""
    from tools.inpaint import OpenCVInpainter

    class BrokenInpainter(OpenCVInpainter):
        def _inpaint(self, *args: Any, **kwargs: Any) -> Any:
            raise FileExistsError(17, "File exists", SECRET_PATH)

    return BrokenInpainter()


# -- the module's servers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Offline components on one data folder, and the real API app over them on loopback."""
    from graphs import Settings, build_components

    root = tmp_path_factory.mktemp("hostile")
    # SQLite in the folder whatever BRUSHEDIT_DATABASE_URL says (module-scoped: no monkeypatch)
    settings = Settings(data_dir=root / "data", database_url=None, _env_file=None)
    components = build_components(settings, inpainter="opencv", planner="rules",
                                  segmenter=False)
    with Server(_app(lambda: components, settings)) as http:
        yield {"root": root, "settings": settings, "components": components, "http": http}
    components.close()


def _app(factory: Any, settings: Any = None) -> Any:
    from interfaces.api import create_app

    return create_app(factory, settings)


def _session(http) -> str:
    return http.post("/sessions").json()["id"]


def _edit(http, sid: str, image: bytes | None = None, mask: bytes | None = None,
          **data: str) -> Any:
    files = {"image": ("in.png", image or png(make_image()), "image/png")}
    if mask is not None:
        files["mask"] = ("m.png", mask, "image/png")
    return http.post(f"/sessions/{sid}/edits", files=files,
                     data={"instruction": INSTRUCTION, **data})


def _error(response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == kind, error
    return error["message"]


def _mcp_error(components, args: dict[str, Any], tool: str = "edit_image") -> str:
    import anyio

    from interfaces.mcp_server import create_mcp_server

    server = create_mcp_server(lambda: components)

    async def call():
        async with mcp.Client(server) as client:
            return await client.call_tool(tool, args)

    result = anyio.run(call)
    assert result.is_error, result
    return result.content[0].text.removeprefix(f"Error executing tool {tool}: ")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _cli(*args: Any, input: bytes | str | None = None):
    from typer.testing import CliRunner

    from interfaces.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def _tool(components) -> Any:
    from interfaces.langchain_tool import make_edit_tool

    return make_edit_tool(components)


# -- kind 8: instruction text ------------------------------------------------------------------


def test_kind8_a_right_to_left_override_is_refused_in_one_sentence_everywhere(world, tmp_path):
    """Before: stored verbatim, so traces showed something other than what was planned."""
    http, components = world["http"], world["components"]
    words = "right-to-left override character (U+202E)"
    assert words in _error(_edit(http, _session(http), mask=png(make_mask()),
                                 instruction=RLO), 422, "InvalidTextError")
    assert words in _mcp_error(components, {"instruction": RLO, "image": _b64(png(make_image())),
                                            "mask": _b64(png(make_mask()))})
    photo, mask = tmp_path / "in.png", tmp_path / "m.png"
    photo.write_bytes(png(make_image()))
    mask.write_bytes(png(make_mask()))
    res = _cli("edit", photo, RLO, "-o", tmp_path / "o.png", "--mask", mask,
               "--inpainter", "opencv", "--planner", "rules")
    assert res.exit_code == REFUSED_EXIT and words in " ".join(res.output.split()), res.output
    reply = _tool(components).invoke({"instruction": RLO, "image": str(photo),
                                      "mask": str(mask)})
    assert reply.startswith("InvalidTextError") and words in reply
    assert not [s for s in components.traces.sessions() if "\u202e" in (s["title"] or "")]


def test_kind8_invisible_characters_are_stripped_before_planning_and_storing(world):
    """Before: a leading BOM or zero-width space turned "remove the shuttle" into a local edit."""
    http = world["http"]
    sid = _session(http)
    done = _edit(http, sid, mask=png(make_mask()), instruction="\ufeff\u200bremove the\u00a0dark "
                 "square\u200b")
    assert done.status_code == 201, done.text
    assert done.json()["result"]["plan"]["category"] == "removal"
    assert http.get(f"/sessions/{sid}").json()["turns"][0]["instruction"] == INSTRUCTION


def test_kind8_text_that_is_not_utf8_is_refused_not_read_as_latin1(world, tmp_path):
    """Before: an instruction in Latin-1 bytes was stored as mojibake (form field, stdin)."""
    http = world["http"]
    sid = _session(http)
    body = _multipart({"instruction": "remove the caf\xe9 sign".encode("latin-1")},
                      {"image": png(make_image()), "mask": png(make_mask())})
    reply = http.post(f"/sessions/{sid}/edits", content=body[1],
                      headers={"content-type": body[0]})
    assert "`instruction` is not valid UTF-8 (byte 0xE9" in _error(reply, 422, "InvalidTextError")
    assert http.get(f"/sessions/{sid}").json()["turns"] == []
    photo, mask = tmp_path / "in.png", tmp_path / "m.png"
    photo.write_bytes(png(make_image()))
    mask.write_bytes(png(make_mask()))
    res = _cli("chat", photo, "--mask", mask, "--inpainter", "opencv", "--planner", "rules",
               input=b"remove the caf\xe9 sign\nquit\n")
    assert res.exit_code == 0 and "is not valid UTF-8 (byte 0xE9" in res.output, res.output
    assert "no edit made" in res.output


def _multipart(fields: dict[str, bytes], files: dict[str, bytes]) -> tuple[str, bytes]:
    boundary = "hostileboundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
             + value + b"\r\n" for name, value in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
              f'filename="{name}.png"\r\nContent-Type: image/png\r\n\r\n'.encode() + value
              + b"\r\n" for name, value in files.items()]
    return f"multipart/form-data; boundary={boundary}", b"".join(parts) + \
        f"--{boundary}--\r\n".encode()


def test_kind8_what_the_rules_cannot_read_is_refused_not_guessed(world, tmp_path):
    """Before: Arabic, Chinese or emoji-only instructions ran as a "global" edit (0.2)."""
    http, components = world["http"], world["components"]
    for text, words in (("أزل المربع الداكن", "Arabic script"), ("🐱🐶", "only symbols")):
        message = _error(_edit(http, _session(http), mask=png(make_mask()), instruction=text),
                         422, "InstructionNotUnderstoodError")
        assert words in message and "a VLM planner can read it" in message
    assert "Han (Chinese characters) script" in _mcp_error(components, {
        "instruction": "删除深色方块", "image": _b64(png(make_image())),
        "mask": _b64(png(make_mask()))})


def test_kind8_the_caption_limit_is_one_on_every_surface(world, tmp_path):
    from graphs.requests import MAX_CAPTION_CHARS
    from tools.text import MAX_CAPTION_CHARS as DEFINED

    assert MAX_CAPTION_CHARS is DEFINED == 500
    http, components = world["http"], world["components"]
    caption = "c" * 501
    words = "`caption` has 501 characters; the limit is 500"
    assert words in _error(_edit(http, _session(http), mask=png(make_mask()), caption=caption),
                           422, "InvalidTextError")
    assert words in _mcp_error(components, {"instruction": INSTRUCTION, "caption": caption,
                                            "image": _b64(png(make_image())),
                                            "mask": _b64(png(make_mask()))})


def test_kind8_after_a_vlm_failure_the_refusal_says_the_vlm_failed(tmp_path):
    """Before: "a VLM planner can read it" right after the VLM planner had failed."""
    from agents.ollama_vlm import OllamaVLM
    from tests.fakes.faulty_model_server import FaultyModelServer
    from tests.graphs.helpers import make_components

    with FaultyModelServer("garbage") as fake:
        components = make_components(tmp_path / "d", planner="auto", vlm=OllamaVLM(
            host=fake.url, timeout=5, retry_base_delay=0.01))
        with Server(_app(lambda: components)) as http:
            message = _error(_edit(http, _session(http), mask=png(make_mask()),
                                   instruction="entferne das dunkle Quadrat"),
                             422, "InstructionNotUnderstoodError")
        components.close()
    assert "the VLM planner, which could, failed (VLMInvalidAnswerError" in message
    assert "a VLM planner can read it" not in message


# -- kinds 7, 9, 11, 13: images ---------------------------------------------------------------


@pytest.mark.parametrize(("size", "words"), [
    ((10, 10), "both sides must be at least 16 px"),
    ((6000, 20), "too thin to edit"),
])
def test_kind9_small_and_thin_images_are_422_everywhere_not_a_crash(world, tmp_path, size,
                                                                    words):
    """Before: an 8-10 px side crashed every surface (API 500, CLI traceback); a 10000x8 photo
    was squeezed to 1024x8 and its own mask refused."""
    http, components = world["http"], world["components"]
    photo = png(np.full((size[1], size[0], 3), 90, np.uint8))
    mask = png(np.full((size[1], size[0]), 255, np.uint8))
    assert words in _error(_edit(http, _session(http), photo, mask), 422, "ImageTooSmallError")
    assert words in _mcp_error(components, {"instruction": INSTRUCTION, "image": _b64(photo),
                                            "mask": _b64(mask)})
    (tmp_path / "in.png").write_bytes(photo)
    (tmp_path / "m.png").write_bytes(mask)
    res = _cli("edit", tmp_path / "in.png", INSTRUCTION, "-o", tmp_path / "o.png", "--mask",
               tmp_path / "m.png", "--inpainter", "opencv", "--planner", "rules")
    assert res.exit_code == REFUSED_EXIT and words in " ".join(res.output.split()), res.output
    reply = _tool(components).invoke({"instruction": INSTRUCTION,
                                      "image": str(tmp_path / "in.png")})
    assert reply.startswith("ImageTooSmallError") and words in reply


def test_kind11_a_huge_image_is_413_from_its_header_before_decoding(world):
    http, components = world["http"], world["components"]
    bomb = png_header_only(7000, 7000, 16)  # 49 MP declared, 60 bytes sent
    message = _error(_edit(http, _session(http), bomb), 413, "ImageTooLargeError")
    assert "7000x7000" in message and "over the limit" in message
    assert "ImageTooLargeError" in _mcp_error(components, {"instruction": INSTRUCTION,
                                                           "image": _b64(bomb)})


def test_kind7_a_16bit_mask_is_scaled_and_kind13_an_exif_mask_fits(world):
    """Before: a 25%-grey 16-bit background was clipped to white (100% edited); a JPEG mask
    with its photo's orientation tag was refused as the wrong size."""
    http = world["http"]
    mask, share = grey16_mask()
    done = _edit(http, _session(http), mask=mask)
    assert done.status_code == 201, done.text
    stored = world["components"].store.get_mask(done.json()["result"]["mask"])
    assert abs((stored > 0).mean() - share) < 0.1
    photo, exif_mask = exif_pair()
    done = _edit(http, _session(http), photo, exif_mask)
    assert done.status_code == 201, done.text
    assert world["components"].store.get_image(done.json()["result"]["image"]).size == (64, 96)


def test_kind7_and_kind13_over_mcp_and_the_langchain_tool(world, tmp_path):
    """The same 16-bit and EXIF masks through the MCP SDK's client and the LangChain tool."""
    import anyio

    from interfaces.mcp_server import create_mcp_server

    components = world["components"]
    mask, share = grey16_mask()
    photo, exif_mask = exif_pair()
    server = create_mcp_server(lambda: components)

    async def call(args):
        async with mcp.Client(server) as client:
            return await client.call_tool("edit_image", args)

    grey = anyio.run(call, {"instruction": INSTRUCTION, "image": _b64(png(make_image())),
                            "mask": _b64(mask)})
    assert not grey.is_error, grey.content
    assert abs(grey.structured_content["metrics"]["coverage"] - share) < 0.02
    turned = anyio.run(call, {"instruction": INSTRUCTION, "image": _b64(photo),
                              "mask": _b64(exif_mask)})
    assert not turned.is_error, turned.content
    tool = _tool(components)
    reply = tool.invoke({"instruction": INSTRUCTION,
                         "image": _stored(tmp_path, png(make_image())),
                         "mask": _stored(tmp_path, mask, "m16.png")})
    assert isinstance(reply, dict), reply
    assert abs((components.store.get_mask(reply["mask"]) > 0).mean() - share) < 0.02
    reply = tool.invoke({"instruction": INSTRUCTION, "image": _stored(tmp_path, photo, "p.jpg"),
                         "mask": _stored(tmp_path, exif_mask, "m.jpg")})
    assert isinstance(reply, dict), reply


@pytest.fixture(scope="module")
def web(world):
    """The launched web editor (its own data folder) and a gradio_client on it."""
    gradio_client = pytest.importorskip("gradio_client")
    from graphs import Settings, build_components
    from interfaces.web import launch

    settings = Settings(data_dir=world["root"] / "web-data", database_url=None,
                        _env_file=None)
    components = build_components(settings, inpainter="opencv", planner="rules",
                                  segmenter=False)
    port = _free_port()
    demo = launch(lambda: components, settings, port=port, block=False)
    url = f"http://127.0.0.1:{port}"
    yield {"url": url, "client": gradio_client.Client(url + "/", verbose=False),
           "settings": settings, "components": components}
    demo.close()
    components.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _preview(web, tmp_path, mask: bytes, photo: bytes | None = None) -> tuple[Any, str]:
    """Upload a mask (and a photo) through the editor's own endpoint: (view, status)."""
    from gradio_client import handle_file

    (tmp_path / "mask.png").write_bytes(mask)
    background = None
    if photo is not None:
        (tmp_path / "photo.png").write_bytes(photo)
        background = handle_file(str(tmp_path / "photo.png"))
    editor = {"background": background, "layers": [], "composite": None}
    view, status = web["client"].predict(editor, handle_file(str(tmp_path / "mask.png")),
                                         api_name="/preview_mask")
    return view, status


def test_web_uploads_are_read_by_the_one_loader_after_their_header(web, tmp_path):
    """Kinds 7, 9, 11, 13 in the web editor. Before: Gradio decoded every upload first (a
    164 KB mask cost 1.85 GB; over Pillow's limit, an AppError), clipping 16-bit masks."""
    photo = png(np.full((64, 96, 3), 120, np.uint8))
    mask, share = grey16_mask()
    view, status = _preview(web, tmp_path, mask, photo)
    red = np.asarray(Image.open(view).convert("RGB")).astype(int)
    marked = (red[..., 0] - red[..., 1]) > 60
    assert "Mask uploaded" in status and abs(marked.mean() - share) < 0.1
    _, status = _preview(web, tmp_path, png_header_only(7000, 7000))
    assert "7000x7000" in status and "over the limit" in status
    _, status = _preview(web, tmp_path, png(make_mask()), png(np.zeros((10, 10, 3), np.uint8)))
    assert "both sides must be at least 16 px" in status
    photo, exif_mask = exif_pair()
    _, status = _preview(web, tmp_path, exif_mask, photo)
    assert "Mask uploaded" in status, status


# -- kind 2: the web editor's file route --------------------------------------------------------


def test_kind2_the_web_editor_serves_no_file_of_its_data_folder(web):
    """Before: `/gradio_api/file=<data_dir>/sessions.sqlite-wal` answered every session's text."""
    data = Path(web["settings"].data_dir)
    files = [p for p in data.rglob("*") if p.is_file()]
    assert any(p.name.startswith("sessions.sqlite") for p in files)
    for path in files:
        reply = httpx.get(f"{web['url']}/gradio_api/file={path}", timeout=10)
        assert reply.status_code == 403, path
    from urllib.parse import quote

    wal = data / "sessions.sqlite"
    for spelling in (f"/gradio_api/file={data}/../{data.name}/sessions.sqlite",
                     f"/gradio_api/file={quote(str(wal), safe='')}",
                     f"/gradio_api/file={str(wal).replace('/', '//')}",
                     f"/gradio_api/file={data}/./sessions.sqlite", f"/file={wal}",
                     f"/gradio_api/file={data}/%2e%2e/{data.name}/sessions.sqlite",
                     "/gradio_api/file=/etc/passwd", f"/gradio_api/file={Path.home()}"):
        reply = httpx.get(web["url"] + spelling, timeout=10)
        assert reply.status_code in (403, 404), (spelling, reply.status_code)
        assert b"SQLite format" not in reply.content and b"root:" not in reply.content


def test_kind4_the_web_editor_answers_only_loopback_host_names(web):
    """Before: `Host: evil.example` got 200, so DNS rebinding reached it from a browser."""
    assert httpx.get(web["url"], timeout=10).status_code == 200
    for host in ("evil.example", "evil.example:7860", "127.0.0.1.nip.io"):
        assert httpx.get(web["url"], headers={"Host": host}, timeout=10).status_code == 421
    foreign = httpx.get(web["url"], headers={"Origin": "http://evil.example"}, timeout=10)
    assert foreign.status_code == 403


# -- kind 3: internal errors --------------------------------------------------------------------


def test_kind3_a_bug_is_internal_error_with_details_only_in_the_log(tmp_path, caplog):
    """Before: a failing edit's body was `{"type": "FileExistsError", "message": "[Errno 17]
    File exists: '/…/artifacts/b1'"}`, and its turn kept that text."""
    from tests.graphs.helpers import make_components

    components = make_components(tmp_path / "d", planner="rules",
                                 inpainters={"opencv": broken_inpainter()})
    internal = "the server failed unexpectedly; its log has the details"
    with Server(_app(lambda: components)) as http:
        sid = _session(http)
        reply = _edit(http, sid, mask=png(make_mask()))
        assert _error(reply, 500, "InternalError") == internal
        turns = http.get(f"/sessions/{sid}").json()["turns"]
        assert turns[0]["status"] == "failed" and SECRET_PATH not in turns[0]["reason"]
        streamed = http.post(f"/sessions/{sid}/edits", params={"stream": "true"},
                             files={"image": ("in.png", png(make_image()), "image/png"),
                                    "mask": ("m.png", png(make_mask()), "image/png")},
                             data={"instruction": INSTRUCTION}).text
        assert "InternalError" in streamed and SECRET_PATH not in streamed
        for path in (f"/sessions/{sid}/edits", f"/sessions/{sid}/trace", f"/sessions/{sid}"):
            shown = http.get(path)  # the job's error, the trace rows, the turns
            assert shown.status_code == 200 and SECRET_PATH not in shown.text, path
            assert "FileExistsError" not in shown.text and "Errno" not in shown.text, path
        edits = http.get(f"/sessions/{sid}/edits").json()["edits"]
        assert edits and edits[0]["status"] == "failed"
        for edit in edits:
            assert SECRET_PATH not in http.get(f"/sessions/{sid}/edits/{edit['edit_id']}"
                                               "/events").text
    text = _mcp_error(components, {"instruction": INSTRUCTION, "image": _b64(png(make_image())),
                                   "mask": _b64(png(make_mask()))})
    assert text == f"InternalError: {internal}"
    reply = _tool(components).invoke({"instruction": INSTRUCTION,
                                      "image": _stored(tmp_path, png(make_image())),
                                      "mask": _stored(tmp_path, png(make_mask()), "m.png")})
    assert reply == f"InternalError: {internal}"
    assert SECRET_PATH in caplog.text  # the details: the log
    components.close()


def _stored(tmp_path: Path, data: bytes, name: str = "in.png") -> str:
    (tmp_path / name).write_bytes(data)
    return str(tmp_path / name)


def test_kind3_the_cli_says_internal_error_in_one_line(tmp_path, monkeypatch):
    import graphs.components

    def broken(*_: Any, **__: Any) -> Any:
        raise FileExistsError(17, "File exists", SECRET_PATH)

    monkeypatch.setattr(graphs.components, "check_data_dir", broken)
    (tmp_path / "in.png").write_bytes(png(make_image()))
    res = _cli("edit", tmp_path / "in.png", INSTRUCTION, "-o", tmp_path / "o.png",
               "--inpainter", "opencv", "--planner", "rules")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert res.output.strip().splitlines() == [
        "Error: InternalError: brushedit failed unexpectedly; run it again with --verbose for "
        "the details"]
    assert SECRET_PATH not in res.output


def test_kind3_help_and_usage_errors_are_not_internal_errors():
    """Typer's own exits (help, a bad option) are not bugs: before, `brushedit edit --help`
    printed its help, then "InternalError" and exited 1."""
    for args, code, words in ((("edit", "--help"), 0, "Continue this session"),
                              (("edit", "--bogus"), 2, "No such option"),
                              (("edit",), 2, "Missing argument"),
                              (("serve", "--help"), 0, "Usage")):
        res = _cli(*args)
        assert res.exit_code == code and words in res.output, (args, res.output)
        assert "InternalError" not in res.output, (args, res.output)


# -- kind 4: DELETE really deletes; Host check ---------------------------------------------------


def test_kind4_a_deleted_session_is_gone_from_every_file_and_its_photo_unserved(world):
    """Before: after 204 the instruction was in sessions.sqlite and its WAL (42 copies) and
    the uploaded photo was still served."""
    http, data = world["http"], Path(world["settings"].data_dir)
    marker = "remove the zqxjv square"  # only this session's text holds it
    sid = _session(http)
    photo = png(make_image(80, 48))  # only this session's photo
    done = _edit(http, sid, photo, png(make_mask(80, 48)), instruction=marker)
    assert done.status_code == 201, done.text
    source = done.json()["result"]["source_image"]
    kept = _edit(http, _session(http), mask=png(make_mask()))  # another session's photo
    assert http.get(f"/artifacts/{source}").status_code == 200
    assert any(marker.encode() in p.read_bytes() for p in data.glob("*.sqlite*"))
    assert http.delete(f"/sessions/{sid}").status_code == 204
    for path in data.glob("*.sqlite*"):
        assert marker.encode() not in path.read_bytes(), path
    assert http.get(f"/artifacts/{source}").status_code == 404
    assert http.get(f"/artifacts/{kept.json()['result']['source_image']}").status_code == 200
    with sqlite3.connect(data / "sessions.sqlite") as db:  # still a sound database
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_kind4_the_api_without_a_token_answers_only_loopback_host_names(world):
    http = world["http"]
    assert http.get("/sessions").status_code == 200
    for host in ("evil.example", "evil.example:8000", "[::2]:80"):
        reply = http.get("/sessions", headers={"Host": host})
        assert _error(reply, 421, "MisdirectedRequest")
    assert _error(http.post("/sessions", headers={"Origin": "http://evil.example"}), 403,
                  "Forbidden")
    assert http.get("/sessions", headers={"Host": "localhost:1"}).status_code == 200


# -- kind 11: a bound on concurrent edits ---------------------------------------------------------


def test_kind11_past_the_bound_an_edit_is_503_with_retry_after(tmp_path):
    from graphs.admission import EditSlots
    from tests.graphs.helpers import SleepyInpainter, make_components

    marker = tmp_path / "inpainting"
    components = make_components(tmp_path / "d", planner="rules",
                                 inpainters={"opencv": SleepyInpainter(marker, 1.5)})
    components.slots = EditSlots(1)  # BRUSHEDIT_MAX_CONCURRENT_EDITS=1
    with Server(_app(lambda: components)) as http:
        first = threading.Thread(target=_edit, args=(http, _session(http), None,
                                                     png(make_mask())))
        first.start()
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        busy = _edit(http, _session(http), mask=png(make_mask()))
        assert "as many edits as it can at once (1)" in _error(busy, 503, "ServerBusyError")
        assert busy.headers["retry-after"] == "5"
        text = _mcp_error(components, {"instruction": INSTRUCTION,
                                       "image": _b64(png(make_image())),
                                       "mask": _b64(png(make_mask()))})
        assert text.startswith("ServerBusyError")
        first.join()
        assert _edit(http, _session(http), mask=png(make_mask())).status_code == 201
    components.close()


def test_settings_name_the_bound_and_default_to_the_cores(monkeypatch):
    import os

    from graphs import Settings, build_components

    assert Settings(_env_file=None).edit_slots() == (os.cpu_count() or 1)
    monkeypatch.setenv("BRUSHEDIT_MAX_CONCURRENT_EDITS", "3")
    settings = Settings(_env_file=None)
    components = build_components(settings, inpainter="opencv", planner="rules",
                                  segmenter=False, persist=False)
    assert components.slots.limit == 3
    components.close()


# -- kind 12: a model server's faults are the model server's ------------------------------------


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    from agents.ollama_vlm import OllamaVLM
    from tests.fakes.faulty_model_server import FaultyModelServer
    from tests.graphs.helpers import make_components

    with FaultyModelServer(hang_s=4) as fake:
        components = make_components(
            tmp_path_factory.mktemp("faulty"), planner="vlm",
            vlm=OllamaVLM(host=fake.url, timeout=1.5, retry_base_delay=0.01))
        with Server(_app(lambda: components)) as http:
            yield fake, components, http
        components.close()


@pytest.mark.parametrize(("mode", "status", "kind"), [
    ("http500", 502, "VLMRequestError"),
    ("empty", 502, "VLMBadResponseError"),
    ("garbage", 502, "VLMInvalidAnswerError"),
    ("cut", 502, "VLMBadResponseError"),
    ("hang", 504, "VLMTimeoutError"),
])
def test_kind12_model_server_faults_are_5xx_naming_the_server(faulty, mode, status, kind):
    """Before: 422 ("bad image, mask, instruction or option") for a model server's 500, empty
    body or never-valid JSON, and "cannot be reached" for a body cut mid-way."""
    fake, components, http = faulty
    fake.mode = mode
    message = _error(_edit(http, _session(http), mask=png(make_mask())), status, kind)
    assert fake.url in message and "Ollama" in message, message
    text = _mcp_error(components, {"instruction": INSTRUCTION, "image": _b64(png(make_image())),
                                   "mask": _b64(png(make_mask()))})
    assert text.startswith(kind) and fake.url in text, text
    if mode == "cut":
        assert "cannot reach" not in message and "mid-way" in message


def test_kind8_when_the_probe_finds_the_vlm_unusable_the_refusal_says_so(tmp_path):
    """The start node's fallback (a model not pulled) reaches the refusal too: before, its
    why-line was overwritten and the refusal said "a VLM planner can read it"."""
    from agents.ollama_vlm import OllamaVLM
    from graphs.session import EditSession
    from tests.fakes.faulty_model_server import FaultyModelServer
    from tests.graphs.helpers import make_components, object_mask, picture
    from tools.errors import BrushEditError

    with FaultyModelServer("garbage") as fake:
        components = make_components(tmp_path / "d", planner="auto", vlm=OllamaVLM(
            host=fake.url, model="absent:1b", timeout=5, retry_base_delay=0.01))
        with pytest.raises(BrushEditError) as info:
            EditSession.open(components, "s").edit(picture(), "entferne das dunkle Quadrat",
                                                   mask=object_mask())
        components.close()
    assert "the VLM planner, which could, failed (model 'absent:1b' is not pulled" in str(
        info.value)
