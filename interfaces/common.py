"""What every interface shares: the session seam, error bodies, option parsing, one edit's inputs.

The web UI, the HTTP API, the MCP server and the LangChain tool all drive `graphs.EditSession`;
every rule a request must pass (instruction, caption, options, hash, mask, session id) is the
facade's own (`graphs.requests`, applied once by `EditSession.prepare`), so a request refused by
one surface is refused by all with the same sentence. What stays here is the part that is about
interfaces: errors as HTTP statuses and bodies, uploads decoded from bytes and base64, options
read from JSON text. Nothing here imports gradio, fastapi or mcp.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from graphs.cancel import CancelToken
from graphs.claims import ConflictError
from graphs.requests import check_hash, check_options, check_session_name
from graphs.session import EditSession, PreparedTurn, Turn
from graphs.traces import to_jsonable as jsonable  # noqa: F401 - the interfaces import it here
from tools.errors import (
    BrushEditError,
    ConfigError,
    EditCancelledError,
    ImageTooLargeError,
    InternalError,
    InvalidImageError,
    InvalidRequestError,
    MaskNeededError,
    ModelLoadError,
    StorageFullError,
)
from tools.images import DEFAULT_MAX_PIXELS, read_image
from tools.registry import INPAINTER_NAMES
from tools.types import EditOptions, EditPlan, EditResult, options_patch_model

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from graphs.context import Context
    from graphs.settings import Settings

HASH_PATTERN = re.compile(r"^[0-9a-f]{64}$")
"""Artifact ids are sha256 hex digests; anything else (paths, `..`, URLs) is refused."""

EventCallback = Callable[[dict[str, Any]], None]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Hosts a server may listen on without a token: only this machine reaches them."""

SessionOpener = Callable[["Context", str | None], EditSession]
"""`(components, session_id | None) -> session`; `EditSession.open` by default."""

ComponentsFactory = Callable[[], "Context"]


def default_session_opener(components: Context, session_id: str | None) -> EditSession:
    """Open (or create) a session through the real facade."""
    return EditSession.open(components, session_id=session_id)


def settings_components_factory(
    settings: Settings, *, inpainter: str | None = None, planner: str | None = None
) -> ComponentsFactory:
    """A factory that builds the real components from `Settings` on first use."""

    def factory() -> Context:
        from graphs import build_components

        chosen = {"inpainter": inpainter, "planner": planner}
        return build_components(settings, **{k: v for k, v in chosen.items() if v})

    return factory


class LazyComponents:
    """Build components once, on first use, from a factory (thread-safe).

    Servers start fast and `--help` never loads models; tests inject offline components.
    """

    def __init__(self, factory: ComponentsFactory) -> None:
        self._factory = factory
        self._value: Context | None = None
        self._lock = threading.Lock()

    def get(self) -> Context:
        with self._lock:
            if self._value is None:
                self._value = self._factory()
            return self._value


# --------------------------------------------------------------------------- errors


class ErrorDetail(BaseModel):
    """One user-facing failure: the exception class name and its sentence."""

    type: str = Field(description="Error class, e.g. InvalidImageError, NotFound, Unauthorized.")
    message: str


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx answer from the HTTP API."""

    error: ErrorDetail


class NotFoundError(BrushEditError, LookupError):
    """A session, edit or artifact id that does not exist."""


def http_status_for(exc: BaseException) -> int:
    """Map the project's error hierarchy onto HTTP, by class and fields (never the message):
    the client's faults are 4xx; the server's setup or state 503 (a full disk, every edit slot
    taken, missing weights); a model server's fault 502, 503 when it is down or lacks the
    model, 504 when it timed out; anything else is a bug (500)."""
    from graphs.admission import ServerBusyError

    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, (ConflictError, EditCancelledError)):  # stopped: the edit's state, not input
        return 409
    server = model_server_status(exc)
    if server is not None:
        return server
    if isinstance(exc, (ModelLoadError, ConfigError, StorageFullError, ServerBusyError)) or (
        isinstance(exc, MaskNeededError) and exc.segmenter_missing
    ):
        return 503
    if isinstance(exc, ImageTooLargeError) or (
            isinstance(exc, InvalidImageError) and "over the limit" in str(exc)):
        return 413
    if isinstance(exc, BrushEditError):
        return 422
    return 500


def model_server_status(exc: BaseException) -> int | None:
    """502, 503 or 504 when `exc` (or what it was raised from) is a model server's fault:
    its timeout (504); down, without the model, or blind (503); a bad or refused answer (502).
    None for anything else (an instruction the rules cannot read stays the client's)."""
    from agents import errors

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, errors.VLMTimeoutError):
            return 504
        if isinstance(seen, (errors.VLMUnavailableError, errors.VLMModelNotFoundError,
                             errors.VLMNoVisionError)):
            return 503
        if isinstance(seen, (errors.VLMRequestError, errors.VLMInvalidAnswerError)) or (
                isinstance(seen, errors.BoxProposalError)
                and not isinstance(seen, errors.NoGroundingError)):
            return 502
        seen = seen.__cause__
    return None


def retry_after(exc: BaseException) -> int | None:
    """Seconds a client should wait before retrying (`Retry-After`), when the answer is
    "not now" rather than "no"."""
    from graphs.admission import ServerBusyError

    if isinstance(exc, ServerBusyError):
        return exc.retry_after_s
    return None


def error_detail(exc: BaseException) -> ErrorDetail:
    """An expected failure's type and sentence; a bug is `InternalError` with the one fixed
    sentence, its details only in the log (the caller logs them)."""
    if not isinstance(exc, BrushEditError):
        return ErrorDetail(type=InternalError.__name__, message=InternalError.MESSAGE)
    message = " ".join(str(exc).split()) or type(exc).__name__
    return ErrorDetail(type=type(exc).__name__, message=message)


# --------------------------------------------------------------------------- inputs


def check_session_id(value: str) -> str:
    """A session id from a URL or a tool call; a malformed one is a session that does not exist."""
    try:
        return check_session_name(value)
    except InvalidRequestError:
        raise NotFoundError(f"no session {str(value)[:80]!r}") from None


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Validate uploaded bytes into an RGB image (raises `InvalidImageError`)."""
    return read_image(data, max_pixels=max_pixels).image


def artifact_path(components: Context, digest: str) -> Path:
    """Resolve a hash to its stored file, or raise `NotFoundError` (a damaged file is missing)."""
    from graphs.artifacts import ArtifactDamagedError

    digest = check_hash(digest)
    path = Path(components.store.path(digest))
    if not path.is_file():
        raise NotFoundError(f"no artifact {digest}")
    try:
        components.store.get_image(digest)  # re-hashed: a damaged file is set aside
    except ArtifactDamagedError as exc:
        raise NotFoundError(str(exc)) from None
    return path


def load_artifact(components: Context, digest: str) -> Image.Image:
    from PIL import Image

    with Image.open(artifact_path(components, digest)) as image:
        return image.convert("RGB") if image.mode not in ("RGB", "L") else image.copy()


MAX_BASE64_CHARS = 36_000_000
"""About 25 MB decoded: the same ceiling as the HTTP API's body limit."""


def decode_base64(value: str, what: str = "image") -> bytes:
    """Bytes from plain or `data:image/...;base64,` text, refusing anything malformed."""
    text = (value or "").strip()
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    if len(text) > MAX_BASE64_CHARS:
        raise InvalidImageError(
            f"`{what}` is {len(text):,} base64 characters, over the limit of {MAX_BASE64_CHARS:,}"
        )
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestError(f"`{what}` is not valid base64 ({exc})") from None
    if not data:
        raise InvalidRequestError(f"`{what}` is empty")
    return data


def png_bytes(image: Any) -> bytes:
    """Encode a PIL image or a mask array as PNG."""
    import numpy as np
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------- options


OPTION_FIELDS = tuple(EditOptions.model_fields)

EditOptionsPatch = options_patch_model()
"""`EditOptions` fields a caller wants to change; absent ones keep the server's defaults."""


def parse_options(
    raw: str | dict[str, Any] | EditOptions | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    defaults: EditOptions | None = None,
) -> EditOptions:
    """Options from a JSON object (text or dict) and single fields, over `defaults`, checked by
    the facade's rule (`graphs.requests.check_options`: unknown keys refused, bounds enforced).
    """
    if isinstance(raw, EditOptions):
        raw = raw.model_dump()
    if isinstance(raw, str) and raw.strip():
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(f"`options` is not valid JSON ({exc.msg})") from exc
        except RecursionError:
            raise InvalidRequestError("`options` is nested too deeply to be an options object"
                                      ) from None
        if not isinstance(raw, dict):
            raise InvalidRequestError("`options` must be a JSON object")
    given: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
    given.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return check_options(given, defaults=defaults)


def default_options(components: Context, settings: Settings | None = None) -> EditOptions:
    """The facade's defaults (`EditSession.default_options`): the components' inpainter and
    attempt budget. `settings` is accepted for callers that pass it; the components decide."""
    return EditSession.open(components).default_options()


def inpainter_names(components: Context) -> list[str]:
    """Inpainters the components can build, default first; the registry's when none are set."""
    names = list(components.inpainters) or list(INPAINTER_NAMES)
    default = components.settings.inpainter
    if default in names:
        names.remove(default)
        names.insert(0, default)
    return names


# --------------------------------------------------------------------------- sessions and turns


def session_exists(components: Context, session_id: str) -> bool:
    """Whether a session id is known (sessions persist in the trace store across restarts)."""
    return bool(components.traces.has_session(session_id))


def new_session(open_session: SessionOpener, components: Context) -> EditSession:
    """Open a fresh session and make sure it is recorded, so later lookups find it."""
    session = open_session(components, None)
    if not components.traces.has_session(session.id):
        components.traces.touch_session(session.id)
    return session


class TurnOut(BaseModel):
    """One turn of a session, as every interface shows it (`graphs.session.Turn`)."""

    turn: int
    instruction: str = ""
    source: str | None = Field(default=None, description="Hash of the image the turn edited.")
    image: str | None = Field(default=None, description="Hash of the turn's chosen result.")
    mask: str | None = Field(default=None, description="Hash of the mask used.")
    accepted: bool = Field(default=False, description="The verifier accepted the result.")
    kept: bool = Field(default=False, description="Not accepted, but kept by the user.")
    undone: bool = False
    status: str = Field(default="done", description="running, done, failed, review, abandoned.")
    reason: str | None = None


def turn_out(turn: Turn) -> TurnOut:
    """A facade `Turn` as the interfaces' `TurnOut`."""
    return TurnOut.model_validate(turn.model_dump())


def last_image(session: EditSession) -> str | None:
    """The image the next edit continues from (the facade's `current_image`)."""
    return session.current_image


SUMMARY_FIELDS = frozenset({
    "session_id", "turn", "image", "source_image", "mask", "candidates", "accepted",
    "attempts", "reason", "planner", "inpainter", "caption", "plan", "metrics",
})


def summary(result: EditResult) -> dict[str, Any]:
    """A compact JSON description of a result for agents (hashes, plan, planner path)."""
    return result.model_dump(mode="json", include=set(SUMMARY_FIELDS))


# --------------------------------------------------------------------------- planning only


class PlanOut(BaseModel):
    """What `plan_edit` answers: the plan, the proposed mask and who planned it."""

    plan: EditPlan
    mask: str | None = Field(default=None, description="Content hash of the proposed mask.")
    planner: str


def plan_only(
    components: Context, image: Any, instruction: str, *, mask: Any = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[EditPlan, np.ndarray | None, str, str]:
    """Plan an edit and propose its mask without inpainting, through the graph itself.

    Runs in a fresh session (so the VLM, segmenter and fallbacks are exactly an edit's, and
    the trace records the planning); returns the plan, the mask, the planner path that ran and
    the session id. `image` and `mask` in any form the facade takes (bytes, hash, PIL, array).
    """
    session = EditSession.open(components)
    planned = session.plan(image, instruction, mask=mask, max_pixels=max_pixels)
    return planned.plan, components.store.get_mask(planned.mask), planned.planner, session.id


# --------------------------------------------------------------------------- one edit, any caller


@dataclass
class PreparedEdit:
    """An edit checked by the facade and ready to run; nothing has been recorded yet."""

    turn: PreparedTurn
    session_id: str | None


def prepare_edit(
    components: Context,
    open_session: SessionOpener,
    *,
    instruction: str,
    image: bytes | str | Image.Image | None = None,
    mask: bytes | str | np.ndarray | None = None,
    options: BaseModel | dict[str, Any] | None = None,
    session_id: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    caption: str | None = None,
) -> PreparedEdit:
    """Have the facade check an edit and store its uploads (`EditSession.prepare`).

    `image`: bytes (an upload, at most `max_pixels`), an artifact hash, a PIL image, or None to
    continue from the session's last kept result. `mask`: bytes, an artifact hash, an array, or
    None.
    """
    if session_id is not None:
        check_session_id(session_id)
        if not session_exists(components, session_id):
            raise NotFoundError(f"no session {session_id!r}")
        session = open_session(components, session_id)
    elif image is None:
        raise InvalidRequestError("send an image (or a session id to continue from)")
    else:
        session = EditSession.open(components)  # checks only: the edit opens its own session
    if isinstance(options, BaseModel):
        options = options.model_dump(exclude_none=True)
    if image is None and session.current_image is None:
        raise InvalidRequestError(
            f"session {session_id!r} has no result to continue from; send an `image`"
        )
    if isinstance(caption, str):  # a form field or tool argument: one line of words
        caption = re.sub(r"[ \t\r\n]+", " ", caption)
    turn = session.prepare(image, instruction, mask=mask, options=options, caption=caption,
                           max_pixels=max_pixels)
    return PreparedEdit(turn, session_id)


def run_prepared(
    components: Context,
    open_session: SessionOpener,
    prepared: PreparedEdit,
    on_event: EventCallback | None = None,
    cancel: CancelToken | None = None,
    lease: Any = None,
) -> EditResult:
    """Open (or create) the session and run the prepared edit through the facade; `cancel`
    (a `graphs.cancel.CancelToken`) stops it from another thread; `lease` is the caller's
    `TurnLease` on the session, when it took one first."""
    if prepared.session_id is None:
        session = new_session(open_session, components)
    else:
        session = open_session(components, prepared.session_id)
    result = session.run(prepared.turn, on_event=on_event, cancel=cancel, lease=lease)
    assert isinstance(result, EditResult)  # a prepared edit never asks for a mask review
    return result
