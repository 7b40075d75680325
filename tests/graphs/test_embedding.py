"""The editing graph inside someone else's LangGraph graph: a parent's second turn continues
from the first turn's result (`build_subgraph`, compiled with `checkpointer=True`), its input is
checked like a server client's, and a `values` stream shows progress and the picture as nodes
finish."""

from __future__ import annotations

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from PIL import Image
from typing_extensions import TypedDict

from graphs import build_graph, build_subgraph
from tests.graphs.helpers import make_components, object_mask, picture
from tools.errors import InvalidRequestError


class Chat(TypedDict, total=False):
    """A parent app's state: its own field, and the editor's turn fields and result."""

    image: str | None
    instruction: str
    mask: str | None
    options: dict
    result: dict | None
    turns_seen: int


def _parent(editor):
    builder = StateGraph(Chat)
    builder.add_node("count", lambda state: {"turns_seen": state.get("turns_seen", 0) + 1})
    builder.add_node("editor", editor)
    builder.add_edge(START, "count")
    builder.add_edge("count", "editor")
    builder.add_edge("editor", END)
    return builder.compile(checkpointer=InMemorySaver())


@pytest.fixture
def inputs(tmp_path):
    photo, mask = tmp_path / "photo.png", tmp_path / "mask.png"
    picture().save(photo)
    Image.fromarray(object_mask()).save(mask)
    components = make_components(tmp_path / "d", planner="rules", max_attempts=1)
    yield components, str(photo), str(mask)
    components.close()


def test_a_parent_graphs_second_turn_continues_from_the_first(inputs):
    components, photo, mask = inputs
    parent = _parent(build_subgraph())
    config = {"configurable": {"thread_id": "chat-1"}}
    first = parent.invoke({"image": photo, "instruction": "remove the dark square",
                           "mask": mask, "options": {"inpainter": "opencv"}}, config,
                          context=components)
    second = parent.invoke({"image": None, "instruction": "remove the dark square",
                            "mask": mask}, config, context=components)
    assert first["result"]["turn"] == 1 and second["result"]["turn"] == 2
    assert second["result"]["source_image"] == first["result"]["image"]
    assert second["turns_seen"] == 2
    # Paths and options came raw from the parent: checked like a server client's.
    with pytest.raises(InvalidRequestError, match=r"options\.seed"):
        parent.invoke({"instruction": "remove it", "options": {"seed": -1}}, config,
                      context=components)


def test_the_server_export_embedded_forgets_between_turns(inputs):
    components, photo, mask = inputs
    parent = _parent(build_graph(checkpointer=None))  # what `graphs.app.graph` is
    config = {"configurable": {"thread_id": "chat-2"}}
    parent.invoke({"image": photo, "instruction": "remove the dark square", "mask": mask},
                  config, context=components)
    with pytest.raises(InvalidRequestError, match="no image to edit"):
        parent.invoke({"image": None, "instruction": "remove the dark square", "mask": mask},
                      config, context=components)


def test_a_values_stream_shows_progress_and_the_picture(inputs):
    components, photo, mask = inputs
    graph = build_graph(checkpointer=InMemorySaver())
    seen = [chunk for chunk in graph.stream(
        {"image": photo, "instruction": "remove the dark square", "mask": mask},
        {"configurable": {"thread_id": "values"}}, context=components, stream_mode="values")]
    shown = [(c["progress"]["node"], c["preview"]["kind"]) for c in seen if c.get("progress")]
    assert shown[0] == ("start", "source") and shown[-1] == ("finish", "result")
    assert ("inpaint", "candidate") in shown and len(shown) >= 7
    mask_step = next(c for c in seen if (c.get("progress") or {}).get("node") == "mask")
    assert mask_step["preview"]["mask_url"] == f"/artifacts/{mask_step['preview']['mask']}"
    assert seen[-1]["progress"]["done"][:2] == ["start", "classify"]
    assert seen[-1]["preview"]["image"] == seen[-1]["result"]["image"]
