"""What the LangGraph server serves (`langgraph.json` points here): the graph and its artifacts.

Importing this module builds no model and opens no database: the run context
(`graphs.context.Context`) is assembled from `Settings` on first use, inside the first run (or the
first artifact request), and shared by every run of the process
(`graphs.components.SERVER_CONTEXT`). A client may send knobs as the run's context
(`context={"settings": {"planner": "rules"}}`). The graph is compiled WITHOUT a checkpointer,
because the server brings its own persistence. Its `start` node checks the fields of every
server run's input (`graphs.requests.check_turn_input`).

`http_app` is mounted by the server (`langgraph.json`'s `http.app`) and serves
`GET /artifacts/<hash>`, the `image_url` of every result and of a mask review's images.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from graphs.components import SERVER_CONTEXT
from graphs.graph import build_graph
from graphs.requests import check_run_input
from graphs.state import RUN_INPUT_DEFAULTS

logger = logging.getLogger(__name__)


class ServerGraph(CompiledStateGraph):
    """The compiled graph, refusing in a sentence the run inputs LangGraph itself trips on.

    A server client can send any JSON as `input` and resume any thread; LangGraph answers a list
    or text input with a node-return error and a resume of a thread with nothing paused with a
    bare `TypeError` (or silently nothing). Those are checked here, before the run starts; the
    fields of a proper input are checked by the `start` node. What a turn's input omits is set
    to none (`RUN_INPUT_DEFAULTS`): the thread's channels keep the last run's values, and a run
    that failed left them uncleared. The server copies the graph with `copy()`, which keeps
    this class.
    """

    async def astream(self, input: Any, config: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
        import asyncio

        paused = None
        if _is_resume(input) and self.checkpointer is not None and _thread_of(config):
            paused = bool((await self.aget_state(config)).interrupts)
        check_run_input(input, paused)
        context = await asyncio.to_thread(SERVER_CONTEXT.get)
        with _slot(context):
            try:
                async for chunk in super().astream(_whole_turn(input), config, **kwargs):
                    yield chunk
            except Exception as exc:
                public = _public(exc)
                if public is exc:
                    raise
                raise public from exc

    def stream(self, input: Any, config: Any = None, **kwargs: Any) -> Iterator[Any]:
        paused = None
        if _is_resume(input) and self.checkpointer is not None and _thread_of(config):
            paused = bool(self.get_state(config).interrupts)
        check_run_input(input, paused)
        with _slot(SERVER_CONTEXT.get()):
            try:
                yield from super().stream(_whole_turn(input), config, **kwargs)
            except Exception as exc:
                public = _public(exc)
                if public is exc:
                    raise
                raise public from exc


def _slot(context: Any) -> Any:
    """One of the process's edit slots for the run (`graphs.admission`), or nothing to hold."""
    import contextlib

    return context.slots.take() if context.slots is not None else contextlib.nullcontext()


def _public(exc: Exception) -> Exception:
    """What a run's failure shows the server's client: an expected error as it is (a full disk
    as `StorageFullError`), LangGraph's own signals untouched, and a bug as `InternalError`'s
    one sentence, its details (type, text, traceback) only in the server's log."""
    from graphs.storage import storage_full
    from tools.errors import BrushEditError, InternalError

    if isinstance(exc, BrushEditError) or type(exc).__module__.startswith("langgraph"):
        return exc
    full = storage_full(exc)
    if full is not None:
        logger.warning("a run failed: %s", full)
        return full
    logger.error("a run failed unexpectedly", exc_info=exc)
    return InternalError()


def _whole_turn(value: Any) -> Any:
    """A turn's input with what it omits set to none (`RUN_INPUT_DEFAULTS`), else unchanged."""
    return {**RUN_INPUT_DEFAULTS, **value} if isinstance(value, dict) else value


def _is_resume(value: Any) -> bool:
    from langgraph.types import Command

    return isinstance(value, Command) and value.resume is not None


def _thread_of(config: Any) -> Any:
    return ((config or {}).get("configurable") or {}).get("thread_id")


# LangGraph maps a run's input onto the state before any node runs, and offers no hook there; so
# the refusals above need the entry points, and the compiled graph becomes this class the way
# LangGraph's own `Pregel.copy()` rebuilds one (every attribute passed back to the constructor).
graph = ServerGraph(**{k: v for k, v in build_graph(checkpointer=None).__dict__.items()
                       if k != "__orig_class__"})
"""The `editor` graph. Server runs bring no Python context: nodes use `SERVER_CONTEXT`'s."""


def _artifact(request: Any) -> Any:
    from starlette.responses import FileResponse, JSONResponse

    from graphs.artifacts import is_hash
    from graphs.inputs import as_hash

    digest = as_hash(request.path_params["digest"])
    if not is_hash(digest):
        return JSONResponse(
            {"error": "InvalidRequestError",
             "message": f"`{digest[:80]}` is not an artifact hash (64 hex digits)"},
            status_code=422,
        )
    store = SERVER_CONTEXT.get().store
    if not store.has(digest):
        return JSONResponse(
            {"error": "NotFound", "message": f"no artifact {digest[:12]}… on this server"},
            status_code=404,
        )
    return FileResponse(store.path(digest), media_type="image/png",
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})


def _http_app() -> Any:
    """The artifact route, and the guard the server applies to every route (the LangGraph
    server makes a mounted app's middleware its outermost): loopback's host names only (or
    `BRUSHEDIT_ALLOWED_HOSTS`), and no page of another origin (but `BRUSHEDIT_CORS_ORIGINS`),
    whatever CORS answer `langgraph dev` itself would give (a wildcard)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from graphs.http_guard import RequestGuard

    def setting(name: str) -> Any:
        from graphs.settings import Settings

        return lambda: getattr(Settings(), name)

    guard = Middleware(RequestGuard, hosts=setting("allowed_hosts"),
                       origins=setting("cors_origins"))
    return Starlette(routes=[Route("/artifacts/{digest}", _artifact, methods=["GET"])],
                     middleware=[guard])


http_app = _http_app()
