"""What every interface shares: the session seam, input checks, option parsing and error bodies.

The web UI, the HTTP API, the MCP server and the LangChain tool all drive the same
`graphs.EditSession` facade; this module keeps their boundary rules identical (hash format,
pixel limits, option validation, error shape) so a request refused by one is refused by all.
Nothing here imports gradio, fastapi or mcp.
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
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.errors import (
    BrushEditError,
    ConfigError,
    InvalidImageError,
    InvalidMaskError,
    InvalidRequestError,
    ModelLoadError,
)
from tools.images import DEFAULT_MAX_PIXELS, read_image
from tools.types import EditOptions, EditPlan, EditResult, InpainterName

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

HASH_PATTERN = re.compile(r"^[0-9a-f]{64}$")
"""Artifact ids are sha256 hex digests; anything else (paths, `..`, URLs) is refused."""

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

EventCallback = Callable[[dict[str, Any]], None]

MAX_CAPTION_CHARS = 500
"""A target caption longer than this is not a caption (CLIP reads 77 tokens anyway)."""


class SessionLike(Protocol):
    """The part of `graphs.EditSession` the interfaces use (see docs/architecture.md)."""

    id: str

    def edit(
        self,
        image: Any,
        instruction: str,
        *,
        mask: Any = None,
        options: EditOptions | None = None,
        on_event: EventCallback | None = None,
    ) -> EditResult: ...

    def undo(self, turn: int | None = None) -> Any: ...

    def turns(self) -> list[Any]: ...

    def trace(self) -> list[dict[str, Any]]: ...


SessionOpener = Callable[[Any, str | None], SessionLike]
"""`(components, session_id | None) -> session`; `graphs.EditSession.open` by default."""

ComponentsFactory = Callable[[], Any]


def default_session_opener(components: Any, session_id: str | None) -> SessionLike:
    """Open (or create) a session through the real facade."""
    from graphs import EditSession

    return EditSession.open(components, session_id=session_id)


def settings_components_factory(
    settings: Any, *, inpainter: str | None = None, planner: str | None = None
) -> ComponentsFactory:
    """A factory that builds the real components from `Settings` on first use."""

    def factory() -> Any:
        from graphs import build_components

        kwargs: dict[str, Any] = {}
        if inpainter:
            kwargs["inpainter"] = inpainter
        if planner:
            kwargs["planner"] = planner
        return build_components(settings, **kwargs)

    return factory


class LazyComponents:
    """Build components once, on first use, from a factory (thread-safe).

    Servers start fast and `--help` never loads models; tests inject offline components.
    """

    def __init__(self, factory: ComponentsFactory) -> None:
        self._factory = factory
        self._value: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
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


class ConflictError(BrushEditError):
    """The resource is busy (e.g. an edit is already running in this session)."""


def http_status_for(exc: BaseException) -> int:
    """Map the project's error hierarchy onto HTTP: client faults are 4xx, setup faults 503."""
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, (ModelLoadError, ConfigError)):
        return 503
    if isinstance(exc, InvalidImageError) and "over the limit" in str(exc):
        return 413
    if isinstance(exc, BrushEditError):
        return 422
    return 500


def error_detail(exc: BaseException) -> ErrorDetail:
    message = " ".join(str(exc).split()) or type(exc).__name__
    return ErrorDetail(type=type(exc).__name__, message=message)


# --------------------------------------------------------------------------- input checks


def check_hash(value: str, what: str = "artifact") -> str:
    """Accept only a lowercase sha256 hex digest; never a path."""
    text = str(value).strip()
    if not HASH_PATTERN.fullmatch(text):
        raise InvalidRequestError(
            f"`{what}` must be a 64-character lowercase hex sha256 hash, got {text[:80]!r}"
        )
    return text


def check_session_id(value: str) -> str:
    if not SESSION_ID_PATTERN.fullmatch(value or ""):
        raise NotFoundError(f"no session {value[:80]!r}")
    return value


def check_instruction(value: str | None) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidRequestError("`instruction` is empty; say what to change, e.g. 'remove the cat'")
    if len(text) > 2000:
        raise InvalidRequestError(f"`instruction` has {len(text)} characters; the limit is 2000")
    return text


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Validate uploaded bytes into an RGB image (raises `InvalidImageError`)."""
    return read_image(data, max_pixels=max_pixels).image


def decode_mask(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """Validate an uploaded mask against its image's (W, H): white (or painted alpha) = edit."""
    from tools.images import load_mask

    mask = load_mask(data, size)  # `fit_mask`'s sentences: the CLI's, for the same mask
    if not mask.any():
        raise InvalidMaskError("the mask is empty: paint (white) the area to edit, or send no mask")
    return mask


def artifact_path(components: Any, digest: str) -> Path:
    """Resolve a hash to its stored file, or raise `NotFoundError`."""
    digest = check_hash(digest)
    try:
        path = Path(components.store.path(digest))
    except (KeyError, FileNotFoundError, LookupError) as exc:
        raise NotFoundError(f"no artifact {digest}") from exc
    store = components.store
    existed = path.is_file()
    if not existed or (hasattr(store, "has") and not store.has(digest)):
        if existed:  # a damaged file counts as missing, and says why
            raise NotFoundError(f"artifact {digest} is damaged on disk (its pixels no longer match "
                                "its hash) and was set aside; send the image again")
        raise NotFoundError(f"no artifact {digest}")
    return path


def load_artifact(components: Any, digest: str) -> Image.Image:
    from PIL import Image

    with Image.open(artifact_path(components, digest)) as image:
        return image.convert("RGB") if image.mode not in ("RGB", "L") else image.copy()


# --------------------------------------------------------------------------- options


OPTION_FIELDS = tuple(EditOptions.model_fields)


def parse_options(
    raw: str | dict[str, Any] | EditOptions | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    defaults: EditOptions | None = None,
) -> EditOptions:
    """Merge defaults, a JSON object (or dict) and single fields into validated `EditOptions`.

    Unknown keys are refused rather than ignored so a typo does not silently run defaults.
    """
    data: dict[str, Any] = (defaults or EditOptions()).model_dump()
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
    extra: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
    extra.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = sorted(set(extra) - set(OPTION_FIELDS))
    if unknown:
        raise InvalidRequestError(
            f"unknown option(s) {', '.join(unknown)}; known: {', '.join(OPTION_FIELDS)}"
        )
    data.update(extra)
    try:
        return EditOptions.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequestError(render_validation_error(exc, "options")) from None


def render_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One readable line per pydantic error: `options.steps: Input should be ...`."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        name = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        parts.append(f"`{name}`: {err.get('msg')}")
    return "; ".join(parts)


def default_options(components: Any, settings: Any = None) -> EditOptions:
    """The facade's defaults: the components' inpainter and attempt budget."""
    values: dict[str, Any] = {}
    name = _inpainter_name(components)
    if name in ("brushnet", "opencv"):
        values["inpainter"] = name
    attempts = getattr(getattr(components, "settings", None), "max_attempts", None)
    if attempts is None and settings is not None:
        attempts = getattr(settings, "max_attempts", None)
    if isinstance(attempts, int):
        values["max_attempts"] = attempts
    return EditOptions(**values)


def _inpainter_name(components: Any) -> str | None:
    graph_settings = getattr(components, "settings", None)
    name = getattr(graph_settings, "inpainter", None)
    return name if isinstance(name, str) else None


def inpainter_names(components: Any) -> list[str]:
    """Inpainters the components can build, default first."""
    names = list(getattr(components, "inpainters", None) or ())
    default = _inpainter_name(components)
    if default in names:
        names.remove(default)
        names.insert(0, default)
    return names or ["brushnet", "opencv"]


def session_exists(components: Any, session_id: str) -> bool:
    """Whether a session id is known (sessions persist in the trace store across restarts)."""
    traces = getattr(components, "traces", None)
    if traces is None or not hasattr(traces, "has_session"):
        return True
    return bool(traces.has_session(session_id))


def new_session(open_session: SessionOpener, components: Any) -> SessionLike:
    """Open a fresh session and make sure it is recorded, so later lookups find it."""
    session = open_session(components, None)
    traces = getattr(components, "traces", None)
    recorded = traces is not None and hasattr(traces, "touch_session")
    if recorded and not traces.has_session(session.id):
        traces.touch_session(session.id)
    return session


# --------------------------------------------------------------------------- turns and traces


class TurnOut(BaseModel):
    """One turn of a session, as every interface shows it (mirrors `graphs.session.Turn`)."""

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


def turn_out(turn: Any) -> TurnOut:
    """Normalise whatever the facade returns for a turn (model, dataclass or dict)."""
    if isinstance(turn, BaseModel):
        data = turn.model_dump(mode="json")
    elif isinstance(turn, dict):
        data = dict(turn)
    elif hasattr(turn, "__dict__"):
        data = dict(vars(turn))
    else:
        data = {"turn": int(turn)}
    if "image" not in data:
        data["image"] = data.get("result")
    return TurnOut.model_validate({k: data[k] for k in TurnOut.model_fields if k in data})


def jsonable(value: Any) -> Any:
    """Make a trace event or summary safe for JSON (hashes stay strings, objects become dicts)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    return str(value)


def last_image(session: SessionLike) -> str | None:
    """The image the next edit continues from (the facade's `current_image`)."""
    current = getattr(session, "current_image", None)
    if current is not None or hasattr(type(session), "current_image"):
        return current
    for turn in reversed([turn_out(t) for t in session.turns()]):
        if not turn.undone and turn.status == "done" and turn.image and (
            turn.accepted or turn.kept
        ):
            return turn.image
    return None


def summary(result: EditResult) -> dict[str, Any]:
    """A compact JSON description of a result for agents (hashes, plan, planner path)."""
    return {
        "session_id": result.session_id,
        "turn": result.turn,
        "image": result.image,
        "source_image": result.source_image,
        "mask": result.mask,
        "candidates": list(result.candidates),
        "accepted": result.accepted,
        "attempts": result.attempts,
        "reason": result.reason,
        "planner": result.planner,
        "inpainter": result.inpainter,
        "caption": result.caption,
        "plan": result.plan.model_dump(mode="json"),
        "metrics": dict(result.metrics),
    }


# --------------------------------------------------------------------------- planning only


class PlanOut(BaseModel):
    """What `plan_edit` answers: the plan, the proposed mask and who planned it."""

    plan: EditPlan
    mask: str | None = Field(default=None, description="Content hash of the proposed mask.")
    planner: str


def plan_only(
    components: Any, image: Image.Image, instruction: str, *, mask: Any = None
) -> tuple[EditPlan, np.ndarray | None, str, str]:
    """Plan an edit and propose its mask without inpainting, through the graph itself.

    Runs in a fresh session (so the VLM, segmenter and fallbacks are exactly an edit's, and
    the trace records the planning); returns the plan, the mask, the planner path that ran and
    the session id.
    """
    from graphs.session import EditSession

    session = EditSession.open(components)
    planned = session.plan(image, instruction, mask=mask)
    return planned.plan, components.store.get_mask(planned.mask), planned.planner, session.id


# --------------------------------------------------------------------------- one edit, any caller


class EditOptionsPatch(BaseModel):
    """`EditOptions` fields a caller wants to change; absent ones keep the server's defaults."""

    model_config = ConfigDict(extra="forbid")

    seed: int | None = Field(default=None, ge=0, description="Random seed.")
    steps: int | None = Field(default=None, ge=1, le=200, description="Diffusion steps.")
    guidance_scale: float | None = Field(default=None, ge=0.0, le=30.0)
    conditioning_scale: float | None = Field(
        default=None, ge=0.0, le=10.0, description="BrushNet conditioning scale."
    )
    samples: int | None = Field(default=None, ge=1, le=8, description="Candidates per attempt.")
    blending: bool | None = Field(default=None, description="Blend the result into the source.")
    max_attempts: int | None = Field(default=None, ge=1, le=10, description="Verifier attempts.")
    inpainter: InpainterName | None = Field(default=None, description="brushnet or opencv.")
    negative_prompt: str | None = None

    def values(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


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


@dataclass
class PreparedEdit:
    """A fully validated edit, ready to run: nothing has been written yet."""

    instruction: str
    source: Any
    """A PIL image (upload) or an artifact hash (continuing a session)."""
    size: tuple[int, int]
    mask: Any
    options: EditOptions
    session_id: str | None
    caption: str | None = None
    """The user's target caption, replacing the planner's (None: let the agents write it)."""


def prepare_edit(
    components: Any,
    open_session: SessionOpener,
    *,
    instruction: str,
    image: bytes | str | Image.Image | None = None,
    mask: bytes | str | np.ndarray | None = None,
    options: EditOptionsPatch | dict[str, Any] | None = None,
    session_id: str | None = None,
    settings: Any = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    caption: str | None = None,
) -> PreparedEdit:
    """Check every input of an edit before anything is created.

    `image`: bytes (an upload), an artifact hash, a PIL image, or None to continue from the
    session's last kept result. `mask`: bytes, an artifact hash, an array, or None.
    """
    text = check_instruction(instruction)
    caption = " ".join(caption.split()) if caption else None
    if caption and len(caption) > MAX_CAPTION_CHARS:
        raise InvalidRequestError(
            f"the caption is {len(caption)} characters; at most {MAX_CAPTION_CHARS} are accepted"
        )
    if isinstance(options, EditOptionsPatch):
        options = options.values()
    opts = parse_options(options, defaults=default_options(components, settings))
    if session_id is not None:
        check_session_id(session_id)
        if not session_exists(components, session_id):
            raise NotFoundError(f"no session {session_id!r}")
    source: Any
    if image is None:
        if session_id is None:
            raise InvalidRequestError("send an image (or a session id to continue from)")
        source = last_image(open_session(components, session_id))
        if source is None:
            raise InvalidRequestError(
                f"session {session_id!r} has no result to continue from; send an `image`"
            )
    elif isinstance(image, (bytes, bytearray)):
        source = decode_image(bytes(image), max_pixels=max_pixels)
    elif isinstance(image, str):
        source = check_hash(image, "image")
        artifact_path(components, source)
    else:
        source = image.convert("RGB")
    if isinstance(source, str):
        with _pil_open(artifact_path(components, source)) as stored:
            size = stored.size
    else:
        size = source.size
    user_mask = None
    if isinstance(mask, (bytes, bytearray)):
        user_mask = decode_mask(bytes(mask), size)
    elif isinstance(mask, str):
        user_mask = decode_mask(artifact_path(components, check_hash(mask, "mask")).read_bytes(), size)
    elif mask is not None:
        from tools.masks import as_mask, check_mask

        user_mask = check_mask(as_mask(mask), size)
        if not user_mask.any():
            raise InvalidMaskError("the mask is empty: paint the area to edit, or send no mask")
    return PreparedEdit(text, source, size, user_mask, opts, session_id, caption or None)


def run_prepared(
    components: Any,
    open_session: SessionOpener,
    prepared: PreparedEdit,
    on_event: EventCallback | None = None,
) -> EditResult:
    """Open (or create) the session and run the edit through the facade."""
    if prepared.session_id is None:
        session = new_session(open_session, components)
    else:
        session = open_session(components, prepared.session_id)
    return session.edit(
        prepared.source,
        prepared.instruction,
        mask=prepared.mask,
        options=prepared.options,
        caption=prepared.caption,
        on_event=on_event,
    )


def _pil_open(path: Path) -> Any:
    from PIL import Image

    return Image.open(path)
