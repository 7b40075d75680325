"""What the LangGraph server serves (`langgraph.json` points here): the graph and its artifacts.

Importing this module builds no model and opens no database: the run context
(`graphs.context.Context`) is assembled from `Settings` on first use, inside the first run (or the
first artifact request), and shared by every run of the process (`graphs.context.DEFAULT`). A
client may send knobs as the run's context (`context={"settings": {"planner": "rules"}}`). The
graph is compiled WITHOUT a checkpointer, because the server brings its own persistence.

`http_app` is mounted by the server (`langgraph.json`'s `http.app`) and serves
`GET /artifacts/<hash>`, the `image_url` of every result and of a mask review's images.
"""

from __future__ import annotations

from typing import Any

from graphs.context import DEFAULT
from graphs.graph import build_graph

graph = build_graph(checkpointer=None)
"""The `editor` graph. Server runs bring no Python context: nodes use `DEFAULT`'s bundle."""


def _artifact(request: Any) -> Any:
    from starlette.responses import FileResponse, JSONResponse

    from graphs.artifacts import is_hash

    digest = request.path_params["digest"]
    if not is_hash(digest):
        return JSONResponse(
            {"error": "InvalidRequestError",
             "message": f"`{digest[:80]}` is not an artifact hash (64 hex digits)"},
            status_code=422,
        )
    store = DEFAULT.get().store
    if not store.has(digest):
        return JSONResponse(
            {"error": "NotFound", "message": f"no artifact {digest[:12]}… on this server"},
            status_code=404,
        )
    return FileResponse(store.path(digest), media_type="image/png",
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})


def _http_app() -> Any:
    from starlette.applications import Starlette
    from starlette.routing import Route

    return Starlette(routes=[Route("/artifacts/{digest}", _artifact, methods=["GET"])])


http_app = _http_app()
