"""A hostile MCP client: wrong types, control characters, parallel edits, odd resource URIs.

Every bad call is a tool error with one sentence in MCP words, the server keeps serving, and
the session keeps every turn it had.
"""

from __future__ import annotations

import itertools

import anyio
import pytest

from interfaces.mcp_server import create_mcp_server
from tests.interfaces.conftest import make_image, make_mask, png
from tests.interfaces.test_mcp import CLI_FLAG, PYDANTIC_DUMP, b64, error_text, mcp, run, text_json

IMAGE, MASK = b64(png(make_image())), b64(png(make_mask()))
EDIT = {"instruction": "remove the dark square", "image": IMAGE, "mask": MASK}


def _clean(text: str) -> None:
    assert not any(dump in text for dump in PYDANTIC_DUMP), text
    assert "\n" not in text and "Traceback" not in text and not CLI_FLAG.search(text), text


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"options": {"steps": True}}, "`options.steps` must be a whole number, got true"),
        ({"options": {"steps": "3"}}, "`options.steps` must be a whole number, got '3'"),
        ({"options": {"blending": "yes"}}, "`options.blending` must be true or false"),
        ({"include_image": 0}, "`include_image` must be true or false, got 0"),
        ({"include_image": "no"}, "`include_image` must be true or false, got 'no'"),
        ({"session_id": "null"}, "no session 'null'"),
        ({"image_hash": "null", "image": None}, "image_hash must be a 64-character"),
        ({"instruction": "remove\x00 the dark square"}, "`instruction` contains the control"),
        ({"instruction": "remove \x1b[31mthe square"}, "control character '\\x1b' at position 7"),
        ({"caption": "grass\x07"}, "`caption` contains the control character"),
        ({"options": {"negative_prompt": "a\x00"}}, "`options.negative_prompt` contains"),
    ],
)
def test_wrong_types_and_control_characters_are_sentences(offline_factory, args, words):
    """Before: `true` ran 1 step, `0`/"no" meant false, "null" was no session (a new one), and
    control characters reached the plan, the caption and the trace verbatim."""
    server = create_mcp_server(offline_factory)
    text = error_text(run(lambda: _call(server, "edit_image", {**EDIT, **args})))
    assert words in text, text
    _clean(text)
    assert offline_factory().traces.sessions() == [], "a refused call leaves no session"


async def _call(server, tool, args):
    async with mcp.Client(server) as client:
        return await client.call_tool(tool, args)


def test_json_text_for_objects_and_booleans_still_works(offline_factory):
    """Clients that send `options` (or a boolean) as JSON text keep working."""
    server = create_mcp_server(offline_factory)
    result = run(lambda: _call(server, "edit_image", {
        **EDIT, "options": '{"seed": 4}', "include_image": "false"}))
    assert not result.is_error, result
    assert not [c for c in result.content if c.type == "image"]


def test_plan_edit_refuses_control_characters(offline_factory):
    server = create_mcp_server(offline_factory)
    text = error_text(run(lambda: _call(server, "plan_edit", {**EDIT, "instruction": "a\x00b"})))
    assert "`instruction` contains the control character" in text, text


def test_a_non_finite_option_is_a_sentence(offline_factory):
    """NaN never crosses the SDK's client (it sends null), but a raw JSON-RPC client can send it."""
    from mcp.server.mcpserver.exceptions import ToolError

    server = create_mcp_server(offline_factory)
    with pytest.raises(ToolError, match=r"`options.guidance_scale` must be a finite number"):
        run(lambda: server.call_tool("edit_image", {**EDIT, "options": {
            "guidance_scale": float("nan")}}))


def test_parallel_edits_on_one_session_lose_nothing(offline_factory):
    """Before: two of four parallel edits failed with a pydantic dump (`internal error
    (ValidationError: ... EditResult ...)`) and left an abandoned and a stuck running turn."""
    server = create_mcp_server(offline_factory)

    async def main():
        async with mcp.Client(server) as client:
            first = await client.call_tool("edit_image", {**EDIT, "include_image": False})
            session_id = text_json(first)["session_id"]
            results = []

            async def one(seed):
                results.append(await client.call_tool("edit_image", {
                    "instruction": "remove the dark square", "session_id": session_id,
                    "mask": MASK, "include_image": False, "options": {"seed": seed}}))

            async with anyio.create_task_group() as group:
                for seed in range(4):
                    group.start_soon(one, seed)
            after = await client.call_tool("edit_image", {
                "instruction": "remove the dark square", "session_id": session_id,
                "mask": MASK, "include_image": False})
            return session_id, results, after

    session_id, results, after = run(main)
    done = [r for r in results if not r.is_error]
    refused = [error_text(r) for r in results if r.is_error]
    assert len(done) >= 1, results
    for text in refused:
        assert "ConflictError: an edit is already running in session" in text, text
        _clean(text)
    assert not after.is_error, after
    from graphs import EditSession

    turns = EditSession.open(offline_factory(), session_id=session_id).turns()
    assert [t.status for t in turns] == ["done"] * (2 + len(done)), turns
    assert text_json(after)["turn"] == len(turns)


def test_progress_always_increases(offline_factory):
    """Before: a diffusion step was reported with its node's number (6, then 6 again)."""
    server = create_mcp_server(offline_factory)
    seen = []

    async def progress(value, total, message):
        seen.append(value)

    async def main():
        async with mcp.Client(server) as client:
            return await client.call_tool("edit_image", EDIT, progress_callback=progress)

    assert not run(main).is_error
    assert len(seen) > 3 and all(b > a for a, b in itertools.pairwise(seen)), seen


def test_errors_name_no_server_folder(offline_factory, tmp_path):
    """The configured roots are the server's; a refusal names only what the client sent."""
    root = tmp_path / "server-root"
    root.mkdir()
    server = create_mcp_server(offline_factory, roots=[root])
    text = error_text(run(lambda: _call(server, "edit_image", {
        "instruction": "remove it", "image_path": "/etc/passwd"})))
    assert "outside the allowed roots (the server's root folders)" in text, text
    assert str(root) not in text and str(tmp_path) not in text, text


def test_an_unexpected_failure_is_the_documented_internal_error(offline_factory):
    """Before: the first 200 characters of any exception (a pydantic dump, a path) were sent,
    then its class; now the one sentence every surface gives for a bug (issue 24, kind 3)."""
    server = create_mcp_server(offline_factory)

    def broken(*_):
        raise ValueError("1 validation error for X input_value=/srv/secret/path")

    server_with_broken = create_mcp_server(offline_factory, session_opener=broken)
    text = error_text(run(lambda: _call(server_with_broken, "edit_image", EDIT)))
    assert "InternalError: the server failed unexpectedly; its log has the details" in text, text
    assert "/srv/secret" not in text and "input_value" not in text and "ValueError" not in text
    assert not run(lambda: _call(server, "edit_image", EDIT)).is_error


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("brushedit://artifacts/" + "0" * 64, "no artifact " + "0" * 64),
        ("brushedit://artifacts/xyz", "names no artifact: the part after"),
        ("brushedit://artifacts/" + "A" * 64, "64 lowercase hex characters"),
        ("brushedit://artifacts/../../etc/passwd", "Unknown resource"),
        ("file:///etc/passwd", "Unknown resource"),
    ],
)
def test_bad_artifact_uris_are_one_sentence(offline_factory, uri, words):
    """Before: "no artifact '00…': no artifact 00…" (said twice)."""
    server = create_mcp_server(offline_factory)

    async def main():
        async with mcp.Client(server) as client:
            with pytest.raises(mcp.MCPError) as caught:
                await client.read_resource(uri)
            return str(caught.value)

    text = run(main)
    assert words in text, text
    assert text.count("no artifact") <= 1, text
