"""Deleting a session so that it is gone: from the rows, from the database files, from the store.

A deleted row's text stays readable in a SQLite file's free space and in every copy of its
pages in the write-ahead log (`-wal`) until they are overwritten. Every connection here runs
with `PRAGMA secure_delete=ON` (deleted content is overwritten with zeros as it is deleted),
and after a delete the log is checkpointed into the database and truncated
(`wal_checkpoint(TRUNCATE)`), so neither file keeps a deleted instruction. Images are shared by
hash: a session's images are removed from the store unless another session still refers to
them. PostgreSQL deletes the rows; its own vacuum reclaims the space.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from graphs.sqlite_files import truncate_wal

_HASHES = re.compile(r"\b[0-9a-f]{64}\b")


def session_images(traces: Any, session_id: str) -> set[str]:
    """Every artifact hash a session's turns and trace rows name."""
    found: set[str] = set()
    for turn in traces.turns(session_id):
        found.update(v for k in ("source", "result", "mask") if (v := turn.get(k)))
    for text in traces.raw_rows(session_id):
        found.update(_HASHES.findall(text))
    return found


def erase_session(components: Any, session_id: str) -> list[str]:
    """Delete a session's checkpoints, turns and trace, scrub the database files, and remove
    the images no other session refers to; returns the hashes removed from the store."""
    traces, store = components.traces, components.store
    images = session_images(traces, session_id)
    saver = getattr(components, "checkpointer", None)
    if saver is not None and hasattr(saver, "delete_thread"):
        saver.delete_thread(session_id)
        conn = getattr(saver, "conn", None)
        if isinstance(conn, sqlite3.Connection):
            truncate_wal(conn, getattr(saver, "lock", None))
    traces.delete_session(session_id)
    removed = []
    for digest in sorted(images):
        if not traces.mentions(digest) and store.remove(digest):
            removed.append(digest)
    return removed
