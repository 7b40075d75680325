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

from graphs.cancel import CANCELLED, drained
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
    """The run's input is whatever arrived, unchecked (a LangGraph-server client's run, a parent
    graph embedding the editor); the session facade's runs bring their context and a checked
    turn (`graphs.requests.CHECKED_TURN`)."""
    inputs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    images: dict[str, Any] = field(default_factory=dict)
    verdict: Any = None
    update: dict[str, Any] = field(default_factory=dict)
    """State changes made on the side (history, planner fallback), merged into the result."""
    why: list[dict[str, Any]] = field(default_factory=list)
    control: Any = None
    """LangGraph's run control (`runtime.control`): drained when the turn is cancelled."""

    def cancelled(self) -> bool:
        """Whether the turn was asked to stop (the inpainters' `cancel=` callable)."""
        return drained(self.control)

    def raise_if_cancelled(self, where: str) -> None:
        """End the turn with `EditCancelledError` when it was asked to stop."""
        if self.cancelled():
            from tools.errors import EditCancelledError

            raise EditCancelledError(f"the edit was cancelled during {where}", node=where)

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


def traced(name: str) -> Any:
    """Make the body `(state, run)` the traced LangGraph node called `name`.

    The node is a runnable with a synchronous and an asynchronous side (LangChain's
    `RunnableLambda(func, afunc=...)`): the session facade's `graph.stream` calls the first in
    its own thread; a LangGraph server's `astream` awaits the second, which runs the body in a
    worker thread and, when the server cancels the run's task (`runs.cancel`, a client gone),
    drains the run's control so the body stops at its next check, then waits for it to stop.
    """

    def decorate(body: Body) -> Any:
        from langchain_core.runnables import RunnableLambda

        def node(state: State, runtime: Runtime[Context]) -> Any:
            return _run_node(name, body, state, runtime)

        def sync_node(state: State, config: Any) -> Any:
            from langgraph.runtime import get_runtime

            return node(state, get_runtime())

        async def async_node(state: State, config: Any) -> Any:
            from langgraph.runtime import get_runtime

            return await _until_cancelled(node, state, get_runtime())

        sync_node.__doc__ = async_node.__doc__ = body.__doc__
        return RunnableLambda(sync_node, afunc=async_node, name=name)

    return decorate


async def _until_cancelled(node: Callable[..., Any], state: State, runtime: Any) -> Any:
    """`node(state, runtime)` in a worker thread; a cancelled wait drains the run's control
    (the body's checks then stop it within a step) and waits for the thread to finish."""
    import asyncio
    import contextvars

    loop = asyncio.get_running_loop()
    work = loop.run_in_executor(None, contextvars.copy_context().run, node, state, runtime)
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        control = getattr(runtime, "control", None)
        if control is not None:
            control.request_drain(CANCELLED)
        with contextlib.suppress(BaseException):
            await work  # the body stops at its next check: nothing runs on after the cancel
        raise


def _run_node(name: str, body: Body, state: State, runtime: Runtime[Context]) -> Any:
    """Run one node body: time it, record its trace row and emit its `node` events.

    A run cancelled while the body ran (its control drained: `CancelToken.cancel`, a server's
    `runs.cancel`, Ctrl-C) records the node as `cancelled` and ends the run with
    `EditCancelledError`, whatever the body returned: nothing it made claims success.
    """
    from langgraph.errors import GraphBubbleUp

    from tools.errors import EditCancelledError

    run = _start(name, state, runtime)
    turn, attempt = turn_of(state, name), state.get("attempt", 1)
    clock = Stopwatch()
    run.emit({"type": "node", "node": name, "status": "start", "turn": turn,
              "attempt": attempt})
    status, error = "ok", None
    try:
        result = _merged(run.update, body(state, run))
        run.raise_if_cancelled(name)
        update = (result if isinstance(result, dict) else result.update) or {}
        return _merged(_shown(name, {**state, **update}, run, turn, attempt), result)
    except GraphBubbleUp:  # an interrupt: the node re-runs on resume, record nothing
        status = None
        raise
    except EditCancelledError as exc:
        status, error = CANCELLED, f"{type(exc).__name__}: {exc}"
        raise
    except Exception as exc:
        status, error = "error", public_error(exc)
        raise
    except BaseException as exc:  # Ctrl-C, a cancelled task: stopped, never a success
        status, error = CANCELLED, f"{type(exc).__name__}: stopped during {name}"
        raise
    finally:
        calls = run.vlm.drain() if run.vlm is not None else []
        if status is not None:
            _record(run, name, turn, attempt, status, error, clock, calls)


def _start(name: str, state: State, runtime: Runtime[Context]) -> NodeRun:
    context = run_context(runtime.context)
    raw = context is not runtime.context or not _checked_turn()
    info = runtime.execution_info
    session_id = str((info.thread_id if info is not None else None) or "default")
    recorder = None
    if context.vlm is not None:
        from agents.vlm import RecordingVLM

        recorder = RecordingVLM(context.vlm)
    return NodeRun(context, state, session_id, _safe_writer(runtime.stream_writer), vlm=recorder,
                   raw_input=raw, control=getattr(runtime, "control", None))


def _shown(name: str, after: dict[str, Any], run: NodeRun, turn: int | None, attempt: int
           ) -> dict[str, Any]:
    """`progress` and `preview` after a node (`OutputState`), from the state it leaves
    (`after`): a `values` stream shows them."""
    from graphs.artifacts import artifact_url

    done = [] if name == "start" else list((after.get("progress") or {}).get("done") or [])
    update: dict[str, Any] = {"progress": {
        "node": name, "done": [*done, name], "turn": turn, "attempt": attempt,
        "max_attempts": after.get("max_attempts"),
    }}
    images = run.images
    result = images.get("result") or images.get("result_0")
    image = result or images.get("source")
    if image:
        kind = "result" if name == "finish" else "candidate" if result else "source"
        mask = images.get("mask") or images.get("user_mask")
        update["preview"] = {"kind": kind, "image": image, "image_url": artifact_url(image),
                             "mask": mask, "mask_url": artifact_url(mask)}
    return update


def _checked_turn() -> bool:
    """Whether the session facade checked this run's turn (`graphs.requests.CHECKED_TURN`)."""
    from langgraph.config import get_config

    from graphs.requests import CHECKED_TURN

    try:
        return bool((get_config().get("configurable") or {}).get(CHECKED_TURN))
    except RuntimeError:  # called outside a run
        return False


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
    run.emit({"type": "node", "node": name, "status": _EVENT_STATUS.get(status, "error"),
              "turn": turn, "attempt": attempt, "duration_ms": duration,
              "summary": _summary(run.outputs), **({"error": error} if error else {})})


_EVENT_STATUS = {"ok": "end", CANCELLED: CANCELLED}
"""A trace row's status as its `node` event says it."""


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
