"""What the LangGraph server serves (`langgraph.json` points here): the graph and its artifacts.

Importing this module builds no model and opens no database: the components are assembled from
`Settings` on first use, inside the first run (or the first artifact request). The graph is
compiled WITHOUT a checkpointer, because the server brings its own persistence.

`http_app` is mounted by the server (`langgraph.json`'s `http.app`) and serves
`GET /artifacts/<hash>`, the `image_url` of every result and of a mask review's images.
"""

from __future__ import annotations

import threading
from typing import Any

from graphs.graph import build_graph


class SettingsComponents:
    """`Components` built from `Settings` on first attribute access (one bundle per process)."""

    def __init__(self) -> None:
        self._built: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._built is None:
                from graphs.components import build_components
                from graphs.settings import Settings

                self._built = build_components(Settings(), persist=False)
            return self._built

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.get(), name)


components = SettingsComponents()
graph = build_graph(components, checkpointer=None)


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
    store = components.store
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
