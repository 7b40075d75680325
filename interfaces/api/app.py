"""The HTTP API app: sessions, edits with server-sent progress, artifacts, traces.

Built by `create_app(components_factory, settings)` so tests inject offline components and no
state lives at module level. Everything a client sends is checked before a session or turn is
touched: a refused request leaves nothing behind. Images travel as multipart uploads in and as
content-addressed PNGs (`GET /artifacts/{hash}`) out; clients never name file-system paths.

Edits run as jobs stored in the session database (`interfaces.api.job_store`), so a job
outlives the server that ran it: after a crash it reads as `interrupted` and `POST .../resume` continues the turn
from its last completed node, through the session facade. Progress is server-sent events
(sse-starlette) numbered per job, so a reader that reconnects with `Last-Event-ID` gets only
what it missed. The interactive docs are served from files of an installed package
(fastapi-offline), never a CDN, and sit behind the same token as the rest.

The routes live beside this module in `interfaces.api` (one module per resource, each
registering its routes over the app's one `ApiState`); FastAPI is imported inside `create_app`,
so importing this module stays light.
"""

import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from interfaces.api.errors import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HEADER_BYTES,
    BodyLimit,
    api_error,
    api_message,
)
from interfaces.api.jobs import ApiState, EditJob
from interfaces.common import (
    LOOPBACK_HOSTS,
    ComponentsFactory,
    LazyComponents,
    SessionOpener,
    default_session_opener,
)
from tools.errors import ConfigError
from tools.images import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from fastapi import FastAPI

    from interfaces.api.job_store import JobStore

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_HEADER_BYTES",
    "LOOPBACK_HOSTS",
    "ApiState",
    "BodyLimit",
    "EditJob",
    "api_error",
    "api_message",
    "check_bind",
    "clean_token",
    "create_app",
    "serve",
]

logger = logging.getLogger(__name__)

def clean_token(token: str | None) -> str | None:
    """A blank or whitespace-only token is no token."""
    token = (token or "").strip()
    return token or None


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token: an open editor is an open GPU."""
    if not clean_token(token) and host not in LOOPBACK_HOSTS:
        raise ConfigError(
            f"refusing to listen on {host} without authentication; set BRUSHEDIT_API_TOKEN "
            "(clients then send `Authorization: Bearer <token>`) or bind to 127.0.0.1"
        )


def create_app(
    components_factory: ComponentsFactory,
    settings: Any = None,
    *,
    session_opener: SessionOpener | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    token: str | None = None,
    job_store: Callable[[Any], "JobStore"] | None = None,
    heartbeat_s: float = 5.0,
) -> "FastAPI":
    """Build the FastAPI app.

    Args:
        token: bearer token; defaults to `settings.api_token` (BRUSHEDIT_API_TOKEN). Blank
            means none.
        job_store: `components -> JobStore`; by default the jobs live in the session database
            of the components' checkpointer.
        heartbeat_s: how often a running job proves it is alive; one silent for three beats
            reads as interrupted.
    """
    from fastapi import FastAPI

    from graphs.http_guard import RequestGuard, split_list
    from interfaces.api.artifacts import add_artifact_routes
    from interfaces.api.auth import auth_dependencies
    from interfaces.api.docs import ErrorDocs, add_meta_routes
    from interfaces.api.edits import add_cancel_routes, add_edit_routes, add_resume_routes
    from interfaces.api.form_text import Utf8FormFields
    from interfaces.api.handlers import install_error_handlers
    from interfaces.api.job_store import JobStore
    from interfaces.api.models import package_version
    from interfaces.api.planner import add_planner_routes
    from interfaces.api.sessions import add_session_routes

    token = clean_token(token if token is not None else getattr(settings, "api_token", None))
    stale_s = 3 * heartbeat_s

    def default_store(comps: Any) -> JobStore:
        return JobStore.for_components(comps, stale_s=stale_s)

    state = ApiState(
        components=LazyComponents(components_factory),
        settings=settings,
        open_session=session_opener or default_session_opener,
        max_pixels=max_pixels,
        job_store_factory=job_store or default_store,
        heartbeat_s=heartbeat_s,
    )
    app = FastAPI(
        title="BrushEdit-Agents API",
        version=package_version(),
        description="Instruction-guided image editing: sessions, edits, artifacts and traces.",
        docs_url=None, redoc_url=None, openapi_url=None, lifespan=_lifespan(state),
        generate_unique_id_function=_operation_id,
    )
    app.add_middleware(Utf8FormFields)  # inside the size limit: what it reads is bounded
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    # Outermost: a foreign Host (DNS rebinding) or a foreign page's Origin goes no further.
    # Without a token only loopback's names (and BRUSHEDIT_ALLOWED_HOSTS) are answered.
    hosts = split_list(getattr(settings, "allowed_hosts", None))
    app.add_middleware(RequestGuard, hosts=hosts,
                       origins=split_list(getattr(settings, "cors_origins", None)),
                       check_host=not token or bool(hosts))
    app.state.brushedit = state
    auth, docs_auth = auth_dependencies(token)
    errors = ErrorDocs(secured=(401,) if token else ())
    install_error_handlers(app)
    add_meta_routes(app, docs_auth, errors)
    add_session_routes(app, state, auth, errors)
    add_edit_routes(app, state, auth, errors)
    add_resume_routes(app, state, auth, errors)
    add_cancel_routes(app, state, auth, errors)
    add_artifact_routes(app, state, auth, errors)
    add_planner_routes(app, state, auth, errors)
    return app


def _operation_id(route: Any) -> str:
    """A route's operationId is its function's name (`create_edit`, `cancel_edit`...), so a
    generated client's methods read as the API's verbs, not `post_..._post`."""
    return route.name


def _lifespan(state: ApiState) -> Callable[[Any], Any]:
    """On a clean shutdown, mark this server's running edits interrupted at once (after a
    crash they read so after three missed heartbeats) and close the job store."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        for edit_id in list(state.live):
            try:
                state.jobs().interrupt(edit_id)
            except Exception:
                logger.warning("could not mark edit %s interrupted", edit_id, exc_info=True)
        state.close()

    return lifespan


def serve(
    settings: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    inpainter: str | None = None,
    planner: str | None = None,
) -> None:
    """Run the API with uvicorn (blocking); refuses open binds without a token."""
    import uvicorn

    from interfaces.common import settings_components_factory

    check_bind(host, settings.api_token)
    app = create_app(
        settings_components_factory(settings, inpainter=inpainter, planner=planner), settings
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
