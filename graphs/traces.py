"""The audit log: one SQLite row per node run, one per model call, one per session turn.

Built like simonw/llm's log: forward-only named migrations recorded in `_brushedit_migrations`,
canonical JSON (sorted keys) in text columns, and images referenced by content hash, never stored
as bytes (`graphs.artifacts.ArtifactStore` holds them).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from graphs.claims import SessionClaims
from graphs.sqlite_files import enable_wal, truncate_wal

logger = logging.getLogger(__name__)

MAX_FIELD_CHARS = 64_000
"""What one trace field (a prompt, a raw answer, an error, one JSON column) may hold; the rest
is cut with a note saying how much, so a runaway answer cannot bloat the log."""

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    """Register `fn` as the next migration; its name is its identity forever."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            title TEXT
        )"""
    )
    db.execute(
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions(id),
            turn INTEGER,
            attempt INTEGER,
            node TEXT NOT NULL,
            status TEXT NOT NULL,
            started TEXT NOT NULL,
            duration_ms REAL,
            inputs TEXT,
            outputs TEXT,
            params TEXT,
            verdict TEXT,
            images TEXT,
            error TEXT
        )"""
    )
    db.execute("CREATE INDEX events_session ON events(session_id, id)")
    db.execute(
        """CREATE TABLE calls (
            id INTEGER PRIMARY KEY,
            event_id INTEGER NOT NULL REFERENCES events(id),
            session_id TEXT NOT NULL,
            model TEXT,
            system TEXT,
            prompt TEXT,
            images TEXT,
            raw TEXT,
            parsed TEXT,
            duration_ms REAL,
            error TEXT
        )"""
    )
    db.execute("CREATE INDEX calls_event ON calls(event_id)")


@migration
def m002_turns(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE turns (
            session_id TEXT NOT NULL REFERENCES sessions(id),
            turn INTEGER NOT NULL,
            instruction TEXT NOT NULL,
            source TEXT NOT NULL,
            result TEXT,
            mask TEXT,
            accepted INTEGER NOT NULL DEFAULT 0,
            kept INTEGER NOT NULL DEFAULT 0,
            undone INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL,
            reason TEXT,
            created TEXT NOT NULL,
            PRIMARY KEY (session_id, turn)
        )"""
    )


@migration
def m003_call_family(db: sqlite3.Connection) -> None:
    """Which model family each answer was read as, and whether it came from the thinking."""
    db.execute("ALTER TABLE calls ADD COLUMN family TEXT")
    db.execute("ALTER TABLE calls ADD COLUMN from_thinking INTEGER")


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied now.

    Each migration runs in its own `BEGIN IMMEDIATE` transaction that re-reads what is
    applied, so processes opening a new database at the same time (eval workers, Ray tasks)
    apply each migration once instead of racing to create the same table.
    """
    db.execute(
        "CREATE TABLE IF NOT EXISTS _brushedit_migrations (name TEXT PRIMARY KEY, applied TEXT)"
    )
    db.commit()
    applied = []
    for name, fn in MIGRATIONS:
        db.execute("BEGIN IMMEDIATE")
        try:
            done = {row[0] for row in db.execute("SELECT name FROM _brushedit_migrations")}
            if name not in done:
                fn(db)
                db.execute("INSERT INTO _brushedit_migrations VALUES (?, ?)", (name, _now()))
                applied.append(name)
            db.commit()
        except BaseException:
            db.rollback()
            raise
    return applied


def to_jsonable(value: Any) -> Any:
    """Pydantic models, dataclasses, enums, numpy scalars/arrays and paths as plain JSON values."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if hasattr(value, "model_dump"):
        return to_jsonable(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy scalar or small array
        return to_jsonable(value.tolist()) if getattr(value, "size", 1) <= 64 else (
            f"<array {getattr(value, 'shape', '')} {value.dtype}>"
        )
    if hasattr(value, "mode") and hasattr(value, "size"):  # a PIL image
        return f"<image {value.size[0]}x{value.size[1]} {value.mode}>"
    return repr(value)


def dumps(value: Any) -> str:
    """Canonical JSON: sorted keys, no NaN, UTF-8 kept readable."""
    return json.dumps(to_jsonable(value), sort_keys=True, ensure_ascii=False, allow_nan=False)


def clip(text: str | None, limit: int = MAX_FIELD_CHARS) -> str | None:
    """`text` cut to `limit` characters, ending with a note of how many were left out."""
    if text is None or len(text) <= limit:
        return text
    note = f"… [{len(text) - limit:,} more characters not stored]"
    return text[:limit] + note


def _clip_strings(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return clip(value, limit)
    if isinstance(value, dict):
        return {k: _clip_strings(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip_strings(v, limit) for v in value]
    return value


def dumps_capped(value: Any, limit: int = MAX_FIELD_CHARS) -> str:
    """`dumps`, with every string clipped and the whole kept under about `limit` characters.

    A value still too large after clipping its strings (thousands of small items) is stored as
    `{"truncated": true, "chars": N, "preview": "..."}` so the column stays valid JSON.
    """
    text = dumps(_clip_strings(to_jsonable(value), limit))
    if len(text) <= limit + 100:
        return text
    return dumps({"truncated": True, "chars": len(text), "preview": text[:limit]})


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class TraceStore:
    """Read and write the audit log in one SQLite file (created and migrated on open).

    Args:
        path (`str` or `Path`): the SQLite file; `":memory:"` for a throwaway log.
        export (`graphs.otel.SpanExport`, optional): also send each turn, node run and model
            call as OpenTelemetry spans, after its row is written (`span_export_from_env`).

    Attributes:
        claims: the sessions of this log with a turn running, in this file, for every process
            (`graphs.claims.SessionClaims`): the session facade's when its context has no
            session database to keep them in.
    """

    def __init__(self, path: str | Path, *, export: Any = None) -> None:
        self.path = Path(path) if str(path) != ":memory:" else None
        self.export = export
        self._lock = threading.Lock()
        self.claims = SessionClaims.sqlite(self.path or ":memory:")
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(
                str(self.path) if self.path else ":memory:", check_same_thread=False, timeout=30
            )
            self.db.row_factory = sqlite3.Row
            if self.path is not None:
                enable_wal(self.db)
            self.db.execute("PRAGMA secure_delete=ON")  # deleted text is overwritten
            with self._lock:
                migrate(self.db)
        except (OSError, sqlite3.DatabaseError) as exc:
            from tools.errors import ConfigError

            what = "is not a SQLite database (move it aside)" if isinstance(
                exc, sqlite3.DatabaseError) and "not a database" in str(exc) else \
                f"cannot be opened ({getattr(exc, 'strerror', None) or exc})"
            raise ConfigError(
                f"the trace log {self.path} {what}; check BRUSHEDIT_DATA_DIR"
            ) from None

    def __repr__(self) -> str:
        return f"TraceStore({str(self.path or ':memory:')!r})"

    def close(self) -> None:
        self.claims.close()
        with self._lock:
            self.db.close()
        if self.export is not None:
            self._exported(self.export.close)

    def _exported(self, send: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        """Send spans after the row is written; a failing exporter costs spans, never a row."""
        try:
            send(*args, **kwargs)
        except Exception:
            logger.warning("could not export a trace span", exc_info=True)

    # -- writing -----------------------------------------------------------------------------

    def touch_session(self, session_id: str, title: str | None = None) -> None:
        """Create the session row if needed and bump its `updated` time."""
        now = _now()
        with self._lock, self.db:
            self.db.execute(
                "INSERT INTO sessions (id, created, updated, title) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET updated = excluded.updated, "
                "title = COALESCE(sessions.title, excluded.title)",
                (session_id, now, now, title),
            )

    def record(
        self,
        session_id: str,
        node: str,
        *,
        turn: int | None = None,
        attempt: int | None = None,
        status: str = "ok",
        started: str | None = None,
        duration_ms: float | None = None,
        inputs: Any = None,
        outputs: Any = None,
        params: Any = None,
        verdict: Any = None,
        images: dict[str, Any] | None = None,
        calls: Iterable[Any] = (),
        error: str | None = None,
    ) -> int:
        """Append one node run (and the model calls it made); returns the event id."""
        calls = list(calls)
        self.touch_session(session_id)
        with self._lock, self.db:
            cursor = self.db.execute(
                "INSERT INTO events (session_id, turn, attempt, node, status, started, "
                "duration_ms, inputs, outputs, params, verdict, images, error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session_id, turn, attempt, node, status, started or _now(), duration_ms,
                    dumps_capped(inputs), dumps_capped(outputs), dumps_capped(params),
                    dumps_capped(verdict), dumps_capped(images or {}), clip(error),
                ),
            )
            event_id = int(cursor.lastrowid)
            for call in calls:
                c = call_record(call)
                self.db.execute(
                    "INSERT INTO calls (event_id, session_id, model, system, prompt, images, raw, "
                    "parsed, duration_ms, error, family, from_thinking) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        event_id, session_id, clip(c["model"], 500), clip(c["system"]),
                        clip(c["prompt"]), dumps_capped(c["images"]), clip(c["raw"]),
                        dumps_capped(c["parsed"]), c["duration_ms"], clip(c["error"]),
                        clip(c["family"], 100), c["from_thinking"],
                    ),
                )
        if self.export is not None:
            self._exported(self.export.node, session_id, node, turn=turn, attempt=attempt,
                           status=status, started=started, duration_ms=duration_ms,
                           images=images, calls=calls, error=error)
        return event_id

    def start_turn(self, session_id: str, turn: int, instruction: str, source: str) -> None:
        instruction = clip(instruction) or ""
        self.touch_session(session_id, title=instruction[:80])
        with self._lock, self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO turns (session_id, turn, instruction, source, status, "
                "created) VALUES (?, ?, ?, ?, 'running', ?)",
                (session_id, turn, instruction, source, _now()),
            )
        if self.export is not None:
            self._exported(self.export.start_turn, session_id, turn, instruction)

    def finish_turn(
        self, session_id: str, turn: int, *, result: str, mask: str | None, accepted: bool,
        reason: str = "",
    ) -> None:
        with self._lock, self.db:
            self.db.execute(
                "UPDATE turns SET result = ?, mask = ?, accepted = ?, reason = ?, status = 'done' "
                "WHERE session_id = ? AND turn = ?",
                (result, mask, int(accepted), clip(reason), session_id, turn),
            )
        if self.export is not None:
            self._exported(self.export.end_turn, session_id, turn, "done", accepted=accepted,
                           reason=reason)

    def set_turn_status(
        self, session_id: str, turn: int, status: str, *, reason: str | None = None
    ) -> None:
        with self._lock, self.db:
            self.db.execute(
                "UPDATE turns SET status = ?, reason = COALESCE(?, reason) "
                "WHERE session_id = ? AND turn = ?",
                (status, clip(reason), session_id, turn),
            )
        if self.export is not None:
            self._exported(self.export.end_turn, session_id, turn, status, reason=reason)

    def set_turn_flags(
        self, session_id: str, turns: Iterable[int], *, undone: bool | None = None,
        kept: bool | None = None,
    ) -> None:
        with self._lock, self.db:
            for turn in turns:
                if undone is not None:
                    self.db.execute(
                        "UPDATE turns SET undone = ? WHERE session_id = ? AND turn = ?",
                        (int(undone), session_id, turn),
                    )
                if kept is not None:
                    self.db.execute(
                        "UPDATE turns SET kept = ? WHERE session_id = ? AND turn = ?",
                        (int(kept), session_id, turn),
                    )

    # -- reading -----------------------------------------------------------------------------

    def events(self, session_id: str) -> list[dict[str, Any]]:
        """Every node run of a session in order, each with its `calls` (JSON-able dicts)."""
        with self._lock:
            rows = self.db.execute(
                "SELECT * FROM events WHERE session_id = ? ORDER BY id", (session_id,)
            ).fetchall()
            calls = self.db.execute(
                "SELECT * FROM calls WHERE session_id = ? ORDER BY id", (session_id,)
            ).fetchall()
        by_event: dict[int, list[dict[str, Any]]] = {}
        for call in calls:
            item = dict(call)
            item["images"] = _loads(item["images"])
            item["parsed"] = _loads(item["parsed"])
            if item.get("from_thinking") is not None:
                item["from_thinking"] = bool(item["from_thinking"])
            by_event.setdefault(item.pop("event_id"), []).append(item)
        out = []
        for row in rows:
            item = dict(row)
            for key in ("inputs", "outputs", "params", "verdict", "images"):
                item[key] = _loads(item[key])
            item["calls"] = by_event.get(item["id"], [])
            out.append(item)
        return out

    def sessions(self, *, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
        """Sessions, newest first, with their turn and event counts (a page when `limit`)."""
        with self._lock:
            rows = self.db.execute(
                "SELECT s.id, s.created, s.updated, s.title, "
                "(SELECT COUNT(*) FROM turns t WHERE t.session_id = s.id) AS turns, "
                "(SELECT COUNT(*) FROM events e WHERE e.session_id = s.id) AS events "
                "FROM sessions s ORDER BY s.updated DESC, s.id LIMIT ? OFFSET ?",
                (-1 if limit is None else limit, offset),
            ).fetchall()
        return [dict(row) for row in rows]

    def count_sessions(self) -> int:
        with self._lock:
            return int(self.db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])

    def delete_session(self, session_id: str) -> bool:
        """Forget a session: its turns, events and model calls, overwritten in the file and
        gone from its write-ahead log (`graphs.erasure`; artifacts are the caller's)."""
        with self._lock, self.db:
            for table in ("calls", "events", "turns"):
                self.db.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
            cursor = self.db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        if self.path is not None:
            truncate_wal(self.db, self._lock)
        return cursor.rowcount > 0

    def raw_rows(self, session_id: str) -> list[str]:
        """The JSON text of a session's trace rows and model calls (to find what they name)."""
        with self._lock:
            rows = self.db.execute(
                "SELECT inputs, outputs, params, verdict, images FROM events WHERE session_id = ?",
                (session_id,)).fetchall()
            rows += self.db.execute("SELECT images, parsed FROM calls WHERE session_id = ?",
                                    (session_id,)).fetchall()
        return [value for row in rows for value in row if value]

    def mentions(self, text: str) -> bool:
        """Whether any session's turns or trace rows name `text` (an artifact hash)."""
        with self._lock:
            row = self.db.execute(
                "SELECT 1 FROM turns WHERE source = ?1 OR result = ?1 OR mask = ?1 UNION ALL "
                "SELECT 1 FROM events WHERE instr(images, ?1) > 0 OR instr(outputs, ?1) > 0 "
                "OR instr(inputs, ?1) > 0 LIMIT 1", (text,)).fetchone()
        return row is not None

    def has_session(self, session_id: str) -> bool:
        with self._lock:
            row = self.db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return row is not None

    def turns(self, session_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self.db.execute(
                "SELECT * FROM turns WHERE session_id = ? ORDER BY turn", (session_id,)
            ).fetchall()
        out = []
        for row in rows:
            item = dict(row)
            for key in ("accepted", "kept", "undone"):
                item[key] = bool(item[key])
            out.append(item)
        return out


def call_record(call: Any) -> dict[str, Any]:
    """Normalise one VLM call record (agents' `VLMCall`, a dict, or similar) for the log."""
    data = to_jsonable(call)
    if not isinstance(data, dict):
        data = {"raw": str(data)}

    def pick(*names: str) -> Any:
        for name in names:
            if data.get(name) is not None:
                return data[name]
        return None

    duration = pick("duration_ms", "duration_s", "duration", "seconds")
    if duration is not None and "duration_ms" not in data:
        duration = float(duration) * 1000.0
    parsed = pick("parsed", "value", "answer")
    raw = pick("raw", "raw_answer", "response")
    return {
        "model": pick("model", "model_id"),
        "system": pick("system", "system_prompt"),
        "prompt": pick("user", "prompt", "user_prompt"),
        "images": pick("image_hashes", "images") or [],
        "raw": raw if raw is None or isinstance(raw, str) else dumps(raw),
        "parsed": parsed,
        "duration_ms": duration,
        "error": None if pick("error") is None else str(pick("error")),
        "family": None if pick("family") is None else str(pick("family")),
        "from_thinking": None if pick("from_thinking") is None else bool(pick("from_thinking")),
    }


class Stopwatch:
    """`started` (ISO time) and `elapsed_ms()` for one node run."""

    def __init__(self) -> None:
        self.started = _now()
        self._t0 = time.perf_counter()

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self._t0) * 1000.0, 3)
