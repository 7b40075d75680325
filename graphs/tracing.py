"""Tracing in one place: every node runs inside `traced`, which times it, gives it its own
`RecordingVLM` (so the trace row holds the exact prompts and raw answers), writes one trace row
per node run and emits `node` events on LangGraph's custom stream.

A node body is a module-level function `(state, run: NodeRun) -> dict | Command`; `traced` turns
it into the LangGraph node `(state, runtime: Runtime[Context]) -> ...`. The body fills `run`'s
trace fields (`inputs`, `params`, `outputs`, `images`, `verdict`) and may add to the state update
through `run.history` and `run.fallback`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphs.components import run_context
from graphs.context import Context
from graphs.traces import Stopwatch, to_jsonable

if TYPE_CHECKING:
    from langgraph.runtime import Runtime

    from graphs.state import State

logger = logging.getLogger(__name__)
Body = Callable[["State", "NodeRun"], Any]


@dataclass
class NodeRun:
    """One node run: its context, the event sink, and what its trace row will hold."""

    context: Context
    state: State
    session_id: str
    emit: Callable[[dict[str, Any]], None]
    vlm: Any = None
    """The context's VLM wrapped in a `RecordingVLM`, or None without one."""
    raw_input: bool = False
    """The run came without a Python context (a LangGraph-server client's run): its input is
    whatever JSON arrived, unchecked; the session facade's runs bring their context and checked
    input."""
    inputs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    images: dict[str, Any] = field(default_factory=dict)
    verdict: Any = None
    update: dict[str, Any] = field(default_factory=dict)
    """State changes made on the side (history, planner fallback), merged into the result."""
    why: list[dict[str, Any]] = field(default_factory=list)

    @property
    def planner(self) -> str:
        """The path planning this turn: `vlm`, or `rules` (chosen, or after a fallback)."""
        return self.update.get("planner") or self.state.get("planner") or "rules"

    @property
    def asks_vlm(self) -> bool:
        """True when this step should ask the VLM (otherwise the rules take it)."""
        return self.planner == "vlm" and self.vlm is not None

    def history(self, event: str, **details: Any) -> None:
        """Append a why-line to the turn's history (kept in state and in the trace)."""
        entry = {"event": event, "attempt": self.state.get("attempt", 1), **to_jsonable(details)}
        base = self.update.get("history", list(self.state.get("history") or []))
        self.update["history"] = [*base, entry]
        self.why.append(entry)

    @property
    def fallback_reason(self) -> str | None:
        """Why this turn plans with the rules after all (the VLM failed), or None."""
        entries = self.update.get("history", self.state.get("history") or [])
        reasons = [e.get("reason") for e in entries if e.get("event") == "fallback"]
        return str(reasons[-1]) if reasons and reasons[-1] else None

    def fall_back(self, step: str, reason: str) -> None:
        """Plan the rest of the turn with the rule parser, saying why."""
        self.update["planner"] = "rules"
        self.history("fallback", step=step, reason=reason)
        self.emit({"type": "fallback", "step": step, "reason": reason})

    @contextlib.contextmanager
    def fallback(self, step: str) -> Iterator[None]:
        """Around a VLM call: with planner `auto`, an agent failure (server down, model missing,
        timeout, unusable answers) switches the turn to the rules and the body carries on;
        with planner `vlm` the error reaches the user."""
        from agents.errors import AgentError

        try:
            yield
        except AgentError as exc:
            if self.context.settings.planner == "vlm":
                name_model_server(exc, self.context.vlm)
                raise
            self.fall_back(step, f"{type(exc).__name__}: {exc}")


def name_model_server(exc: BaseException, vlm: Any) -> None:
    """Make a model server's failure say which server it was (its kind and address), on every
    surface alike: `exc` gets `server`/`url` fields when it lacks them, and its sentence names
    the server when it does not yet."""
    from agents.errors import server_name

    kind = getattr(exc, "server", None) or getattr(vlm, "server", None)
    url = getattr(exc, "url", None) or getattr(vlm, "host", None) or getattr(vlm, "url", None)
    if not url:
        return
    exc.server, exc.url = kind, url  # type: ignore[attr-defined]
    text = str(exc)
    if exc.args and str(url) not in text:
        exc.args = (f"{text} (the {server_name(kind)} at {url})", *exc.args[1:])


def turn_of(state: State, node: str) -> int | None:
    """The turn a node belongs to: `start` counts one on when the caller sent no new number."""
    turn = state.get("turn")
    if node != "start":
        return turn
    last = state.get("last_turn")
    if isinstance(turn, bool) or not isinstance(turn, int) or not 1 <= turn < 2**31:
        turn = None  # a bad `turn` is refused by `start`; its trace row counts on meanwhile
    if turn is None or (last is not None and turn <= last):
        return (last or 0) + 1
    return turn


def traced(name: str) -> Callable[[Body], Callable[..., Any]]:
    """Make the body `(state, run)` the traced LangGraph node `(state, runtime)` called `name`."""

    def decorate(body: Body) -> Callable[..., Any]:
        def node(state: State, runtime: Runtime[Context]) -> Any:
            from langgraph.errors import GraphBubbleUp

            run = _start(name, state, runtime)
            turn, attempt = turn_of(state, name), state.get("attempt", 1)
            clock = Stopwatch()
            run.emit({"type": "node", "node": name, "status": "start", "turn": turn,
                      "attempt": attempt})
            status, error = "ok", None
            try:
                return _merged(run.update, body(state, run))
            except GraphBubbleUp:  # an interrupt: the node re-runs on resume, record nothing
                status = None
                raise
            except Exception as exc:
                status, error = "error", public_error(exc)
                raise
            finally:
                calls = run.vlm.drain() if run.vlm is not None else []
                if status is not None:
                    _record(run, name, turn, attempt, status, error, clock, calls)

        # Not functools.wraps: LangGraph reads the signature to decide what to pass.
        node.__name__ = node.__qualname__ = name
        node.__doc__ = body.__doc__
        node.__module__ = body.__module__
        return node

    return decorate


def _start(name: str, state: State, runtime: Runtime[Context]) -> NodeRun:
    context = run_context(runtime.context)
    raw = context is not runtime.context
    info = runtime.execution_info
    session_id = str((info.thread_id if info is not None else None) or "default")
    recorder = None
    if context.vlm is not None:
        from agents.vlm import RecordingVLM

        recorder = RecordingVLM(context.vlm)
    return NodeRun(context, state, session_id, _safe_writer(runtime.stream_writer), vlm=recorder,
                   raw_input=raw)


def _merged(side: dict[str, Any], result: Any) -> Any:
    """The body's update with the side updates under it (a `Command` keeps its `goto`)."""
    from langgraph.types import Command

    if isinstance(result, Command):
        return Command(goto=result.goto, update={**side, **(result.update or {})})
    return {**side, **(result or {})}


def _record(run: NodeRun, name: str, turn: int | None, attempt: int, status: str,
            error: str | None, clock: Stopwatch, calls: list[Any]) -> None:
    """Write the node's trace row and its `end` (or `error`) event."""
    duration = clock.elapsed_ms()
    run.context.traces.record(
        run.session_id, name, turn=turn, attempt=attempt, status=status,
        started=clock.started, duration_ms=duration, inputs=run.inputs,
        outputs={**run.outputs, **({"history": run.why} if run.why else {})},
        params=run.params, verdict=run.verdict, images=run.images, calls=calls, error=error,
    )
    run.emit({"type": "node", "node": name, "status": "end" if status == "ok" else "error",
              "turn": turn, "attempt": attempt, "duration_ms": duration,
              "summary": _summary(run.outputs), **({"error": error} if error else {})})


def public_error(exc: BaseException) -> str:
    """A node's failure as its trace row and `error` event say it (both reach clients): an
    expected error's type and sentence; a full disk as `StorageFullError`; a bug only as
    `InternalError`, whose details the caller logs."""
    from graphs.storage import storage_full
    from tools.errors import BrushEditError, InternalError

    if isinstance(exc, BrushEditError):
        return f"{type(exc).__name__}: {exc}"
    full = storage_full(exc)
    if full is not None:
        return f"{type(full).__name__}: {full}"
    return f"{InternalError.__name__}: {InternalError.MESSAGE}"


def _safe_writer(writer: Callable[[Any], None]) -> Callable[[dict[str, Any]], None]:
    def emit(event: dict[str, Any]) -> None:
        try:
            writer(to_jsonable(event))
        except Exception:  # a broken progress listener must not break an edit
            logger.debug("event listener failed", exc_info=True)

    return emit


def _summary(outputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in outputs.items() if isinstance(v, (str, int, float, bool)) or v is None}
