"""The graph the LangGraph server serves (`langgraph.json` points here).

The app layer: components come from `Settings` at import. It is compiled WITHOUT a checkpointer,
because the server brings its own persistence; models still load lazily on first use.
"""

from __future__ import annotations

from graphs.components import build_components
from graphs.graph import build_graph
from graphs.settings import Settings

components = build_components(Settings(), persist=False)
graph = build_graph(components, checkpointer=None)
