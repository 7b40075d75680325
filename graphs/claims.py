"""One turn at a time per session, across every process that shares its database.

Two turns running at once on one session would share its checkpoint thread and its trace rows:
each abandons the other's turn, and the loser's result is lost. So a turn first claims its
session in a table of the session database (`sessions.sqlite`, or PostgreSQL when
`BRUSHEDIT_DATABASE_URL` says so): two `brushedit serve` processes on one data folder, a CLI
edit and the web editor all see the same claims, and the second turn gets `ConflictError`
instead of interleaving. A claim names its process (host, pid) and is kept alive by a
heartbeat; one whose process is gone (same host) or whose heartbeat stopped (any host) is
stale and taken over, so a killed process never locks a session for good.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.errors import BrushEditError

logger = logging.getLogger(__name__)

DEFAULT_STALE_S = 30.0
"""A claim whose heartbeat is older than this is stale (its process stopped beating)."""
DEFAULT_BEAT_S = 5.0

_SCHEMA = """CREATE TABLE IF NOT EXISTS brushedit_claims (
    session_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    heartbeat DOUBLE PRECISION NOT NULL
)"""
_SCHEMA_LOCK = 0x6272_7573_636C_6169  # "brusclai": the advisory lock around the claims' schema


class ConflictError(BrushEditError):
    """The resource is busy (e.g. an edit is already running in this session)."""


@dataclass
class Claim:
    """A session held for one turn by a `SessionClaims`; `release` (or the `with` block's end)
    lets the next turn in."""

    session_id: str
    claims: SessionClaims
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.claims.release(self)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class SessionClaims:
    """The sessions with a turn running, in a table every process on the database sees.

    Args:
        connect: opens a DB-API connection (sqlite3, or psycopg with autocommit); None keeps
            the claims in this process only (an in-memory session database).
        dialect: "sqlite" or "postgres" (placeholders differ).
        stale_s, beat_s: how old a heartbeat may get, and how often held claims beat.
    """

    def __init__(self, connect: Any = None, dialect: str = "sqlite", *,
                 stale_s: float = DEFAULT_STALE_S, beat_s: float = DEFAULT_BEAT_S) -> None:
        self._connect = connect
        self._dialect = dialect
        self._conn: Any = None
        self._lock = threading.RLock()
        self._held: dict[str, Claim] = {}
        self._beating: threading.Thread | None = None
        self._stop = threading.Event()
        self.stale_s = stale_s
        self.beat_s = beat_s
        self.owner = uuid.uuid4().hex
        self.host = socket.gethostname()

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def sqlite(cls, path: str | Path, **kwargs: Any) -> SessionClaims:
        """Claims in the SQLite file `path` (`:memory:`: this process only)."""
        if str(path) in ("", ":memory:"):
            return cls(None, **kwargs)

        def connect() -> sqlite3.Connection:
            from graphs.sqlite_files import connect

            return connect(path, isolation_level=None)

        return cls(connect, "sqlite", **kwargs)

    @classmethod
    def postgres(cls, url: str, **kwargs: Any) -> SessionClaims:
        def connect() -> Any:
            from psycopg import Connection

            return Connection.connect(url, autocommit=True, connect_timeout=10)

        return cls(connect, "postgres", **kwargs)

    @classmethod
    def for_checkpointer(cls, saver: Any, fallback: str | Path = ":memory:",
                         **kwargs: Any) -> SessionClaims:
        """Claims in the database of a LangGraph saver (SQLite file or PostgreSQL), else in
        `fallback` (a SQLite file, e.g. the trace log's)."""
        conn = getattr(saver, "conn", None)
        if isinstance(conn, sqlite3.Connection):
            rows = conn.execute("PRAGMA database_list").fetchall()
            path = next((row[2] for row in rows if row[1] == "main"), "")
            return cls.sqlite(path or ":memory:", **kwargs)
        if conn is not None and type(conn).__module__.startswith("psycopg"):
            from psycopg.conninfo import make_conninfo

            password = getattr(conn.info, "password", None)
            return cls.postgres(make_conninfo(conn.info.dsn, **(
                {"password": password} if password else {})), **kwargs)
        return cls.sqlite(fallback, **kwargs)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None

    # -- claiming --------------------------------------------------------------------------

    def claim(self, session_id: str) -> Claim:
        """Hold `session_id` for one turn, or raise `ConflictError` if a live turn holds it."""
        busy = ConflictError(
            f"an edit is already running in session {session_id!r}; wait for its result"
        )
        with self._lock:
            if session_id in self._held:
                raise busy
            if self._connect is not None and not self._take(session_id):
                raise busy
            claim = Claim(session_id, self)
            self._held[session_id] = claim
            self._start_beating()
        return claim

    @contextlib.contextmanager
    def hold(self, session_id: str, claim: Claim | None = None) -> Iterator[Claim]:
        """`claim(session_id)` for a `with` block; a `claim` the caller already holds for this
        session is used as is (and stays the caller's to release)."""
        if claim is not None and not claim.released and claim.session_id == session_id:
            yield claim
            return
        with self.claim(session_id) as taken:
            yield taken

    def busy(self, session_id: str) -> bool:
        """Whether a live turn (of any process) holds `session_id`."""
        with self._lock:
            if session_id in self._held:
                return True
            if self._connect is None:
                return False
            row = self._row(session_id)
        return row is not None and not self._stale(row)

    def release(self, claim: Claim) -> None:
        with self._lock:
            if self._held.get(claim.session_id) is claim:
                del self._held[claim.session_id]
                if self._connect is not None:
                    try:
                        self._execute("DELETE FROM brushedit_claims WHERE session_id = ? AND "
                                      "owner = ?", (claim.session_id, self.owner))
                    except Exception as exc:  # it goes stale by itself once beats stop
                        logger.warning("could not release the claim on session %s: %s",
                                       claim.session_id, exc)

    # -- internals -------------------------------------------------------------------------

    def _take(self, session_id: str) -> bool:
        """Insert this process's claim, or take over a stale one; False when a live one holds."""
        insert = ("INSERT INTO brushedit_claims (session_id, owner, host, pid, heartbeat) "
                  "VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id) DO NOTHING")
        mine = (self.owner, self.host, os.getpid(), time.time())
        if self._execute(insert, (session_id, *mine)):
            return True
        row = self._row(session_id)
        if row is None:  # released in between
            return bool(self._execute(insert, (session_id, *mine)))
        if not self._stale(row):
            return False
        # A stale claim: take it over, unless another process just did.
        return bool(self._execute(
            "UPDATE brushedit_claims SET owner = ?, host = ?, pid = ?, heartbeat = ? "
            "WHERE session_id = ? AND owner = ?", (*mine, session_id, row[0])))

    def _row(self, session_id: str) -> tuple[str, str, int, float] | None:
        rows = self._query("SELECT owner, host, pid, heartbeat FROM brushedit_claims "
                           "WHERE session_id = ?", (session_id,))
        return tuple(rows[0]) if rows else None  # type: ignore[return-value]

    def _stale(self, row: tuple[str, str, int, float]) -> bool:
        owner, host, pid, heartbeat = row
        if time.time() - float(heartbeat) > self.stale_s:
            return True
        return host == self.host and owner != self.owner and not process_alive(int(pid))

    def _start_beating(self) -> None:
        if self._connect is None or (self._beating is not None and self._beating.is_alive()):
            return
        self._beating = threading.Thread(target=self._beat, name="session-claims", daemon=True)
        self._beating.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.beat_s):
            with self._lock:
                held = list(self._held)
                if not held:
                    self._beating = None
                    return
                try:
                    for session_id in held:
                        self._execute("UPDATE brushedit_claims SET heartbeat = ? WHERE "
                                      "session_id = ? AND owner = ?",
                                      (time.time(), session_id, self.owner))
                except Exception as exc:  # logged once per beat; the claims go stale if it lasts
                    logger.warning("session claims heartbeat failed: %s", exc)

    def _connection(self) -> Any:
        if self._conn is None:
            conn = self._connect()
            if self._dialect == "sqlite":
                conn.execute(_SCHEMA)
            else:  # one process at a time: a simultaneous CREATE IF NOT EXISTS collides
                with conn.transaction(), conn.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    cursor.execute(_SCHEMA)
            self._conn = conn
        return self._conn

    def _execute(self, statement: str, params: tuple = ()) -> int:
        conn = self._connection()
        if self._dialect == "sqlite":
            return conn.execute(statement, params).rowcount
        with conn.cursor() as cursor:
            cursor.execute(statement.replace("?", "%s"), params)
            return cursor.rowcount

    def _query(self, statement: str, params: tuple = ()) -> list[Any]:
        conn = self._connection()
        if self._dialect == "sqlite":
            return conn.execute(statement, params).fetchall()
        with conn.cursor() as cursor:
            cursor.execute(statement.replace("?", "%s"), params)
            return [tuple(row.values()) if isinstance(row, dict) else tuple(row)
                    for row in cursor.fetchall()]


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped is a zombie: its claim is as good as gone
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
