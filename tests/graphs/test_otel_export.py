"""Traces as OpenTelemetry spans, received by an in-process OTLP/HTTP collector.

The edit runs as a user runs it (the `brushedit` console script, the standard
`OTEL_EXPORTER_OTLP_ENDPOINT`, a VLM server speaking Ollama's API), and the spans that arrive are
compared with the rows the trace store wrote: the store stays the source of truth.
"""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.graphs.helpers import object_mask, picture

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

BRUSHEDIT = Path(sys.executable).with_name("brushedit")


class Collector:
    """`POST /v1/traces` as an OpenTelemetry collector takes it (protobuf), keeping the spans."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.requests: list[Any] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.requests.append((self.path, self.headers.get("Content-Type"), request))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Collector:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[dict[str, Any]]:
        """Every span received, as `{name, trace, id, parent, start, end, status, attrs}`."""
        from google.protobuf.json_format import MessageToDict

        out = []
        for _path, _type, request in self.requests:
            for resource in request.resource_spans:
                service = {a.key: a.value.string_value for a in resource.resource.attributes}
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        attrs = {a["key"]: _value(a["value"])
                                 for a in MessageToDict(span).get("attributes", [])}
                        out.append({"name": span.name, "trace": span.trace_id.hex(),
                                    "id": span.span_id.hex(), "parent": span.parent_span_id.hex(),
                                    "start": span.start_time_unix_nano,
                                    "end": span.end_time_unix_nano,
                                    "status": span.status.code, "attrs": attrs,
                                    "service": service.get("service.name")})
        return out


def _value(value: dict[str, Any]) -> Any:
    if "arrayValue" in value:
        return [_value(v) for v in value["arrayValue"].get("values", [])]
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    return int(value["intValue"]) if "intValue" in value else None


def _edit(tmp_path: Path, ollama_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    image, mask = tmp_path / "in.png", tmp_path / "mask.png"
    picture().save(image)
    from PIL import Image

    Image.fromarray(object_mask()).save(mask)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "BRUSHEDIT_"))}
    base |= {"BRUSHEDIT_DATA_DIR": str(tmp_path / "data"), "BRUSHEDIT_OLLAMA_HOST": ollama_url,
             "BRUSHEDIT_OLLAMA_MODEL": "qwen2.5vl:7b",  # what the fake server has pulled
             "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run(
        [str(BRUSHEDIT), "edit", str(image), "remove the dark square", "-o",
         str(tmp_path / "out.png"), "--mask", str(mask), "--inpainter", "opencv", "--planner",
         "vlm", "--json"],
        capture_output=True, text=True, env=base, timeout=120, cwd=tmp_path,
    )


def _rows(data_dir: Path) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
    db = sqlite3.connect(data_dir / "traces.sqlite")
    db.row_factory = sqlite3.Row
    events = db.execute("SELECT * FROM events ORDER BY id").fetchall()
    calls = db.execute("SELECT * FROM calls ORDER BY id").fetchall()
    db.close()
    return events, calls


def test_spans_mirror_the_trace_store_with_genai_conventions(tmp_path):
    from tests.fakes.ollama_server import FakeOllama

    with FakeOllama() as ollama, Collector() as collector:
        done = _edit(tmp_path, ollama.url, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
                     OTEL_SERVICE_NAME="editor-under-audit")
        assert done.returncode == 0, done.stderr
        session = json.loads(done.stdout)["session_id"]
        assert json.loads(done.stdout)["accepted"], done.stdout
    assert {(path, kind) for path, kind, _ in collector.requests} == {
        ("/v1/traces", "application/x-protobuf")}
    spans = collector.spans()
    events, calls = _rows(tmp_path / "data")
    assert events and calls  # the VLM was asked: the agents' calls are in the store

    roots = [s for s in spans if s["name"] == "invoke_workflow brushedit"]
    assert len(roots) == 1 and roots[0]["parent"] == ""
    root = roots[0]
    assert root["attrs"]["gen_ai.conversation.id"] == session
    assert root["attrs"]["brushedit.instruction"] == "remove the dark square"
    assert root["attrs"]["brushedit.turn.status"] == "done" and root["end"] > root["start"]
    assert {s["service"] for s in spans} == {"editor-under-audit"}
    assert {s["trace"] for s in spans} == {root["trace"]}  # one trace per turn

    nodes = [s for s in spans if s["parent"] == root["id"]]
    assert [s["attrs"]["brushedit.node"] for s in sorted(nodes, key=lambda s: s["start"])] == [
        e["node"] for e in events]  # one span per node run, in the store's order
    by_node = {s["attrs"]["brushedit.node"]: s for s in nodes}
    assert by_node["classify"]["name"] == "invoke_agent classify"
    assert by_node["classify"]["attrs"]["gen_ai.agent.name"] == "classify"
    assert by_node["inpaint"]["name"] == "execute_tool inpaint"
    for event in events:
        span = by_node[event["node"]]
        assert span["attrs"]["gen_ai.conversation.id"] == session
        assert abs((span["end"] - span["start"]) / 1e6 - event["duration_ms"]) < 1.0
        for role, digest in json.loads(event["images"]).items():
            if isinstance(digest, str) and len(digest) == 64:
                assert span["attrs"][f"brushedit.image.{role}.hash"] == digest
                assert span["attrs"][f"brushedit.image.{role}.url"] == f"/artifacts/{digest}"
    painted = json.loads(done.stdout)["image"]
    assert by_node["inpaint"]["attrs"]["brushedit.image.result_0.hash"] == painted
    assert by_node["verify"]["attrs"]["brushedit.image.result.url"] == f"/artifacts/{painted}"

    chats = [s for s in spans if s["name"].startswith("chat ")]
    assert len(chats) == len(calls)  # one span per model call, each under its node
    node_ids = {s["id"]: s for s in nodes}
    for chat, call in zip(sorted(chats, key=lambda s: s["start"]), calls, strict=True):
        assert chat["parent"] in node_ids
        attrs = chat["attrs"]
        assert call["model"] == "ollama:qwen2.5vl:7b" and chat["name"] == "chat qwen2.5vl:7b"
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "ollama"
        assert attrs["gen_ai.request.model"] == "qwen2.5vl:7b"
        sent = json.loads(attrs["gen_ai.input.messages"])[0]
        assert sent["role"] == "user" and sent["parts"][0]["content"] == call["prompt"]
        for digest in json.loads(call["images"]):
            assert {"type": "uri", "modality": "image", "uri": f"/artifacts/{digest}",
                    "brushedit.hash": digest} in sent["parts"]
        assert json.loads(attrs["gen_ai.system_instructions"])[0]["content"] == call["system"]
        answer = json.loads(attrs["gen_ai.output.messages"])[0]
        assert answer["role"] == "assistant" and answer["parts"][0]["content"] == call["raw"]
        assert abs((chat["end"] - chat["start"]) / 1e6 - call["duration_ms"]) < 1.0


def test_nothing_is_sent_unless_the_endpoint_is_set(tmp_path):
    from tests.fakes.ollama_server import FakeOllama

    with FakeOllama() as ollama, Collector() as collector:
        done = _edit(tmp_path, ollama.url, OTEL_SERVICE_NAME="ignored")
        assert done.returncode == 0, done.stderr
    assert collector.requests == []
    assert _rows(tmp_path / "data")[0]  # the store has the trace all the same


def test_a_collector_that_is_down_costs_spans_never_rows(tmp_path):
    from tests.fakes.ollama_server import FakeOllama

    with Collector() as gone:
        url = gone.url
    with FakeOllama() as ollama:
        done = _edit(tmp_path, ollama.url, OTEL_EXPORTER_OTLP_ENDPOINT=url,
                     OTEL_EXPORTER_OTLP_TIMEOUT="1")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    events, calls = _rows(tmp_path / "data")
    assert [e["node"] for e in events][-1] == "finish" and calls
