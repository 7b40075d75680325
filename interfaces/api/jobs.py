"""Edit jobs and the state an app's routes share (`ApiState`, one per app, on `app.state`).

An `EditJob` runs in a thread of this process with its events in memory for live SSE readers;
every event is also written to the job store, so a reader after a restart replays it from there.
"""

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from graphs.cancel import CancelToken
from interfaces.api.errors import api_error
from interfaces.api.models import EditLinks, EditOut, SessionOut
from interfaces.common import (
    ConflictError,
    ErrorDetail,
    LazyComponents,
    NotFoundError,
    SessionOpener,
    check_session_id,
    jsonable,
    last_image,
    session_exists,
    turn_out,
)
from tools.errors import BrushEditError, EditCancelledError
from tools.types import EditResult

if TYPE_CHECKING:
    from interfaces.api.job_store import JobRecord, JobStore

logger = logging.getLogger("interfaces.api")  # one logger for the whole API


@dataclass
class EditJob:
    """A job running in this process: its events in memory for live SSE readers.

    Every event is also written to the job store, so readers after a restart (or on another
    server process) replay it from there.
    """

    edit_id: str
    session_id: str
    store: "JobStore"
    seq: int = 0
    base_seq: int = 0
    """Events up to this number were emitted before (by the server that was interrupted)."""
    turn: int | None = None
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    status: Literal["running", "done", "failed", "cancelled"] = "running"
    cancel: CancelToken = field(default_factory=CancelToken)
    """Set by `POST .../cancel` or `DELETE`: the edit stops within a diffusion step."""
    result: EditResult | None = None
    error: ErrorDetail | None = None
    http_status: int = 200
    done: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.base_seq = self.seq

    def emit(self, event: dict[str, Any]) -> None:
        """Number, keep and store an event; server file paths never reach clients."""
        clean = {k: v for k, v in jsonable(event).items() if k != "path"}
        if clean.get("type") == "turn" and isinstance(clean.get("turn"), int) and self.turn is None:
            self.turn = clean["turn"]
            self.store.set_turn(self.edit_id, self.turn)
        with self._lock:
            self.seq += 1
            seq = self.seq
        if self.store.add_event(self.edit_id, seq, clean):
            with self._lock:
                self.events.append((seq, clean))
        self._wake()

    def finish(self) -> None:
        self.done.set()
        self._wake()

    def after(self, seq: int) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            return [item for item in self.events if item[0] > seq]

    async def wait(self, seq: int, timeout: float) -> None:
        """Until an event after `seq` exists, the job ends, or `timeout` passes."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            if self.done.is_set() or (self.events and self.events[-1][0] > seq):
                return
            self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter[1].wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _wake(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that reader's loop is gone
                loop.call_soon_threadsafe(event.set)


@dataclass
class ApiState:
    """Everything the routes share, owned by one app instance."""

    components: LazyComponents
    settings: Any
    open_session: SessionOpener
    max_pixels: int
    job_store_factory: Callable[[Any], "JobStore"]
    heartbeat_s: float
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)
    live: dict[str, EditJob] = field(default_factory=dict)
    leases: dict[str, Any] = field(default_factory=dict)
    """Session id -> the `TurnLease` an edit of this process holds."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    _jobs: "JobStore | None" = None

    def jobs(self) -> "JobStore":
        comps = self.components.get()
        with self.lock:
            if self._jobs is None:
                self._jobs = self.job_store_factory(comps)
            return self._jobs

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.close()

    def links(self, session_id: str, edit_id: str, image: str | None,
              interrupted: bool = False, running: bool = False) -> EditLinks:
        base = f"/sessions/{session_id}/edits/{edit_id}"
        return EditLinks(
            events=f"{base}/events",
            status=base,
            resume=f"{base}/resume" if interrupted else None,
            cancel=f"{base}/cancel" if running or interrupted else None,
            image=f"/artifacts/{image}" if image else None,
            trace=f"/sessions/{session_id}/trace",
        )

    def edit_out(self, record: "JobRecord") -> EditOut:
        result = EditResult.model_validate(record.result) if record.result else None
        error = ErrorDetail.model_validate(record.error) if record.error else None
        status = record.status
        return EditOut(
            edit_id=record.edit_id, session_id=record.session_id, turn=record.turn,
            status=status, result=result, error=error,
            links=self.links(record.session_id, record.edit_id,
                             result.image if result else None, status == "interrupted",
                             status == "running"),
        )


    # -- sessions and edits, as the routes look them up --------------------------------------

    def components_now(self) -> Any:
        """The components, built on first use."""
        return self.components.get()

    def existing_session(self, session_id: str) -> Any:
        check_session_id(session_id)
        comps = self.components_now()
        if not session_exists(comps, session_id):
            raise NotFoundError(f"no session {session_id!r}; create one with POST /sessions")
        return self.open_session(comps, session_id)

    @staticmethod
    def session_out(session: Any) -> SessionOut:
        return SessionOut(
            id=session.id,
            turns=[turn_out(t) for t in session.turns()],
            image=last_image(session),
        )

    def get_record(self, session_id: str, edit_id: str) -> "JobRecord":
        check_session_id(session_id)
        record = self.jobs().get(edit_id) if len(edit_id) <= 64 else None
        if record is None or record.session_id != session_id:
            raise NotFoundError(f"no edit {edit_id[:80]!r} in session {session_id!r}")
        return record

    async def cancel_edit(self, session_id: str, edit_id: str, *, finished: bool = False
                          ) -> "JobRecord":
        """Stop an edit and answer once it has stopped: a running one within a diffusion step
        (its turn filed cancelled), an interrupted one at once. A finished edit is a
        `ConflictError`, unless `finished` (DELETE forgets any edit)."""
        record = await asyncio.to_thread(self.get_record, session_id, edit_id)
        store = self.jobs()
        job = self.live.get(edit_id)
        if job is not None:
            job.cancel.cancel("cancelled through the HTTP API")
            while not job.done.is_set():  # no thread held while it stops
                await job.wait(job.seq, timeout=5.0)
            record = await asyncio.to_thread(store.get, edit_id) or record
        elif (status := self.edit_out(record).status) == "interrupted":
            error = ErrorDetail(type="EditCancelledError",
                                message="the edit was cancelled while its server was stopped")
            await asyncio.to_thread(store.finish, edit_id, "cancelled",
                                    error=error.model_dump(), http_status=409)
            if record.turn is not None:
                traces = self.components_now().traces
                await asyncio.to_thread(traces.set_turn_status, session_id, record.turn,
                                        "cancelled", reason=error.message)
            record = await asyncio.to_thread(store.get, edit_id) or record
        elif status == "running":
            raise ConflictError(f"edit {edit_id} runs on another server process; cancel it "
                                "through that server")
        if record.status != "cancelled" and not finished:
            raise ConflictError(f"edit {edit_id} is {record.status}; only a running or "
                                "interrupted edit can be cancelled")
        return record

    # -- one edit per session at a time ------------------------------------------------------

    def claim_session(self, session_id: str, *, slot: bool = True) -> Any:
        """Take the session's lease (`EditSession.lease`: its claim in the session database,
        seen by every process, and an edit slot unless `slot` is False) before the edit is
        accepted: `ConflictError` (409) while any process edits it, `ServerBusyError` (503 with
        `Retry-After`) when every slot of this process is taken."""
        session = self.open_session(self.components_now(), session_id)
        lease = session.lease(slot=slot)
        with self.lock:
            self.leases[session_id] = lease
        return lease

    def release_session(self, session_id: str) -> None:
        with self.lock:
            lease = self.leases.pop(session_id, None)
        if lease is not None:
            lease.release()

    def busy(self, session_id: str) -> bool:
        """Whether an edit runs in the session, in this process or another."""
        comps = self.components_now()
        with self.lock:
            if session_id in self.leases:
                return True
        return comps.session_claims().busy(session_id)

    def start_job(self, job: EditJob, work: Callable[[Callable[[dict], None]], EditResult]
                  ) -> None:
        """Run `work(emit)` in a thread, beating the job's heartbeat until it ends."""
        store = self.jobs()

        def beat() -> None:
            failing = False
            while not job.done.wait(self.heartbeat_s):
                try:
                    store.beat([job.edit_id])
                    failing = False
                except Exception as exc:  # the database went away: it reads as interrupted
                    if not failing:  # one line when it starts failing, not one per beat
                        logger.warning("heartbeat of edit %s failed: %s", job.edit_id,
                                       " ".join(str(exc).split())[:200])
                    failing = True

        def run() -> None:
            try:
                job.emit({"type": "started", "edit_id": job.edit_id})
                job.result = work(job.emit)
                job.status = "done"
                job.emit({"type": "done", "edit_id": job.edit_id,
                          "result": job.result.model_dump(mode="json")})
                store.finish(job.edit_id, "done", result=job.result.model_dump(mode="json"))
            except Exception as exc:
                job.status = "cancelled" if isinstance(exc, EditCancelledError) else "failed"
                job.http_status, job.error = api_error(exc)
                if not isinstance(exc, BrushEditError):
                    logger.exception("edit %s failed", job.edit_id)
                elif job.http_status >= 500:  # the server's state, said in one line
                    logger.warning("edit %s failed: %s: %s", job.edit_id, job.error.type,
                                   job.error.message)
                try:
                    if job.status == "failed":  # a cancel has its own `cancelled` event
                        job.emit({"type": "error", "error": job.error.model_dump()})
                    store.finish(job.edit_id, job.status, error=job.error.model_dump(),
                                 http_status=job.http_status)
                except Exception as failure:  # a full disk: it reads as interrupted later
                    logger.warning("could not record the failure of edit %s: %s",
                                   job.edit_id, " ".join(str(failure).split())[:200])
            finally:
                self.release_session(job.session_id)
                with self.lock:
                    self.live.pop(job.edit_id, None)
                job.finish()

        with self.lock:
            self.live[job.edit_id] = job
        threading.Thread(target=beat, name=f"beat-{job.edit_id[:8]}", daemon=True).start()
        threading.Thread(target=run, name=f"edit-{job.edit_id[:8]}", daemon=True).start()


def abandon_interrupted(store: "JobStore", session_id: str) -> None:
    """A new edit replaces a session's interrupted ones (the facade abandons their turns)."""
    for record in store.list(session_id):
        if record.status == "interrupted":
            store.finish(record.edit_id, "failed", http_status=409, error={
                "type": "AbandonedError",
                "message": "the server stopped during this edit and a later edit replaced it",
            })
