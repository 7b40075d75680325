"""The editing state machine: classify -> identify -> mask (-> review) -> caption -> inpaint ->
verify, with the verifier routing back to the stage it blames until it accepts or attempts run out.

`build_graph` compiles a fresh graph around a `Components` bundle. Embedded callers (sessions,
evals) pass a checkpointer; the LangGraph server export in `graphs.app` compiles without one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from graphs.nodes import EditNodes
from graphs.state import InputState, OutputState, State

if TYPE_CHECKING:
    from graphs.components import Components

NODES = ("start", "classify", "identify", "mask", "review", "caption", "inpaint", "verify",
         "finish")


def route_after_mask(state: State) -> Literal["review", "caption", "inpaint"]:
    """A person reviews the mask when asked to; a mask retry keeps the caption it had."""
    if state.get("mask_review"):
        return "review"
    return route_after_review(state)


def route_after_review(state: State) -> Literal["caption", "inpaint"]:
    return "inpaint" if state.get("edit_caption") else "caption"


def route_after_verify(state: State) -> Literal["finish", "mask", "caption", "inpaint"]:
    """Accepted or out of attempts: finish; otherwise back to the blamed stage."""
    route = state.get("route")
    if route in ("accept", "give_up"):
        return "finish"
    if route in ("mask", "caption", "inpaint"):
        return route
    raise ValueError(f"verify left an unexpected route {route!r}")


def build_graph(components: Components, checkpointer: Any = None) -> Any:
    """Compile the editing graph for `components`.

    Args:
        components: models, stores and knobs the nodes use.
        checkpointer: a LangGraph saver (sessions, resume, human review), or None for the
            LangGraph server, which brings its own.
    """
    from langgraph.graph import END, START, StateGraph

    nodes = EditNodes(components)
    builder = StateGraph(State, input_schema=InputState, output_schema=OutputState)
    for name in NODES:
        builder.add_node(name, getattr(nodes, name))
    builder.add_edge(START, "start")
    builder.add_edge("start", "classify")
    builder.add_edge("classify", "identify")
    builder.add_edge("identify", "mask")
    builder.add_conditional_edges("mask", route_after_mask, ["review", "caption", "inpaint"])
    builder.add_conditional_edges("review", route_after_review, ["caption", "inpaint"])
    builder.add_edge("caption", "inpaint")
    builder.add_edge("inpaint", "verify")
    builder.add_conditional_edges(
        "verify", route_after_verify, ["finish", "mask", "caption", "inpaint"]
    )
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer, name="brushedit")
