"""Image references as callers give them, turned into stored artifacts.

Every surface (the session facade, the LangGraph server's input, a mask review answer) accepts
the same forms: a PIL image or array, a local path, an http(s) URL, a `data:` URI, or the
content hash of an image already in the store. Resolution happens here, once.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphs.artifacts import is_hash
from tools.errors import InvalidImageError, InvalidRequestError

if TYPE_CHECKING:
    from graphs.artifacts import ArtifactStore

MAX_REFERENCE_BYTES = 50 * 1024 * 1024
"""Largest image a URL or data: URI may deliver (checked while reading)."""
FETCH_TIMEOUT_S = 30.0


def reference_bytes(ref: str, what: str = "image") -> bytes | Path:
    """The bytes behind a `data:` URI or an http(s) URL, else the string as a local path."""
    text = ref.strip()
    if text[:5].lower() == "data:":
        return _data_uri_bytes(text, what)
    if text[:7].lower() == "http://" or text[:8].lower() == "https://":
        return _fetch(text, what)
    return Path(text).expanduser()


def import_image(store: ArtifactStore, image: Any, max_side: int) -> tuple[str, float]:
    """Store an image (downscaled to `max_side`) and return (hash, scale applied)."""
    if isinstance(image, str) and is_hash(image):
        if store.has(image):
            return image, 1.0
        if not Path(image).is_file():
            raise InvalidRequestError(
                f"artifact {image[:12]}… is not in the store (or was damaged); give the image "
                "file instead"
            )
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

    chunks: list[bytes] = []
    size = 0
    try:
        with httpx.stream("GET", url, timeout=FETCH_TIMEOUT_S, follow_redirects=True) as response:
            if response.status_code >= 400:
                raise InvalidImageError(
                    f"the {what} URL answered HTTP {response.status_code}: {url}"
                )
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_REFERENCE_BYTES:
                    raise InvalidImageError(
                        f"the {what} at {url} is over {MAX_REFERENCE_BYTES >> 20} MB"
                    )
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise InvalidImageError(f"could not fetch the {what} from {url} ({exc})") from exc
    return b"".join(chunks)
