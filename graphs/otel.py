"""The audit log also as OpenTelemetry spans, for auditors who read traces in their own tools.

Off by default; the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
switches it on, and the exporter reads the rest of the standard variables itself (headers,
timeout, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`). Spans go out over OTLP/HTTP protobuf.

The trace store (`graphs.traces.TraceStore`) stays the source of truth: spans are written from
the rows it has just recorded, so an exporter that is down loses spans, never a row. Shape, after
OpenTelemetry's GenAI semantic conventions:

- one trace per turn, rooted in an `invoke_workflow brushedit` span (`gen_ai.conversation.id` is
  the session id), ended when the turn finishes, is cancelled or fails;
- one span per node run: `invoke_agent <node>` for the VLM agents, `execute_tool <node>` for the
  segmenter and the painter, the node's name for the others; its images by hash and by URL
  (`brushedit.image.<role>.hash` / `.url`, the `/artifacts/<hash>` every server serves);
- one `chat <model>` span per model call under its node, with the system instructions, the
  prompt and its images, the answer, the model and the call's own start and duration.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from graphs.artifacts import artifact_url, is_hash
from graphs.traces import to_jsonable

logger = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
"""Either switches the export on (the traces-only one wins, as the OTLP exporter reads them)."""
AGENT_NODES = frozenset({"classify", "identify", "caption", "verify"})
"""Nodes that ask the vision-language model: GenAI `invoke_agent` spans."""
TOOL_NODES = frozenset({"mask", "inpaint"})
"""Nodes that run a model as a tool (GroundingDINO + SAM, the painter): `execute_tool` spans."""
OPEN_STATUSES = frozenset({"running", "review"})
"""Turn statuses that do not end the turn's span."""
SERVICE_NAME = "brushedit"


def span_export_from_env(environ: Mapping[str, str] | None = None) -> SpanExport | None:
    """A `SpanExport` when an OTLP endpoint is set, else None (the default: nothing is sent).

    The OpenTelemetry SDK and its OTLP exporter are the `otel` extra; asked for without them,
    a warning says what to install and editing goes on without spans.
    """
    env = os.environ if environ is None else environ
    if not any((env.get(name) or "").strip() for name in ENDPOINT_VARIABLES):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        logger.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry SDK is not "
                       "installed; pip install 'brushedit-agents[otel]' to export traces")
        return None
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or SERVICE_NAME})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return SpanExport(provider)


class SpanExport:
    """Writes the trace store's rows as spans through one `TracerProvider` (its own, not the
    process's global one, so embedding us changes nobody's tracing)."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry import trace

        self.provider = provider
        self.tracer = provider.get_tracer("brushedit", schema_url=None)
        self._trace = trace
        self._turns: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()

    # -- the turn ----------------------------------------------------------------------------

    def start_turn(self, session_id: str, turn: int, instruction: str) -> None:
        with self._lock:
            self._end_turn_span(session_id, turn, "abandoned")  # a turn started again
            self._turns[(session_id, turn)] = self._open_turn(session_id, turn, instruction)

    def end_turn(self, session_id: str, turn: int, status: str, *, accepted: bool | None = None,
                 reason: str | None = None) -> None:
        """Close the turn's root span: `done` (accepted or not), `cancelled`, `failed`...; a
        turn that runs again or waits for a mask review stays open."""
        if status in OPEN_STATUSES:
            return
        with self._lock:
            self._end_turn_span(session_id, turn, status, accepted=accepted, reason=reason)

    def _open_turn(self, session_id: str, turn: int, instruction: str | None) -> Any:
        attributes = {"gen_ai.operation.name": "invoke_workflow",
                      "gen_ai.workflow.name": SERVICE_NAME,
                      "gen_ai.conversation.id": session_id, "brushedit.session_id": session_id,
                      "brushedit.turn": turn}
        if instruction:
            attributes["brushedit.instruction"] = instruction
        return self.tracer.start_span(f"invoke_workflow {SERVICE_NAME}", attributes=attributes,
                                      context=self._trace.set_span_in_context(
                                          self._trace.INVALID_SPAN))

    def _end_turn_span(self, session_id: str, turn: int, status: str, *,
                       accepted: bool | None = None, reason: str | None = None) -> None:
        span = self._turns.pop((session_id, turn), None)
        if span is None:
            return
        span.set_attribute("brushedit.turn.status", status)
        if accepted is not None:
            span.set_attribute("brushedit.accepted", accepted)
        if reason:
            span.set_attribute("brushedit.reason", reason)
        if status not in ("done", "running"):
            span.set_status(self._status_error(status))
        span.end()

    def _status_error(self, description: str) -> Any:
        from opentelemetry.trace import Status, StatusCode

        return Status(StatusCode.ERROR, description)

    # -- nodes and model calls ---------------------------------------------------------------

    def node(self, session_id: str, node: str, *, turn: int | None, attempt: int | None,
             status: str, started: str | None, duration_ms: float | None,
             images: Mapping[str, Any] | None, calls: Iterable[Any], error: str | None) -> None:
        """One node run (as the store recorded it) and the model calls it made."""
        start_ns = _ns(started)
        end_ns = start_ns + int((duration_ms or 0.0) * 1e6) if start_ns else None
        with self._lock:
            parent = self._turn_span(session_id, turn)
        kind = ("invoke_agent" if node in AGENT_NODES else
                "execute_tool" if node in TOOL_NODES else None)
        attributes: dict[str, Any] = {"brushedit.node": node, "brushedit.session_id": session_id,
                                      "gen_ai.conversation.id": session_id,
                                      "brushedit.status": status}
        if kind:
            attributes["gen_ai.operation.name"] = kind
            attributes["gen_ai.agent.name" if kind == "invoke_agent" else "gen_ai.tool.name"] = node
        if turn is not None:
            attributes["brushedit.turn"] = turn
        if attempt is not None:
            attributes["brushedit.attempt"] = attempt
        attributes.update(_image_attributes(images or {}))
        span = self.tracer.start_span(f"{kind} {node}" if kind else node, attributes=attributes,
                                      start_time=start_ns,
                                      context=self._trace.set_span_in_context(parent))
        if error or status not in ("ok",):
            span.set_status(self._status_error(error or status))
            if error:
                span.set_attribute("error.type", error.split(":", 1)[0][:100])
        context = self._trace.set_span_in_context(span)
        for call in calls:
            self._call(to_jsonable(call), context)
        span.end(end_time=end_ns)

    def _turn_span(self, session_id: str, turn: int | None) -> Any:
        """The open span of this turn; one is opened for a node of a turn this process did not
        start (a resume after a crash, a server run), and closed when the turn ends."""
        if turn is None:
            return self._trace.INVALID_SPAN
        key = (session_id, turn)
        if key not in self._turns:
            self._turns[key] = self._open_turn(session_id, turn, None)
        return self._turns[key]

    def _call(self, call: Any, context: Any) -> None:
        if not isinstance(call, dict):
            return
        provider, model = _provider_and_model(str(call.get("model") or "unknown"))
        start_ns = _ns(call.get("started_at"))
        duration_s = call.get("duration_s")
        end_ns = start_ns + int(float(duration_s) * 1e9) if start_ns and duration_s else None
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": model,
            **({"gen_ai.provider.name": provider} if provider else {}),
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": _prompt_parts(call)}]),
        }
        if call.get("system"):
            attributes["gen_ai.system_instructions"] = json.dumps(
                [{"type": "text", "content": call["system"]}])
        if call.get("raw") is not None:
            attributes["gen_ai.output.messages"] = json.dumps([{
                "role": "assistant", "finish_reason": "stop",
                "parts": [{"type": "text", "content": call["raw"]}]}])
        if call.get("schema_name"):
            attributes["gen_ai.output.type"] = "json"
            attributes["brushedit.schema"] = call["schema_name"]
        if call.get("attempts") is not None:
            attributes["brushedit.attempts"] = call["attempts"]
        span = self.tracer.start_span(f"chat {model}", attributes=attributes,
                                      start_time=start_ns, context=context)
        if call.get("error"):
            span.set_status(self._status_error(str(call["error"])[:500]))
            span.set_attribute("error.type", str(call["error"]).split(":", 1)[0][:100])
        span.end(end_time=end_ns)

    def close(self) -> None:
        """End the turns still open and send what is queued (the CLI exits right after)."""
        with self._lock:
            for session_id, turn in list(self._turns):
                self._end_turn_span(session_id, turn, "running")
        self.provider.shutdown()


PROVIDERS = {"ollama": "ollama", "openai": "openai", "langchain": "langchain"}
"""The prefixes of our VLM clients' model names (`ollama:qwen2.5vl:7b`), as GenAI providers."""


def _provider_and_model(name: str) -> tuple[str | None, str]:
    prefix, _, rest = name.partition(":")
    return (PROVIDERS[prefix], rest) if prefix in PROVIDERS and rest else (None, name)


def _prompt_parts(call: Mapping[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "text", "content": call.get("user") or ""}]
    for digest in call.get("image_hashes") or []:
        parts.append({"type": "uri", "modality": "image", "uri": artifact_url(digest),
                      "brushedit.hash": digest})
    return parts


def _image_attributes(images: Mapping[str, Any]) -> dict[str, Any]:
    """`brushedit.image.<role>.hash` and `.url` for each image the node read or wrote."""
    out: dict[str, Any] = {}
    for role, value in images.items():
        digests = [v for v in (value if isinstance(value, list | tuple) else [value])
                   if is_hash(v)]
        if not digests:
            continue
        out[f"brushedit.image.{role}.hash"] = digests if len(digests) > 1 else digests[0]
        urls = [artifact_url(d) for d in digests]
        out[f"brushedit.image.{role}.url"] = urls if len(urls) > 1 else urls[0]
    return out


def _ns(when: Any) -> int | None:
    """An ISO time (the store's `started`, a call's `started_at`) in nanoseconds since 1970."""
    if isinstance(when, datetime):
        return int(when.timestamp() * 1e9)
    if isinstance(when, str) and when:
        try:
            return int(datetime.fromisoformat(when).timestamp() * 1e9)
        except ValueError:
            return None
    return None
