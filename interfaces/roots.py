"""File inputs confined to allowed folders: the MCP server's `image_path` and `mask_path`.

An agent on the same machine can name a file instead of inlining its base64. Only files under
an allowed root are read (the client's MCP roots, or folders the server was configured with);
the path is resolved first, so `..` and symlinks that lead out of every root are refused, and
only regular files are opened (a FIFO would block, a device would never end), with a byte cap
checked while reading.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlparse

from tools.errors import InvalidImageError, InvalidRequestError

MAX_FILE_BYTES = 25 * 1024 * 1024
"""The same ceiling as a base64 upload (`common.MAX_BASE64_CHARS` decodes to about 25 MB)."""

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def path_from_uri(uri: str) -> Path | None:
    """The folder a `file://` URI names (MCP roots are file URIs); None for other schemes."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parsed.path))


def parse_root_list(value: str | None) -> list[Path]:
    """Folders from a `os.pathsep`-separated setting (`BRUSHEDIT_MCP_ROOTS`)."""
    return [Path(part).expanduser() for part in (value or "").split(os.pathsep) if part.strip()]


def _describe(mode: int) -> str | None:
    for test, name in _KINDS:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def _existing(folders: Iterable[str | Path]) -> list[Path]:
    """The real paths of the folders that exist (nothing could be read from the others)."""
    resolved: list[Path] = []
    for folder in folders:
        path = Path(os.path.realpath(Path(folder).expanduser()))
        if path.is_dir() and path not in resolved:
            resolved.append(path)
    return resolved


class FileRoots:
    """The folders file inputs may come from; `read` returns a file's bytes or refuses it.

    Args:
        folders: allowed folders; ones that do not exist are dropped (nothing could be read).
        max_bytes: the largest file accepted.
        hidden: allowed folders a refusal does not name (a server's own folders, which are none
            of a client's business): it says "the server's root folders" instead.
    """

    def __init__(self, folders: Iterable[str | Path], *, max_bytes: int = MAX_FILE_BYTES,
                 hidden: Iterable[str | Path] = ()) -> None:
        shown, unnamed = _existing(folders), _existing(hidden)
        self.folders = tuple(dict.fromkeys([*unnamed, *shown]))  # the server's own first, as looked up
        self._named = [folder for folder in shown if folder not in unnamed]
        self._unnamed = bool(unnamed)
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        return f"FileRoots({[str(f) for f in self.folders]!r})"

    def __bool__(self) -> bool:
        return bool(self.folders)

    def _inside(self, path: Path) -> bool:
        return any(path == root or path.is_relative_to(root) for root in self.folders)

    def _shown(self) -> str:
        names = ", ".join(str(f) for f in self._named[:3])
        if len(self._named) > 3:
            names += f" and {len(self._named) - 3} more"
        if self._unnamed:
            names += (", " if names else "") + "the server's root folders"
        return names

    def resolve(self, value: str, what: str = "image_path") -> Path:
        """The real path of an allowed regular file named by `value` (a path or file:// URI).

        A relative path is looked up in each root in turn. Raises `InvalidRequestError` for a
        path outside the roots (or when there are none), `InvalidImageError` for a missing or
        special file.
        """
        text = (value or "").strip()
        if not text:
            raise InvalidRequestError(f"`{what}` is empty; give the path of an image file")
        if "\x00" in text:
            raise InvalidRequestError(f"`{what}` contains a NUL character")
        if "://" in text:
            uri_path = path_from_uri(text)
            if uri_path is None:
                raise InvalidRequestError(
                    f"`{what}` must be a file path or a file:// URI, got {text[:80]!r}; a stored "
                    "result is passed by its hash instead"
                )
            text = str(uri_path)
        if not self.folders:
            raise InvalidRequestError(
                f"`{what}` cannot be used: the client shared no MCP roots and the server has no "
                "root folder configured (BRUSHEDIT_MCP_ROOTS), so no file may be read; send the "
                "file as base64 instead"
            )
        given = Path(text).expanduser()
        candidates = [given] if given.is_absolute() else [root / given for root in self.folders]
        lexical = next((c for c in candidates if os.path.lexists(c)), candidates[0])
        real = Path(os.path.realpath(lexical))
        if not self._inside(real):
            if self._inside(Path(os.path.normpath(lexical))):
                raise InvalidRequestError(
                    f"`{what}` {text[:200]!r} leads outside the allowed roots ({self._shown()}) "
                    "through a symlink; only files inside them are read"
                )
            raise InvalidRequestError(
                f"`{what}` {text[:200]!r} is outside the allowed roots ({self._shown()}); only "
                "files inside them are read"
            )
        try:
            mode = os.stat(real).st_mode
        except FileNotFoundError:
            raise InvalidImageError(f"`{what}`: there is no file at {text[:200]!r}") from None
        except OSError as exc:
            raise InvalidImageError(
                f"`{what}`: {text[:200]!r} cannot be read ({exc.strerror})"
            ) from None
        kind = _describe(mode)
        if kind is not None:
            raise InvalidImageError(
                f"`{what}` {text[:200]!r} is {kind}, not a regular file; only image files are read"
            )
        return real

    def read(self, value: str, what: str = "image_path") -> bytes:
        """The bytes of the allowed file `value`, refusing more than `max_bytes`."""
        real = self.resolve(value, what)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(real, flags | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise InvalidImageError(f"`{what}` {value[:200]!r} cannot be opened ({exc.strerror})") from None
        with os.fdopen(fd, "rb") as handle:
            kind = _describe(os.fstat(handle.fileno()).st_mode)  # swapped since `resolve`?
            if kind is not None:
                raise InvalidImageError(f"`{what}` {value[:200]!r} is {kind}, not a regular file")
            data = handle.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise InvalidImageError(
                f"`{what}` {value[:200]!r} is over the limit of {self.max_bytes:,} bytes"
            )
        if not data:
            raise InvalidImageError(f"`{what}` {value[:200]!r} is an empty file")
        return data
