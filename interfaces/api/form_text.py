"""Form fields arrive as bytes: text that is not UTF-8 is refused, never read as Latin-1.

Starlette decodes a multipart text field that is not valid UTF-8 as Latin-1 (and a urlencoded
one with replacement characters), so an instruction sent in another encoding would be stored
as mojibake. `Utf8FormFields` (plain ASGI, no FastAPI) reads every multipart part that is not a
file with python-multipart's parser as the body streams by, and answers 422 with
`tools.text.decode_text`'s sentence before a field that is not UTF-8 reaches the app; a
urlencoded body is checked the same way once it has arrived.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from interfaces.common import ErrorBody, ErrorDetail
from tools.errors import InvalidTextError
from tools.text import decode_text

MAX_FIELD_BYTES = 64 * 1024
"""A text part is collected up to this size (far over any field's limit) to be checked."""


class Utf8FormFields:
    """ASGI middleware: 422 `InvalidTextError` for a form text field that is not UTF-8."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        kind = _form_kind(scope) if scope["type"] == "http" else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        check = _MultipartCheck(scope) if kind == "multipart" else _UrlencodedCheck()
        refused: list[InvalidTextError] = []

        async def checked_receive() -> dict:
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                try:
                    check.feed(message.get("body", b""), more=message.get("more_body", False))
                except InvalidTextError as exc:
                    refused.append(exc)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, checked_receive, guarded_send)
        except Exception:
            if not refused:
                raise
        if refused:
            await _refuse(send, refused[0])


def _form_kind(scope: dict) -> str | None:
    headers = dict(scope.get("headers") or [])
    media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if media == b"multipart/form-data":
        return "multipart"
    if media == b"application/x-www-form-urlencoded":
        return "urlencoded"
    return None


class _MultipartCheck:
    """Feeds the body to python-multipart; each finished text part is decoded as UTF-8."""

    def __init__(self, scope: dict) -> None:
        from python_multipart.multipart import MultipartParser, parse_options_header

        headers = dict(scope.get("headers") or [])
        _, params = parse_options_header(headers.get(b"content-type", b""))
        self.failed: InvalidTextError | None = None
        self._header_name = b""
        self._headers: dict[bytes, bytes] = {}
        self._data = bytearray()
        boundary = params.get(b"boundary")
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._begin, "on_header_field": self._field,
            "on_header_value": self._value, "on_part_data": self._part_data,
            "on_part_end": self._end,
        }) if boundary else None

    def feed(self, chunk: bytes, *, more: bool) -> None:
        if self._parser is None or not chunk:
            return
        try:
            self._parser.write(chunk)
        except Exception:  # a malformed body: the app's own parser answers it
            self._parser = None
        if self.failed is not None:
            raise self.failed

    def _begin(self) -> None:
        self._headers, self._data, self._header_name = {}, bytearray(), b""

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_name = data[start:end].lower()

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._headers[self._header_name] = self._headers.get(self._header_name, b"") + \
            data[start:end]

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if len(self._data) < MAX_FIELD_BYTES and not self._is_file():
            self._data += data[start:min(end, start + MAX_FIELD_BYTES - len(self._data))]

    def _end(self) -> None:
        if self._is_file() or self.failed is not None:
            return
        from python_multipart.multipart import parse_options_header

        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"field").decode("latin-1")
        self.failed = _not_utf8(bytes(self._data), name)

    def _is_file(self) -> bool:
        return b"filename" in self._headers.get(b"content-disposition", b"")


class _UrlencodedCheck:
    """Collects a urlencoded body (small by nature) and decodes each value once it is whole."""

    def __init__(self) -> None:
        self._body = bytearray()

    def feed(self, chunk: bytes, *, more: bool) -> None:
        self._body += chunk
        if more:
            return
        for pair in bytes(self._body).split(b"&"):
            name, _, value = pair.partition(b"=")
            raw = unquote_to_bytes(value.replace(b"+", b" "))
            error = _not_utf8(raw, unquote_to_bytes(name).decode("utf-8", "replace"))
            if error is not None:
                raise error


def _not_utf8(data: bytes, name: str) -> InvalidTextError | None:
    """The refusal of `data` when it is not UTF-8, else None (other checks come later)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            decode_text(data, name)
        except InvalidTextError as exc:
            return exc
    return None


async def _refuse(send: Any, exc: InvalidTextError) -> None:
    body = ErrorBody(error=ErrorDetail(type=type(exc).__name__, message=str(exc)))
    data = body.model_dump_json().encode()
    await send({"type": "http.response.start", "status": 422,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
