"""The engine: the LangGraph editing state machine, its run context, sessions, stores and traces.

Names are imported on first use so `import graphs` (and `brushedit --help`) stays fast and never
loads torch or LangGraph. The faces people use (CLI, HTTP API, MCP, web, LangChain tool) are in
the `interfaces` package above this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools.lazy import lazy_exports

if TYPE_CHECKING:
    from graphs.artifacts import ArtifactStore
    from graphs.components import build_components
    from graphs.context import Context, GraphSettings
    from graphs.graph import build_graph
    from graphs.session import EditSession, MaskReview, PreparedTurn, Turn
    from graphs.settings import Settings
    from graphs.traces import TraceStore
    from graphs.vlm_setup import PlannerInfo, build_vlm, planner_info

_EXPORTS = {
    "ArtifactStore": "graphs.artifacts",
    "Context": "graphs.context",
    "GraphSettings": "graphs.context",
    "build_components": "graphs.components",
    "build_graph": "graphs.graph",
    "EditSession": "graphs.session",
    "MaskReview": "graphs.session",
    "PreparedTurn": "graphs.session",
    "Turn": "graphs.session",
    "Settings": "graphs.settings",
    "TraceStore": "graphs.traces",
    "PlannerInfo": "graphs.vlm_setup",
    "build_vlm": "graphs.vlm_setup",
    "planner_info": "graphs.vlm_setup",
}

__all__ = [
    "ArtifactStore",
    "Context",
    "EditSession",
    "GraphSettings",
    "MaskReview",
    "PlannerInfo",
    "PreparedTurn",
    "Settings",
    "TraceStore",
    "Turn",
    "build_components",
    "build_graph",
    "build_vlm",
    "planner_info",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
