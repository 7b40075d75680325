"""The MCP server as an MCP client sees it: percentages while an edit runs, the recent results
in `resources/list`, an edit prompt, tool titles, and a cancelled call (the SDK's
`notifications/cancelled`) that stops the edit within a diffusion step."""

from __future__ import annotations

import itertools

import anyio
import pytest

from interfaces.mcp_server import create_mcp_server
from tests.graphs.helpers import stepping_components, wait_until
from tests.interfaces.conftest import make_image, make_mask, png
from tests.interfaces.test_mcp import b64, run, text_json

mcp = pytest.importorskip("mcp")

EDIT = {"instruction": "remove the dark square", "image": b64(png(make_image())),
        "mask": b64(png(make_mask())), "include_image": False}


@pytest.fixture
def stepping(tmp_path):
    with stepping_components(tmp_path / "data", total=40, step_s=0.002) as pair:
        yield pair


def test_progress_percentages_titles_prompt_and_recent_results(stepping):
    _inpainter, components = stepping
    server = create_mcp_server(lambda: components)
    seen = []

    async def progress(value, total, message):
        seen.append((value, total, message))

    async def main():
        async with mcp.Client(server) as client:
            result = await client.call_tool("edit_image", EDIT, progress_callback=progress)
            tools = (await client.list_tools()).tools
            prompts = (await client.list_prompts()).prompts
            prompt = await client.get_prompt("edit_image", {"instruction": "remove the cat",
                                                            "image": "cat.png"})
            listed = [r for r in (await client.list_resources()).resources
                      if str(r.uri).startswith("brushedit://artifacts/")]  # besides planner
            read = await client.read_resource(listed[0].uri)
            return result, tools, prompts, prompt, listed, read

    result, tools, prompts, prompt, listed, read = run(main)
    assert not result.is_error, result
    values = [v for v, _, _ in seen]
    assert {t for _, t, _ in seen} == {100.0}  # a total: clients show a percentage
    assert all(b > a for a, b in itertools.pairwise(values)) and values[-1] == 100.0
    assert any("inpaint step 20/40" in m for _, _, m in seen)
    assert len([v for v in values if 20 <= v <= 90]) >= 30  # the diffusion steps fill the bar
    assert {t.name: t.title for t in tools} == {"edit_image": "Edit an image",
                                                 "plan_edit": "Plan an edit",
                                                 "get_trace": "Read a session's trace"}
    assert [(p.name, p.title) for p in prompts] == [("edit_image", "Edit an image")]
    assert {a.name for a in prompts[0].arguments} == {"instruction", "image"}
    text = prompt.messages[0].content.text
    assert "remove the cat" in text and "cat.png" in text and "`edit_image`" in text
    info = text_json(result)
    uris = [r.uri for r in listed]
    assert uris[0] == info["image_uri"] and info["mask_uri"] in uris
    assert listed[0].title.startswith("Result of turn 1: remove the dark square")
    assert listed[0].mime_type == "image/png"
    assert read.contents[0].blob  # the listed resource reads as the PNG


def test_a_cancelled_call_stops_the_edit_within_a_step(stepping):
    inpainter, components = stepping
    inpainter.total, inpainter.step_s = 2000, 0.02
    server = create_mcp_server(lambda: components)
    marks: dict[str, int] = {}

    async def main():
        async with mcp.Client(server) as client, anyio.create_task_group() as group:
            async def edit():
                await client.call_tool("edit_image", EDIT)

            group.start_soon(edit)
            await anyio.to_thread.run_sync(lambda: wait_until(lambda: inpainter.steps_run >= 3))
            marks["at_cancel"] = inpainter.steps_run
            group.cancel_scope.cancel()  # the SDK sends notifications/cancelled

    run(main)
    from graphs import EditSession

    session_id = components.traces.sessions(limit=1)[0]["id"]
    session = EditSession.open(components, session_id)
    wait_until(lambda: session.turns()[-1].status != "running")
    stopped = inpainter.steps_run
    assert stopped - marks["at_cancel"] <= 2 and stopped < 2000
    assert session.turns()[-1].status == "cancelled"
    assert not any(e["node"] == "finish" for e in session.trace())
    anyio.run(anyio.sleep, 0.1)
    assert inpainter.steps_run == stopped
