"""The scripting both fake model servers share: queued answers, injected faults, recorded requests.

A `ScriptedServer` is a real HTTP server (pytest-httpserver on a local port). Answers come, in
order, from: injected failures (`fail_next`, `delay_next`, `send_next` on other paths), queued
replies (`queue`), then the responder, a callable `(request) -> str | dict | BaseModel | Reply`
that gets the request in Ollama's `/api/chat` shape whichever API the server speaks, so one
responder serves both fakes.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response


@dataclass
class Reply:
    """A scripted answer: `content` for the assistant message (and `thinking`, the model's
    thinking text), or an HTTP error, after `delay`.

    Misbehaviour for robustness tests: `raw` is sent as the whole body instead of the API's JSON
    (a proxy's HTML page, cut-off JSON, JSON without `message`), with `content_type`; `trickle`
    sends the body one byte every `trickle` seconds (a per-read timeout never trips).
    """

    content: str | dict | BaseModel | None = None
    status: int = 200
    error: str | None = None
    delay: float = 0.0
    raw: str | bytes | None = None
    content_type: str = "application/json"
    trickle: float = 0.0
    thinking: str | dict | BaseModel | None = None

    @classmethod
    def body(cls, raw: str | bytes, *, status: int = 200,
             content_type: str = "text/html; charset=utf-8") -> Reply:
        """Answer with exactly `raw` as the body (not the API's JSON)."""
        return cls(raw=raw, status=status, content_type=content_type)

    @classmethod
    def trickling(cls, seconds_per_byte: float, content: str | dict | BaseModel | None = None
                  ) -> Reply:
        """A valid answer, sent one byte every `seconds_per_byte` seconds."""
        return cls(content=content, trickle=seconds_per_byte)

    @classmethod
    def fail(cls, status: int = 500, error: str = "internal server error") -> Reply:
        return cls(status=status, error=error)

    @classmethod
    def slow(cls, seconds: float, content: str | dict | BaseModel | None = None) -> Reply:
        return cls(content=content, delay=seconds)

    @classmethod
    def in_thinking(cls, answer: str | dict | BaseModel) -> Reply:
        """The JSON only in the thinking text, the answer proper empty (ollama #12831)."""
        return cls(content="", thinking=answer)


Answer = str | dict | BaseModel | Reply
Responder = Callable[[dict[str, Any]], Answer]


@dataclass
class RecordedRequest:
    method: str
    path: str
    json: dict[str, Any] | None
    authorization: str | None = None
    """The `Authorization` header, as sent."""


@dataclass
class Injection:
    reply: Reply
    path: str
    times: int


def text_of(content: str | dict | BaseModel | None) -> str:
    """An answer as the text a model would send."""
    if content is None:
        return ""
    if isinstance(content, BaseModel):
        return content.model_dump_json()
    if isinstance(content, dict):
        return json.dumps(content)
    return str(content)


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")


class _QuickStopServer(HTTPServer):
    """pytest-httpserver polls for shutdown every 0.5 s; 20 ms keeps per-test teardown short."""

    def thread_target(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.02)


class ScriptedServer:
    """Lifecycle, scripting and inspection; subclasses answer in their API's format."""

    chat_path = "/api/chat"

    def __init__(self, responder: Responder) -> None:
        self.responder: Responder = responder
        self.requests: list[RecordedRequest] = []
        self._queued: deque[Answer] = deque()
        self._injections: list[Injection] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.server = _QuickStopServer(host="127.0.0.1", port=0, threaded=True)
        self.server.expect_request(re.compile(r".*")).respond_with_handler(self._record)

    # lifecycle

    def start(self) -> ScriptedServer:
        self._stopping.clear()
        self.server.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self.server.is_running():
            self.server.clear()
            self.server.stop()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    # scripting

    def queue(self, *answers: Answer) -> None:
        """Answers for the next chat calls, before the responder is consulted."""
        with self._lock:
            self._queued.extend(answers)

    def fail_next(self, status: int = 500, error: str = "internal server error", *,
                  times: int = 1, path: str | None = None) -> None:
        with self._lock:
            self._injections.append(Injection(Reply.fail(status, error), path or self.chat_path,
                                              times))

    def send_next(self, reply: Reply, *, times: int = 1, path: str | None = None) -> None:
        """Answer the next `times` calls to `path` with `reply` (e.g. `Reply.body("<html>")`,
        `Reply.trickling(2.0)`) before anything else; works for the listing paths too."""
        path = path or self.chat_path
        with self._lock:
            if path == self.chat_path:  # ahead of the queue, so content and trickling apply
                self._queued.extendleft([reply] * times)
            else:
                self._injections.append(Injection(reply, path, times))

    def delay_next(self, seconds: float, *, times: int = 1, path: str | None = None) -> None:
        """Sleep before answering normally (to trip a client timeout)."""
        with self._lock:
            self._injections.append(Injection(Reply(delay=seconds), path or self.chat_path, times))

    # answering

    def _record(self, request: Request) -> Response:
        body = request.get_json(silent=True) if request.data else None
        with self._lock:
            self.requests.append(RecordedRequest(request.method, request.path, body,
                                                 request.headers.get("Authorization")))
        return self._handle(request, body)

    def _handle(self, request: Request, body: Any) -> Response:
        raise NotImplementedError

    def _next_reply(self, chat_request: dict[str, Any]) -> Reply:
        """The queued answer, else the responder's, as a `Reply` (after its delay)."""
        with self._lock:
            answer = self._queued.popleft() if self._queued else None
        if answer is None:
            answer = self.responder(chat_request)
        reply = answer if isinstance(answer, Reply) else Reply(content=answer)
        if reply.delay:
            time.sleep(reply.delay)
        return reply

    def _injected(self, path: str, trickled: Any = None) -> Response | None:
        with self._lock:
            for injection in self._injections:
                if injection.path == path and injection.times > 0:
                    injection.times -= 1
                    reply = injection.reply
                    break
            else:
                return None
        if reply.delay:
            time.sleep(reply.delay)
        if reply.raw is not None:
            return Response(reply.raw, status=reply.status, content_type=reply.content_type)
        if reply.trickle:
            return self._trickle(json.dumps(trickled or {}).encode(), reply.trickle)
        if reply.status >= 400:
            return self._error(reply.status, reply.error or "error")
        return None

    def _error(self, status: int, message: str) -> Response:
        return json_response({"error": message}, status)

    def _trickle(self, data: bytes, seconds: float) -> Response:
        return Response(_trickled(data, seconds, self._stopping), status=200,
                        content_type="application/json", direct_passthrough=True)


def _trickled(data: bytes, seconds: float, stopping: threading.Event) -> Iterator[bytes]:
    for index in range(len(data)):
        if stopping.wait(seconds):
            return
        yield data[index : index + 1]
