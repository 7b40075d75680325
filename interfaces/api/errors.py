"""How failures reach API clients: status codes, messages in the API's words, size limits.

No FastAPI here: `BodyLimit` is plain ASGI and `api_error` is shared by the routes and the edit
jobs' threads.
"""

from typing import Any

from interfaces.common import (
    ErrorBody,
    ErrorDetail,
    error_detail,
    http_status_for,
    retry_after,
)
from interfaces.wording import Wording, say
from tools.errors import BrushEditError, ModelLoadError
from tools.registry import WEIGHTLESS_INPAINTER

DEFAULT_MAX_BODY_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_HEADER_BYTES = 32 * 1024


class Unauthorized(Exception):
    """A request without the server's token; `basic` also offers HTTP Basic (the docs)."""

    def __init__(self, basic: bool = False) -> None:
        super().__init__("unauthorized")
        self.basic = basic


class BodyLimit:
    """ASGI middleware: 413 as soon as a request body passes `max_bytes`, declared or not.

    Headers over `max_header_bytes` in all get 431 (the HTTP parser alone lets megabytes by).

    A `Content-Length` over the limit is refused before reading; a chunked body is counted as
    it arrives, and the moment it passes the limit the client gets the 413 and the app sees a
    disconnect (whatever it answers after that is dropped).
    """

    def __init__(self, app: Any, max_bytes: int, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
                 ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = scope.get("headers") or []
        if sum(len(k) + len(v) + 4 for k, v in raw) > self.max_header_bytes:
            await self._reject(send, 431, "RequestHeaderFieldsTooLarge",
                               f"the request headers are over the limit of "
                               f"{self.max_header_bytes:,} bytes")
            return
        headers = dict(raw)
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0
        rejected = False
        started = False

        async def limited_receive() -> dict:
            nonlocal seen, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    rejected = True
                    if not started:
                        await self._reject(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if rejected:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not rejected:
                raise

    async def _reject(self, send: Any, status: int = 413, kind: str = "RequestTooLarge",
                      message: str | None = None) -> None:
        body = ErrorBody(
            error=ErrorDetail(
                type=kind,
                message=message or f"the request body is over the limit of {self.max_bytes:,} "
                "bytes",
            )
        ).model_dump_json().encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                            (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- messages


API_WORDING = Wording(inpainter="`inpainter={name}`", mask="send a `mask` file with the edit")
"""The API's form fields, for the fixes typed errors point at (`interfaces.wording`)."""


def api_message(exc: BaseException) -> str:
    """An error's sentence in the API's words: the form fields that fix it, never CLI flags."""
    message = say(exc, API_WORDING)
    if isinstance(exc, ModelLoadError) and exc.inpainter not in (None, WEIGHTLESS_INPAINTER):
        return (f"{message} Until the server has these weights, removals work with "
                f"`inpainter={WEIGHTLESS_INPAINTER}`.")
    return message


def _model_missing(exc: BaseException) -> bool:
    """Model weights that cannot be loaded, directly or as the cause of a node's error: the
    server's setup, not the request."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ModelLoadError):
            return True
        seen = seen.__cause__
    return False


def api_error(exc: BaseException) -> tuple[int, ErrorDetail]:
    """Status and body of a failure, in the API's words; a bug is `InternalError` with one
    fixed sentence (the caller logs its details)."""
    status = 503 if _model_missing(exc) else http_status_for(exc)
    if not isinstance(exc, BrushEditError):
        return status, error_detail(exc)
    return status, ErrorDetail(type=type(exc).__name__, message=api_message(exc))


def error_headers(exc: BaseException) -> dict[str, str] | None:
    """Headers an error answer carries: `Retry-After` when the server is only busy."""
    wait = retry_after(exc)
    return {"Retry-After": str(wait)} if wait is not None else None


def content_kind(content_type: str) -> str:
    """`form`, `json`, `none` or `other`: what kind of body a `Content-Type` announces."""
    media = content_type.split(";")[0].strip().lower()
    if not media:
        return "none"
    if media in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return "form"
    if media == "application/json" or media.endswith("+json"):
        return "json"
    return "other"

