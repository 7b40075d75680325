"""Stopping a turn while it runs: one `CancelToken` per turn, asked between nodes and after every
diffusion step.

The token wraps LangGraph's own run control (`langgraph.runtime.RunControl`): the session facade
passes `token.control` as the run's `control=`, so LangGraph stops at the next node boundary
(`GraphDrained`) and every node sees it as `runtime.control`; the nodes ask it after each
diffusion step (the inpainters' `cancel=` callable). A LangGraph-server run has no token: when
the server cancels the run's task, the node wrapper (`graphs.tracing`) drains that run's own
control, so the same checks stop the work in its thread.
"""

from __future__ import annotations

from typing import Any

CANCELLED = "cancelled"
"""The reason a token gives LangGraph's run control (and the turn's status afterwards)."""


class CancelToken:
    """One turn's stop switch, safe to set from any thread (a request handler, a signal, a
    Stop button) while the turn runs in another.

    `token()` answers whether the turn should stop, so it is the inpainters' `cancel=` callable.
    """

    def __init__(self) -> None:
        from langgraph.runtime import RunControl

        self.control: Any = RunControl()
        self.reason: str | None = None

    def cancel(self, reason: str = "stopped by the caller") -> None:
        """Ask the turn to stop at its next check (the current diffusion step or node ends)."""
        if self.reason is None:
            self.reason = reason
        self.control.request_drain(CANCELLED)

    @property
    def cancelled(self) -> bool:
        return bool(self.control.drain_requested)

    def __call__(self) -> bool:
        return self.cancelled

    def __repr__(self) -> str:
        return f"CancelToken(cancelled={self.cancelled})"


def drained(control: Any) -> bool:
    """Whether a run's control (LangGraph's `runtime.control`, None outside a run) was drained."""
    return control is not None and bool(getattr(control, "drain_requested", False))
