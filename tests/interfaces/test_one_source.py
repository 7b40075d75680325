"""Every surface lists the registry's backend names and `EditOptions`' bounds, never its own.

The CLI's choices and flag ranges, the HTTP API's OpenAPI document, the MCP tool schemas and the
evals commands are all read back here and compared with `tools.registry` and `EditOptions`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer

from tests.interfaces.conftest import LOOPBACK
from tools.registry import INPAINTER_NAMES, SEGMENTER_NAMES
from tools.types import MAX_INSTRUCTION_CHARS, EditOptions, field_bounds

NUMERIC = {name for name, info in EditOptions.model_fields.items()
           if info.annotation in (int, float)}
KNOWN_NAMES = set(INPAINTER_NAMES) | set(SEGMENTER_NAMES)


def schemas(node: Any, name: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (property name, JSON schema) pair in a JSON-schema-like document."""
    if isinstance(node, dict):
        yield name, node
        for key, value in node.items():
            inner = key if key not in ("anyOf", "oneOf", "allOf", "items", "schema") else name
            if key in ("properties", "$defs", "definitions", "schemas"):
                for child, sub in (value or {}).items():
                    yield from schemas(sub, child)
            else:
                yield from schemas(value, inner)
    elif isinstance(node, list):
        for item in node:
            yield from schemas(item, name)


def check_document(document: Any) -> tuple[int, int]:
    """Assert every enum naming a backend and every bound on an option field; count them."""
    enums = bounds = 0
    for name, schema in schemas(document):
        values = schema.get("enum")
        if isinstance(values, list) and KNOWN_NAMES & set(map(str, values)):
            assert tuple(values) in (INPAINTER_NAMES, SEGMENTER_NAMES), (name, values)
            enums += 1
        if name in NUMERIC and ("minimum" in schema or "maximum" in schema):
            expected = field_bounds(EditOptions.model_fields[name])
            assert schema.get("minimum") == expected.get("ge"), (name, schema)
            assert schema.get("maximum") == expected.get("le"), (name, schema)
            bounds += 1
    return enums, bounds


def test_the_http_api_document_matches_the_registry_and_options(offline_factory):
    from fastapi.testclient import TestClient

    from interfaces.api import create_app

    with TestClient(create_app(offline_factory), base_url=LOOPBACK) as client:
        spec = client.get("/openapi.json").json()
    enums, bounds = check_document(spec)
    assert enums >= 1 and bounds >= len(NUMERIC)


def test_the_mcp_tool_schemas_match_the_registry_and_options(offline_factory):
    mcp = pytest.importorskip("mcp")
    import anyio

    from interfaces.mcp_server import create_mcp_server

    async def tools() -> list[Any]:
        async with mcp.Client(create_mcp_server(offline_factory)) as client:
            return (await client.list_tools()).tools

    listed = anyio.run(tools)
    enums, bounds = check_document([tool.input_schema for tool in listed])
    assert enums >= 1 and bounds >= len(NUMERIC)


def click_commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    yield prefix, group
    for name, command in getattr(group, "commands", {}).items():
        yield from click_commands(command, f"{prefix} {name}".strip())


def choice_values(param: Any) -> tuple[str, ...]:
    """The choices a command-line parameter offers, as click sees it (`click.Choice`): the same
    whatever typer version built it (typer < 0.28 is what openapi-python-client allows)."""
    return tuple(str(getattr(c, "value", c)) for c in getattr(param.type, "choices", ()) or ())


def test_every_cli_flag_takes_the_registry_names_and_the_option_bounds():
    from interfaces.cli import _load_plugins, app

    _load_plugins(app)
    root = typer.main.get_command(app)
    flags = {"--seed": "seed", "--steps": "steps", "--samples": "samples",
             "--guidance": "guidance_scale", "--guidance-scale": "guidance_scale",
             "--conditioning": "conditioning_scale",
             "--max-attempts": "max_attempts"}
    choices = ranges = 0
    for path, command in click_commands(root):
        for param in getattr(command, "params", []):
            named = choice_values(param)
            if KNOWN_NAMES & set(named):
                assert named in (INPAINTER_NAMES, SEGMENTER_NAMES), (path, param.opts)
                choices += 1
            field = next((flags[o] for o in param.opts if o in flags), None)
            if field:
                expected = field_bounds(EditOptions.model_fields[field])
                assert (param.type.min, param.type.max) == (expected["ge"], expected["le"]), (
                    path, param.opts)
                ranges += 1
    assert choices >= 4  # ui, serve, mcp and the evals commands
    assert ranges >= len(flags)


def test_the_edit_commands_refuse_an_unknown_inpainter_naming_the_registry(tmp_path):
    from typer.testing import CliRunner

    from interfaces.cli import app

    image = tmp_path / "a.png"
    image.write_bytes(b"")
    result = CliRunner().invoke(app, ["edit", str(image), "x", "-o", str(tmp_path / "o.png"),
                                      "--inpainter", "nope"])
    assert result.exit_code == 2
    text = " ".join(result.output.replace("│", " ").split())  # rich wraps it in a box
    assert f"must be one of {', '.join(INPAINTER_NAMES)}" in text


LONG = "remove the cat " * 200  # 3,000 characters


@pytest.mark.parametrize(
    ("instruction", "words"),
    [
        (LONG, f"the limit is {MAX_INSTRUCTION_CHARS:,}"),
        ("remove the \x1b[2Jcat", "`instruction` contains the control character '\\x1b' at "
         "position 11"),
    ],
    ids=["too-long", "control-character"],
)
def test_the_facade_refuses_a_bad_instruction_and_every_surface_says_the_same(
    offline_factory, image_png, tmp_path, instruction, words
):
    """Too long (never cut) or carrying control characters: the facade's one sentence, from the
    API, MCP and the CLI alike."""

    from typer.testing import CliRunner

    from graphs.requests import check_instruction
    from interfaces.cli import app
    from interfaces.cli_errors import REFUSED_EXIT
    from tools.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError, match=re.escape(words)):
        check_instruction(instruction)
    assert check_instruction("x" * MAX_INSTRUCTION_CHARS) == "x" * MAX_INSTRUCTION_CHARS
    _refused_by_the_api_and_mcp(offline_factory, image_png, {"instruction": instruction}, words)

    image = tmp_path / "in.png"
    image.write_bytes(image_png)
    res = CliRunner().invoke(app, ["edit", str(image), instruction, "-o", str(tmp_path / "o.png")])
    assert res.exit_code == REFUSED_EXIT and words in " ".join(res.output.split())


def test_hash_and_mask_rules_are_the_facades_on_every_path(offline_factory, tmp_path):
    """Only a lowercase sha256 digest is a hash; a mask of another shape is refused alike."""
    import numpy as np

    from graphs.artifacts import is_hash
    from graphs.requests import check_hash, check_mask
    from interfaces.common import default_session_opener, prepare_edit
    from tests.interfaces.conftest import png
    from tools.errors import InvalidMaskError, InvalidRequestError
    from tools.images import load_mask

    assert check_hash(" " + "a" * 64 + " ", "image") == "a" * 64
    for bad in ("A" * 64, "a" * 63, "../" + "a" * 61, None):
        with pytest.raises(InvalidRequestError, match="the image must be a 64-character"):
            check_hash(bad, "image")
    assert not is_hash("a" * 64 + "\n")
    wide = np.full((32, 64), 255, np.uint8)
    with pytest.raises(InvalidMaskError) as facade:
        check_mask(wide, (64, 64))
    components = offline_factory()
    square = png(np.full((64, 64, 3), 128, np.uint8))

    def upload(mask: bytes) -> None:  # the HTTP API's, MCP's and the LangChain tool's path
        prepare_edit(components, default_session_opener, instruction="remove it", image=square,
                     mask=mask)

    with pytest.raises(InvalidMaskError) as uploaded:
        upload(png(wide))
    path = tmp_path / "wide.png"
    path.write_bytes(png(wide))
    with pytest.raises(InvalidMaskError) as cli:
        load_mask(path, (64, 64), resize=True)
    assert str(facade.value) == str(uploaded.value) == str(cli.value)
    with pytest.raises(InvalidMaskError, match="empty"):
        upload(png(np.zeros((64, 64), np.uint8)))


def test_one_caption_limit_on_every_surface(offline_factory, image_png):
    """500 characters on the facade, the HTTP API, MCP and the LangGraph server's raw input."""


    from graphs.requests import MAX_CAPTION_CHARS, check_caption, check_turn_input
    from tools.errors import InvalidRequestError
    from tools.types import EditOptions

    words = f"`caption` has {MAX_CAPTION_CHARS + 1:,} characters; the limit is {MAX_CAPTION_CHARS}"
    caption = "c" * (MAX_CAPTION_CHARS + 1)
    assert MAX_CAPTION_CHARS == 500 and check_caption(" " + "c" * 500 + " ") == "c" * 500
    for refuse in (lambda: check_caption(caption),
                   lambda: check_turn_input({"instruction": "remove it", "caption": caption},
                                            EditOptions())):
        with pytest.raises(InvalidRequestError, match=re.escape(words)):
            refuse()
    _refused_by_the_api_and_mcp(offline_factory, image_png,
                                {"instruction": "remove it", "caption": caption}, words)


def _refused_by_the_api_and_mcp(factory: Any, image_png: bytes, fields: dict[str, str],
                                words: str) -> None:
    """The HTTP API (422) and MCP (a tool error) refuse an edit with `fields` saying `words`."""
    import base64

    from fastapi.testclient import TestClient

    from interfaces.api import create_app

    with TestClient(create_app(factory), base_url=LOOPBACK) as client:
        session = client.post("/sessions").json()["id"]
        answer = client.post(f"/sessions/{session}/edits", data=fields,
                             files={"image": ("in.png", image_png, "image/png")})
    assert answer.status_code == 422 and words in answer.json()["error"]["message"]

    mcp = pytest.importorskip("mcp")
    import anyio

    from interfaces.mcp_server import create_mcp_server

    async def call() -> Any:
        async with mcp.Client(create_mcp_server(factory)) as client:
            return await client.call_tool("edit_image", {
                **fields, "image": base64.b64encode(image_png).decode()})

    result = anyio.run(call)
    assert result.is_error and words in result.content[0].text
