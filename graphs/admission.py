"""A bound on the edits one process runs at once: past it, "busy, retry after a while".

An edit holds its working image, its candidates and a model's activations; twenty at once on a
small server exhaust its memory long before they finish. Every edit (the session facade's turns,
hence the HTTP API, MCP, the web editor and the LangChain tool, and the LangGraph server's
runs) takes a slot first; with none free it is refused at once with `ServerBusyError` (HTTP
503 with `Retry-After`), so a client backs off instead of piling up
(`BRUSHEDIT_MAX_CONCURRENT_EDITS`, the number of cores by default).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from tools.errors import BrushEditError

RETRY_AFTER_S = 5
"""What a busy answer suggests waiting before trying again (seconds)."""


class ServerBusyError(BrushEditError):
    """Every edit slot of this process is taken: retry after `retry_after_s` seconds.

    Attributes:
        limit: the number of edits this process runs at once.
        retry_after_s: how long a client should wait before trying again.
    """

    def __init__(self, limit: int, retry_after_s: int = RETRY_AFTER_S) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        super().__init__(
            f"the server is running as many edits as it can at once ({limit}); retry in "
            f"{retry_after_s} s"
        )


@dataclass
class Slot:
    """One of an `EditSlots`' places, held for one edit; `release` frees it (once)."""

    slots: EditSlots
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.slots._free.release()

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class EditSlots:
    """At most `limit` edits at once in this process; `take()` refuses the next one."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"`limit` must be at least 1, got {limit}")
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit)

    def __repr__(self) -> str:
        return f"EditSlots({self.limit})"

    def take(self) -> Slot:
        """A slot, or `ServerBusyError` at once when every one is taken."""
        if not self._free.acquire(blocking=False):
            raise ServerBusyError(self.limit)
        return Slot(self)
