"""The HTTP API (`brushedit serve`): sessions, edits with server-sent progress, artifacts, traces.

Built by `create_app(components_factory, settings)` so tests inject offline components and no
state lives at module level. Everything a client sends is checked before a session or turn is
touched: a refused request leaves nothing behind. Images travel as multipart uploads in and as
content-addressed PNGs (`GET /artifacts/{hash}`) out; clients never name file-system paths.

Edits run as jobs stored in the session database (`graphs.jobs`), so a job outlives the server
that ran it: after a crash it reads as `interrupted` and `POST .../resume` continues the turn
from its last completed node, through the session facade. Progress is server-sent events
(sse-starlette) numbered per job, so a reader that reconnects with `Last-Event-ID` gets only
what it missed. The interactive docs are served from files of an installed package
(fastapi-offline), never a CDN, and sit behind the same token as the rest.

No `from __future__ import annotations`: FastAPI reads the route signatures at runtime and must
see the real `Request`/`UploadFile` classes, imported inside `create_app` to keep imports light.
"""

import asyncio
import contextlib
import inspect
import logging
import re
import secrets
import threading
import uuid
from base64 import b64decode
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

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
from tools.errors import (
    BrushEditError,
    ConfigError,
    InvalidRequestError,
    MaskNeededError,
    ModelLoadError,
)
from tools.images import DEFAULT_MAX_PIXELS
from tools.types import EditOptions, EditResult, field_bounds

if TYPE_CHECKING:
    from fastapi import FastAPI

    from graphs.jobs import JobRecord, JobStore

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_HEADER_BYTES = 32 * 1024
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""Every integer a client sends must fit here (SQLite, msgpack checkpoints, torch seeds)."""
PAGE_LIMIT = 100
OPTION_NAMES = frozenset(EditOptions.model_fields)


def clean_token(token: str | None) -> str | None:
    """A blank or whitespace-only token is no token."""
    token = (token or "").strip()
    return token or None


# --------------------------------------------------------------------------- response models


class Health(BaseModel):
    status: Literal["ok"] = Field(default="ok", description="Always `ok` while the server runs.")
    version: str = Field(description="Version of the brushedit-agents package.")


class SessionOut(BaseModel):
    """A session and its turns; `image` is what the next edit continues from."""

    id: str = Field(description="Session id, used in every `/sessions/{session_id}` URL.")
    turns: list[TurnOut] = Field(description="Every turn, oldest first (undone ones flagged).")
    image: str | None = Field(default=None, description="Hash of the last kept result.")


class SessionSummary(BaseModel):
    """One line of the session list."""

    id: str = Field(description="Session id.")
    created: str = Field(description="When the session was created (ISO 8601, UTC).")
    updated: str = Field(description="When the session last changed (ISO 8601, UTC).")
    title: str | None = Field(default=None, description="The first instruction, shortened.")
    turns: int = Field(description="Number of turns, undone ones included.")


class SessionPage(BaseModel):
    """A page of sessions, most recently updated first."""

    sessions: list[SessionSummary] = Field(description="This page's sessions.")
    total: int = Field(description="How many sessions exist in all.")
    limit: int = Field(description="Page size asked for.")
    offset: int = Field(description="Sessions skipped before this page.")
    next: str | None = Field(default=None, description="URL of the next page; null on the last.")


class EditLinks(BaseModel):
    events: str = Field(description="Server-sent events of the edit (supports Last-Event-ID).")
    status: str = Field(description="This edit's status and result.")
    resume: str | None = Field(
        default=None, description="POST here to resume the edit; present while interrupted."
    )
    image: str | None = Field(default=None, description="The result PNG, once done.")
    trace: str = Field(description="The session's full trace.")


class EditOut(BaseModel):
    """One edit: running, done (with its result), failed (with its error) or interrupted."""

    edit_id: str = Field(description="Edit id, used in `/sessions/{session_id}/edits/{edit_id}`.")
    session_id: str = Field(description="The session the edit belongs to.")
    turn: int | None = Field(default=None, description="The session turn it runs, once known.")
    status: Literal["running", "done", "failed", "interrupted"] = Field(
        description="`interrupted`: the server stopped during the edit; resume it with "
        "`links.resume`."
    )
    result: EditResult | None = Field(default=None, description="The result, once done.")
    error: ErrorDetail | None = Field(default=None, description="Why it failed, if it did.")
    links: EditLinks = Field(description="Where to follow, fetch or resume the edit.")


class EditList(BaseModel):
    """The edits of a session that are still retained, oldest first."""

    edits: list[EditOut] = Field(description="Edits, oldest first.")


class TraceOut(BaseModel):
    """Every node run of a session with its prompts, answers and image hashes."""

    session_id: str = Field(description="The session traced.")
    events: list[dict[str, Any]] = Field(description="Node runs, oldest first, with model calls.")


class UndoIn(BaseModel):
    turn: int | None = Field(
        default=None, ge=0, le=INT64_MAX, description="Go back to this turn; one back if absent."
    )


# Descriptions for the fields of shared models (tools.types) that do not carry their own; the
# OpenAPI document takes a model's own description first.
FIELD_DOCS: dict[str, dict[str, str]] = {
    "EditResult": {
        "image": "Content hash of the chosen result (fetch it from /artifacts/{hash}).",
        "source_image": "Content hash of the image the edit started from.",
        "instruction": "The instruction, as given.",
        "plan": "What the agents decided to edit and how.",
        "mask": "Content hash of the mask that was inpainted.",
        "caption": "The target caption the inpainter was given.",
        "accepted": "Whether the verifier accepted the result.",
        "attempts": "How many inpainting attempts ran.",
        "reason": "The verifier's reason for its verdict.",
        "planner": "Who planned the edit: `vlm` or `rules`.",
        "inpainter": "The inpainter that ran.",
        "candidates": "Content hashes of every candidate image produced.",
        "metrics": "Verifier metrics of the chosen result.",
        "session_id": "The session the edit belongs to.",
        "turn": "The session turn of the edit.",
    },
    "EditPlan": {
        "instruction": "The instruction the plan answers.",
        "category": "Kind of edit: removal, addition, local, background or global.",
        "confidence": "The planner's confidence, 0 to 1.",
        "rationale": "The planner's short explanation.",
        "source": "Who planned it: `vlm` or `rules`.",
    },
    "Box": {
        "x0": "Left edge in pixels.",
        "y0": "Top edge in pixels.",
        "x1": "Right edge in pixels (exclusive).",
        "y1": "Bottom edge in pixels (exclusive).",
    },
    "TurnOut": {
        "turn": "Turn number, from 1.",
        "instruction": "The instruction of the turn.",
        "undone": "The turn was undone; the next edit does not build on it.",
        "reason": "The verifier's reason, or why the turn failed.",
    },
    "ErrorDetail": {"message": "One sentence saying what is wrong and how to fix it."},
    "ErrorBody": {"error": "What went wrong."},
}


# --------------------------------------------------------------------------- edit jobs


@dataclass
class EditJob:
    """A job running in this process: its events in memory for live SSE readers.

    Every event is also written to the job store, so readers after a restart (or on another
    server process) replay it from there.
    """

    edit_id: str
    session_id: str
    store: "JobStore"
    seq: int = 0
    base_seq: int = 0
    """Events up to this number were emitted before (by the server that was interrupted)."""
    turn: int | None = None
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    status: Literal["running", "done", "failed"] = "running"
    result: EditResult | None = None
    error: ErrorDetail | None = None
    http_status: int = 200
    done: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.base_seq = self.seq

    def emit(self, event: dict[str, Any]) -> None:
        """Number, keep and store an event; server file paths never reach clients."""
        clean = {k: v for k, v in jsonable(event).items() if k != "path"}
        if clean.get("type") == "turn" and isinstance(clean.get("turn"), int) and self.turn is None:
            self.turn = clean["turn"]
            self.store.set_turn(self.edit_id, self.turn)
        with self._lock:
            self.seq += 1
            seq = self.seq
        if self.store.add_event(self.edit_id, seq, clean):
            with self._lock:
                self.events.append((seq, clean))
        self._wake()

    def finish(self) -> None:
        self.done.set()
        self._wake()

    def after(self, seq: int) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            return [item for item in self.events if item[0] > seq]

    async def wait(self, seq: int, timeout: float) -> None:
        """Until an event after `seq` exists, the job ends, or `timeout` passes."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            if self.done.is_set() or (self.events and self.events[-1][0] > seq):
                return
            self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter[1].wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _wake(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that reader's loop is gone
                loop.call_soon_threadsafe(event.set)


@dataclass
class ApiState:
    """Everything the routes share, owned by one app instance."""

    components: LazyComponents
    settings: Any
    open_session: SessionOpener
    max_pixels: int
    job_store_factory: Callable[[Any], "JobStore"]
    heartbeat_s: float
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)
    live: dict[str, EditJob] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _jobs: "JobStore | None" = None

    def jobs(self) -> "JobStore":
        comps = self.components.get()
        with self.lock:
            if self._jobs is None:
                self._jobs = self.job_store_factory(comps)
            return self._jobs

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.close()

    def links(self, session_id: str, edit_id: str, image: str | None,
              interrupted: bool = False) -> EditLinks:
        base = f"/sessions/{session_id}/edits/{edit_id}"
        return EditLinks(
            events=f"{base}/events",
            status=base,
            resume=f"{base}/resume" if interrupted else None,
            image=f"/artifacts/{image}" if image else None,
            trace=f"/sessions/{session_id}/trace",
        )

    def edit_out(self, record: "JobRecord") -> EditOut:
        result = EditResult.model_validate(record.result) if record.result else None
        error = ErrorDetail.model_validate(record.error) if record.error else None
        status = record.status
        return EditOut(
            edit_id=record.edit_id, session_id=record.session_id, turn=record.turn,
            status=status, result=result, error=error,
            links=self.links(record.session_id, record.edit_id,
                             result.image if result else None, status == "interrupted"),
        )


# --------------------------------------------------------------------------- binding rules


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token: an open editor is an open GPU."""
    if not clean_token(token) and host not in LOOPBACK_HOSTS:
        raise ConfigError(
            f"refusing to listen on {host} without authentication; set BRUSHEDIT_API_TOKEN "
            "(clients then send `Authorization: Bearer <token>`) or bind to 127.0.0.1"
        )


class BodyLimit:
    """ASGI middleware: 413 as soon as a request body passes `max_bytes`, declared or not.

    Headers over `max_header_bytes` in all get 431 (the HTTP parser alone lets megabytes by).

    A `Content-Length` over the limit is refused before reading; a chunked body is counted as
    it arrives, and the moment it passes the limit the client gets the 413 and the app sees a
    disconnect (whatever it answers after that is dropped).
    """

    def __init__(self, app: Any, max_bytes: int, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
                 ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = scope.get("headers") or []
        if sum(len(k) + len(v) + 4 for k, v in raw) > self.max_header_bytes:
            await self._reject(send, 431, "RequestHeaderFieldsTooLarge",
                               f"the request headers are over the limit of "
                               f"{self.max_header_bytes:,} bytes")
            return
        headers = dict(raw)
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0
        rejected = False
        started = False

        async def limited_receive() -> dict:
            nonlocal seen, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    rejected = True
                    if not started:
                        await self._reject(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if rejected:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not rejected:
                raise

    async def _reject(self, send: Any, status: int = 413, kind: str = "RequestTooLarge",
                      message: str | None = None) -> None:
        body = ErrorBody(
            error=ErrorDetail(
                type=kind,
                message=message or f"the request body is over the limit of {self.max_bytes:,} "
                "bytes",
            )
        ).model_dump_json().encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                            (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- messages


_CLI_WORDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"with `?--mask(?: MASK\.png)?`?"), "by sending a `mask` file with the edit"),
    (re.compile(r"pass `?--mask(?: MASK\.png)?`?"), "send a `mask` file"),
    (re.compile(r"`?--mask(?: MASK\.png)?`?"), "a `mask` file"),
    (re.compile(r"`?--inpainter[ =]([a-z]+)`?"), r"`inpainter=\1`"),
    (re.compile(r"\(the `([a-z]+)` inpainter\)"), r"(`inpainter=\1`)"),
    (re.compile(r"`?--planner[ =]([a-z]+)`?"), r"the server's planner setting (\1)"),
    (re.compile(r"`?--([a-z][a-z-]*)(?:[ =]([A-Za-z0-9_.]+))?`?"), r"`\1`"),
)


def api_words(message: str) -> str:
    """Say a shared error message in the API's terms: form fields, never CLI flags."""
    for pattern, replacement in _CLI_WORDS:
        message = pattern.sub(replacement, message)
    return message


def _is_missing_model(exc: BaseException) -> bool:
    """Model weights that cannot be loaded, or a model server that is down or lacks the model,
    directly or as the cause of a node's error: the server's setup, not the request."""
    from agents.errors import VLMModelNotFoundError, VLMTimeoutError, VLMUnavailableError
    from graphs.nodes import NO_SEGMENTER

    missing = (ModelLoadError, VLMUnavailableError, VLMModelNotFoundError, VLMTimeoutError)
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, missing):
            return True
        seen = seen.__cause__
    return str(exc).startswith(NO_SEGMENTER.split("{")[0])


def api_error(exc: BaseException) -> tuple[int, ErrorDetail]:
    """Status and body of a failure, in the API's words."""
    status = 503 if _is_missing_model(exc) else http_status_for(exc)
    detail = error_detail(exc)
    message = api_words(detail.message)
    if isinstance(exc, MaskNeededError):
        message += " (send a `mask` file with the edit, white = edit)"
    if status == 503 and "BrushNet" in message:
        message += (" Until the server has these weights, removals work with "
                    "`inpainter=opencv`.")
    return status, ErrorDetail(type=detail.type, message=message)


# --------------------------------------------------------------------------- option fields


def option_bounds(info: Any) -> dict[str, Any]:
    """`ge`/`le`/`gt`/`lt` of an `EditOptions` field, integers boxed into 64 bits."""
    bounds = field_bounds(info)
    if info.annotation is int:
        if "ge" not in bounds and "gt" not in bounds:
            bounds["ge"] = INT64_MIN
        if "le" not in bounds and "lt" not in bounds:
            bounds["le"] = INT64_MAX
    return bounds


def option_form_dependency() -> Callable[..., dict[str, Any]]:
    """A FastAPI dependency taking every `EditOptions` field as an optional form field.

    Names, types, bounds and descriptions come from `EditOptions.model_fields`, so a field or
    bound added there reaches the API (and its OpenAPI document) without touching this module.
    """
    from fastapi import Form

    parameters = []
    for name, info in EditOptions.model_fields.items():
        description = info.description or f"Overrides the `{name}` option (see `options`)."
        parameters.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY,
                default=Form(None, description=description, **option_bounds(info)),
                annotation=info.annotation | None,
            )
        )

    def options_form(**values: Any) -> dict[str, Any]:
        return {k: v for k, v in values.items() if v is not None}

    options_form.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return options_form


def check_option_ranges(options: EditOptions) -> EditOptions:
    """Refuse any integer option outside its field's bounds or 64 bits, in one sentence."""
    for name, info in EditOptions.model_fields.items():
        value = getattr(options, name)
        if info.annotation is not int or isinstance(value, bool) or not isinstance(value, int):
            continue
        bounds = option_bounds(info)
        low = bounds.get("ge", bounds.get("gt", INT64_MIN))
        high = bounds.get("le", bounds.get("lt", INT64_MAX))
        if not low <= value <= high:
            raise InvalidRequestError(
                f"`options.{name}` is {value}; it must be between {low} and {high}."
            )
    return options


# --------------------------------------------------------------------------- the app


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    texts = {
        400: "Malformed request",
        401: "Missing or wrong bearer token",
        404: "Unknown session, edit or artifact",
        409: "The session or edit is busy, or in a state that does not allow this",
        413: "Request body or image too large",
        415: "Wrong content type for this route",
        422: "Invalid image, mask, instruction, options or parameters",
        503: "Models cannot be loaded, or the session database is unreachable",
    }
    return {code: {"model": ErrorBody, "description": texts[code]} for code in codes}


def _docs_static_dir() -> Path | None:
    """Swagger UI and ReDoc files shipped by the fastapi-offline package, if installed."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    path = Path(fastapi_offline.__file__).parent / "static"
    return path if (path / "swagger-ui-bundle.js").is_file() else None


DOCS_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}


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
    from contextlib import asynccontextmanager

    from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, Response, UploadFile
    from fastapi import Path as PathParam
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.security import HTTPBearer
    from sse_starlette import EventSourceResponse, ServerSentEvent
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from graphs.jobs import JobStore

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
    bearer = HTTPBearer(auto_error=False, description="BRUSHEDIT_API_TOKEN of the server.")

    def token_ok(request: Request, *, basic: bool = False) -> bool:
        assert token is not None
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        given = given.strip()
        if basic and scheme.lower() == "basic":
            try:
                given = b64decode(given, validate=True).decode("utf-8").partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                return False
        elif scheme.lower() != "bearer":
            return False
        return secrets.compare_digest(given.encode(), token.encode())

    def require_token(request: Request, _: Any = Depends(bearer)) -> None:
        if token and not token_ok(request):
            raise _Unauthorized

    def require_docs_token(request: Request) -> None:
        """The docs also take HTTP Basic (any user, the token as password): browsers ask."""
        if token and not token_ok(request, basic=True):
            raise _Unauthorized(basic=True)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        # A clean shutdown interrupts its running edits at once (a crash: after the heartbeat).
        for edit_id in list(state.live):
            try:
                state.jobs().interrupt(edit_id)
            except Exception:
                logger.warning("could not mark edit %s interrupted", edit_id, exc_info=True)
        state.close()

    app = FastAPI(
        title="BrushEdit-Agents API",
        version=_version(),
        description="Instruction-guided image editing: sessions, edits, artifacts and traces.",
        docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.state.brushedit = state
    auth = [Depends(require_token)] if token else []
    secured = (401,) if token else ()
    route_errors: dict[tuple[str, str], tuple[int, ...]] = {}

    def errors(path: str, method: str, *codes: int) -> dict[int | str, dict[str, Any]]:
        """Declare a route's error statuses: its own, 401 with a token, and 503 (every route
        but /healthz opens the components, which may fail to load or reach the database)."""
        codes = tuple(sorted({*codes, *secured, 503}))
        route_errors[(path, method)] = codes
        return _errors(*codes)

    # -- errors ------------------------------------------------------------------------------

    def error_response(status: int, detail: ErrorDetail, headers: dict | None = None):
        return JSONResponse(
            ErrorBody(error=detail).model_dump(mode="json"), status_code=status, headers=headers
        )

    @app.exception_handler(BrushEditError)
    async def _brushedit_error(request: Request, exc: BrushEditError):
        return error_response(*api_error(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, ErrorDetail(
            type="InternalError",
            message="the server failed unexpectedly; its log has the details"))

    @app.exception_handler(_Unauthorized)
    async def _unauthorized(request: Request, exc: _Unauthorized):
        challenge = 'Bearer realm="brushedit"'
        if exc.basic:
            challenge += ', Basic realm="brushedit", charset="UTF-8"'
        return error_response(
            401,
            ErrorDetail(type="Unauthorized",
                        message="send the server's token as `Authorization: Bearer <token>`"),
            headers={"WWW-Authenticate": challenge},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        route = request.scope.get("route")
        kind = _content_kind(request.headers.get("content-type", ""))
        wants = getattr(route, "openapi_extra", None) or {}
        if wants.get("x-body") == "form" and kind not in ("form", "none"):
            return error_response(415, ErrorDetail(
                type="UnsupportedMediaType",
                message="send the edit as multipart/form-data (fields `instruction`, `image`, "
                        "`mask`, options)"))
        if wants.get("x-body") == "json" and kind not in ("json", "none"):
            return error_response(415, ErrorDetail(
                type="UnsupportedMediaType", message="send the body as application/json"))
        parts = []
        for err in exc.errors():
            if err.get("type") == "json_invalid":
                parts.append("the body is not valid JSON"
                             + (f" ({err['ctx']['error']})" if err.get("ctx") else ""))
                continue
            names = [str(p) for p in err.get("loc", ())
                     if p not in ("body", "query", "path", "header")]
            if names and names[0] in OPTION_NAMES:
                names.insert(0, "options")
            loc = ".".join(names).replace("_", "-") if err.get("loc", ("",))[0] == "header" \
                else ".".join(names)
            parts.append(f"`{loc}`: {err.get('msg')}" if loc else str(err.get("msg")))
        return error_response(
            422, ErrorDetail(type="InvalidRequestError", message="; ".join(parts) + ".")
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        kind = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed"}.get(
            exc.status_code, "HTTPError")
        message = str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            path = request.scope.get("path", "")
            methods = {m for r in app.routes if getattr(r, "methods", None)
                       and r.path_regex.match(path) for m in r.methods}
            allowed = ", ".join(sorted(methods)) or headers.get("Allow", "")
            headers["Allow"] = allowed
            message = f"{request.method} is not allowed on {path}; allowed: {allowed}"
        elif exc.status_code == 400:
            message = f"the request body cannot be parsed ({str(exc.detail).rstrip('.')})"
        elif exc.status_code == 404:
            message = f"no route {request.url.path}; see /docs for the routes"
        return error_response(exc.status_code, ErrorDetail(type=kind, message=message),
                              headers=headers or None)

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

    def get_record(session_id: str, edit_id: str) -> "JobRecord":
        check_session_id(session_id)
        record = state.jobs().get(edit_id) if len(edit_id) <= 64 else None
        if record is None or record.session_id != session_id:
            raise NotFoundError(f"no edit {edit_id[:80]!r} in session {session_id!r}")
        return record

    def claim_session_for_resume(session_id: str) -> None:
        """Mark a session busy for this process, refusing if an edit runs here."""
        with state.lock:
            if session_id in state.busy:
                raise ConflictError(
                    f"an edit is already running in session {session_id!r}; wait for it"
                )
            state.busy.add(session_id)

    def claim_session(session_id: str) -> None:
        """Mark a session busy for this process, refusing if an edit runs anywhere."""
        claim_session_for_resume(session_id)
        try:
            others = [r for r in state.jobs().list(session_id) if r.status == "running"]
        except BaseException:
            release_session(session_id)
            raise
        if others:
            release_session(session_id)
            raise ConflictError(
                f"an edit is already running in session {session_id!r}; wait for it"
            )

    def release_session(session_id: str) -> None:
        with state.lock:
            state.busy.discard(session_id)

    def start_job(job: EditJob, work: Callable[[Callable[[dict], None]], EditResult]) -> None:
        """Run `work(emit)` in a thread, beating the job's heartbeat until it ends."""
        store = state.jobs()

        def beat() -> None:
            while not job.done.wait(state.heartbeat_s):
                try:
                    store.beat([job.edit_id])
                except Exception:  # the database went away: the job will read as interrupted
                    logger.warning("heartbeat of edit %s failed", job.edit_id, exc_info=True)

        def run() -> None:
            try:
                job.emit({"type": "started", "edit_id": job.edit_id})
                job.result = work(job.emit)
                job.status = "done"
                job.emit({"type": "done", "edit_id": job.edit_id,
                          "result": job.result.model_dump(mode="json")})
                store.finish(job.edit_id, "done", result=job.result.model_dump(mode="json"))
            except Exception as exc:
                if not isinstance(exc, BrushEditError):
                    logger.exception("edit %s failed", job.edit_id)
                job.status = "failed"
                job.http_status, job.error = api_error(exc)
                try:
                    job.emit({"type": "error", "error": job.error.model_dump()})
                    store.finish(job.edit_id, "failed", error=job.error.model_dump(),
                                 http_status=job.http_status)
                except Exception:
                    logger.exception("could not record the failure of edit %s", job.edit_id)
            finally:
                with state.lock:
                    state.busy.discard(job.session_id)
                    state.live.pop(job.edit_id, None)
                job.finish()

        with state.lock:
            state.live[job.edit_id] = job
        threading.Thread(target=beat, name=f"beat-{job.edit_id[:8]}", daemon=True).start()
        threading.Thread(target=run, name=f"edit-{job.edit_id[:8]}", daemon=True).start()

    async def answer(job: EditJob, *, stream: bool, wait: bool, created: bool, after: int = 0):
        location = f"/sessions/{job.session_id}/edits/{job.edit_id}"
        if stream:
            return EventSourceResponse(
                sse_stream(job.edit_id, after), ping=15,
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no",
                         "Location": location},
            )
        if not wait:
            record = await asyncio.to_thread(state.jobs().get, job.edit_id)
            return JSONResponse(state.edit_out(record).model_dump(mode="json"), status_code=202,
                                headers={"Location": location})
        while not job.done.is_set():  # no thread held while waiting
            await job.wait(job.seq, timeout=5.0)
        if job.status == "failed":
            assert job.error is not None
            return error_response(job.http_status, job.error)
        record = await asyncio.to_thread(state.jobs().get, job.edit_id)
        return JSONResponse(state.edit_out(record).model_dump(mode="json"),
                            status_code=201 if created else 200,
                            headers={"Location": location})

    async def sse_stream(edit_id: str, after: int) -> AsyncIterator[Any]:
        """Events after `after`, live or replayed from the store, until the job ends."""
        store = state.jobs()
        while True:
            job = state.live.get(edit_id)
            if job is not None and after < job.base_seq:  # resumed: earlier events are stored
                items = [item for item in await asyncio.to_thread(store.events, edit_id, after)
                         if item[0] <= job.base_seq]
                items = items or [(job.base_seq, {})]
            elif job is not None:
                items = job.after(after)
            else:
                items = await asyncio.to_thread(store.events, edit_id, after)
            for seq, event in items:
                if not event:  # nothing stored before a resumption: skip to the live events
                    after = seq
                    continue
                yield ServerSentEvent(data=_json(event), event=str(event.get("type", "message")),
                                      id=str(seq))
                after = seq
            if job is not None:
                if job.done.is_set() and not job.after(after):
                    return
                await job.wait(after, timeout=5.0)
                continue
            if items:
                continue
            record = await asyncio.to_thread(store.get, edit_id)
            if record is None or record.status in ("done", "failed"):
                return
            if record.status == "interrupted":
                out = state.edit_out(record)
                yield ServerSentEvent(
                    data=_json({"type": "interrupted", "edit_id": edit_id,
                                "resume": out.links.resume}),
                    event="interrupted")
                return
            await asyncio.sleep(0.5)  # running on another server process: poll the store

    SessionId = Annotated[str, PathParam(description="Session id, from POST /sessions.")]
    EditId = Annotated[str, PathParam(description="Edit id, from POST .../edits.")]
    Digest = Annotated[str, PathParam(description="sha256 content hash (64 lowercase hex).")]

    # -- routes: meta and docs -----------------------------------------------------------------

    @app.get("/healthz", response_model=Health, tags=["meta"])
    def healthz() -> Health:
        """Liveness: answers without loading any model (and without a token)."""
        return Health(version=_version())

    route_errors[("/healthz", "get")] = ()
    static_dir = _docs_static_dir()
    docs_auth = [Depends(require_docs_token)]

    def openapi_document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _finish_openapi(
                get_openapi(title=app.title, version=app.version, description=app.description,
                            routes=app.routes),
                route_errors,
            )
        return app.openapi_schema

    app.openapi = openapi_document  # type: ignore[method-assign]

    @app.get("/openapi.json", include_in_schema=False, dependencies=docs_auth)
    def openapi_json() -> JSONResponse:
        return JSONResponse(openapi_document())

    def docs_assets() -> Path:
        if static_dir is None:
            raise ConfigError(
                "the interactive docs need the fastapi-offline package on the server; "
                "/openapi.json works without it"
            )
        return static_dir

    @app.get("/docs", include_in_schema=False, dependencies=docs_auth)
    def swagger_ui() -> Response:
        docs_assets()
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title=f"{app.title} - docs",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False, dependencies=docs_auth)
    def redoc() -> Response:
        docs_assets()
        return get_redoc_html(
            openapi_url="/openapi.json", title=f"{app.title} - ReDoc",
            redoc_js_url="/docs/static/redoc.standalone.js",
            redoc_favicon_url="/docs/static/favicon.png", with_google_fonts=False,
        )

    @app.get("/docs/static/{name}", include_in_schema=False, dependencies=docs_auth)
    def docs_static(name: str) -> FileResponse:
        if name not in DOCS_FILES:
            raise NotFoundError(f"no docs file {name[:80]!r}")
        return FileResponse(docs_assets() / name, media_type=DOCS_FILES[name],
                            headers={"Cache-Control": "public, max-age=86400"})

    # -- routes: sessions --------------------------------------------------------------------

    @app.get("/sessions", response_model=SessionPage, dependencies=auth, tags=["sessions"],
             responses=errors("/sessions", "get", 422))
    def list_sessions(
        limit: int = Query(20, ge=1, le=PAGE_LIMIT, description="Sessions per page."),
        offset: int = Query(0, ge=0, le=INT64_MAX, description="Sessions to skip."),
    ) -> SessionPage:
        """Sessions, most recently updated first, a page at a time (follow `next`)."""
        traces = components().traces
        total = traces.count_sessions()
        rows = traces.sessions(limit=limit, offset=offset) if offset < total else []
        more = offset + len(rows) < total
        return SessionPage(
            sessions=[SessionSummary(id=r["id"], created=r["created"], updated=r["updated"],
                                     title=r["title"], turns=r["turns"]) for r in rows],
            total=total, limit=limit, offset=offset,
            next=f"/sessions?limit={limit}&offset={offset + len(rows)}" if more else None,
        )

    @app.post("/sessions", response_model=SessionOut, status_code=201, dependencies=auth,
              tags=["sessions"], responses=errors("/sessions", "post", 503))
    def create_session(response: Response) -> SessionOut:
        """Start an empty session; its edits chain, each kept result feeding the next."""
        session = new_session(state.open_session, components())
        response.headers["Location"] = f"/sessions/{session.id}"
        return session_out(session)

    @app.get("/sessions/{session_id}", response_model=SessionOut, dependencies=auth,
             tags=["sessions"], responses=errors("/sessions/{session_id}", "get", 404))
    def get_session(session_id: SessionId) -> SessionOut:
        """The session's turns (undone ones are flagged, not deleted)."""
        return session_out(existing_session(session_id))

    @app.delete("/sessions/{session_id}", status_code=204, dependencies=auth,
                tags=["sessions"],
                responses=errors("/sessions/{session_id}", "delete", 404, 409))
    def delete_session(session_id: SessionId) -> Response:
        """Forget a session: turns, trace, checkpoints and edits (images stay, shared by hash)."""
        session = existing_session(session_id)
        claim_session(session_id)
        try:
            if not hasattr(session, "delete"):
                raise InvalidRequestError("this server's sessions cannot be deleted")
            session.delete()
            state.jobs().delete_session(session_id)
        finally:
            release_session(session_id)
        return Response(status_code=204)

    @app.post("/sessions/{session_id}/undo", response_model=SessionOut, dependencies=auth,
              tags=["sessions"], openapi_extra={"x-body": "json"},
              responses=errors("/sessions/{session_id}/undo", "post", 400, 404, 409, 413, 415,
                               422))
    def undo(session_id: SessionId, body: UndoIn | None = None) -> SessionOut:
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
             tags=["sessions"], responses=errors("/sessions/{session_id}/trace", "get", 404))
    def trace(session_id: SessionId) -> TraceOut:
        """Every agent step: node, inputs, outputs, model prompts and answers, image hashes."""
        session = existing_session(session_id)
        return TraceOut(session_id=session_id, events=jsonable(session.trace()))

    # -- routes: edits -----------------------------------------------------------------------

    options_form = option_form_dependency()
    edit_path = "/sessions/{session_id}/edits"

    @app.post(
        edit_path,
        response_model=EditOut,
        status_code=201,
        dependencies=auth,
        tags=["edits"],
        openapi_extra={"x-body": "form"},
        responses={
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "With `stream=true`: the edit's server-sent events.",
            },
            201: {"model": EditOut, "description": "The finished edit (`Location`: its URL)."},
            202: {"model": EditOut, "description": "Started, with `wait=false` (`Location`)."},
            **errors(edit_path, "post", 400, 404, 409, 413, 415, 422, 503),
        },
    )
    async def post_edit(
        request: Request,
        session_id: SessionId,
        instruction: str = Form(..., description="What to change, e.g. 'remove the cat'."),
        image: UploadFile | None = File(None, description="Image to edit; none = last result."),
        mask: UploadFile | None = File(
            None, description="Optional mask of the image's size, white = edit."
        ),
        options: str | None = Form(None, description="EditOptions as a JSON object."),
        caption: str | None = Form(
            None, description="Target caption for the inpainter, instead of the planner's."
        ),
        fields: dict[str, Any] = Depends(options_form),
        stream: bool = Query(False, description="Answer with server-sent events."),
        wait: bool = Query(True, description="false: answer 202 at once; follow the links."),
    ):
        """Run one edit. Default: answer 201 when it is done, with `Location`; `wait=false`:
        answer 202 at once and follow `links.events`; `stream=true`: answer with server-sent
        events (`turn`, `node`, `progress`, ..., then `done` with the result, or `error`)."""
        check_form_fields(await request.form())
        comps = await asyncio.to_thread(components)
        check_session_id(session_id)
        if not await asyncio.to_thread(session_exists, comps, session_id):
            raise NotFoundError(f"no session {session_id!r}; create one with POST /sessions")
        opts = check_option_ranges(
            parse_options(options, fields, defaults=default_options(comps, settings))
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
        store = await asyncio.to_thread(state.jobs)
        await asyncio.to_thread(claim_session, session_id)
        try:
            await asyncio.to_thread(_abandon_interrupted, store, session_id)
            job = EditJob(edit_id=uuid.uuid4().hex, session_id=session_id, store=store)
            await asyncio.to_thread(store.create, job.edit_id, session_id, state.owner)
        except BaseException:
            release_session(session_id)
            raise
        start_job(job, lambda emit: run_prepared(comps, state.open_session, prepared, emit))
        return await answer(job, stream=stream, wait=wait, created=True)

    @app.get(edit_path, response_model=EditList, dependencies=auth, tags=["edits"],
             responses=errors(edit_path, "get", 404))
    def list_edits(session_id: SessionId) -> EditList:
        """The session's retained edits, oldest first (finished ones expire after a while)."""
        existing_session(session_id)
        return EditList(edits=[state.edit_out(r) for r in state.jobs().list(session_id)])

    @app.get(edit_path + "/{edit_id}", response_model=EditOut, dependencies=auth,
             tags=["edits"], responses=errors(edit_path + "/{edit_id}", "get", 404))
    def get_edit(session_id: SessionId, edit_id: EditId) -> EditOut:
        """An edit's status and, once done, its result; `interrupted` ones can be resumed."""
        return state.edit_out(get_record(session_id, edit_id))

    @app.post(
        edit_path + "/{edit_id}/resume",
        response_model=EditOut,
        dependencies=auth,
        tags=["edits"],
        responses={
            200: {"model": EditOut, "description": "The resumed edit, finished."},
            202: {"model": EditOut, "description": "Resumed, with `wait=false`."},
            **errors(edit_path + "/{edit_id}/resume", "post", 404, 409, 422, 503),
        },
    )
    async def resume_edit(
        session_id: SessionId,
        edit_id: EditId,
        stream: bool = Query(False, description="Answer with the edit's next server-sent events."),
        wait: bool = Query(True, description="false: answer 202 at once; follow the links."),
    ):
        """Continue an edit that a stopped server left `interrupted`, from its last completed
        step (nothing done before is redone)."""
        record = await asyncio.to_thread(get_record, session_id, edit_id)
        status = state.edit_out(record).status
        if status != "interrupted" or edit_id in state.live:
            raise ConflictError(
                f"edit {edit_id} is {status}; only an interrupted edit can be resumed"
            )
        comps = await asyncio.to_thread(components)
        session = await asyncio.to_thread(state.open_session, comps, session_id)
        if not hasattr(session, "resume"):
            raise InvalidRequestError("this server's sessions cannot resume edits")
        await asyncio.to_thread(claim_session_for_resume, session_id)
        try:
            store = state.jobs()
            latest = await asyncio.to_thread(lambda: [t.turn for t in session.turns()])
            resumable = await asyncio.to_thread(session.unfinished)
            if not resumable or (record.turn is not None and latest and latest[-1] != record.turn):
                raise ConflictError(
                    f"edit {edit_id} cannot be resumed: its turn was replaced or finished; "
                    "start a new edit"
                )
            if not await asyncio.to_thread(store.claim, edit_id, state.owner):
                raise ConflictError(f"edit {edit_id} is being resumed already")
            job = EditJob(edit_id=edit_id, session_id=session_id, store=store,
                          seq=await asyncio.to_thread(store.last_seq, edit_id), turn=record.turn)
        except BaseException:
            release_session(session_id)
            raise
        after = job.seq
        start_job(job, lambda emit: session.resume(on_event=emit))
        return await answer(job, stream=stream, wait=wait, created=False, after=after)

    @app.get(
        edit_path + "/{edit_id}/events",
        dependencies=auth,
        tags=["edits"],
        response_class=EventSourceResponse,
        responses={
            200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                  "description": "The edit's events, each with an `id`."},
            **errors(edit_path + "/{edit_id}/events", "get", 404, 422),
        },
    )
    def edit_events(
        session_id: SessionId,
        edit_id: EditId,
        last_event_id: Annotated[
            int | None,
            Header(ge=0, le=INT64_MAX,
                   description="Resume after this event id (browsers send it on reconnect)."),
        ] = None,
    ) -> EventSourceResponse:
        """Server-sent events of an edit, replayed from the start (or after `Last-Event-ID`),
        until `done`, `error` or `interrupted`."""
        record = get_record(session_id, edit_id)
        return EventSourceResponse(
            sse_stream(record.edit_id, last_event_id or 0), ping=15,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- routes: artifacts -------------------------------------------------------------------

    @app.get(
        "/artifacts/{digest}",
        dependencies=auth,
        tags=["artifacts"],
        response_class=FileResponse,
        responses={200: {"content": {"image/png": {}}, "description": "The PNG"},
                   **errors("/artifacts/{digest}", "get", 404, 422)},
    )
    def artifact(digest: Digest) -> FileResponse:
        """An image or mask by its sha256 content hash (never by path)."""
        path = artifact_path(components(), digest)
        return FileResponse(
            path, media_type="image/png",
            headers={"Cache-Control": "public, max-age=31536000, immutable"},
        )

    app.head("/artifacts/{digest}", dependencies=auth, include_in_schema=False)(artifact)

    return app


class _Unauthorized(Exception):
    def __init__(self, basic: bool = False) -> None:
        super().__init__("unauthorized")
        self.basic = basic


def _abandon_interrupted(store: "JobStore", session_id: str) -> None:
    """A new edit replaces a session's interrupted ones (the facade abandons their turns)."""
    for record in store.list(session_id):
        if record.status == "interrupted":
            store.finish(record.edit_id, "failed", http_status=409, error={
                "type": "AbandonedError",
                "message": "the server stopped during this edit and a later edit replaced it",
            })


EDIT_FIELDS = frozenset({"instruction", "image", "mask", "options", "caption", *OPTION_NAMES})


def check_form_fields(form: Any) -> None:
    """Refuse unknown and repeated form fields: a typo must not silently run the defaults."""
    names = list(form.keys())
    unknown = sorted(set(names) - EDIT_FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(EDIT_FIELDS))}"
        )
    repeated = sorted({n for n in names if len(form.getlist(n)) > 1})
    if repeated:
        raise InvalidRequestError(f"send each field once; repeated: {', '.join(repeated)}")


def _content_kind(content_type: str) -> str:
    media = content_type.split(";")[0].strip().lower()
    if not media:
        return "none"
    if media in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return "form"
    if media == "application/json" or media.endswith("+json"):
        return "json"
    return "other"


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def _finish_openapi(
    spec: dict[str, Any], route_errors: dict[tuple[str, str], tuple[int, ...]]
) -> dict[str, Any]:
    """Only the statuses each route can return; every schema field described."""
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            declared = route_errors.get((path, method))
            if declared is None:
                continue
            responses = operation.get("responses", {})
            for code in list(responses):
                if code.isdigit() and int(code) >= 400 and int(code) not in declared:
                    del responses[code]
            if "422" in responses:
                responses["422"] = {
                    "description": _errors(422)[422]["description"],
                    "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                }
            if 401 not in declared:
                operation.pop("security", None)
    schemas = spec.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for name, schema in schemas.items():
        docs = FIELD_DOCS.get(name, {})
        for prop, body in schema.get("properties", {}).items():
            if not body.get("description") and prop in docs:
                body["description"] = docs[prop]
    return spec


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
