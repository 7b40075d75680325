"""A real HTTP server that speaks enough of Ollama's REST API for tests: no model, no network.

    from tests.fakes.ollama_server import FakeOllama, Reply, fake_ollama  # fixture, for conftest

    def test_plan(fake_ollama):
        vlm = fake_ollama.vlm()                      # an OllamaVLM pointed at this server
        fake_ollama.queue({"category": "removal", "confidence": 0.9, "rationale": "r"})
        fake_ollama.fail_next(500)                    # the next /api/chat answers HTTP 500
        fake_ollama.set_verdicts("retry:mask", "accept")
        ...
        assert fake_ollama.chat_requests[0]["format"]["title"] == "Classification"

Answers come, in order, from: injected failures (`fail_next`, `delay_next`), queued replies
(`queue`), then the responder, a callable `(request_json) -> str | dict | BaseModel | Reply`.
The default `SmartResponder` answers every agent schema plausibly from the rule parser, so whole
graphs can run against it.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

DEFAULT_MODELS = ("qwen2.5vl:7b",)
DEFAULT_CAPABILITIES = ("completion", "vision")


@dataclass
class Reply:
    """A scripted answer: `content` for the assistant message, or an HTTP error, after `delay`.

    Misbehaviour for robustness tests: `raw` is sent as the whole body instead of Ollama's JSON
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

    @classmethod
    def body(cls, raw: str | bytes, *, status: int = 200,
             content_type: str = "text/html; charset=utf-8") -> Reply:
        """Answer with exactly `raw` as the body (not Ollama's JSON)."""
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


Answer = str | dict | BaseModel | Reply
Responder = Callable[[dict[str, Any]], Answer]


@dataclass
class RecordedRequest:
    method: str
    path: str
    json: dict[str, Any] | None


# --- helpers for responders -------------------------------------------------------------------


def schema_title(request: Mapping[str, Any]) -> str | None:
    """The `title` of the JSON schema in `format` (the pydantic class name), if any."""
    fmt = request.get("format")
    return fmt.get("title") if isinstance(fmt, dict) else None


def instruction_of(request: Mapping[str, Any]) -> str:
    """The user's instruction, found between the `<user_request>` tags of the first message."""
    for message in request.get("messages", []):
        found = re.search(r"<user_request>\s*(.*?)\s*</user_request>", message.get("content") or "",
                          re.DOTALL)
        if found:
            return found.group(1)
    return ""


def images_of(request: Mapping[str, Any]) -> list[Any]:
    """The PIL images sent in the request's messages (decoded from base64)."""
    from PIL import Image

    images = []
    for message in request.get("messages", []):
        for encoded in message.get("images") or []:
            images.append(Image.open(io.BytesIO(base64.b64decode(encoded))))
    return images


def by_schema(answers: Mapping[str, Any], default: Answer | None = None) -> Responder:
    """Dispatch on the schema title: a value, a callable(request), or a list consumed in order
    (its last item then repeats)."""
    queues = {k: deque(v) for k, v in answers.items() if isinstance(v, list)}

    def respond(request: dict[str, Any]) -> Answer:
        title = schema_title(request) or ""
        if title in queues:
            queue = queues[title]
            value = queue.popleft() if len(queue) > 1 else queue[0]
        elif title in answers:
            value = answers[title]
        elif default is not None:
            value = default
        else:
            return Reply.fail(500, f"fake ollama: no scripted answer for schema {title!r}")
        return value(request) if callable(value) else value

    return respond


def verdict(spec: str | Mapping[str, Any]) -> dict[str, Any]:
    """'accept', 'retry:mask', 'retry:caption' or 'retry:inpaint' (or a full dict) as a Verdict."""
    if isinstance(spec, Mapping):
        return dict(spec)
    decision, _, stage = spec.partition(":")
    if decision == "accept":
        return {"decision": "accept", "stage": None, "reason": "the edit matches the request",
                "suggestion": None}
    if decision != "retry" or stage not in ("mask", "caption", "inpaint"):
        raise ValueError(f"unknown verdict spec {spec!r}")
    return {"decision": "retry", "stage": stage, "reason": f"the {stage} step went wrong",
            "suggestion": f"redo the {stage}"}


class SmartResponder:
    """Plausible answers for every agent schema, derived from `agents.rules.parse_instruction`."""

    def __init__(self, verdicts: Iterable[str | Mapping[str, Any]] = ()) -> None:
        self.verdicts: deque[str | Mapping[str, Any]] = deque(verdicts)
        self._lock = threading.Lock()

    def set_verdicts(self, *specs: str | Mapping[str, Any]) -> None:
        """Script the next verify answers; once they are used up, verify accepts."""
        with self._lock:
            self.verdicts = deque(specs)

    def __call__(self, request: dict[str, Any]) -> Answer:
        from agents.rules import caption_for_plan, parse_instruction

        title = schema_title(request)
        plan = parse_instruction(instruction_of(request) or "edit the picture")
        if title == "Classification":
            return {"category": plan.category.value, "confidence": 0.9,
                    "rationale": f"the request reads as {plan.category.value}"}
        if title == "IdentifiedObject":
            return {"object": plan.object or "main subject"}
        if title == "TargetCaption":
            return {"caption": caption_for_plan(plan)}
        if title == "RemovalPrompt":
            return {"background": caption_for_plan(plan), "removed": plan.object or "object"}
        if title == "BoxProposal":
            images = images_of(request)
            width, height = images[0].size if images else (1000, 1000)
            return {"bbox_2d": [round(width * 0.3), round(height * 0.4), round(width * 0.7),
                                round(height * 0.8)],
                    "layout": "corners", "units": "pixels", "label": plan.target_caption}
        if title == "Verdict":
            with self._lock:
                spec = self.verdicts.popleft() if self.verdicts else "accept"
            return verdict(spec)
        return Reply.fail(500, f"fake ollama: unknown schema {title!r}")


# --- the server -------------------------------------------------------------------------------


class _QuickStopServer(HTTPServer):
    """pytest-httpserver polls for shutdown every 0.5 s; 20 ms keeps per-test teardown short."""

    def thread_target(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.02)


@dataclass
class _Injection:
    reply: Reply
    path: str
    times: int


class FakeOllama:
    """Ollama's `/api/chat`, `/api/tags`, `/api/show` and `/api/version` on a local port."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        models: Iterable[str] = DEFAULT_MODELS,
        capabilities: Iterable[str] = DEFAULT_CAPABILITIES,
        version: str = "0.12.6",
    ) -> None:
        self.smart = SmartResponder()
        self.responder: Responder = responder or self.smart
        self.models = list(models)
        self.capabilities = list(capabilities)
        self.version = version
        self.requests: list[RecordedRequest] = []
        self._queued: deque[Answer] = deque()
        self._injections: list[_Injection] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.server = _QuickStopServer(host="127.0.0.1", port=0, threaded=True)
        self.server.expect_request(re.compile(r".*")).respond_with_handler(self._handle)

    # lifecycle

    def start(self) -> FakeOllama:
        self._stopping.clear()
        self.server.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self.server.is_running():
            self.server.clear()
            self.server.stop()

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def vlm(self, **kwargs: Any) -> Any:
        """An `OllamaVLM` on this server: first model, fast retries, a short timeout."""
        from agents.ollama_vlm import OllamaVLM

        kwargs.setdefault("model", self.models[0] if self.models else "qwen2.5vl:7b")
        kwargs.setdefault("retry_base_delay", 0.0)
        kwargs.setdefault("timeout", 5.0)
        return OllamaVLM(host=self.url, **kwargs)

    # scripting

    def queue(self, *answers: Answer) -> None:
        """Answers for the next /api/chat calls, before the responder is consulted."""
        with self._lock:
            self._queued.extend(answers)

    def fail_next(self, status: int = 500, error: str = "internal server error", *,
                  times: int = 1, path: str = "/api/chat") -> None:
        with self._lock:
            self._injections.append(_Injection(Reply.fail(status, error), path, times))

    def send_next(self, reply: Reply, *, times: int = 1, path: str = "/api/chat") -> None:
        """Answer the next `times` calls to `path` with `reply` (e.g. `Reply.body("<html>")`,
        `Reply.trickling(2.0)`) before anything else; works for /api/tags and /api/show too."""
        with self._lock:
            if path == "/api/chat":  # ahead of the queue, so content and trickling apply
                self._queued.extendleft([reply] * times)
            else:
                self._injections.append(_Injection(reply, path, times))

    def delay_next(self, seconds: float, *, times: int = 1, path: str = "/api/chat") -> None:
        """Sleep before answering normally (to trip a client timeout)."""
        with self._lock:
            self._injections.append(_Injection(Reply(delay=seconds), path, times))

    def set_verdicts(self, *specs: str | Mapping[str, Any]) -> None:
        """Script verify: e.g. `set_verdicts("retry:mask", "accept")` (smart responder only)."""
        self.smart.set_verdicts(*specs)

    # inspection

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r.json or {} for r in self.requests if r.path == "/api/chat"]

    def requests_for(self, title: str) -> list[dict[str, Any]]:
        return [r for r in self.chat_requests if schema_title(r) == title]

    # HTTP

    def _handle(self, request: Request) -> Response:
        body = request.get_json(silent=True) if request.data else None
        with self._lock:
            self.requests.append(RecordedRequest(request.method, request.path, body))
        path = request.path.rstrip("/")
        if path == "/api/version":
            return _json({"version": self.version})
        if path == "/api/tags":
            return self._injected(path) or _json({"models": [_tag(m) for m in self.models]})
        if path == "/api/show":
            return self._injected(path) or self._show(body or {})
        if path == "/api/chat" and request.method == "POST":
            return self._chat(body or {})
        return Response("404 page not found", status=404, content_type="text/plain")

    def _trickle(self, data: bytes, seconds: float) -> Response:
        return Response(_trickled(data, seconds, self._stopping), status=200,
                        content_type="application/json", direct_passthrough=True)

    def _injected(self, path: str) -> Response | None:
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
            return self._trickle(json.dumps({"models": [], "capabilities": []}).encode(),
                                 reply.trickle)
        if reply.status >= 400:
            return _json({"error": reply.error or "error"}, reply.status)
        return None

    def _show(self, body: dict[str, Any]) -> Response:
        model = body.get("model") or body.get("name") or ""
        if model not in self._known(model):
            return _json({"error": f"model '{model}' not found"}, 404)
        return _json({
            "modelfile": f"FROM {model}",
            "parameters": "temperature 0.1",
            "template": "{{ .Prompt }}",
            "details": _details(model),
            "model_info": {"general.architecture": model.split(":")[0]},
            "capabilities": self.capabilities,
            "modified_at": _now(),
        })

    def _known(self, model: str) -> set[str]:
        names = set(self.models) | {m.removesuffix(":latest") for m in self.models}
        return names if model in names else set()

    def _chat(self, body: dict[str, Any]) -> Response:
        model = body.get("model", "")
        if not self._known(model):
            return _json({"error": f'model "{model}" not found, try pulling it first'}, 404)
        injected = self._injected("/api/chat")
        if injected is not None:
            return injected
        with self._lock:
            answer = self._queued.popleft() if self._queued else None
        if answer is None:
            answer = self.responder(body)
        reply = answer if isinstance(answer, Reply) else Reply(content=answer)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.raw is not None:
            return Response(reply.raw, status=reply.status, content_type=reply.content_type)
        if reply.status >= 400:
            return _json({"error": reply.error or "error"}, reply.status)
        content = _content_text(reply.content)
        final = {
            "model": model,
            "created_at": _now(),
            "message": {"role": "assistant", "content": content},
            "done": True,
            "done_reason": "stop",
            "total_duration": 1_200_000_000,
            "load_duration": 50_000_000,
            "prompt_eval_count": 812,
            "prompt_eval_duration": 400_000_000,
            "eval_count": max(1, len(content) // 4),
            "eval_duration": 700_000_000,
        }
        if reply.trickle:
            return self._trickle(json.dumps(final).encode(), reply.trickle)
        if body.get("stream", True) is False:
            return _json(final)
        chunk = {"model": model, "created_at": final["created_at"],
                 "message": {"role": "assistant", "content": content}, "done": False}
        last = {**final, "message": {"role": "assistant", "content": ""}}
        lines = json.dumps(chunk) + "\n" + json.dumps(last) + "\n"
        return Response(lines, status=200, content_type="application/x-ndjson")


def _trickled(data: bytes, seconds: float, stopping: threading.Event) -> Iterator[bytes]:
    for index in range(len(data)):
        if stopping.wait(seconds):
            return
        yield data[index : index + 1]


def _content_text(content: str | dict | BaseModel | None) -> str:
    if content is None:
        return ""
    if isinstance(content, BaseModel):
        return content.model_dump_json()
    if isinstance(content, dict):
        return json.dumps(content)
    return str(content)


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _details(model: str) -> dict[str, Any]:
    return {"parent_model": "", "format": "gguf", "family": model.split(":")[0],
            "families": [model.split(":")[0]], "parameter_size": "8.3B",
            "quantization_level": "Q4_K_M"}


def _tag(model: str) -> dict[str, Any]:
    return {"name": model, "model": model, "modified_at": _now(), "size": 5_969_245_856,
            "digest": "a" * 64, "details": _details(model)}


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    """A started `FakeOllama` with the smart responder; stopped after the test."""
    with FakeOllama() as server:
        yield server


__all__ = [
    "FakeOllama",
    "RecordedRequest",
    "Reply",
    "SmartResponder",
    "by_schema",
    "fake_ollama",
    "images_of",
    "instruction_of",
    "schema_title",
    "verdict",
]
