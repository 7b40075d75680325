"""The MCP server driven by the SDK's own client: in process, and once over stdio."""

from __future__ import annotations

import base64
import json
import os
import sys
import textwrap

import anyio
import pytest

from graphs.interfaces.mcp_server import create_mcp_server

mcp = pytest.importorskip("mcp")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def text_json(result) -> dict:
    texts = [c for c in result.content if c.type == "text"]
    assert texts, result
    return json.loads(texts[-1].text)


def run(coro_fn):
    return anyio.run(coro_fn)


def test_tools_are_listed_with_schemas(offline_factory):
    server = create_mcp_server(offline_factory)

    async def main():
        async with mcp.Client(server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == {"edit_image", "plan_edit", "get_trace"}
            props = tools["edit_image"].input_schema["properties"]
            assert {"instruction", "image", "image_hash", "mask", "options", "session_id"} <= set(
                props
            )
            assert "ctx" not in props

    run(main)


def test_edit_chain_and_trace(offline_factory, image_png, mask_png):
    server = create_mcp_server(offline_factory)

    async def main():
        async with mcp.Client(server) as client:
            result = await client.call_tool(
                "edit_image",
                {"instruction": "remove the dark square", "image": b64(image_png),
                 "mask": b64(mask_png), "options": {"seed": 3}},
            )
            assert not result.is_error, result
            image = result.content[0]
            assert image.type == "image" and image.mime_type == "image/png"
            assert base64.b64decode(image.data).startswith(b"\x89PNG")
            info = text_json(result)
            assert info == result.structured_content
            assert info["planner"] == "rules" and info["inpainter"] == "opencv"
            assert info["plan"]["category"] == "removal"
            assert len(info["image"]) == 64 and info["turn"] == 1

            again = await client.call_tool(
                "edit_image",
                {"instruction": "remove the dark square", "session_id": info["session_id"],
                 "mask_hash": info["mask"]},
            )
            assert not again.is_error, again
            second = text_json(again)
            assert second["turn"] == 2 and second["source_image"] == info["image"]

            by_hash = await client.call_tool(
                "edit_image",
                {"instruction": "remove the dark square", "image_hash": info["image"],
                 "mask": b64(mask_png)},
            )
            assert not by_hash.is_error and text_json(by_hash)["session_id"] != info["session_id"]

            trace = await client.call_tool("get_trace", {"session_id": info["session_id"]})
            nodes = [e["node"] for e in text_json(trace)["events"]]
            assert nodes.count("inpaint") >= 2 and "verify" in nodes

    run(main)


def test_plan_edit_returns_plan_and_mask(offline_factory, image_png):
    server = create_mcp_server(offline_factory)

    async def main():
        async with mcp.Client(server) as client:
            result = await client.call_tool(
                "plan_edit", {"instruction": "make it winter", "image": b64(image_png)}
            )
            assert not result.is_error, result
            info = text_json(result)
            assert info["plan"]["category"] == "global"
            assert info["planner"] == "rules"
            assert result.content[0].type == "image"
            assert len(info["mask"]) == 64

    run(main)


@pytest.mark.parametrize(
    ("tool", "args", "words"),
    [
        ("edit_image", {"instruction": "remove it", "image": "%%%"}, "not valid base64"),
        ("edit_image", {"instruction": "remove it", "image": b64(b"nope")}, "not an image"),
        ("edit_image", {"instruction": "remove it", "image_hash": "../etc/passwd"}, "sha256"),
        ("edit_image", {"instruction": "remove it", "image_hash": "0" * 64}, "no artifact"),
        ("edit_image", {"instruction": "  ", "image_hash": "0" * 64}, "instruction"),
        ("edit_image", {"instruction": "x", "session_id": "missing"}, "no session"),
        ("edit_image", {"instruction": "x", "image": "AAAA", "options": {"steps": 0}},
         "steps"),
        ("plan_edit", {"instruction": "remove it"}, "exactly one"),
        ("get_trace", {"session_id": "nope"}, "no session"),
    ],
)
def test_bad_calls_are_tool_errors(offline_factory, tool, args, words):
    server = create_mcp_server(offline_factory)

    async def main():
        async with mcp.Client(server) as client:
            result = await client.call_tool(tool, args)
            assert result.is_error
            assert words.lower() in result.content[0].text.lower(), result.content[0].text

    run(main)


def test_stdio_round_trip(tmp_path, image_png, mask_png):
    """`brushedit mcp` as a desktop client starts it: a subprocess speaking MCP on stdio."""
    from mcp import StdioServerParameters

    script = textwrap.dedent(
        """
        import typer
        from graphs.interfaces.cli import register
        app = typer.Typer()
        register(app)
        app()
        """
    )
    params = StdioServerParameters(
        command=sys.executable,
        args=["-c", script, "mcp", "--inpainter", "opencv", "--planner", "rules"],
        env={**os.environ, "BRUSHEDIT_DATA_DIR": str(tmp_path / "data")},
        cwd=os.getcwd(),
    )

    async def main():
        with anyio.fail_after(120):
            async with mcp.Client(params) as client:
                result = await client.call_tool(
                    "edit_image",
                    {"instruction": "remove the dark square", "image": b64(image_png),
                     "mask": b64(mask_png), "options": {"inpainter": "opencv"}},
                )
                assert not result.is_error, result
                assert text_json(result)["inpainter"] == "opencv"

    run(main)
