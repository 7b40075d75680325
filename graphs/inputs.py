"""Image references as callers give them, turned into stored artifacts.

Every surface (the session facade, the LangGraph server's input, a mask review answer) accepts
the same forms: a PIL image or array, a local path, an http(s) URL, a `data:` URI, or the
content hash of an image already in the store. Resolution happens here, once.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphs.artifacts import is_hash
from tools.errors import InvalidImageError, InvalidRequestError
from tools.text import check_plain_text

if TYPE_CHECKING:
    from graphs.artifacts import ArtifactStore

MAX_REFERENCE_BYTES = 50 * 1024 * 1024
"""Largest image a URL or data: URI may deliver (checked while reading)."""
FETCH_TIMEOUT_S = 30.0
"""Total time a URL may take to deliver its image (not per read: a trickling server is cut)."""
FETCH_READ_TIMEOUT_S = 10.0
MAX_TEXT_CHARS = 2000
"""Longest instruction or caption a turn accepts (the session facade's limit too)."""
MAX_TURN = 2**31 - 1
_INPUT_FIELDS = ("image", "instruction", "mask", "options", "caption", "review_mask", "turn")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_ANY_CASE_HASH = re.compile(r"\s*[0-9A-Fa-f]{64}\s*")


def check_turn_input(state: Mapping[str, Any]) -> None:
    """Refuse a turn's request whose fields have the wrong type or range, in one sentence.

    The LangGraph server hands the graph whatever JSON a client sent (a `TypedDict` is not
    validated), so a number for `instruction` or a seed of 2**70 must be refused here, as a
    `InvalidRequestError` naming the field, not as a traceback from deep inside a node.
    """
    from pydantic import ValidationError

    from tools.types import EditOptions

    for name in ("instruction", "caption"):
        value = state.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidRequestError(f"`{name}` must be text, got {_kind(value)}")
        check_plain_text(value, name)
        if len(value.strip()) > MAX_TEXT_CHARS:
            raise InvalidRequestError(
                f"`{name}` has {len(value.strip()):,} characters; the limit is {MAX_TEXT_CHARS:,}"
            )
    for name in ("image", "mask"):
        value = state.get(name)
        if value is not None:
            check_reference(value, name)
    review = state.get("review_mask")
    if review is not None and not isinstance(review, bool):
        raise InvalidRequestError(f"`review_mask` must be true or false, got {_kind(review)}")
    turn = state.get("turn")
    if turn is not None and (isinstance(turn, bool) or not isinstance(turn, int)
                             or not 1 <= turn <= MAX_TURN):
        raise InvalidRequestError(
            f"`turn` must be a whole number from 1 to {MAX_TURN:,}, got {_kind(turn, 40)}"
        )
    options = state.get("options")
    if options is None:
        return
    if not isinstance(options, Mapping):
        raise InvalidRequestError(f"`options` must be an object of edit options, got {_kind(options)}")
    unknown = sorted(str(key)[:40] for key in options if key not in EditOptions.model_fields)
    if unknown:
        raise InvalidRequestError(
            f"unknown option(s) {', '.join(unknown[:5])}; known: {', '.join(EditOptions.model_fields)}"
        )
    try:
        EditOptions.model_validate(dict(options))
    except ValidationError as exc:
        problems = "; ".join(
            f"`options.{'.'.join(map(str, err['loc']))}`: {err['msg']}" for err in exc.errors()[:3]
        )
        raise InvalidRequestError(f"invalid edit option ({problems})") from None
    check_plain_text(options.get("negative_prompt"), "options.negative_prompt")


def check_run_input(value: Any, paused: bool | None) -> None:
    """Refuse an input that is neither a turn's object, a command nor none (`InvalidRequestError`),
    and a resume of a thread whose state holds no paused mask review (`paused` is False)."""
    from langgraph.types import Command

    if value is not None and not isinstance(value, (dict, Command)):
        raise InvalidRequestError(
            f"a run's input must be an object of the turn's fields (image, instruction, mask, "
            f"options, ...), got {_kind(value)}"
        )
    if paused is False:
        raise InvalidRequestError(
            "nothing on this thread waits for an answer (no mask review is paused): start a turn "
            "with an `input` instead of a resume command"
        )


def check_reference(value: Any, what: str = "image") -> None:
    """Refuse an image or mask reference of a kind no resolver reads (a number, a list...)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidImageError(f"the {what} reference contains a NUL character")
        return
    if isinstance(value, (Path, bytes, bytearray)) or hasattr(value, "shape") or (
        hasattr(value, "mode") and hasattr(value, "size")
    ):
        return
    raise InvalidRequestError(
        f"`{what}` must be a path, an http(s) URL, a data: URI or a stored image's hash, "
        f"got {_kind(value)}"
    )


def check_review_answer(decision: Any) -> None:
    """Refuse a mask-review answer other than `{'approve': true}` or `{'mask': <reference>}`."""
    usage = "a mask review answer must be {'approve': true} or {'mask': <image reference>}"
    if not isinstance(decision, Mapping) or not decision:
        raise InvalidRequestError(usage)
    unknown = sorted(str(key)[:40] for key in decision if key not in ("approve", "mask"))
    if unknown:
        raise InvalidRequestError(f"{usage}; {', '.join(unknown[:5])} is not one of them")
    approve = decision.get("approve")
    if approve is not None and not isinstance(approve, bool):
        raise InvalidRequestError(f"{usage}; `approve` is {_kind(approve)}, not true or false")
    if decision.get("mask") is not None:
        check_reference(decision["mask"], "mask")


MAX_REVIEW_ANSWERS = 20
"""Unusable mask-review answers a paused turn asks again for before it gives up."""


def read_review_answer(store: ArtifactStore, decision: Any, source: str) -> tuple[str, str | None]:
    """A mask-review answer as ("approved" | "replaced" | "rejected", replacement mask hash).

    Raises a `BrushEditError` for an answer that cannot be used (wrong shape, unreadable mask),
    before anything is decided, so the caller can ask again.
    """
    check_review_answer(decision)
    if decision.get("mask"):
        return "replaced", import_mask(store, decision["mask"], source, 1.0)
    return ("approved" if decision.get("approve") else "rejected"), None


def _kind(value: Any, limit: int = 0) -> str:
    """`a list`, `the number 5`...: what a wrong value was, without echoing a huge one."""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (int, float)):
        text = repr(value)
        return f"the number {text if len(text) <= 40 else text[:20] + '…'}"
    if isinstance(value, str):
        return f"the text {value[:limit or 40]!r}"
    names = {dict: "an object", list: "a list", tuple: "a list"}
    return names.get(type(value), f"a {type(value).__name__}")


def reference_bytes(ref: str, what: str = "image") -> bytes | Path:
    """The bytes behind a `data:` URI or an http(s) URL, else the string as a local path."""
    text = ref.strip()
    if text[:5].lower() == "data:":
        return _data_uri_bytes(text, what)
    if text[:7].lower() == "http://" or text[:8].lower() == "https://":
        return _fetch(text, what)
    scheme = _SCHEME.match(text)
    if scheme:  # ftp://, file://...: not a path either (Path would eat a slash and say so)
        raise InvalidImageError(
            f"the {what} reference uses the {scheme.group()[:-3][:20].lower()}:// scheme, which "
            "is not read: give an http(s) URL, a data: URI, a path or a stored image's hash"
        )
    return Path(text).expanduser()


def as_hash(value: Any) -> Any:
    """A content hash as the store names it (lower case, no spaces); anything else unchanged.

    Clients copy hashes from logs and UIs that upper-case or pad them; without this such a hash
    would be read as a file name and fail as a missing file.
    """
    if isinstance(value, str) and _ANY_CASE_HASH.fullmatch(value):
        return value.strip().lower()
    return value


def import_image(store: ArtifactStore, image: Any, max_side: int) -> tuple[str, float]:
    """Store an image (downscaled to `max_side`) and return (hash, scale applied)."""
    image = as_hash(image)
    if isinstance(image, str) and is_hash(image):
        if store.has(image):
            return image, 1.0
        if not Path(image).is_file():
            raise InvalidRequestError(
                f"artifact {image[:12]}… is not in the store (or was damaged); give the image "
                "file instead"
            )
    check_reference(image, "image")
    if hasattr(image, "mode") and hasattr(image, "size"):
        pil = image.convert("RGB")
    else:
        from tools.images import load_image

        source = reference_bytes(image) if isinstance(image, str) else image
        pil = load_image(source)
    scale = 1.0
    if max(pil.size) > max_side:
        from PIL import Image

        scale = max_side / max(pil.size)
        size = (max(8, round(pil.size[0] * scale)), max(8, round(pil.size[1] * scale)))
        pil = pil.resize(size, Image.Resampling.LANCZOS)
    return store.put_image(pil), scale


def import_mask(store: ArtifactStore, mask: Any, source: str, scale: float) -> str:
    """Store a user mask fitted to the stored image `source` (`tools.mask_ops.fit_user_mask`).

    A mask of another aspect ratio is refused; one of the same aspect at another scale is
    resized only when the source was downscaled on import (`scale` != 1).
    """
    from tools.mask_ops import fit_user_mask

    check_reference(mask, "mask")
    mask = as_hash(mask)
    size = store.get_image(source).size
    if isinstance(mask, str) and is_hash(mask):
        if not store.has(mask):
            raise InvalidRequestError(
                f"mask {mask[:12]}… is not in the store (or was damaged); give the mask file "
                "instead"
            )
        array = store.get_mask(mask)
    elif isinstance(mask, (str, Path, bytes)):
        from tools.images import load_mask

        array = load_mask(reference_bytes(mask, "mask") if isinstance(mask, str) else mask)
    else:
        array = mask
    return store.put_mask(fit_user_mask(array, size, resize=scale != 1.0))


def _data_uri_bytes(uri: str, what: str) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep:
        raise InvalidImageError(f"the {what} data: URI has no comma before its data")
    if not header.lower().endswith(";base64"):
        raise InvalidImageError(f"the {what} data: URI must be base64 (`data:image/png;base64,...`)")
    if len(payload) > MAX_REFERENCE_BYTES * 4 // 3 + 4:
        raise InvalidImageError(f"the {what} data: URI is over {MAX_REFERENCE_BYTES >> 20} MB")
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError(f"the {what} data: URI is not valid base64 ({exc})") from exc


def _fetch(url: str, what: str) -> bytes:
    import httpx

    shown = _shown_url(url)

    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + FETCH_TIMEOUT_S
    try:
        with httpx.stream("GET", url, timeout=min(FETCH_READ_TIMEOUT_S, FETCH_TIMEOUT_S),
                          follow_redirects=True) as response:
            if response.status_code >= 400:
                raise InvalidImageError(
                    f"the {what} URL answered HTTP {response.status_code}: {shown}"
                )
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_REFERENCE_BYTES:
                    raise InvalidImageError(
                        f"the {what} at {shown} is over {MAX_REFERENCE_BYTES >> 20} MB"
                    )
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise InvalidImageError(
                        f"the {what} at {shown} took over {FETCH_TIMEOUT_S:g} s to arrive; "
                        "give a faster URL or the image itself"
                    )
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise InvalidImageError(f"could not fetch the {what} from {shown} ({exc})") from None
    return b"".join(chunks)


def _shown_url(url: str) -> str:
    """The URL as an error message may show it: no user, password or query (they carry tokens)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the given URL"
    if ":" in host:
        host = f"[{host}]"
    shown = f"{parts.scheme}://{host}{port}{parts.path}" + ("?…" if parts.query else "")
    return shown if len(shown) <= 200 else shown[:200] + "…"
