"""What every interface shares: the session seam, error bodies, option parsing, one edit's inputs.

The web UI, the HTTP API, the MCP server and the LangChain tool all drive `graphs.EditSession`;
input rules (instruction, hash, mask, session id) are the facade's own (`graphs.session`), so a
request refused by one surface is refused by all with the same sentence. What stays here is the
part that is about interfaces: errors as HTTP statuses and bodies, uploads decoded from bytes and
base64, options merged over a server's defaults. Nothing here imports gradio, fastapi or mcp.
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

from pydantic import BaseModel, Field, ValidationError

from graphs.claims import ConflictError
from graphs.session import (
    EditSession,
    Turn,
    check_hash,
    check_instruction,
    check_mask,
    check_session_name,
)
from graphs.traces import to_jsonable as jsonable  # noqa: F401 - the interfaces import it here
from tools.errors import (
    BrushEditError,
    ConfigError,
    InvalidImageError,
    InvalidRequestError,
    ModelLoadError,
)
from tools.images import DEFAULT_MAX_PIXELS, read_image
from tools.registry import INPAINTER_NAMES
from tools.text import check_plain_text
from tools.types import EditOptions, EditPlan, EditResult, options_patch_model

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from graphs.components import Components
    from graphs.settings import Settings

HASH_PATTERN = re.compile(r"^[0-9a-f]{64}$")
"""Artifact ids are sha256 hex digests; anything else (paths, `..`, URLs) is refused."""

EventCallback = Callable[[dict[str, Any]], None]

MAX_CAPTION_CHARS = 500
"""A target caption longer than this is not a caption (CLIP reads 77 tokens anyway)."""

SessionOpener = Callable[["Components", str | None], EditSession]
"""`(components, session_id | None) -> session`; `EditSession.open` by default."""

ComponentsFactory = Callable[[], "Components"]


def default_session_opener(components: Components, session_id: str | None) -> EditSession:
    """Open (or create) a session through the real facade."""
    return EditSession.open(components, session_id=session_id)


def settings_components_factory(
    settings: Settings, *, inpainter: str | None = None, planner: str | None = None
) -> ComponentsFactory:
    """A factory that builds the real components from `Settings` on first use."""

    def factory() -> Components:
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
        self._value: Components | None = None
        self._lock = threading.Lock()

    def get(self) -> Components:
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


def decode_mask(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """An uploaded mask (white or painted alpha = edit) for an image of (W, H) `size`."""
    from tools.images import load_mask

    return check_mask(load_mask(data), size)


def artifact_path(components: Components, digest: str) -> Path:
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


def load_artifact(components: Components, digest: str) -> Image.Image:
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


def default_options(components: Components, settings: Settings | None = None) -> EditOptions:
    """The facade's defaults (`EditSession.default_options`): the components' inpainter and
    attempt budget. `settings` is accepted for callers that pass it; the components decide."""
    return EditSession.open(components).default_options()


def inpainter_names(components: Components) -> list[str]:
    """Inpainters the components can build, default first; the registry's when none are set."""
    names = list(components.inpainters) or list(INPAINTER_NAMES)
    default = components.settings.inpainter
    if default in names:
        names.remove(default)
        names.insert(0, default)
    return names


# --------------------------------------------------------------------------- sessions and turns


def session_exists(components: Components, session_id: str) -> bool:
    """Whether a session id is known (sessions persist in the trace store across restarts)."""
    return bool(components.traces.has_session(session_id))


def new_session(open_session: SessionOpener, components: Components) -> EditSession:
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
    components: Components, image: Image.Image, instruction: str, *, mask: Any = None
) -> tuple[EditPlan, np.ndarray | None, str, str]:
    """Plan an edit and propose its mask without inpainting, through the graph itself.

    Runs in a fresh session (so the VLM, segmenter and fallbacks are exactly an edit's, and
    the trace records the planning); returns the plan, the mask, the planner path that ran and
    the session id.
    """
    session = EditSession.open(components)
    planned = session.plan(image, instruction, mask=mask)
    return planned.plan, components.store.get_mask(planned.mask), planned.planner, session.id


# --------------------------------------------------------------------------- one edit, any caller


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
    components: Components,
    open_session: SessionOpener,
    *,
    instruction: str,
    image: bytes | str | Image.Image | None = None,
    mask: bytes | str | np.ndarray | None = None,
    options: BaseModel | dict[str, Any] | None = None,
    session_id: str | None = None,
    settings: Settings | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    caption: str | None = None,
) -> PreparedEdit:
    """Check every input of an edit before anything is created.

    `image`: bytes (an upload), an artifact hash, a PIL image, or None to continue from the
    session's last kept result. `mask`: bytes, an artifact hash, an array, or None.
    """
    text = check_instruction(instruction)
    caption = _check_caption(caption)
    if isinstance(options, BaseModel):
        options = options.model_dump(exclude_none=True)
    opts = parse_options(options, defaults=default_options(components))
    check_plain_text(opts.negative_prompt, "options.negative_prompt")
    if session_id is not None:
        check_session_id(session_id)
        if not session_exists(components, session_id):
            raise NotFoundError(f"no session {session_id!r}")
    source, size = _source(components, open_session, image, session_id, max_pixels)
    if isinstance(mask, str):
        mask = artifact_path(components, check_hash(mask, "mask")).read_bytes()
    if isinstance(mask, (bytes, bytearray)):
        mask = decode_mask(bytes(mask), size)
    elif mask is not None:
        mask = check_mask(mask, size)
    return PreparedEdit(text, source, size, mask, opts, session_id, caption)


def _check_caption(caption: str | None) -> str | None:
    text = " ".join(check_plain_text(caption, "caption").split()) if caption else None
    if text and len(text) > MAX_CAPTION_CHARS:
        raise InvalidRequestError(
            f"the caption is {len(text)} characters; at most {MAX_CAPTION_CHARS} are accepted"
        )
    return text or None


def _source(
    components: Components, open_session: SessionOpener, image: Any, session_id: str | None,
    max_pixels: int,
) -> tuple[Any, tuple[int, int]]:
    """The image an edit starts from (a PIL image or a stored hash) and its (W, H)."""
    if image is None:
        if session_id is None:
            raise InvalidRequestError("send an image (or a session id to continue from)")
        image = last_image(open_session(components, session_id))
        if image is None:
            raise InvalidRequestError(
                f"session {session_id!r} has no result to continue from; send an `image`"
            )
    if isinstance(image, (bytes, bytearray)):
        image = decode_image(bytes(image), max_pixels=max_pixels)
    if isinstance(image, str):
        from PIL import Image

        digest = check_hash(image, "image")
        with Image.open(artifact_path(components, digest)) as stored:
            return digest, stored.size
    image = image.convert("RGB")
    return image, image.size


def run_prepared(
    components: Components,
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
