"""A real HTTP server speaking the OpenAI chat-completions API as vLLM, llama.cpp and LM Studio do.

    from tests.fakes.openai_server import FakeOpenAI

    with FakeOpenAI(models=["Qwen/Qwen3-VL-8B-Instruct"], family="qwen3-vl") as server:
        vlm = server.vlm()                        # an OpenAIVLM on http://127.0.0.1:PORT/v1
        server.queue({"category": "removal", "confidence": 0.9, "rationale": "r"})
        server.fail_next(503)                     # the next /v1/chat/completions answers 503

`/v1/chat/completions` takes `image_url` data-URI parts and `response_format` (`json_schema`,
`json_object`; a server built with `json_schema=False` refuses the first as older llama.cpp
builds did), and answers with `choices[0].message`, the thinking text in `reasoning_content`
(vLLM's and llama.cpp's reasoning parsers) or `reasoning`. `/v1/models` lists the served models,
with LM Studio's `type` ("vlm"/"llm") when `vision` is given. A model it does not serve gets
vLLM's 404; images sent to a model without vision get llama.cpp's refusal. Responders are the
Ollama fake's: each request is handed to them in Ollama's `/api/chat` shape.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterable
from typing import Any

from werkzeug import Request, Response

from tests.fakes.ollama_server import SmartResponder, schema_title
from tests.fakes.scripted import Reply, Responder, ScriptedServer, json_response, text_of
from tests.fakes.vlm_families import FAKE_FAMILIES

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
_SCHEMA_HINT = re.compile(r"JSON schema:\s*(\{.*\})\s*$", re.DOTALL)


def as_ollama_request(body: dict[str, Any]) -> dict[str, Any]:
    """A chat-completions request in Ollama's `/api/chat` shape, for the shared responders:
    text parts joined, data-URI images as base64, the schema as `format`."""
    messages = []
    for message in body.get("messages") or []:
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        text = "".join(str(p.get("text") or "") for p in parts if p.get("type") == "text")
        images = [p["image_url"]["url"].split(",", 1)[1] for p in parts
                  if p.get("type") == "image_url"]
        messages.append({"role": message.get("role"), "content": text, "images": images})
    return {"model": body.get("model"), "messages": messages, "format": _schema_of(body, messages)}


def _schema_of(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") or {}
        return {"title": spec.get("name"), **(spec.get("schema") or {})}
    for message in messages:  # the schema in the prompt, when the server could not take it
        found = _SCHEMA_HINT.search(message["content"] or "")
        if found:
            return json.loads(found.group(1))
    return None


class FakeOpenAI(ScriptedServer):
    """`/v1/chat/completions` and `/v1/models` on a local port.

    Args:
        models: the served model names.
        family: how the model answers boxes (`tests.fakes.vlm_families`).
        json_schema: False refuses `response_format: json_schema` with HTTP 400.
        json_object: False refuses `response_format: json_object` too.
        vision: None lists no capability; True/False lists LM Studio's `type` "vlm"/"llm", and
            False also refuses images as llama.cpp does without its projector.
        lists_vision: False keeps `type` out of `/v1/models` (vLLM, llama.cpp), whatever
            `vision` is.
        reasoning_field: where the thinking text goes (`reasoning_content` or `reasoning`).
        thinks: the model thinks unless the request's `chat_template_kwargs` says
            `enable_thinking` (vLLM's and llama.cpp's switch); False: a non-thinking build, or a
            server started with thinking off.
        roots: the checkpoint each served name comes from (vLLM's `root`; the name itself
            when not given, as `--served-model-name` leaves it).
        strict: refuse fields the OpenAI API does not define (`chat_template_kwargs`), as
            OpenAI's own API does.
        behaviour: `SmartResponder` options (`json_in_thinking`, `ignores_format`, ...).
    """

    chat_path = "/v1/chat/completions"

    def __init__(self, responder: Responder | None = None, *,
                 models: Iterable[str] = (DEFAULT_MODEL,), family: str = "qwen2.5-vl",
                 json_schema: bool = True, json_object: bool = True,
                 vision: bool | None = None, reasoning_field: str = "reasoning_content",
                 thinks: bool = False, strict: bool = False, lists_vision: bool = True,
                 roots: dict[str, str] | None = None, **behaviour: Any) -> None:
        assert family in FAKE_FAMILIES, family
        self.smart = SmartResponder(family=family, **behaviour)
        super().__init__(responder or self.smart)
        self.models = list(models)
        self.json_schema, self.json_object = json_schema, json_object
        self.vision, self.thinks, self.strict = vision, thinks, strict
        self.reasoning_field = reasoning_field
        self.roots = dict(roots or {})
        self.lists_vision = lists_vision

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def vlm(self, **kwargs: Any) -> Any:
        """An `OpenAIVLM` on this server: first model, fast retries, a short timeout."""
        from agents.openai_vlm import OpenAIVLM

        kwargs.setdefault("retry_base_delay", 0.0)
        kwargs.setdefault("timeout", 5.0)
        model = kwargs.pop("model", self.models[0] if self.models else DEFAULT_MODEL)
        return OpenAIVLM(model, kwargs.pop("base_url", self.base_url), **kwargs)

    # inspection

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The chat-completions bodies as sent."""
        return [r.json or {} for r in self.requests if r.path == self.chat_path]

    def requests_for(self, title: str) -> list[dict[str, Any]]:
        """Bodies whose schema (given or in the prompt) has this title."""
        return [r for r in self.chat_requests if schema_title(as_ollama_request(r)) == title]

    # HTTP

    def _handle(self, request: Request, body: Any) -> Response:
        path = request.path.rstrip("/")
        if path == "/v1/models" and request.method == "GET":
            return self._injected(path, {"data": []}) or json_response(
                {"object": "list", "data": [self._listed(m) for m in self.models]})
        if path == self.chat_path and request.method == "POST":
            return self._chat(body or {})
        return json_response({"detail": "Not Found"}, 404)

    def _listed(self, model: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": model, "object": "model", "created": 1_760_000_000,
                                 "owned_by": "vllm", "root": self.roots.get(model, model),
                                 "parent": None, "max_model_len": 32768}
        if self.vision is not None and self.lists_vision:
            entry["type"] = "vlm" if self.vision else "llm"
        return entry

    def _error(self, status: int, message: str) -> Response:
        return json_response({"error": {"message": message, "type": "server_error",
                                        "param": None, "code": status}}, status)

    def _refusal(self, body: dict[str, Any]) -> Response | None:
        """What a real server says before the model runs: unknown model, format, images."""
        model = body.get("model", "")
        if self.strict and "chat_template_kwargs" in body:
            return self._error(400, "Unrecognized request argument supplied: "
                               "chat_template_kwargs")
        if model not in self.models:
            return json_response({"object": "error", "message": f"The model `{model}` does not "
                                  "exist.", "type": "NotFoundError", "param": None, "code": 404},
                                 404)
        kind = (body.get("response_format") or {}).get("type")
        if (kind == "json_schema" and not self.json_schema) or (
                kind == "json_object" and not self.json_object):
            return self._error(400, f"Unsupported response_format type: {kind}")
        has_images = any(isinstance(m.get("content"), list) and any(
            p.get("type") == "image_url" for p in m["content"]) for m in body.get("messages", []))
        if has_images and self.vision is False:
            return self._error(500, "image input is not supported - hint: if this is "
                               "unexpected, you may need to provide the mmproj")
        return None

    def _chat(self, body: dict[str, Any]) -> Response:
        refused = self._refusal(body)
        if refused is not None:
            return refused
        injected = self._injected(self.chat_path)
        if injected is not None:
            return injected
        switch = (body.get("chat_template_kwargs") or {}).get("enable_thinking")
        think = self.thinks if switch is None else bool(switch)
        reply = self._next_reply({**as_ollama_request(body), "think": think})
        if reply.raw is not None:
            return Response(reply.raw, status=reply.status, content_type=reply.content_type)
        if reply.status >= 400:
            return self._error(reply.status, reply.error or "error")
        completion = self._completion(body.get("model", ""), reply)
        if reply.trickle:
            return self._trickle(json.dumps(completion).encode(), reply.trickle)
        return json_response(completion)

    def _completion(self, model: str, reply: Reply) -> dict[str, Any]:
        content = text_of(reply.content)
        message: dict[str, Any] = {"role": "assistant", "content": content or None,
                                   "tool_calls": []}
        if reply.thinking is not None:
            message[self.reasoning_field] = text_of(reply.thinking)
        return {
            "id": "chatcmpl-" + base64.b16encode(str(time.time_ns()).encode()).decode()[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 812, "completion_tokens": max(1, len(content) // 4),
                      "total_tokens": 812 + max(1, len(content) // 4)},
        }
