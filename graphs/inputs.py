"""Image references as callers give them, turned into stored artifacts.

Every surface (the session facade, the LangGraph server's input, a mask review answer) accepts
the same forms: a PIL image or array, a local path, an http(s) URL, a `data:` URI, or the
content hash of an image already in the store. Resolution happens here, once; which local
files and URLs a context may reach is its `InputAccess` (`graphs.input_access`).
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphs.artifacts import is_hash
from graphs.input_access import MAX_REFERENCE_BYTES, InputAccess
from graphs.requests import check_mask, check_reference, check_review_answer
from tools.errors import InvalidImageError, InvalidRequestError

if TYPE_CHECKING:
    from graphs.artifacts import ArtifactStore

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_ANY_CASE_HASH = re.compile(r"\s*[0-9A-Fa-f]{64}\s*")


def read_review_answer(store: ArtifactStore, decision: Any, source: str, *,
                       access: InputAccess | None = None) -> tuple[str, str | None]:
    """A mask-review answer as ("approved" | "replaced" | "rejected", replacement mask hash).

    Raises a `BrushEditError` for an answer that cannot be used (wrong shape, unreadable mask),
    before anything is decided, so the caller can ask again.
    """
    check_review_answer(decision)
    if decision.get("mask"):
        return "replaced", import_mask(store, decision["mask"], source, 1.0, access=access)
    return ("approved" if decision.get("approve") else "rejected"), None


def reference_bytes(ref: str, what: str = "image", *,
                    access: InputAccess | None = None) -> bytes | Path:
    """The bytes behind a `data:` URI or an http(s) URL, else the string as a local path;
    `access` (any path, no private URL by default) says which of them may be reached."""
    access = access or InputAccess()
    text = ref.strip()
    if text[:5].lower() == "data:":
        return _data_uri_bytes(text, what)
    if text[:7].lower() == "http://" or text[:8].lower() == "https://":
        return access.fetch(text, what)
    scheme = _SCHEME.match(text)
    if scheme:  # ftp://, file://...: not a path either (Path would eat a slash and say so)
        raise InvalidImageError(
            f"the {what} reference uses the {scheme.group()[:-3][:20].lower()}:// scheme, which "
            "is not read: give an http(s) URL, a data: URI, a path or a stored image's hash"
        )
    return access.local_path(text, what)


def as_hash(value: Any) -> Any:
    """A content hash as the store names it (lower case, no spaces); anything else unchanged.

    Clients copy hashes from logs and UIs that upper-case or pad them; without this such a hash
    would be read as a file name and fail as a missing file.
    """
    if isinstance(value, str) and _ANY_CASE_HASH.fullmatch(value):
        return value.strip().lower()
    return value


def import_image(store: ArtifactStore, image: Any, max_side: int, *,
                 max_pixels: int | None = None, access: InputAccess | None = None
                 ) -> tuple[str, float]:
    """Store an image, shrunk to `max_side` on its long side keeping its aspect ratio
    (`tools.images.read_image`, the one loader), and return (hash, scale applied).

    `max_pixels` bounds a decoded file (`tools.images`' default when None); `access` says
    which local files and URLs a reference may reach.
    """
    image = as_hash(image)
    if isinstance(image, str) and is_hash(image):
        if store.has(image):
            return image, 1.0
        if not Path(image).is_file():
            raise InvalidRequestError(
                f"no artifact {image[:12]}…: it is not in the store (or was damaged); give the "
                "image file instead", field="image"
            )
    check_reference(image, "image")
    from tools.images import read_image

    source = reference_bytes(image, access=access) if isinstance(image, str) else image
    loaded = read_image(source, max_side=max_side,
                        **({"max_pixels": max_pixels} if max_pixels else {}))
    return store.put_image(loaded.image), loaded.scale


def import_mask(store: ArtifactStore, mask: Any, source: str, scale: float, *,
                access: InputAccess | None = None) -> str:
    """Store a user mask fitted to the stored image `source` (`graphs.requests.check_mask`),
    read by `tools.images.load_mask` whatever its form (bit depth scaled, EXIF orientation).

    A mask of another aspect ratio is refused; one of the same aspect at another scale is
    resized only when the source was downscaled on import (`scale` != 1).
    """
    check_reference(mask, "mask")
    mask = as_hash(mask)
    size = store.get_image(source).size
    if isinstance(mask, str) and is_hash(mask):
        if not store.has(mask):
            raise InvalidRequestError(
                f"no mask artifact {mask[:12]}…: it is not in the store (or was damaged); give "
                "the mask file instead", field="mask"
            )
        array = store.get_mask(mask)
    else:
        from tools.images import load_mask

        array = load_mask(reference_bytes(mask, "mask", access=access)
                          if isinstance(mask, str) else mask)
    return store.put_mask(check_mask(array, size, resize=scale != 1.0))


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
