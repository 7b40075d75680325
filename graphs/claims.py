"""One turn at a time per session in a process: a second is refused, never interleaved.

Two turns running at once on one session would share its checkpoint thread and its trace rows:
each abandons the other's turn, and the loser's result is lost. The session facade claims a
session for the length of a turn (in its trace log's `claims`), so every surface (Python, CLI,
web, HTTP, MCP, LangChain) gets the same `ConflictError` instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tools.errors import BrushEditError


class ConflictError(BrushEditError):
    """The resource is busy (e.g. an edit is already running in this session)."""


class SessionClaims:
    """The sessions with a turn running in this process (one set per trace log)."""

    def __init__(self) -> None:
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    def busy(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._busy

    @contextmanager
    def hold(self, session_id: str) -> Iterator[None]:
        """Hold `session_id` for one turn, or raise `ConflictError` if a turn holds it."""
        with self._lock:
            if session_id in self._busy:
                raise ConflictError(
                    f"an edit is already running in session {session_id!r}; wait for its result"
                )
            self._busy.add(session_id)
        try:
            yield
        finally:
            with self._lock:
                self._busy.discard(session_id)
