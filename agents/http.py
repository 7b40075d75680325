"""HTTP to model servers: one deadline per call and a cap on the answer's size, whatever they do.

httpx's timeout applies to each read, so a server sending a byte every few seconds would never
trip it. `BoundedTransport` (an `httpx.BaseTransport`, httpx's public extension point) starts a
watchdog when a request's headers are in that shuts the socket down once `timeout` seconds have
passed since the request began, and counts the body's bytes as they arrive. Both VLM clients
use it: the Ollama one through a plain `httpx.Client`, the OpenAI one through the `openai`
client's `http_client=`. Its two failures (`DeadlineExceeded`, `AnswerTooLarge`) are plain
exceptions that pass through both clients unchanged; each VLM words them as its `AgentError`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx


class DeadlineExceeded(Exception):
    """The call ran past its total deadline (the socket was cut)."""


class AnswerTooLarge(Exception):
    """The body grew past the size cap; the call was cut off."""

    def __init__(self, limit: int, path: str) -> None:
        self.limit = limit
        self.path = path
        super().__init__(f"over {limit:,} bytes for {path}")


class _Watchdog:
    """Shuts `sock` down at `deadline` (monotonic seconds); `expired()` says whether time is up."""

    def __init__(self, deadline: float, sock: socket.socket | None) -> None:
        self.deadline = deadline
        self.fired = threading.Event()
        self._sock = sock
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._cut)
        self._timer.daemon = True
        self._timer.start()

    def _cut(self) -> None:
        self.fired.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def expired(self) -> bool:
        return self.fired.is_set() or time.monotonic() > self.deadline

    def cancel(self) -> None:
        self._timer.cancel()


class _BoundedStream(httpx.SyncByteStream):
    def __init__(self, inner: Any, guard: _Watchdog, max_bytes: int, path: str) -> None:
        self._inner = inner
        self._guard = guard
        self._max_bytes = max_bytes
        self._path = path

    def __iter__(self) -> Iterator[bytes]:
        size = 0
        try:
            for chunk in self._inner:
                size += len(chunk)
                if size > self._max_bytes:
                    raise AnswerTooLarge(self._max_bytes, self._path)
                if self._guard.expired():
                    raise DeadlineExceeded()
                yield chunk
        except (httpx.TransportError, OSError):
            if self._guard.expired():
                raise DeadlineExceeded() from None
            raise
        if self._guard.expired():
            raise DeadlineExceeded()

    def close(self) -> None:
        self._guard.cancel()
        self._inner.close()


class BoundedTransport(httpx.BaseTransport):
    """Every response's body read within `timeout` seconds of the request and under `max_bytes`.

    Proxies come from the environment as httpx would take them (`HTTP(S)_PROXY`, `NO_PROXY`);
    a client given a transport no longer reads them itself.
    """

    def __init__(self, timeout: float, max_bytes: int, base_url: str = "",
                 inner: httpx.BaseTransport | None = None) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.inner = inner or httpx.HTTPTransport(proxy=environment_proxy(base_url))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        deadline = time.monotonic() + self.timeout
        response = self.inner.handle_request(request)
        guard = _Watchdog(deadline, _socket_of(response))
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_BoundedStream(response.stream, guard, self.max_bytes, request.url.path),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self.inner.close()


def bounded_client(base_url: str, timeout: float, max_bytes: int,
                   headers: dict[str, str] | None = None) -> httpx.Client:
    """An `httpx.Client` on `base_url` whose every call is bounded (see `BoundedTransport`)."""
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout),
        follow_redirects=True,
        headers=headers,
        transport=BoundedTransport(timeout, max_bytes, base_url),
    )


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url`, or None (none set, or `NO_PROXY` says so)."""
    parts = urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme or "http") or proxies.get("all")


def _socket_of(response: httpx.Response) -> socket.socket | None:
    stream = response.extensions.get("network_stream")
    try:
        sock = stream.get_extra_info("socket") if stream is not None else None
    except Exception:  # an unusual transport: the per-chunk deadline check still applies
        return None
    return sock if isinstance(sock, socket.socket) else None


def error_text(data: Any) -> str:
    """The server's own error message from a parsed body (Ollama's or OpenAI's shape), briefly."""
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            error = error.get("message") or error.get("type")
        error = error or data.get("message") or data.get("detail")
        if error:
            return " ".join(str(error).split())[:300]
    return describe(data)


def describe(data: Any) -> str:
    """What a body that is not the API's looks like, in a few words (an HTML page, cut-off JSON)."""
    if isinstance(data, str):
        head = " ".join(data.split())[:60]
        if not head:
            return "an empty body"
        if head.lstrip().lower().startswith(("<!doctype", "<html", "<")):
            return f"an HTML page ({head!r}…)"
        if head.lstrip().startswith(("{", "[")):
            return f"cut-off or invalid JSON ({head!r}…)"
        return f"text that is not JSON ({head!r}…)"
    return f"JSON of the wrong shape ({type(data).__name__})"


def parse_body(text: str) -> Any:
    """The body as JSON when it parses, else the text itself (for `describe`)."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def cut_mid_body(exc: BaseException | None) -> bool:
    """Whether a transport failure happened after the server began its answer: the body was
    cut mid-way (a bad response, the server's fault), not a server that cannot be reached."""
    while exc is not None:
        if "complete message body" in str(exc):  # h11: "...without sending complete message body"
            return True
        exc = exc.__cause__ or exc.__context__
    return False
