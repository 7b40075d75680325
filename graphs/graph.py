"""The editing state machine: classify -> identify -> mask (-> review) -> caption -> inpaint ->
verify, with the verifier routing back to the stage it blames until it accepts or attempts run out.

The graph is built the LangGraph way: typed state with public input/output schemas, a
`context_schema` (`graphs.context.Context`: models, stores and knobs, given per run), nodes that
are plain functions of `(state, runtime)` returning partial updates, conditional edges after
the mask and the review, and a verifier that routes itself with `Command(goto=...)`.
The session facade compiles it with its context's checkpointer; the LangGraph server export in
`graphs.app` compiles it without one.
"""

from __future__ import annotations

from typing import Any

import graphs.nodes as nodes
from graphs.context import Context
from graphs.state import InputState, OutputState, State

NODES = ("start", "classify", "identify", "mask", "review", "caption", "inpaint", "verify",
         "finish")


def build_graph(checkpointer: Any = None) -> Any:
    """Compile the editing graph; run it with `context=` a `Context` (or none on the server).

    Args:
        checkpointer: a LangGraph saver (sessions, resume, human review), or None for the
            LangGraph server, which brings its own.
    """
    from langgraph.graph import END, START, StateGraph

    if isinstance(checkpointer, Context):
        raise TypeError(
            "build_graph no longer takes the components: compile with a checkpointer and run "
            "with `graph.stream(..., context=components)` (or use `graphs.EditSession`)"
        )
    builder = StateGraph(State, input_schema=InputState, output_schema=OutputState,
                         context_schema=Context)
    for name in NODES:
        destinations = nodes.VERIFY_DESTINATIONS if name == "verify" else None
        builder.add_node(name, getattr(nodes, name), destinations=destinations)
    builder.add_edge(START, "start")
    builder.add_edge("start", "classify")
    builder.add_edge("classify", "identify")
    builder.add_edge("identify", "mask")
    builder.add_conditional_edges("mask", nodes.route_after_mask, ["review", "caption", "inpaint"])
    builder.add_conditional_edges("review", nodes.route_after_review, ["caption", "inpaint"])
    builder.add_edge("caption", "inpaint")
    builder.add_edge("inpaint", "verify")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer, name="brushedit")


def build_subgraph() -> Any:
    """The editing graph to embed as a node of your own LangGraph graph (multi-turn).

    Compiled with `checkpointer=True`: it keeps its own state (the current image, the turn
    count) in your graph's checkpointer, per thread, from one run of your graph to the next, so
    a turn without `image` continues from the last accepted result. (The server export in
    `graphs.app`, compiled with no checkpointer, starts afresh on every call when embedded.)
    Your graph passes the turn's fields (`image`, `instruction`, `mask`, `options`...) in its
    state, as a LangGraph-server client would, and runs with `context=` a `graphs.Context`
    (`build_components(settings)`); it gets `result`, `progress` and `preview` back.
    """
    return build_graph(checkpointer=True)
