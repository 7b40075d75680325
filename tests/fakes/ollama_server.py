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
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from werkzeug import Request, Response

from tests.fakes.scripted import (
    Answer,
    RecordedRequest,
    Reply,
    Responder,
    ScriptedServer,
    json_response,
    text_of,
)
from tests.fakes.vlm_families import BOX_TITLES, FAKE_FAMILIES, PROSE, answer_box, details_for

DEFAULT_MODELS = ("qwen2.5vl:7b",)
DEFAULT_CAPABILITIES = ("completion", "vision")


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
    """Plausible answers for every agent schema, derived from `agents.rules.parse_instruction`;
    boxes written the way `family` writes them, placed where the picture's magenta marker is
    (`tests.fakes.vlm_families`).

    Family behaviour for the robustness tests: `json_in_thinking` puts every JSON answer in
    the thinking text when the request asks the model to think (qwen3-vl, ollama #12831);
    `ignores_format` answers prose instead of JSON: `"always"`, or `"think_off"` only when the
    request says `think: false` (ollama #14645); `bare_boxes` writes boxes without JSON.
    """

    def __init__(self, verdicts: Iterable[str | Mapping[str, Any]] = (), *,
                 family: str = "qwen2.5-vl", json_in_thinking: bool = False,
                 ignores_format: str | None = None, bare_boxes: bool = False) -> None:
        self.verdicts: deque[str | Mapping[str, Any]] = deque(verdicts)
        self.family = family
        self.json_in_thinking = json_in_thinking
        self.ignores_format = ignores_format
        self.bare_boxes = bare_boxes
        self._lock = threading.Lock()

    def set_verdicts(self, *specs: str | Mapping[str, Any]) -> None:
        """Script the next verify answers; once they are used up, verify accepts."""
        with self._lock:
            self.verdicts = deque(specs)

    def __call__(self, request: dict[str, Any]) -> Answer:
        if self.ignores_format == "always" or (
                self.ignores_format == "think_off" and request.get("think") is False):
            return PROSE
        answer = self.answer(request)
        if self.json_in_thinking and request.get("think") and not isinstance(answer, Reply):
            return Reply.in_thinking(answer)
        return answer

    def answer(self, request: dict[str, Any]) -> Answer:
        """The model's answer proper (before the family's misbehaviour)."""
        from agents.errors import InstructionNotUnderstoodError
        from agents.rules import caption_for_plan, parse_instruction

        title = schema_title(request)
        try:
            plan = parse_instruction(instruction_of(request) or "edit the picture")
        except InstructionNotUnderstoodError:  # a model reads what the rules cannot: a global edit
            plan = parse_instruction("make the picture brighter")
        if title == "Classification":
            return {"category": plan.category.value, "confidence": 0.9,
                    "rationale": f"the request reads as {plan.category.value}"}
        if title == "IdentifiedObject":
            return {"object": plan.object or "main subject"}
        if title == "TargetCaption":
            return {"caption": caption_for_plan(plan)}
        if title == "RemovalPrompt":
            return {"background": caption_for_plan(plan), "removed": plan.object or "object"}
        if title in BOX_TITLES:
            from PIL import Image

            images = images_of(request)
            picture = images[0] if images else Image.new("RGB", (1000, 1000))
            return answer_box(self.family, picture, title or "", bare=self.bare_boxes)
        if title == "Verdict":
            with self._lock:
                spec = self.verdicts.popleft() if self.verdicts else "accept"
            return verdict(spec)
        if title is None:  # a plain question (the doctor's look at a picture): a word
            return "Red"
        return Reply.fail(500, f"fake ollama: unknown schema {title!r}")


# --- the server -------------------------------------------------------------------------------


class FakeOllama(ScriptedServer):
    """Ollama's `/api/chat`, `/api/tags`, `/api/show` and `/api/version` on a local port.

    `FakeOllama.as_family("qwen3-vl", json_in_thinking=True)` plays a family's typical model:
    its tag, what `/api/show` says of it, and how it answers (see `SmartResponder`).
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        models: Iterable[str] = DEFAULT_MODELS,
        capabilities: Iterable[str] = DEFAULT_CAPABILITIES,
        version: str = "0.12.6",
    ) -> None:
        self.smart = SmartResponder()
        super().__init__(responder or self.smart)
        self.models = list(models)
        self.capabilities = list(capabilities)
        self.version = version
        self.details: tuple[str, list[str]] | None = None  # `/api/show` family, else by tag

    @classmethod
    def as_family(cls, family: str, *, model: str | None = None, **behaviour: Any) -> FakeOllama:
        """A server whose model answers as `family` does (`tests.fakes.vlm_families`)."""
        fake = FAKE_FAMILIES[family]
        server = cls(models=[model or fake.model], capabilities=fake.capabilities)
        server.details = (fake.details_family, list(fake.families))
        server.smart = server.responder = SmartResponder(family=family, **behaviour)  # type: ignore[assignment]
        return server

    def vlm(self, **kwargs: Any) -> Any:
        """An `OllamaVLM` on this server: first model, fast retries, a short timeout."""
        from agents.ollama_vlm import OllamaVLM

        kwargs.setdefault("model", self.models[0] if self.models else "qwen2.5vl:7b")
        kwargs.setdefault("retry_base_delay", 0.0)
        kwargs.setdefault("timeout", 5.0)
        return OllamaVLM(host=self.url, **kwargs)

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

    def _handle(self, request: Request, body: Any) -> Response:
        path = request.path.rstrip("/")
        if path == "/api/version":
            return json_response({"version": self.version})
        if path == "/api/tags":
            return self._injected(path, {"models": []}) or json_response(
                {"models": [_tag(m, self.details) for m in self.models]})
        if path == "/api/show":
            return self._injected(path, {"capabilities": []}) or self._show(body or {})
        if path == "/api/chat" and request.method == "POST":
            return self._chat(body or {})
        return Response("404 page not found", status=404, content_type="text/plain")

    def _show(self, body: dict[str, Any]) -> Response:
        model = body.get("model") or body.get("name") or ""
        if model not in self._known(model):
            return json_response({"error": f"model '{model}' not found"}, 404)
        details = _details(model, self.details)
        return json_response({
            "modelfile": f"FROM {model}",
            "parameters": "temperature 0.1",
            "template": "{{ .Prompt }}",
            "details": details,
            "model_info": {"general.architecture": details["family"]},
            "capabilities": self.capabilities,
            "modified_at": _now(),
        })

    def _known(self, model: str) -> set[str]:
        names = set(self.models) | {m.removesuffix(":latest") for m in self.models}
        return names if model in names else set()

    def _chat(self, body: dict[str, Any]) -> Response:
        model = body.get("model", "")
        if not self._known(model):
            return json_response({"error": f'model "{model}" not found, try pulling it first'},
                                 404)
        if body.get("think") and "thinking" not in self.capabilities:
            return json_response({"error": f'"{model}" does not support thinking'}, 400)
        injected = self._injected("/api/chat")
        if injected is not None:
            return injected
        reply = self._next_reply(body)
        if reply.raw is not None:
            return Response(reply.raw, status=reply.status, content_type=reply.content_type)
        if reply.status >= 400:
            return json_response({"error": reply.error or "error"}, reply.status)
        content = text_of(reply.content)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reply.thinking is not None:
            message["thinking"] = text_of(reply.thinking)
        final = {
            "model": model,
            "created_at": _now(),
            "message": message,
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
            return json_response(final)
        chunk = {"model": model, "created_at": final["created_at"], "message": message,
                 "done": False}
        last = {**final, "message": {"role": "assistant", "content": ""}}
        lines = json.dumps(chunk) + "\n" + json.dumps(last) + "\n"
        return Response(lines, status=200, content_type="application/x-ndjson")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _details(model: str, known: tuple[str, list[str]] | None = None) -> dict[str, Any]:
    family, families = known or details_for(model)
    return {"parent_model": "", "format": "gguf", "family": family, "families": families,
            "parameter_size": "8.3B", "quantization_level": "Q4_K_M"}


def _tag(model: str, known: tuple[str, list[str]] | None = None) -> dict[str, Any]:
    return {"name": model, "model": model, "modified_at": _now(), "size": 5_969_245_856,
            "digest": "a" * 64, "details": _details(model, known)}


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
