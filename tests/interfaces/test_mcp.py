"""The MCP server driven by the SDK's own client: in process, and once over stdio."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import sys
import textwrap

import anyio
import pytest

from interfaces.mcp_server import create_mcp_server, mcp_message, model_missing_message
from tests.interfaces.conftest import make_image, make_mask, png
from tools.types import EditOptions

mcp = pytest.importorskip("mcp")

CLI_FLAG = re.compile(r"(?<![\w-])--[a-z]")
PYDANTIC_DUMP = ("validation error for", "type=", "errors.pydantic.dev", "input_value")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def text_json(result) -> dict:
    texts = [c for c in result.content if c.type == "text"]
    assert texts, result
    return json.loads(texts[-1].text)


def error_text(result) -> str:
    assert result.is_error, result
    return result.content[0].text


def run(coro_fn):
    return anyio.run(coro_fn)


async def call(server, tool, args, **client_kwargs):
    async with mcp.Client(server, **client_kwargs) as client:
        return await client.call_tool(tool, args)


def _properties(schema: dict) -> list[tuple[str, dict]]:
    """Every (name, property schema) of a tool's input, nested models included."""
    found = list(schema.get("properties", {}).items())
    for definition in schema.get("$defs", {}).values():
        found += [(f"{definition.get('title')}.{k}", v) for k, v in
                  definition.get("properties", {}).items()]
    return found


def test_tools_are_listed_with_schemas(offline_factory):
    server = create_mcp_server(offline_factory)

    async def main():
        async with mcp.Client(server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            templates = (await client.list_resource_templates()).resource_templates
        assert set(tools) == {"edit_image", "plan_edit", "get_trace"}
        edit, plan = tools["edit_image"].input_schema, tools["plan_edit"].input_schema
        assert {"instruction", "image", "image_path", "image_hash", "mask", "mask_path",
                "mask_hash", "options", "session_id", "include_image"} <= set(edit["properties"])
        assert {"image", "image_path", "image_hash", "mask", "mask_path", "mask_hash"} <= set(
            plan["properties"]), "plan_edit takes a mask"
        for schema in (edit, plan):
            assert not {"ctx", "listed_roots"} & set(schema["properties"])
        for tool in tools.values():
            undescribed = [n for n, p in _properties(tool.input_schema) if not p.get("description")]
            assert not undescribed, (tool.name, undescribed)
            assert tool.output_schema and tool.output_schema.get("properties"), tool.name
        assert {"session_id", "image", "image_uri", "plan"} <= set(
            tools["edit_image"].output_schema["properties"])
        assert tools["plan_edit"].annotations.read_only_hint is True
        assert tools["get_trace"].annotations.read_only_hint is True
        assert tools["edit_image"].annotations.read_only_hint is False
        assert [t.uri_template for t in templates] == ["brushedit://artifacts/{digest}"]

    run(main)


def test_option_schema_is_derived_from_edit_options(offline_factory):
    """Names, bounds and defaults come from `EditOptions`, so a new bound reaches MCP as is."""
    server = create_mcp_server(offline_factory)

    async def main():
        async with mcp.Client(server) as client:
            return {t.name: t for t in (await client.list_tools()).tools}

    schema = run(main)["edit_image"].input_schema
    options = schema["$defs"]["EditOptionsPatch"]
    assert set(options["properties"]) == set(EditOptions.model_fields)
    assert options["additionalProperties"] is False
    for name, info in EditOptions.model_fields.items():
        branch = next(b for b in options["properties"][name]["anyOf"] if b.get("type") != "null")
        for item in info.metadata:
            for key, word in (("ge", "minimum"), ("le", "maximum")):
                if getattr(item, key, None) is not None:
                    assert branch[word] == getattr(item, key), (name, key)
        assert json.dumps(info.default) in options["properties"][name]["description"]


def test_edit_chain_resources_and_trace(offline_factory, image_png, mask_png):
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
            assert info["image_uri"] == f"brushedit://artifacts/{info['image']}"
            links = [c for c in result.content if c.type == "resource_link"]
            assert [str(link.uri) for link in links] == [info["image_uri"], info["mask_uri"]]

            read = await client.read_resource(info["image_uri"])
            blob = base64.b64decode(read.contents[0].blob)
            assert read.contents[0].mime_type == "image/png"
            assert blob == base64.b64decode(image.data)
            from PIL import Image

            from tools.images import content_hash

            with Image.open(io.BytesIO(blob)) as picture:
                assert content_hash(picture) == info["image"]

            again = await client.call_tool(
                "edit_image",
                {"instruction": "remove the dark square", "session_id": info["session_id"],
                 "mask_hash": info["mask_uri"], "include_image": False},
            )
            assert not again.is_error, again
            assert not [c for c in again.content if c.type == "image"]
            second = text_json(again)
            assert second["turn"] == 2 and second["source_image"] == info["image"]

            by_hash = await client.call_tool(
                "edit_image",
                {"instruction": "remove the dark square", "image_hash": info["image_uri"],
                 "mask": b64(mask_png)},
            )
            assert not by_hash.is_error and text_json(by_hash)["session_id"] != info["session_id"]

            trace = await client.call_tool("get_trace", {"session_id": info["session_id"]})
            assert trace.structured_content["session_id"] == info["session_id"]
            nodes = [e["node"] for e in text_json(trace)["events"]]
            assert nodes.count("inpaint") >= 2 and "verify" in nodes

    run(main)


def test_unknown_and_damaged_artifacts_are_not_served(offline_factory, image_png):
    server = create_mcp_server(offline_factory)

    async def main():
        async with mcp.Client(server) as client:
            with pytest.raises(mcp.MCPError, match="no artifact"):
                await client.read_resource("brushedit://artifacts/" + "0" * 64)
            with pytest.raises(mcp.MCPError):
                await client.read_resource("brushedit://artifacts/..%2F..%2Fetc%2Fpasswd")
            planned = await client.call_tool(
                "plan_edit", {"instruction": "make it winter", "image": b64(image_png)}
            )
            digest = text_json(planned)["mask"]
            path = offline_factory().store.path(digest)
            path.write_bytes(png(make_mask(96, 64)))  # another valid PNG under the same name
            with pytest.raises(mcp.MCPError, match="damaged"):
                await client.read_resource(f"brushedit://artifacts/{digest}")

    run(main)


def test_plan_edit_returns_plan_and_mask(offline_factory, image_png, mask_png):
    server = create_mcp_server(offline_factory)

    async def main():
        async with mcp.Client(server) as client:
            result = await client.call_tool(
                "plan_edit", {"instruction": "make it winter", "image": b64(image_png)}
            )
            assert not result.is_error, result
            info = text_json(result)
            assert info == result.structured_content
            assert info["plan"]["category"] == "global"
            assert info["planner"] == "rules"
            assert result.content[0].type == "image"
            assert len(info["mask"]) == 64 and info["mask_uri"].endswith(info["mask"])

            with_mask = await client.call_tool(
                "plan_edit",
                {"instruction": "remove the dark square", "image": b64(image_png),
                 "mask": b64(mask_png)},
            )
            assert not with_mask.is_error, with_mask
            planned = text_json(with_mask)
            assert planned["plan"]["category"] == "removal"
            read = await client.read_resource(planned["mask_uri"])
            import numpy as np
            from PIL import Image

            with Image.open(io.BytesIO(base64.b64decode(read.contents[0].blob))) as proposed:
                array = np.asarray(proposed.convert("L")) > 127
            given = make_mask() > 127
            assert array[given].all(), "the proposed mask covers the mask that was given"
            assert array.mean() < 0.5, "and is the given mask's area, not the whole picture"

    run(main)


# --------------------------------------------------------------------------- file inputs


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "root"
    folder.mkdir()
    (folder / "photo.png").write_bytes(png(make_image()))
    (folder / "mask.png").write_bytes(png(make_mask()))
    return folder


def test_paths_inside_a_configured_root_are_read(offline_factory, root):
    server = create_mcp_server(offline_factory, roots=[root])

    async def main():
        absolute = await call(server, "edit_image", {
            "instruction": "remove the dark square", "image_path": str(root / "photo.png"),
            "mask_path": "mask.png"})
        assert not absolute.is_error, absolute
        uri = await call(server, "plan_edit", {
            "instruction": "remove the dark square",
            "image_path": (root / "photo.png").as_uri(), "mask_path": str(root / "mask.png")})
        assert not uri.is_error, uri
        return text_json(absolute), text_json(uri)

    edited, planned = run(main)
    from tools.images import content_hash, load_image

    assert edited["source_image"] == content_hash(load_image(root / "photo.png"))
    assert planned["plan"]["category"] == "removal"


def test_client_roots_allow_their_files(offline_factory, root):
    """No folder configured: the folders the client shares as MCP roots are the allowed ones."""
    import mcp_types

    server = create_mcp_server(offline_factory)
    asked = []

    async def list_roots(context):
        asked.append(True)
        return mcp_types.ListRootsResult(roots=[mcp_types.Root(uri=root.as_uri(), name="photos")])

    async def main():
        inside = await call(server, "plan_edit", {
            "instruction": "make it winter", "image_path": str(root / "photo.png")},
            list_roots_callback=list_roots)
        without = await call(server, "plan_edit", {
            "instruction": "make it winter", "image_path": str(root / "photo.png")})
        return inside, without

    inside, without = run(main)
    assert not inside.is_error, inside
    assert asked, "the server asked the client for its roots"
    text = error_text(without)
    assert "MCP roots" in text and "base64" in text and not CLI_FLAG.search(text)


def test_paths_outside_the_roots_and_special_files_are_refused(offline_factory, root, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(png(make_image()))
    (root / "escape.png").symlink_to(secret)
    (root / "zero.png").symlink_to("/dev/zero")
    os.mkfifo(root / "pipe.png")
    server = create_mcp_server(offline_factory, roots=[root, "/dev"])

    cases = [
        ({"image_path": str(secret)}, "outside the allowed roots"),
        ({"image_path": str(root / ".." / "secret.png")}, "outside the allowed roots"),
        ({"image_path": "../secret.png"}, "outside the allowed roots"),
        ({"image_path": str(root / "escape.png")}, "through a symlink"),
        ({"image_path": str(root / "zero.png")}, "character device, not a regular file"),
        ({"image_path": "/dev/zero"}, "character device"),
        ({"image_path": str(root / "pipe.png")}, "FIFO"),
        ({"image_path": str(root)}, "folder"),
        ({"image_path": str(root / "missing.png")}, "no file"),
        ({"image_path": "https://example.com/a.png"}, "file path or a file:// URI"),
        ({"image_path": str(root / "photo.png"), "image": "AAAA"}, "not `image` and"),
        ({"image_path": str(root / "photo.png"), "mask_path": str(secret)}, "`mask_path`"),
    ]

    async def main():
        texts = []
        with anyio.fail_after(60):  # a FIFO or a device must not hang the call
            for args, _ in cases:
                result = await call(server, "edit_image", {"instruction": "remove it", **args})
                texts.append(error_text(result))
        return texts

    for (_, words), text in zip(cases, run(main), strict=True):
        assert words in text, text
        assert "\n" not in text and not CLI_FLAG.search(text), text
    assert offline_factory().traces.sessions() == [], "a refused call leaves no session behind"


def test_file_size_is_capped_while_reading(root):
    from interfaces.roots import FileRoots
    from tools.errors import InvalidImageError

    roots = FileRoots([root], max_bytes=100)
    with pytest.raises(InvalidImageError, match="over the limit of 100 bytes"):
        roots.read(str(root / "photo.png"))
    assert FileRoots([root]).read("photo.png") == (root / "photo.png").read_bytes()


# --------------------------------------------------------------------------- errors


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
         "`options.steps` must be at least 1"),
        ("edit_image", {"instruction": "x", "image": "AAAA", "options": {"steps": "many"}},
         "`options.steps` must be a whole number"),
        ("edit_image", {"instruction": "x", "image": "AAAA", "options": {"sed": 1}},
         "`options.sed` is not a parameter"),
        ("edit_image", {"instruction": "x", "image": "AAAA", "options": {"inpainter": "gimp"}},
         "`options.inpainter` must be 'brushnet', 'opencv', "),
        ("edit_image", {"image": "AAAA"}, "`instruction` is required"),
        ("edit_image", {"instruction": ["a"], "image": "AAAA"}, "`instruction` must be text"),
        ("plan_edit", {"instruction": "remove it"}, "`image`, `image_path` or `image_hash`"),
        ("plan_edit", {"instruction": "remove it", "image": "AAAA", "image_hash": "0" * 64},
         "not `image` and `image_hash`"),
        ("get_trace", {"session_id": "nope"}, "no session"),
        ("edit_image", {"instruction": "x", "image": "AAAA", "optionz": {"steps": 3}},
         "`optionz` is not a parameter of edit_image"),
        ("plan_edit", {"instruction": "x", "image": "AAAA", "seed": 1, "mask_pth": "m.png"},
         "`mask_pth`, `seed` are not parameters of plan_edit"),
        ("edit_image", {"instruction": "x"}, "`image`, `image_path` or `image_hash`, or a"),
        ("edit_image", {"instruction": "x", "image": "AAAA", "include_image": "perhaps"},
         "`include_image` must be true or false"),
        ("edit_image", {"instruction": "x", "image": "AAAA", "options": "fast"},
         "`options` must be a JSON object"),
    ],
)
def test_bad_calls_are_sentences(offline_factory, tool, args, words):
    server = create_mcp_server(offline_factory)
    text = error_text(run(lambda: call(server, tool, args)))
    assert words.lower() in text.lower(), text
    assert not any(dump in text for dump in PYDANTIC_DUMP), text
    assert "\n" not in text and not CLI_FLAG.search(text), text


def _beyond_bounds() -> list[tuple[str, object, str]]:
    cases = []
    for name, info in EditOptions.model_fields.items():
        for item in info.metadata:
            if getattr(item, "le", None) is not None:
                cases.append((name, item.le + 1, "at most"))
            if getattr(item, "ge", None) is not None:
                cases.append((name, item.ge - 1, "at least"))
    return cases


@pytest.mark.parametrize(("name", "value", "words"), _beyond_bounds())
def test_every_bound_of_edit_options_is_a_sentence(offline_factory, image_png, name, value, words):
    server = create_mcp_server(offline_factory)
    text = error_text(run(lambda: call(server, "edit_image", {
        "instruction": "remove it", "image": b64(image_png), "options": {name: value}})))
    assert f"`options.{name}` must be {words}" in text, text


def test_a_huge_seed_is_a_sentence(offline_factory, image_png, mask_png):
    server = create_mcp_server(offline_factory)
    text = error_text(run(lambda: call(server, "edit_image", {
        "instruction": "remove the dark square", "image": b64(image_png), "mask": b64(mask_png),
        "options": {"seed": 2**64}})))
    assert len(text.removeprefix("Error executing tool edit_image").strip(": ")) > 20, text
    assert not any(dump in text for dump in PYDANTIC_DUMP), text


def test_core_messages_speak_mcp(offline_factory, image_png):
    """What the graph says with CLI flags reaches an MCP client as parameter names."""
    server = create_mcp_server(offline_factory)  # no segmenter, OpenCV only

    async def main():
        async with mcp.Client(server) as client:
            found = await client.call_tool(
                "edit_image", {"instruction": "remove the dog", "image": b64(image_png)})
            added = await client.call_tool(
                "edit_image", {"instruction": "make it winter", "image": b64(image_png)})
        return error_text(found), error_text(added)

    found, added = run(main)
    assert "`mask_path`" in found and not CLI_FLAG.search(found), found
    assert '`options.inpainter` = "brushnet"' in added and not CLI_FLAG.search(added), added
    from tools.errors import MaskNeededError

    unseen = mcp_message(MaskNeededError("could not find “dog” in the image; give a mask of the "
                                         "area to edit", looked_for="“dog”"))
    assert "`mask_path`" in unseen and not CLI_FLAG.search(unseen), unseen


def test_missing_models_give_the_fix_in_mcp_words(tmp_path, image_png):
    from graphs import Settings, build_components
    from graphs.weights import Check, missing_weights_error

    settings = Settings(data_dir=tmp_path / "data", base_model=str(tmp_path / "no-sd15"),
                        brushnet=str(tmp_path / "no-brushnet"), _env_file=None)
    components = build_components(settings, planner="rules", segmenter=False)
    server = create_mcp_server(lambda: components, settings)
    text = error_text(run(lambda: call(server, "edit_image", {
        "instruction": "make it winter", "image": b64(image_png)})))
    components.close()
    assert "ModelLoadError" in text and "BrushNet inpainter" in text, text
    assert '`options.inpainter` = "opencv"' in text and "brushedit doctor" in text, text
    assert not CLI_FLAG.search(text), text

    hub = missing_weights_error([Check(
        "SAM", False, "facebook/sam-vit-huge not in the local cache",
        "hf download facebook/sam-vit-huge --include 'x/*'")], "segmenter (GroundingDINO + SAM)",
        segmenter=True)
    said = model_missing_message(hub)
    assert "`mask_path`" in said and not CLI_FLAG.search(said), said


# --------------------------------------------------------------------------- stdio


def test_stdio_round_trip(tmp_path, image_png, mask_png):
    """`brushedit mcp` as a desktop client starts it: a subprocess speaking MCP on stdio."""
    from mcp import StdioServerParameters

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "photo.png").write_bytes(image_png)
    (tmp_path / "outside.png").write_bytes(image_png)
    script = textwrap.dedent(
        """
        import typer
        from interfaces.server_commands import register
        app = typer.Typer()
        register(app)
        app()
        """
    )
    params = StdioServerParameters(
        command=sys.executable,
        args=["-c", script, "mcp", "--inpainter", "opencv", "--planner", "rules",
              "--root", str(folder)],
        env={**os.environ, "BRUSHEDIT_DATA_DIR": str(tmp_path / "data")},
        cwd=os.getcwd(),
    )

    async def main():
        with anyio.fail_after(120):
            async with mcp.Client(params) as client:
                result = await client.call_tool(
                    "edit_image",
                    {"instruction": "remove the dark square", "image_path": str(folder / "photo.png"),
                     "mask": b64(mask_png), "options": {"inpainter": "opencv"}},
                )
                assert not result.is_error, result
                info = text_json(result)
                assert info["inpainter"] == "opencv"
                read = await client.read_resource(info["image_uri"])
                assert base64.b64decode(read.contents[0].blob).startswith(b"\x89PNG")
                outside = await client.call_tool(
                    "plan_edit",
                    {"instruction": "make it winter", "image_path": str(tmp_path / "outside.png")},
                )
                assert "outside the allowed roots" in error_text(outside)

    run(main)
