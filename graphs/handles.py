"""Handles the run context carries: models built on first use, and the VLM server's probe.

A `Context` is plain data; what must be remembered between runs (a model built once, a probe
answer for a while) lives in these objects, each with its own lock, and every copy of a context
that holds the same handle shares it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from tools.errors import InvalidRequestError

EventSink = Callable[[dict[str, Any]], None]


class LazyModel:
    """A model built on the first use, once (GroundingDINO + SAM and BrushNet are gigabytes).

    Attribute access (`segment`, `inpaint`, `variant`...) builds it and goes to the model.
    """

    def __init__(self, loader: Callable[[], Any], name: str) -> None:
        self._loader = loader
        self._inner: Any = None
        self._lock = threading.Lock()
        self.name = name

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    def load(self, on_event: EventSink | None = None) -> Any:
        """The model, built now if it was not yet; `on_event` hears `load` start and end."""
        with self._lock:
            if self._inner is None:
                if on_event:
                    on_event({"type": "load", "component": self.name, "status": "start"})
                self._inner = self._loader()
                if on_event:
                    on_event({"type": "load", "component": self.name, "status": "end"})
        return self._inner

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.load(), name)


def load_inpainter(inpainters: Mapping[str, Any], name: str,
                   on_event: EventSink | None = None) -> Any:
    """The inpainter called `name` from a context's `inpainters`, built on first use."""
    if name not in inpainters:
        known = ", ".join(sorted(inpainters)) or "none"
        raise InvalidRequestError(f"unknown inpainter `{name}`; available: {known}")
    entry = inpainters[name]
    return entry.load(on_event) if isinstance(entry, LazyModel) else entry


class VLMProbe:
    """The VLM server's `check()`, remembered for `ttl_s` seconds.

    With planner `auto`, a server that is down or lacks the model is skipped at once on every
    run inside the window, instead of each run paying the client's retries.
    """

    def __init__(self, ttl_s: float = 30.0) -> None:
        self.ttl_s = ttl_s
        self._last: tuple[float, Any] | None = None
        self._lock = threading.Lock()

    def status(self, vlm: Any) -> Any:
        """`vlm.check()`, or its answer from the last `ttl_s` seconds (None without a check)."""
        check = getattr(vlm, "check", None)
        if check is None:
            return None
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < self.ttl_s:
                return self._last[1]
        status = check()
        with self._lock:
            self._last = (time.monotonic(), status)
        return status

    def forget(self) -> None:
        """Ask the server again on the next run."""
        with self._lock:
            self._last = None
