"""Who may talk to a server on this machine: the `Host` it is asked as, the page asking.

"Listen on loopback" protects nothing from a page in the user's own browser: DNS rebinding
points a name the attacker owns at 127.0.0.1 (the request then carries `Host: evil.example`),
and a cross-origin page can send requests (its `Origin` says so) and, with a wildcard CORS
answer, read the replies. `RequestGuard` (plain ASGI, for the HTTP API, the web editor and the
LangGraph server alike) answers:

- 421 to a `Host` that is not one of loopback's names (`localhost`, `127.0.0.1`, `::1`) or a
  name the settings allow (`BRUSHEDIT_ALLOWED_HOSTS`), as the MCP SDK's HTTP transport does;
- 403 to a browser request whose `Origin` is neither the server's own nor one the settings
  allow (`BRUSHEDIT_CORS_ORIGINS`), before it does anything;
- an allowed origin gets its own name back in `Access-Control-Allow-Origin`, never `*`, and
  `Access-Control-Allow-Private-Network` only then.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def split_list(value: str | Iterable[str] | None) -> list[str]:
    """Items of a comma-separated setting (or a list of them), trimmed, empty ones dropped."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    return [item.strip() for item in items if item and item.strip()]


def host_name(value: str) -> str:
    """The name in a `Host` header, without its port (`[::1]:8000` -> `::1`), lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


class RequestGuard:
    """ASGI middleware refusing foreign `Host` names and foreign browser `Origin`s.

    Args:
        app: the ASGI app behind it.
        hosts: extra host names answered besides loopback's (or a callable giving them, read
            on first use); `check_host=False` answers any host (a server behind a token).
        origins: web origins (`https://example.com`) whose pages may call the server.
    """

    def __init__(self, app: Any, *, hosts: Iterable[str] | Callable[[], Iterable[str]] = (),
                 origins: Iterable[str] | Callable[[], Iterable[str]] = (),
                 check_host: bool = True) -> None:
        self.app = app
        self._hosts_source = hosts
        self._origins_source = origins
        self._hosts: frozenset[str] | None = None
        self._origins: frozenset[str] | None = None
        self.check_host = check_host

    def _allowed(self) -> tuple[frozenset[str], frozenset[str]]:
        if self._hosts is None or self._origins is None:
            hosts = self._hosts_source() if callable(self._hosts_source) else self._hosts_source
            origins = (self._origins_source() if callable(self._origins_source)
                       else self._origins_source)
            self._hosts = LOOPBACK_NAMES | {host_name(h) for h in split_list(hosts)}
            self._origins = frozenset(o.rstrip("/").lower() for o in split_list(origins))
        return self._hosts, self._origins

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hosts, origins = self._allowed()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers") or []}
        host = headers.get("host", "")
        if self.check_host and host_name(host) not in hosts:
            await _answer(send, 421, "MisdirectedRequest",
                          f"this server does not answer to the host name {host[:100]!r}; use "
                          "127.0.0.1 or localhost, or add the name to BRUSHEDIT_ALLOWED_HOSTS "
                          "on the server")
            return
        origin = headers.get("origin")
        if origin is None or origin.rstrip("/").lower() == _own_origin(scope, host):
            await self.app(scope, receive, send)
            return
        if origin.rstrip("/").lower() not in origins:
            await _answer(send, 403, "Forbidden",
                          f"pages from {origin[:100]!r} may not call this server; add the "
                          "origin to BRUSHEDIT_CORS_ORIGINS on the server to allow it")
            return
        await self.app(scope, receive, _echo_origin(send, origin))


def _own_origin(scope: dict, host: str) -> str:
    return f"{scope.get('scheme', 'http')}://{host}".lower()


def _echo_origin(send: Any, origin: str) -> Any:
    """A `send` whose CORS answer names `origin` (never `*`)."""

    async def echoed(message: dict) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", [])
                    if k.lower() != b"access-control-allow-origin"]
            kept.append((b"access-control-allow-origin", origin.encode("latin-1")))
            if not any(k.lower() == b"vary" for k, _ in kept):
                kept.append((b"vary", b"Origin"))
            message = {**message, "headers": kept}
        await send(message)

    return echoed


async def _answer(send: Any, status: int, kind: str, message: str) -> None:
    body = json.dumps({"error": {"type": kind, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

