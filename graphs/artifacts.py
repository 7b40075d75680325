"""Content-addressed image storage: every picture is written once, state and traces hold hashes.

Keeping bytes out of LangGraph state keeps checkpoints small, and naming files by the SHA-256 of
their pixels (`tools.images.content_hash`) makes every write idempotent: a node that re-runs after
a crash or an interrupt writes the same file again, or nothing at all.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import numpy as np

from tools.errors import InvalidRequestError
from tools.images import content_hash
from tools.mask_ops import Mask, as_mask, check_mask

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

_HASH = re.compile(r"^[0-9a-f]{64}$")


def _umask_mode() -> int:
    """0o666 minus the process umask: what `open()` would have given the file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def is_hash(value: object) -> bool:
    """True for a 64-hex-digit SHA-256 string (what the store hands out)."""
    return isinstance(value, str) and bool(_HASH.fullmatch(value))


def artifact_url(digest: str | None) -> str | None:
    """Where the HTTP API and the LangGraph server serve an artifact: `/artifacts/<hash>`."""
    return f"/artifacts/{digest}" if digest else None


class ArtifactDamagedError(InvalidRequestError):
    """A stored file no longer holds the picture its name (its hash) promises."""


class ArtifactStore:
    """Images and masks under `root/ab/abcdef....png`, named by the hash of their pixels.

    The name is a promise the store checks: every read re-hashes the pixels, and a file that
    does not match (overwritten by hand, truncated, bit-rotted) counts as missing. It is moved
    aside as `<hash>.png.damaged` (nothing is deleted), a warning says so, and the next `put` of
    the same picture writes it again.

    Args:
        root (`str` or `Path`): folder to keep artifacts in; created on first write.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._verified: dict[str, tuple[int, int, int]] = {}
        self._lock = threading.Lock()
        remove_stale_temporaries(self.root)

    def remove(self, digest: str) -> bool:
        """Delete the artifact `digest` from the store; False when it was not there."""
        with self._lock:
            self._verified.pop(digest, None)
            try:
                self.path(digest).unlink()
            except FileNotFoundError:
                return False
        return True

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    def path(self, digest: str) -> Path:
        """Where the artifact `digest` lives (whether or not it exists yet)."""
        if not is_hash(digest):
            raise InvalidRequestError(f"`{digest}` is not an artifact hash (64 hex digits)")
        return self.root / digest[:2] / f"{digest}.png"

    def has(self, digest: str) -> bool:
        """True when the artifact exists and its pixels still match its hash."""
        if not is_hash(digest) or not self.path(digest).is_file():
            return False
        try:
            self._load_verified(digest)
        except ArtifactDamagedError:
            return False
        return True

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
        """The RGB image stored under `digest` (checked against its hash)."""
        image = self._load_verified(digest)
        return image if image.mode == "RGB" else image.convert("RGB")

    def get_mask(self, digest: str) -> Mask:
        """The mask stored under `digest` (checked against its hash)."""
        image = self._load_verified(digest)
        return as_mask(np.asarray(image.convert("L")))

    def _load_verified(self, digest: str) -> Image.Image:
        """Open the file of `digest`, re-hash its pixels, and set it aside if they differ."""
        from PIL import Image

        path = self.path(digest)
        try:
            info = path.stat()
            with Image.open(path) as opened:
                opened.load()
                image = opened.copy()
        except FileNotFoundError:
            raise InvalidRequestError(
                f"artifact {digest[:12]}… is not in the store at {self.root}"
            ) from None
        except (OSError, SyntaxError, ValueError) as exc:  # truncated or not an image at all
            self._set_aside(digest, f"it cannot be read ({exc})")
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
        with self._lock:
            known = self._verified.get(digest) == stamp
        if not known:
            if content_hash(image) != digest:
                self._set_aside(digest, "its pixels no longer match its name (its hash)")
            with self._lock:
                self._verified[digest] = stamp
        return image

    def _set_aside(self, digest: str, why: str) -> NoReturn:
        path = self.path(digest)
        aside = path.with_name(path.name + ".damaged")
        with self._lock:
            self._verified.pop(digest, None)
        try:
            os.replace(path, aside)
            where = f"; it was moved to {aside}"
        except OSError:
            where = ""
        logger.warning("artifact %s is damaged: %s%s", digest, why, where)
        raise ArtifactDamagedError(  # the folder goes to the log only: servers pass this on
            f"artifact {digest[:12]}… is damaged: {why}, so it counts as missing; give the "
            "source image again (or re-run the edit) to store it anew"
        )

    def _put(self, image: Image.Image) -> str:
        from graphs.storage import storage_full

        digest = content_hash(image)
        target = self.path(digest)
        if target.is_file() and self.has(digest):
            return digest
        try:
            _write_atomic(target, lambda handle: image.save(handle, format="PNG"))
        except OSError as exc:
            full = storage_full(exc, "an image")
            if full is None:
                raise
            raise full from None
        with self._lock:
            self._verified.pop(digest, None)
        return digest


TEMPORARY_PREFIX = "tmp-"
ORPHAN_AGE_S = 600.0
"""A store temporary whose writer cannot be told (an older name) is an orphan past this age."""


def remove_stale_temporaries(root: Path) -> int:
    """Delete the temporary files that writers killed mid-write left in the store's folders.

    A `tmp-<pid>-….tmp` whose process is gone is an orphan at once; any other (an older name,
    another host's writer through a shared folder, a reused pid) once it is `ORPHAN_AGE_S` old,
    so a living writer's file is never taken from under it. Returns how many were removed.
    """
    from graphs.claims import process_alive

    removed = 0
    now = time.time()
    for path in root.glob("??/tmp*.tmp"):
        owner = path.name.removeprefix(TEMPORARY_PREFIX).split("-", 1)[0]
        try:
            gone = owner.isdigit() and int(owner) != os.getpid() and not process_alive(
                int(owner))
            orphan = gone or now - path.stat().st_mtime > ORPHAN_AGE_S
            if orphan:
                path.unlink()
                removed += 1
        except OSError:
            continue
    if removed:
        logger.info("removed %d temporary file(s) left in %s by writers that stopped", removed,
                    root)
    return removed


OUTPUT_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "PPM", "TGA")
"""Formats a result may be written in: the ones the loader reads back, all saved by Pillow itself."""


def output_format(out: str | Path) -> str:
    """The Pillow format name for `out`'s suffix, or `InvalidRequestError` naming the choices."""
    from PIL import Image

    out = Path(out)
    fmt = Image.registered_extensions().get(out.suffix.lower())
    if fmt is None:
        raise InvalidRequestError(
            f"cannot tell the image format from `{out.name}`; use a suffix such as .png or .jpg"
        )
    if fmt not in OUTPUT_FORMATS:
        raise InvalidRequestError(
            f"results cannot be written as {fmt} (`{out.name}`); use one of "
            f"{', '.join(OUTPUT_FORMATS)}, e.g. a .png or .jpg suffix"
        )
    return fmt


def write_image_atomic(image: Image.Image, out: str | Path) -> Path:
    """Save `image` to `out` through a temporary file in the same folder, then rename.

    The format follows the suffix (one of `OUTPUT_FORMATS`); a crash never leaves a
    half-written file behind.
    """

    out = Path(out)
    fmt = output_format(out)
    params = {"quality": 95} if fmt == "JPEG" else {}
    _write_atomic(out, lambda handle: image.save(handle, format=fmt, **params), named=True)
    return out


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 text through a temporary file and a rename."""
    path = Path(path)
    _write_atomic(path, lambda handle: handle.write(text), named=True, text=True)
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write bytes through a temporary file and a rename."""
    path = Path(path)
    _write_atomic(path, lambda handle: handle.write(data), named=True)
    return path


def _write_atomic(
    target: Path,
    write: Callable[[IO[Any]], object],
    *,
    named: bool = False,
    text: bool = False,
) -> None:
    """Create `target`'s folder, `write` a temporary file beside it, then rename it into place.

    The temporary file is `.{target.name}.…tmp` when `named`, else `tmp-<pid>-….tmp` (so a
    process killed mid-write leaves one `remove_stale_temporaries` can tell apart); it is opened
    as UTF-8 text when `text`, else as bytes, gets the mode `open()` would give, and never
    outlives a failure of a living process.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}." if named else f"{TEMPORARY_PREFIX}{os.getpid()}-"
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_output_path(
    out: str | Path,
    *,
    inputs: Iterable[str | Path | None] = (),
    data_dir: str | Path | None = None,
    image: bool = True,
    what: str = "the result",
) -> Path:
    """Refuse, before any work, an output path that would lose data or cannot be written.

    Refused in one sentence (`InvalidRequestError`): an image suffix PIL does not know (when
    `image`), a folder, a device/FIFO/socket, any path that resolves (through symlinks, `..`
    or a hard link) to one of `inputs`, anything inside `data_dir` (the store's own files), and
    a place where no file can be created (under `/proc`, a read-only folder, a file used as a
    folder). Missing folders are fine when they can be created: the write creates them.
    Returns `out` with `~` expanded.
    """
    text = str(out)
    if not text.strip():
        raise InvalidRequestError(f"the path for {what} is empty; give a file name")
    if "\x00" in text:
        raise InvalidRequestError(f"the path for {what} contains a NUL character")
    out = Path(text).expanduser()
    for part in out.parts:
        if len(os.fsencode(part)) > 255:
            raise InvalidRequestError(f"a name in {out} is over 255 bytes, too long for a file")
    resolved = out.resolve(strict=False)
    try:
        info = out.stat()
    except (FileNotFoundError, NotADirectoryError):
        info = None  # a missing file, or a file used as a folder: the probe below says which
    except OSError as exc:
        raise InvalidRequestError(f"cannot write {what} to {out} ({exc.strerror or exc})") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise InvalidRequestError(f"{out} is a folder; give a file name for {what}")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise InvalidRequestError(f"{out} is not a regular file; give a file name for {what}")
    if image:
        output_format(out)
    for item in inputs:
        if item is None or str(item) in ("", "-"):
            continue
        source = Path(item).expanduser()
        if not source.exists():
            continue
        same = resolved == source.resolve()
        if not same and info is not None:
            try:
                same = os.path.samefile(out, source)
            except OSError:
                same = False
        if same:
            raise InvalidRequestError(
                f"refusing to overwrite the input {source} with {what}; choose another file"
            )
    root = _data_folder_holding(resolved, data_dir)
    if root is not None:
        raise InvalidRequestError(
            f"refusing to write {what} into the data folder {root}, where sessions and "
            "stored images live; choose a file outside it"
        )
    _check_can_create(resolved, what)
    return out


def _data_folder_holding(path: Path, data_dir: str | Path | None) -> Path | None:
    """The (resolved) data folder when `path` is it or lies inside it, else None."""
    if data_dir is None:
        return None
    root = Path(data_dir).expanduser().resolve(strict=False)
    return root if path == root or root in path.parents else None


def _check_can_create(target: Path, what: str) -> None:
    """Create and remove a probe file where `target` will go (its nearest existing folder)."""
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InvalidRequestError(
            f"cannot write {what} to {target}: {folder} is a file, not a folder"
        )
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".brushedit-probe-", suffix=".tmp")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InvalidRequestError(
            f"cannot write {what} to {target}: no file can be created in {folder} ({reason})"
        ) from None
    os.close(fd)
    Path(probe).unlink(missing_ok=True)


def check_output_folder(folder: str | Path, *, data_dir: str | Path | None = None) -> Path:
    """Like `check_output_path` for a folder that will receive several files."""
    text = str(folder)
    if not text.strip() or "\x00" in text:
        raise InvalidRequestError("the output folder's path is empty or holds a NUL character")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise InvalidRequestError(f"{path} exists and is not a folder; give a folder for the output")
    resolved = path.resolve(strict=False)
    root = _data_folder_holding(resolved, data_dir)
    if root is not None:
        raise InvalidRequestError(
            f"refusing to write into {resolved}: it is inside the data folder {root}, where "
            "sessions and stored images live"
        )
    _check_can_create(resolved / "probe", "the output")
    return path
