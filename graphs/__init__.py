"""Orchestration: the LangGraph editing state machine, sessions, traces and the CLI.

Names are imported on first use so `import graphs` (and `brushedit --help`) stays fast and never
loads torch or LangGraph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools.lazy import lazy_exports

if TYPE_CHECKING:
    from graphs.artifacts import ArtifactStore
    from graphs.components import Components, GraphSettings, build_components
    from graphs.context import Context
    from graphs.graph import build_graph
    from graphs.session import EditSession, MaskReview, Turn
    from graphs.settings import Settings
    from graphs.traces import TraceStore

_EXPORTS = {
    "ArtifactStore": "graphs.artifacts",
    "Components": "graphs.components",
    "Context": "graphs.context",
    "GraphSettings": "graphs.context",
    "build_components": "graphs.components",
    "build_graph": "graphs.graph",
    "EditSession": "graphs.session",
    "MaskReview": "graphs.session",
    "Turn": "graphs.session",
    "Settings": "graphs.settings",
    "TraceStore": "graphs.traces",
}

__all__ = [
    "ArtifactStore",
    "Components",
    "Context",
    "EditSession",
    "GraphSettings",
    "MaskReview",
    "Settings",
    "TraceStore",
    "Turn",
    "build_components",
    "build_graph",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
