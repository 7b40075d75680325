"""The HTTP API (`brushedit serve`): sessions, edits with server-sent progress, artifacts, traces.

Built by `create_app(components_factory, settings)` so tests inject offline components and no
state lives at module level. Everything a client sends is checked before a session or turn is
touched: a refused request leaves nothing behind. Images travel as multipart uploads in and as
content-addressed PNGs (`GET /artifacts/{hash}`) out; clients never name file-system paths.

No `from __future__ import annotations`: FastAPI reads the route signatures at runtime and must
see the real `Request`/`UploadFile` classes, imported inside `create_app` to keep imports light.
"""

import asyncio
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from graphs.interfaces.common import (
    ComponentsFactory,
    ConflictError,
    ErrorBody,
    ErrorDetail,
    LazyComponents,
    NotFoundError,
    SessionOpener,
    TurnOut,
    artifact_path,
    check_session_id,
    default_options,
    default_session_opener,
    error_detail,
    http_status_for,
    jsonable,
    last_image,
    new_session,
    parse_options,
    prepare_edit,
    run_prepared,
    session_exists,
    turn_out,
)
from tools.errors import BrushEditError, ConfigError, InvalidRequestError
from tools.images import DEFAULT_MAX_PIXELS
from tools.types import EditResult

if TYPE_CHECKING:
    from fastapi import FastAPI

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 25 * 1024 * 1024
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


# --------------------------------------------------------------------------- response models


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class SessionOut(BaseModel):
    """A session and its turns; `image` is what the next edit continues from."""

    id: str
    turns: list[TurnOut]
    image: str | None = Field(default=None, description="Hash of the last kept result.")


class EditLinks(BaseModel):
    events: str
    status: str
    image: str | None = None
    trace: str


class EditOut(BaseModel):
    """One edit: running, done (with its result) or failed (with its error)."""

    edit_id: str
    session_id: str
    status: Literal["running", "done", "failed"]
    result: EditResult | None = None
    error: ErrorDetail | None = None
    links: EditLinks


class TraceOut(BaseModel):
    """Every node run of a session with its prompts, answers and image hashes."""

    session_id: str
    events: list[dict[str, Any]]


class UndoIn(BaseModel):
    turn: int | None = Field(default=None, ge=0, description="Go back to this turn; one back if absent.")


# --------------------------------------------------------------------------- edit jobs


@dataclass
class EditJob:
    """One edit run in a worker thread; its events are kept for replay to late SSE readers."""

    edit_id: str
    session_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    status: Literal["running", "done", "failed"] = "running"
    result: EditResult | None = None
    error: ErrorDetail | None = None
    http_status: int = 200
    done: threading.Event = field(default_factory=threading.Event)

    def emit(self, event: dict[str, Any]) -> None:
        """Keep an event for SSE readers; server file paths never reach clients."""
        self.events.append({k: v for k, v in jsonable(event).items() if k != "path"})


@dataclass
class ApiState:
    """Everything the routes share, owned by one app instance."""

    components: LazyComponents
    settings: Any
    open_session: SessionOpener
    max_pixels: int
    jobs: dict[str, EditJob] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def links(self, session_id: str, edit_id: str, image: str | None) -> EditLinks:
        base = f"/sessions/{session_id}/edits/{edit_id}"
        return EditLinks(
            events=f"{base}/events",
            status=base,
            image=f"/artifacts/{image}" if image else None,
            trace=f"/sessions/{session_id}/trace",
        )

    def edit_out(self, job: EditJob) -> EditOut:
        image = job.result.image if job.result else None
        return EditOut(
            edit_id=job.edit_id,
            session_id=job.session_id,
            status=job.status,
            result=job.result,
            error=job.error,
            links=self.links(job.session_id, job.edit_id, image),
        )


# --------------------------------------------------------------------------- binding rules


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token: an open editor is an open GPU."""
    if not token and host not in LOOPBACK_HOSTS:
        raise ConfigError(
            f"refusing to listen on {host} without authentication; set BRUSHEDIT_API_TOKEN "
            "(clients then send `Authorization: Bearer <token>`) or bind to 127.0.0.1"
        )


class BodyLimit:
    """ASGI middleware: 413 before reading more than `max_bytes` of a request body."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._reject(send)

    async def _reject(self, send: Any) -> None:
        body = ErrorBody(
            error=ErrorDetail(
                type="RequestTooLarge",
                message=f"the request body is over the limit of {self.max_bytes:,} bytes",
            )
        ).model_dump_json().encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


# --------------------------------------------------------------------------- the app


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "Malformed request"),
        (401, "Missing or wrong bearer token"),
        (404, "Unknown session, edit or artifact"),
        (409, "An edit is already running in this session"),
        (413, "Request body or image too large"),
        (422, "Invalid image, mask, instruction or options"),
        (503, "Models cannot be loaded"),
    )
}


def create_app(
    components_factory: ComponentsFactory,
    settings: Any = None,
    *,
    session_opener: SessionOpener | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    token: str | None = None,
) -> "FastAPI":
    """Build the FastAPI app; `token` defaults to `settings.api_token` (BRUSHEDIT_API_TOKEN)."""
    from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    token = token if token is not None else getattr(settings, "api_token", None)
    state = ApiState(
        components=LazyComponents(components_factory),
        settings=settings,
        open_session=session_opener or default_session_opener,
        max_pixels=max_pixels,
    )

    def require_token(request: Request) -> None:
        if not token:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            given.strip().encode(), token.encode()
        ):
            raise _Unauthorized

    app = FastAPI(
        title="BrushEdit-Agents API",
        version=_version(),
        description="Instruction-guided image editing: sessions, edits, artifacts and traces.",
        responses=ERROR_RESPONSES,
    )
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.state.brushedit = state
    auth = [Depends(require_token)]

    # -- errors ------------------------------------------------------------------------------

    def error_response(status: int, detail: ErrorDetail, headers: dict | None = None):
        return JSONResponse(
            ErrorBody(error=detail).model_dump(mode="json"), status_code=status, headers=headers
        )

    @app.exception_handler(BrushEditError)
    async def _brushedit_error(request: Request, exc: BrushEditError):
        return error_response(http_status_for(exc), error_detail(exc))

    @app.exception_handler(_Unauthorized)
    async def _unauthorized(request: Request, exc: _Unauthorized):
        return error_response(
            401,
            ErrorDetail(type="Unauthorized", message="send `Authorization: Bearer <token>`"),
            headers={"WWW-Authenticate": 'Bearer realm="brushedit"'},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            parts.append(f"`{loc}`: {err.get('msg')}" if loc else str(err.get("msg")))
        return error_response(422, ErrorDetail(type="ValidationError", message="; ".join(parts)))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return error_response(exc.status_code, ErrorDetail(type=kind, message=str(exc.detail)))

    # -- helpers -----------------------------------------------------------------------------

    def components() -> Any:
        return state.components.get()

    def existing_session(session_id: str) -> Any:
        check_session_id(session_id)
        comps = components()
        if not session_exists(comps, session_id):
            raise NotFoundError(f"no session {session_id!r}; create one with POST /sessions")
        return state.open_session(comps, session_id)

    def session_out(session: Any) -> SessionOut:
        return SessionOut(
            id=session.id,
            turns=[turn_out(t) for t in session.turns()],
            image=last_image(session),
        )

    def get_job(session_id: str, edit_id: str) -> EditJob:
        job = state.jobs.get(edit_id)
        if job is None or job.session_id != session_id:
            raise NotFoundError(f"no edit {edit_id!r} in session {session_id!r}")
        return job

    # -- routes ------------------------------------------------------------------------------

    @app.get("/healthz", response_model=Health, tags=["meta"])
    def healthz() -> Health:
        """Liveness: answers without loading any model."""
        return Health(version=_version())

    @app.post(
        "/sessions", response_model=SessionOut, status_code=201, dependencies=auth,
        tags=["sessions"],
    )
    def create_session() -> SessionOut:
        """Start an empty session; its edits chain, each kept result feeding the next."""
        return session_out(new_session(state.open_session, components()))

    @app.get("/sessions/{session_id}", response_model=SessionOut, dependencies=auth,
             tags=["sessions"])
    def get_session(session_id: str) -> SessionOut:
        """The session's turns (undone ones are flagged, not deleted)."""
        return session_out(existing_session(session_id))

    @app.post("/sessions/{session_id}/undo", response_model=SessionOut, dependencies=auth,
              tags=["sessions"])
    def undo(session_id: str, body: UndoIn | None = None) -> SessionOut:
        """Go back one turn, or to `turn`; the next edit continues from there."""
        session = existing_session(session_id)
        with state.lock:
            if session_id in state.busy:
                raise ConflictError(f"an edit is running in session {session_id!r}; undo after it")
        if not [t for t in session.turns() if not turn_out(t).undone]:
            raise InvalidRequestError(f"session {session_id!r} has no turn to undo")
        session.undo(turn=body.turn if body else None)
        return session_out(session)

    @app.get("/sessions/{session_id}/trace", response_model=TraceOut, dependencies=auth,
             tags=["sessions"])
    def trace(session_id: str) -> TraceOut:
        """Every agent step: node, inputs, outputs, model prompts and answers, image hashes."""
        session = existing_session(session_id)
        return TraceOut(session_id=session_id, events=jsonable(session.trace()))

    @app.post(
        "/sessions/{session_id}/edits",
        response_model=EditOut,
        dependencies=auth,
        tags=["edits"],
        responses={
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "The edit (JSON), or with `stream=true` its events (SSE).",
            },
            202: {"model": EditOut, "description": "Started (with `wait=false`)"},
        },
    )
    async def post_edit(
        session_id: str,
        instruction: str = Form(..., description="What to change, e.g. 'remove the cat'."),
        image: UploadFile | None = File(None, description="Image to edit; none = last result."),
        mask: UploadFile | None = File(None, description="Optional mask, white = edit."),
        options: str | None = Form(None, description="EditOptions as a JSON object."),
        seed: int | None = Form(None),
        steps: int | None = Form(None),
        guidance_scale: float | None = Form(None),
        conditioning_scale: float | None = Form(None),
        samples: int | None = Form(None),
        blending: bool | None = Form(None),
        inpainter: str | None = Form(None),
        caption: str | None = Form(None),
        stream: bool = False,
        wait: bool = True,
    ):
        """Run one edit. `stream=true`: answer with server-sent events (`turn`, `node`,
        `progress`, …, then `done` with the result, or `error`); `wait=false`: answer 202 at
        once and follow `links.events`; otherwise answer when the edit is done."""
        comps = await asyncio.to_thread(components)
        check_session_id(session_id)
        if not session_exists(comps, session_id):
            raise NotFoundError(f"no session {session_id!r}; create one with POST /sessions")
        opts = parse_options(
            options,
            {
                "seed": seed, "steps": steps, "guidance_scale": guidance_scale,
                "conditioning_scale": conditioning_scale, "samples": samples,
                "blending": blending, "inpainter": inpainter,
            },
            defaults=default_options(comps, settings),
        )
        image_bytes = await image.read() if image is not None and image.filename else None
        mask_bytes = await mask.read() if mask is not None and mask.filename else None
        prepared = await asyncio.to_thread(
            lambda: prepare_edit(
                comps, state.open_session, instruction=instruction, image=image_bytes,
                mask=mask_bytes, options=opts.model_dump(), session_id=session_id,
                settings=settings, max_pixels=state.max_pixels, caption=caption,
            )
        )

        job = EditJob(edit_id=uuid.uuid4().hex, session_id=session_id)
        with state.lock:
            if session_id in state.busy:
                raise ConflictError(
                    f"an edit is already running in session {session_id!r}; wait for it"
                )
            state.busy.add(session_id)
            state.jobs[job.edit_id] = job

        def run() -> None:
            try:
                job.emit({"type": "started", "edit_id": job.edit_id})
                job.result = run_prepared(comps, state.open_session, prepared, job.emit)
                job.status = "done"
                job.emit({"type": "done", "edit_id": job.edit_id,
                          "result": job.result.model_dump(mode="json")})
            except Exception as exc:
                if not isinstance(exc, BrushEditError):
                    logger.exception("edit %s failed", job.edit_id)
                job.status = "failed"
                job.error = error_detail(exc)
                job.http_status = http_status_for(exc)
                job.emit({"type": "error", "error": job.error.model_dump()})
            finally:
                with state.lock:
                    state.busy.discard(session_id)
                job.done.set()

        threading.Thread(target=run, name=f"edit-{job.edit_id[:8]}", daemon=True).start()
        if stream:
            return StreamingResponse(
                _sse(job), media_type="text/event-stream", headers=_SSE_HEADERS
            )
        if not wait:
            return JSONResponse(state.edit_out(job).model_dump(mode="json"), status_code=202)
        await asyncio.to_thread(job.done.wait)
        out = state.edit_out(job)
        if job.status == "failed":
            return error_response(job.http_status, job.error)
        return out

    @app.get("/sessions/{session_id}/edits/{edit_id}", response_model=EditOut,
             dependencies=auth, tags=["edits"])
    def get_edit(session_id: str, edit_id: str) -> EditOut:
        """An edit's status and, once done, its result."""
        return state.edit_out(get_job(session_id, edit_id))

    @app.get(
        "/sessions/{session_id}/edits/{edit_id}/events",
        dependencies=auth,
        tags=["edits"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
    )
    def edit_events(session_id: str, edit_id: str) -> StreamingResponse:
        """Server-sent events of an edit, replayed from the start, until `done` or `error`."""
        job = get_job(session_id, edit_id)
        return StreamingResponse(_sse(job), media_type="text/event-stream", headers=_SSE_HEADERS)

    @app.get(
        "/artifacts/{digest}",
        dependencies=auth,
        tags=["artifacts"],
        response_class=FileResponse,
        responses={200: {"content": {"image/png": {}}, "description": "The PNG"}},
    )
    def artifact(digest: str) -> FileResponse:
        """An image or mask by its sha256 content hash (never by path)."""
        path = artifact_path(components(), digest)
        return FileResponse(
            path, media_type="image/png",
            headers={"Cache-Control": "public, max-age=31536000, immutable"},
        )

    return app


class _Unauthorized(Exception):
    pass


_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def _sse(job: EditJob, poll_s: float = 0.05) -> AsyncIterator[bytes]:
    """Replay then follow a job's events as SSE frames; ends after `done` or `error`."""
    sent = 0
    last_beat = time.monotonic()
    while True:
        while sent < len(job.events):
            event = job.events[sent]
            sent += 1
            kind = str(event.get("type", "message"))
            yield f"id: {sent}\nevent: {kind}\ndata: {json.dumps(event)}\n\n".encode()
            last_beat = time.monotonic()
        if job.done.is_set() and sent >= len(job.events):
            return
        if time.monotonic() - last_beat > 15:
            yield b": keep-alive\n\n"
            last_beat = time.monotonic()
        await asyncio.sleep(poll_s)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("brushedit-agents")
    except PackageNotFoundError:
        return "0.0.0"


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

    from graphs.interfaces.common import settings_components_factory

    check_bind(host, settings.api_token)
    app = create_app(
        settings_components_factory(settings, inpainter=inpainter, planner=planner), settings
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
