"""Content-addressed image storage: every picture is written once, state and traces hold hashes.

Keeping bytes out of LangGraph state keeps checkpoints small, and naming files by the SHA-256 of
their pixels (`tools.images.content_hash`) makes every write idempotent: a node that re-runs after
a crash or an interrupt writes the same file again, or nothing at all.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from tools.errors import InvalidRequestError
from tools.images import content_hash
from tools.masks import Mask, as_mask, check_mask

if TYPE_CHECKING:
    from PIL import Image

_HASH = re.compile(r"^[0-9a-f]{64}$")


def _umask_mode() -> int:
    """0o666 minus the process umask: what `open()` would have given the file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def is_hash(value: object) -> bool:
    """True for a 64-hex-digit SHA-256 string (what the store hands out)."""
    return isinstance(value, str) and bool(_HASH.match(value))


def artifact_url(digest: str | None) -> str | None:
    """Where the HTTP API and the LangGraph server serve an artifact: `/artifacts/<hash>`."""
    return f"/artifacts/{digest}" if digest else None


class ArtifactStore:
    """Images and masks under `root/ab/abcdef....png`, named by the hash of their pixels.

    Args:
        root (`str` or `Path`): folder to keep artifacts in; created on first write.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    def path(self, digest: str) -> Path:
        """Where the artifact `digest` lives (whether or not it exists yet)."""
        if not is_hash(digest):
            raise InvalidRequestError(f"`{digest}` is not an artifact hash (64 hex digits)")
        return self.root / digest[:2] / f"{digest}.png"

    def has(self, digest: str) -> bool:
        return is_hash(digest) and self.path(digest).is_file()

    def put_image(self, image: Image.Image) -> str:
        """Store an RGB image (converted if needed) and return its hash."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        return self._put(image)

    def put_mask(self, mask: Mask) -> str:
        """Store a mask (uint8 0/255, white = edit) as a grayscale PNG and return its hash."""
        from PIL import Image

        mask = check_mask(as_mask(mask))
        return self._put(Image.fromarray(mask, "L"))

    def get_image(self, digest: str) -> Image.Image:
        """The RGB image stored under `digest`."""
        from PIL import Image

        with Image.open(self._existing(digest)) as image:
            return image.convert("RGB")

    def get_mask(self, digest: str) -> Mask:
        """The mask stored under `digest`."""
        from PIL import Image

        with Image.open(self._existing(digest)) as image:
            return as_mask(np.asarray(image.convert("L")))

    def _existing(self, digest: str) -> Path:
        path = self.path(digest)
        if not path.is_file():
            raise InvalidRequestError(f"artifact {digest[:12]}… is not in the store at {self.root}")
        return path

    def _put(self, image: Image.Image) -> str:
        digest = content_hash(image)
        target = self.path(digest)
        if target.is_file():
            return digest
        _write_atomic(target, lambda handle: image.save(handle, format="PNG"))
        return digest


def write_image_atomic(image: Image.Image, out: str | Path) -> Path:
    """Save `image` to `out` through a temporary file in the same folder, then rename.

    The format follows the suffix (PNG when there is none we know); a crash never leaves a
    half-written file behind.
    """
    from PIL import Image

    out = Path(out)
    ext = out.suffix.lower()
    formats = Image.registered_extensions()
    if ext not in formats:
        raise InvalidRequestError(
            f"cannot tell the image format from `{out.name}`; use a suffix such as .png or .jpg"
        )
    fmt = formats[ext]
    params = {"quality": 95} if fmt == "JPEG" else {}
    _write_atomic(out, lambda handle: image.save(handle, format=fmt, **params), named=True)
    return out


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 text through a temporary file and a rename."""
    path = Path(path)
    _write_atomic(path, lambda handle: handle.write(text), named=True, text=True)
    return path


def _write_atomic(
    target: Path,
    write: Callable[[IO[Any]], object],
    *,
    named: bool = False,
    text: bool = False,
) -> None:
    """Create `target`'s folder, `write` a temporary file beside it, then rename it into place.

    The temporary file is `.{target.name}.…tmp` when `named`, else `tmp….tmp`; it is opened as
    UTF-8 text when `text`, else as bytes, gets the mode `open()` would give, and never outlives
    a failure.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}." if named else None
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
