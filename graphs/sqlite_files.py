"""How every SQLite file of the data folder is opened and kept: WAL mode, deleted content
overwritten (`secure_delete`), and the write-ahead log truncated after a delete.

The trace log, the session database (checkpoints, edit jobs, session claims) all use these, so a
deleted session's text survives neither in a file's free space nor in its `-wal` log.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CHECKPOINT_ATTEMPTS = 40


def connect(path: str | Path, **kwargs: Any) -> sqlite3.Connection:
    """A connection to the SQLite file `path` in WAL mode with `secure_delete` on (shared
    between threads; the caller serialises its use)."""
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30, **kwargs)
    enable_wal(conn)
    conn.execute("PRAGMA secure_delete=ON")  # deleted content is overwritten with zeros
    return conn


def enable_wal(db: sqlite3.Connection, *, attempts: int = 60, delay: float = 0.05) -> None:
    """Put a SQLite database in WAL mode, waiting out other processes doing the same.

    Switching the journal mode takes a lock that SQLite's busy timeout does not wait for: two
    processes opening a new database at once (eval workers, Ray tasks) get "database is
    locked" immediately. The mode is persistent, so only the first opener switches it.
    """
    for attempt in range(attempts):
        try:
            if str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(delay * (1 + attempt % 4))


def truncate_wal(conn: sqlite3.Connection, lock: Any = None) -> bool:
    """Copy a WAL database's log into it and truncate the log to nothing; False when other
    connections kept it busy past the attempts (what is deleted stays zeroed in the pages)."""
    for _attempt in range(CHECKPOINT_ATTEMPTS):
        if lock is not None:
            with lock:
                busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        else:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy is None or not busy[0]:
            return True
        time.sleep(0.05)
    logger.warning("the write-ahead log could not be truncated: other connections kept it busy")
    return False


