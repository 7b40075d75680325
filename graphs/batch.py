"""Batch editing: every row of a manifest through the session facade, resumable, on local
processes or a Ray Data pipeline.

`run_batch(config, options)` reads the manifest (`graphs.manifest`), skips the rows already done,
and hands the others to workers (`graphs.workers.map_workers`). A worker (`BatchEditor`) holds
one run context, so models load once per process or Ray actor; it edits a row in a session of
its own (its trace in the data folder, as `brushedit edit` leaves one) and returns the record
with the result's PNG bytes and two thumbnails. This process is the only writer of the run
folder: it writes each row's image under `DIR/images/` and then its line in
`DIR/results.jsonl` (`graphs.run_folder`), so a kill at any moment loses nothing recorded, and a
row that was running in a worker that died is run again and recorded once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from graphs.context import PlannerMode
from graphs.manifest import ManifestRow, read_manifest
from graphs.run_folder import (
    CONFIG,
    RESULTS,
    ResultLog,
    check_or_store_config,
    compact_results,
    read_results,
)
from graphs.workers import died_message, map_workers, process_memory_mb, worker_factory
from tools.errors import BrushEditError, ConfigError
from tools.types import InpainterName

if TYPE_CHECKING:
    from graphs.context import Context
    from graphs.settings import Settings

logger = logging.getLogger(__name__)

IMAGES = "images"
THUMBS = "thumbs"
REPORT = "report.html"
THUMB_SIDE = 192
SET_ASIDE = (CONFIG, RESULTS, REPORT, IMAGES, THUMBS)
"""What `force_new` moves to `DIR/previous-<time>/`."""

ComponentsBuilder = Callable[["Settings", "BatchConfig"], "Context"]
"""`(settings, config) -> Context` for a worker; picklable (a module-level function)."""


class BatchConfig(BaseModel):
    """What a batch run makes: stored in `DIR/config.json`; a restart must match it.

    Where it runs (`BatchOptions`) is free to change between restarts.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["brushedit-batch"] = "brushedit-batch"
    manifest: str = Field(description="Absolute path of the manifest.")
    inpainter: InpainterName = "opencv"
    planner: PlannerMode = "auto"
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="EditOptions fields set for every row (the command's flags); a row's own "
        "columns override them.",
    )


class BatchOptions(BaseModel):
    """How a run executes; not part of its identity."""

    out: str
    workers: int | None = Field(default=None, ge=1, le=1024, description="Local processes (1 "
                                "when None) or Ray actors (one per CPU, or GPU, when None).")
    ray: str | None = Field(default=None, description="Ray address, or `local` to start one.")
    gpus_per_worker: float = Field(default=0.0, ge=0, le=64)
    force_new: bool = False


class BatchItem(BaseModel):
    """One unit of work: a manifest row and the session its trace goes to."""

    row: ManifestRow
    session: str


class BatchSummary(BaseModel):
    """What a run did, for the command's output (`--json` prints it)."""

    out: str
    results: str
    rows: int
    done: int
    failed: int
    skipped: int = Field(description="Rows already done before this run, not run again.")
    ran: int = Field(description="Rows recorded by this run.")
    interrupted: bool = False


# -- the worker -------------------------------------------------------------------------------------


def default_components(settings: Settings, config: BatchConfig) -> Context:
    """A worker's context: the user's data folder (so `brushedit trace` shows every row),
    models built on first use, session checkpoints in memory."""
    from graphs.components import build_components

    return build_components(settings, inpainter=config.inpainter, planner=config.planner,
                            persist=False, max_attempts=config.options.get("max_attempts"))


class BatchEditor:
    """A worker: edits rows with one context built once (models load on the first row that
    needs them). Calling it never raises: a row that cannot be edited is a `failed` record."""

    def __init__(self, config: BatchConfig, settings: Settings,
                 components: ComponentsBuilder | None = None) -> None:
        self.config = config
        self.context = (components or default_components)(settings, config)

    def close(self) -> None:
        self.context.close()

    def __call__(self, item: BatchItem) -> dict[str, Any]:
        from graphs.session import EditSession

        row, started = item.row, time.perf_counter()
        record = _record_base(row, item.session)
        session = EditSession.open(self.context, item.session)
        try:
            if row.problem:
                raise ConfigError(row.problem)
            result = session.edit(row.image, row.instruction, mask=row.mask, caption=row.caption,
                                  options={**self.config.options, **row.options})
            record.update(status="done", accepted=bool(result.accepted),
                          attempts=int(result.attempts), category=result.plan.category.value,
                          planner=result.planner, inpainter=result.inpainter, turn=result.turn,
                          reason=result.reason or None)
            record["_png"] = self.context.store.path(result.image).read_bytes()
            record["_thumbs"] = self._thumbs(result.source_image, result.image)
        except Exception as exc:  # a failed row is a record, never a crash of the run
            record.update(status="failed", error_type=type(exc).__name__,
                          error=_sentence(exc), **self._partial(session))
            if not isinstance(exc, BrushEditError):
                logger.warning("row %s failed unexpectedly", row.id, exc_info=True)
        record["timings"] = {"total_s": round(time.perf_counter() - started, 4),
                             **self._node_timings(session, record.get("turn"))}
        record["worker"]["rss_mb"] = process_memory_mb()
        return record

    def _thumbs(self, *digests: str | None) -> dict[str, bytes]:
        """JPEG thumbnails of the source and the result, for the report."""
        import io

        thumbs = {}
        for name, digest in zip(("before", "after"), digests, strict=True):
            if digest is None or not self.context.store.has(digest):
                continue
            image = self.context.store.get_image(digest)
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=80)
            thumbs[name] = buffer.getvalue()
        return thumbs

    def _partial(self, session: Any) -> dict[str, Any]:
        """What a failed row had reached: its category, turn and source thumbnail."""
        try:
            values = session.values()
        except Exception:  # nothing ran (refused before the graph): nothing to keep
            return {}
        plan = values.get("plan") or {}
        return {"category": plan.get("category"), "turn": values.get("turn"),
                "_thumbs": self._thumbs(values.get("source_image"), None)}

    def _node_timings(self, session: Any, turn: int | None) -> dict[str, float]:
        """Seconds per graph node of this row's turn (summed over attempts), from its trace."""
        if turn is None:
            return {}
        timings: dict[str, float] = {}
        try:
            events = session.trace()
        except Exception:  # the trace store is gone (closing): timings are optional
            return {}
        for event in events:
            if event.get("turn") == turn and event.get("duration_ms") is not None:
                key = f"{event['node']}_s"
                timings[key] = round(timings.get(key, 0.0) + event["duration_ms"] / 1000, 4)
        return timings


def _record_base(row: ManifestRow, session: str) -> dict[str, Any]:
    return {
        "id": row.id, "index": row.index, "status": "failed", "session": session,
        "image": row.image, "instruction": row.instruction if isinstance(row.instruction, str)
        else None, "fingerprint": row.fingerprint(), "accepted": None, "attempts": None,
        "category": None, "error": None,
        "worker": {"pid": os.getpid(), "host": socket.gethostname()},
    }


def _sentence(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:1000] or type(exc).__name__


# -- the run ----------------------------------------------------------------------------------------


def session_name(out: Path, row_id: str) -> str:
    """The trace session of a row of the run in `out`: readable, and the same on a retry."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", row_id).strip("_")[:40] or "row"
    digest = hashlib.sha256(f"{out}\0{row_id}".encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def output_name(row_id: str) -> str:
    """The file stem of a row's outputs: its id when that is a safe file name, else a slug with
    a hash (two ids never share a file)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", row_id).strip("._")[:80] or "row"
    if slug == row_id:
        return slug
    return f"{slug}-{hashlib.sha256(row_id.encode()).hexdigest()[:8]}"


def pending_rows(rows: list[ManifestRow], out: Path) -> tuple[list[ManifestRow], int]:
    """The rows to run: all but those done before with the same fingerprint and image on disk.

    Returns (rows to run, rows skipped). Failed rows are retried.
    """
    done = {r["id"]: r for r in read_results(out / RESULTS, key="id") if r.get("status") == "done"}
    todo = []
    for row in rows:
        record = done.get(row.id)
        if (record is not None and record.get("fingerprint") == row.fingerprint()
                and record.get("output") and (out / record["output"]).is_file()):
            continue
        todo.append(row)
    return todo, len(rows) - len(todo)


def run_batch(
    config: BatchConfig,
    options: BatchOptions,
    *,
    settings: Settings | None = None,
    components: ComponentsBuilder | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> BatchSummary:
    """Run (or resume) a batch into `options.out`.

    Args:
        settings: the workers' settings (data folder, models); `load_settings()` when None.
            They travel to every worker, so a Ray actor on another machine uses this
            machine's configuration.
        components: builds a worker's context (`default_components` when None).
        on_start: `(rows, already_done)`, once the work is known.
        on_row: each new record, after it is on disk.

    A `KeyboardInterrupt` stops the workers and returns with `interrupted` set: everything
    recorded stays, and the same call resumes.
    """
    from graphs.settings import load_settings

    out = Path(options.out).expanduser().resolve()
    rows = read_manifest(config.manifest)
    check_or_store_config(config, out, force_new=options.force_new, set_aside=SET_ASIDE)
    _compact(out)
    todo, skipped = pending_rows(rows, out)
    if on_start:
        on_start(len(rows), skipped)
    items = [BatchItem(row=row, session=session_name(out, row.id)) for row in todo]
    editor = worker_factory(BatchEditor, config, settings or load_settings(), components)
    recorded: set[str] = set()
    interrupted = False
    with ResultLog(out / RESULTS) as log:
        results = map_workers(editor, items, workers=options.workers, ray=options.ray,
                              gpus_per_worker=options.gpus_per_worker, on_death=_died_record)
        try:
            for record in results:
                if record["id"] in recorded:  # a retried row Ray already handed back
                    logger.warning("row %s came back twice; kept the first", record["id"])
                    continue
                log.write(_save_outputs(out, record))
                recorded.add(record["id"])
                if on_row:
                    on_row(record)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            results.close()
    if not interrupted:
        _compact(out)
    return _summary(out, rows, skipped, len(recorded), interrupted)


def _died_record(item: BatchItem, deaths: int) -> dict[str, Any]:
    record = _record_base(item.row, item.session)
    record.update(error_type="WorkerDiedError", error=died_message(deaths), timings={})
    return record


def _save_outputs(out: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write a record's image and thumbnails under `out`; the record as it goes on disk."""
    from graphs.artifacts import write_bytes_atomic

    name = output_name(record["id"])
    png = record.pop("_png", None)
    for kind, data in (record.pop("_thumbs", None) or {}).items():
        write_bytes_atomic(out / THUMBS / f"{name}.{kind}.jpg", data)
        record.setdefault("thumbs", {})[kind] = f"{THUMBS}/{name}.{kind}.jpg"
    if png is not None:
        write_bytes_atomic(out / IMAGES / f"{name}.png", png)
        record["output"] = f"{IMAGES}/{name}.png"
    else:
        record["output"] = None
    record["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    return record


def _compact(out: Path) -> None:
    """Keep one line per row in `results.jsonl` (the latest) once a retry superseded one."""
    path = out / RESULTS
    if not path.is_file():
        return
    latest = read_results(path, key="id")
    with path.open(encoding="utf-8") as handle:
        lines = sum(1 for line in handle if line.strip())
    if lines != len(latest):
        compact_results(path, sorted(latest, key=lambda r: (r.get("index") or 0, str(r["id"]))))


def _summary(out: Path, rows: list[ManifestRow], skipped: int, ran: int,
             interrupted: bool) -> BatchSummary:
    ids = {row.id for row in rows}
    latest = [r for r in read_results(out / RESULTS, key="id") if r["id"] in ids]
    return BatchSummary(
        out=str(out), results=str(out / RESULTS), rows=len(rows),
        done=sum(r.get("status") == "done" for r in latest),
        failed=sum(r.get("status") == "failed" for r in latest),
        skipped=skipped, ran=ran, interrupted=interrupted,
    )


def read_batch(out: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A run folder's configuration and its latest record per row (manifest order)."""
    from graphs.run_folder import load_json_object

    out = Path(out).expanduser()
    if not (out / CONFIG).is_file():
        raise ConfigError(f"{out} holds no batch run (no {CONFIG}); give the folder passed to "
                          "`brushedit batch --out`")
    config = load_json_object(out / CONFIG)
    if config.get("kind") != "brushedit-batch":
        raise ConfigError(f"{out} holds another kind of run, not a batch")
    rows = read_results(out / RESULTS, key="id")
    return config, sorted(rows, key=lambda r: (r.get("index") or 0, str(r["id"])))


def iter_failed(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (row for row in rows if row.get("status") != "done")
