"""Edit jobs of the HTTP API, kept in the session database so they outlive the server.

A job is one edit (or its resumption) run in the background: its status, its result or error,
and the events it emitted, numbered from 1 so a reader can pick up after the last one it saw
(SSE `Last-Event-ID`). The tables live next to the LangGraph checkpoints: SQLite in the data
directory, or PostgreSQL when `BRUSHEDIT_DATABASE_URL` says so (the SQL here is the subset both
speak). A job whose server died keeps status `running` with a heartbeat that stops moving; it
reads as `interrupted` once the heartbeat is older than `stale_s`, and can then be resumed.
Retention is bounded: finished jobs older than `ttl_s`, and all but the newest `max_jobs`, are
deleted as new jobs arrive.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

JobStatus = Literal["running", "done", "failed", "cancelled", "interrupted"]

DEFAULT_MAX_JOBS = 1000
DEFAULT_TTL_S = 7 * 24 * 3600.0
DEFAULT_MAX_EVENTS = 5000
"""Events kept per job; past it, only the events that are not `progress` ticks are kept."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS brushedit_jobs (
        edit_id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        turn INTEGER,
        status TEXT NOT NULL,
        result TEXT,
        error TEXT,
        http_status INTEGER NOT NULL DEFAULT 200,
        owner TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        heartbeat DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS brushedit_jobs_session ON brushedit_jobs (session_id, created)",
    # The edit's checked request (a `PreparedTurn`), so a server killed before the turn was
    # filed can still run it on resume. Added after the table: older databases lack it.
    "ALTER TABLE brushedit_jobs ADD COLUMN IF NOT EXISTS request TEXT",
    """CREATE TABLE IF NOT EXISTS brushedit_job_events (
        edit_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (edit_id, seq)
    )""",
)


class JobRecord(BaseModel):
    """One stored job (the API's `EditOut` is built from it)."""

    edit_id: str
    session_id: str
    turn: int | None = None
    status: JobStatus
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    http_status: int = 200
    owner: str
    created: float
    updated: float
    heartbeat: float = Field(description="Last sign of life of the server running it (epoch s).")
    request: dict[str, Any] | None = Field(
        default=None, description="The edit's checked request (`PreparedTurn` fields).")


class JobStore:
    """Jobs and their events in SQL (sqlite3 or psycopg); thread-safe, one connection.

    Args:
        conn: an open DB-API connection (sqlite3, or psycopg with autocommit).
        dialect: "sqlite" or "postgres" (placeholders differ).
        stale_s: a running job without a heartbeat for this long reads as interrupted.
    """

    def __init__(
        self,
        conn: Any,
        dialect: Literal["sqlite", "postgres"] = "sqlite",
        *,
        stale_s: float = 30.0,
        max_jobs: int = DEFAULT_MAX_JOBS,
        ttl_s: float = DEFAULT_TTL_S,
        max_events: int = DEFAULT_MAX_EVENTS,
        owns_connection: bool = True,
    ) -> None:
        self.conn = conn
        self.dialect = dialect
        self.stale_s = stale_s
        self.max_jobs = max_jobs
        self.ttl_s = ttl_s
        self.max_events = max_events
        self._owns = owns_connection
        self._lock = threading.Lock()
        for statement in _SCHEMA:
            if self.dialect == "sqlite" and "ADD COLUMN IF NOT EXISTS" in statement:
                columns = {row[1] for row in self._query("PRAGMA table_info(brushedit_jobs)")}
                if "request" in columns:
                    continue
                statement = statement.replace(" IF NOT EXISTS", "")
            try:
                self._execute(statement)
            except sqlite3.OperationalError as exc:  # another process added it just now
                if "duplicate column" not in str(exc):
                    raise

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, database_url: str | None, sqlite_path: str | Path, **kwargs: Any) -> JobStore:
        """The store for a session database URL (the checkpointer's rules: sqlite or postgres)."""
        from graphs.components import checkpointer_target

        kind, target = checkpointer_target(database_url, Path(sqlite_path))
        if kind == "postgres":
            return cls.postgres(target, **kwargs)
        return cls.sqlite(target, **kwargs)

    @classmethod
    def postgres(cls, conninfo: str, **kwargs: Any) -> JobStore:
        from tools.errors import ConfigError

        try:
            from psycopg import Connection
        except ImportError as exc:
            raise ConfigError(
                "the session database is PostgreSQL but psycopg is not installed; install the "
                "`postgres` extra of brushedit-agents"
            ) from exc
        try:
            conn = Connection.connect(conninfo, autocommit=True)
        except Exception as exc:  # psycopg's errors are many; all mean "cannot connect"
            raise ConfigError(f"cannot connect to the Postgres database: {exc}") from exc
        return cls(conn, "postgres", **kwargs)

    @classmethod
    def sqlite(cls, path: str | Path, **kwargs: Any) -> JobStore:
        from graphs.sqlite_files import connect

        if str(path) not in ("", ":memory:"):
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            conn = connect(Path(path).expanduser())  # WAL; deleted events overwritten
        else:
            conn = sqlite3.connect(":memory:", check_same_thread=False)
        return cls(conn, "sqlite", **kwargs)

    @classmethod
    def for_components(cls, components: Any, **kwargs: Any) -> JobStore:
        """The store in the same database as `components.checkpointer` (the session database).

        SQLite: a second connection to the checkpointer's file. PostgreSQL: a second
        connection to the same database (the saver's runs in pipeline mode, which does not
        share). No persistent checkpointer: in memory, like the sessions themselves.
        """
        conn = getattr(getattr(components, "checkpointer", None), "conn", None)
        if isinstance(conn, sqlite3.Connection):
            rows = conn.execute("PRAGMA database_list").fetchall()
            path = next((row[2] for row in rows if row[1] == "main"), "")
            return cls.sqlite(path or ":memory:", **kwargs)
        if conn is not None and type(conn).__module__.startswith("psycopg"):
            return cls.postgres(_same_database(conn), **kwargs)
        return cls.sqlite(":memory:", **kwargs)

    def close(self) -> None:
        if self._owns:
            with self._lock:
                self.conn.close()

    # -- writing ---------------------------------------------------------------------------

    def create(self, edit_id: str, session_id: str, owner: str,
               request: dict[str, Any] | None = None) -> JobRecord:
        """File a new running job with its checked request (and prune old ones)."""
        now = time.time()
        self._execute(
            "INSERT INTO brushedit_jobs (edit_id, session_id, status, owner, created, updated, "
            "heartbeat, request) VALUES (?, ?, 'running', ?, ?, ?, ?, ?)",
            (edit_id, session_id, owner, now, now, now, _dump(request)),
        )
        self.prune()
        record = self.get(edit_id)
        assert record is not None
        return record

    def claim(self, edit_id: str, owner: str) -> bool:
        """Take an interrupted (stale) job back to running for `owner`; False if not stale."""
        now = time.time()
        changed = self._execute(
            "UPDATE brushedit_jobs SET status = 'running', owner = ?, heartbeat = ?, updated = ?, "
            "error = NULL, http_status = 200 WHERE edit_id = ? AND (status = 'interrupted' OR "
            "(status = 'running' AND heartbeat < ?))",
            (owner, now, now, edit_id, now - self.stale_s),
        )
        return changed > 0

    def interrupt(self, edit_id: str) -> None:
        """Mark a running job interrupted now (its server is stopping)."""
        self._execute(
            "UPDATE brushedit_jobs SET status = 'interrupted', updated = ? "
            "WHERE edit_id = ? AND status = 'running'", (time.time(), edit_id))

    def beat(self, edit_ids: list[str]) -> None:
        """Heartbeat for jobs this server is running."""
        now = time.time()
        for edit_id in edit_ids:
            self._execute(
                "UPDATE brushedit_jobs SET heartbeat = ? WHERE edit_id = ? AND status = 'running'",
                (now, edit_id),
            )

    def set_turn(self, edit_id: str, turn: int) -> None:
        self._execute("UPDATE brushedit_jobs SET turn = ? WHERE edit_id = ?", (turn, edit_id))

    def finish(
        self,
        edit_id: str,
        status: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        http_status: int = 200,
    ) -> None:
        now = time.time()
        self._execute(
            "UPDATE brushedit_jobs SET status = ?, result = ?, error = ?, http_status = ?, "
            "updated = ?, heartbeat = ? WHERE edit_id = ?",
            (status, _dump(result), _dump(error), http_status, now, now, edit_id),
        )

    def add_event(self, edit_id: str, seq: int, event: dict[str, Any]) -> bool:
        """Store event number `seq`; past `max_events`, progress ticks are dropped (False)."""
        if seq > self.max_events and event.get("type") == "progress":
            return False
        self._execute(
            "INSERT INTO brushedit_job_events (edit_id, seq, data) VALUES (?, ?, ?) "
            "ON CONFLICT (edit_id, seq) DO NOTHING",
            (edit_id, seq, json.dumps(event)),
        )
        return True

    def delete(self, edit_id: str) -> None:
        """Forget one job and its events."""
        self._delete([edit_id])

    def delete_session(self, session_id: str) -> None:
        """Delete a session's jobs and their events, gone from the file's write-ahead log too."""
        ids = [r[0] for r in self._query(
            "SELECT edit_id FROM brushedit_jobs WHERE session_id = ?", (session_id,))]
        self._delete(ids)
        if self.dialect == "sqlite":
            from graphs.sqlite_files import truncate_wal

            truncate_wal(self.conn, self._lock)

    def prune(self) -> int:
        """Drop finished jobs past the retention time, then all but the newest `max_jobs`."""
        cutoff = time.time() - self.ttl_s
        old = [r[0] for r in self._query(
            "SELECT edit_id FROM brushedit_jobs WHERE status <> 'running' AND updated < ?",
            (cutoff,))]
        extra = [r[0] for r in self._query(
            "SELECT edit_id FROM brushedit_jobs ORDER BY created DESC, edit_id DESC "
            "LIMIT -1 OFFSET ?" if self.dialect == "sqlite" else
            "SELECT edit_id FROM brushedit_jobs ORDER BY created DESC, edit_id DESC OFFSET ?",
            (self.max_jobs,))]
        doomed = sorted(set(old) | set(extra))
        self._delete(doomed)
        return len(doomed)

    # -- reading ---------------------------------------------------------------------------

    def get(self, edit_id: str) -> JobRecord | None:
        rows = self._query(
            "SELECT edit_id, session_id, turn, status, result, error, http_status, owner, "
            "created, updated, heartbeat, request FROM brushedit_jobs WHERE edit_id = ?",
            (edit_id,))
        return self._record(rows[0]) if rows else None

    def list(self, session_id: str) -> list[JobRecord]:
        rows = self._query(
            "SELECT edit_id, session_id, turn, status, result, error, http_status, owner, "
            "created, updated, heartbeat, request FROM brushedit_jobs WHERE session_id = ? "
            "ORDER BY created, edit_id", (session_id,))
        return [self._record(row) for row in rows]

    def events(self, edit_id: str, after: int = 0) -> list[tuple[int, dict[str, Any]]]:
        rows = self._query(
            "SELECT seq, data FROM brushedit_job_events WHERE edit_id = ? AND seq > ? "
            "ORDER BY seq", (edit_id, after))
        return [(int(seq), json.loads(data)) for seq, data in rows]

    def last_seq(self, edit_id: str) -> int:
        rows = self._query(
            "SELECT MAX(seq) FROM brushedit_job_events WHERE edit_id = ?", (edit_id,))
        return int(rows[0][0] or 0) if rows else 0

    # -- internals -------------------------------------------------------------------------

    def _record(self, row: Any) -> JobRecord:
        (edit_id, session_id, turn, status, result, error, http_status, owner, created,
         updated, heartbeat, request) = row
        if status == "running" and time.time() - float(heartbeat) > self.stale_s:
            status = "interrupted"
        return JobRecord(
            edit_id=edit_id, session_id=session_id, turn=turn, status=status,
            result=_load(result), error=_load(error), http_status=http_status, owner=owner,
            created=created, updated=updated, heartbeat=heartbeat, request=_load(request),
        )

    def _delete(self, ids: list[str]) -> None:
        for edit_id in ids:
            self._execute("DELETE FROM brushedit_job_events WHERE edit_id = ?", (edit_id,))
            self._execute("DELETE FROM brushedit_jobs WHERE edit_id = ?", (edit_id,))

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.dialect == "postgres" else statement

    def _execute(self, statement: str, params: tuple = ()) -> int:
        with self._lock:
            if self.dialect == "sqlite":
                with self.conn:
                    return self.conn.execute(statement, params).rowcount
            with self.conn.cursor() as cursor:
                cursor.execute(self._sql(statement), params)
                return cursor.rowcount

    def _query(self, statement: str, params: tuple = ()) -> list[Any]:
        with self._lock:
            if self.dialect == "sqlite":
                return self.conn.execute(statement, params).fetchall()
            with self.conn.cursor() as cursor:
                cursor.execute(self._sql(statement), params)
                rows = cursor.fetchall()
        # The checkpointer's psycopg connection hands out dict rows; keep column order.
        return [tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in rows]


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _same_database(conn: Any) -> str:
    """Connection string of an open psycopg connection, password included."""
    from psycopg.conninfo import make_conninfo

    password = getattr(conn.info, "password", None)
    return make_conninfo(conn.info.dsn, **({"password": password} if password else {}))
