"""What a full disk looks like from here: `StorageFullError` from the errors that mean it.

Pillow and the file system raise `OSError` with `ENOSPC` (or `EDQUOT`, over a quota); SQLite
raises `sqlite3.OperationalError("database or disk is full")` (PostgreSQL's `DiskFull` is its
`53100` state). Each becomes the one typed error every surface words as "the server's disk is
full" (HTTP 503), never a traceback or a bug report.
"""

from __future__ import annotations

import errno

from tools.errors import StorageFullError

FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


def storage_full(exc: BaseException | None, what: str = "the edit") -> StorageFullError | None:
    """The `StorageFullError` that `exc` (or an exception it was raised from) means, else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StorageFullError):
            return exc
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return StorageFullError(what)
        text = str(exc).lower()
        if type(exc).__name__ in ("OperationalError", "DiskFull") and (
                "disk is full" in text or "no space left" in text
                or getattr(exc, "sqlstate", None) == "53100"):
            return StorageFullError(what)
        exc = exc.__cause__ or exc.__context__
    return None
