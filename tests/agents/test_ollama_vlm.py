"""OllamaVLM against a real HTTP server speaking Ollama's API."""

from __future__ import annotations

import base64
import io
import socket
import time

import pytest
from PIL import Image

from agents.classify import Classification
from agents.errors import (
    AgentError,
    VLMInvalidAnswerError,
    VLMModelNotFoundError,
    VLMRequestError,
    VLMTimeoutError,
    VLMUnavailableError,
)
from agents.vlm import OllamaVLM, VisionLanguageModel
from tests.agents.helpers import GOOD, ask
from tests.fakes.ollama_server import FakeOllama, Reply
from tools.errors import BrushEditError
from tools.types import EditCategory


def test_implements_the_protocol(fake_ollama):
    vlm = fake_ollama.vlm()
    assert isinstance(vlm, VisionLanguageModel)
    assert vlm.model_id == "ollama:qwen2.5vl:7b"


def test_sends_exactly_the_documented_request(fake_ollama, image):
    fake_ollama.queue(GOOD)
    vlm = fake_ollama.vlm(temperature=0.0, seed=7, num_ctx=4096, keep_alive="1m")
    answer = ask(vlm, image)

    assert answer.value.category is EditCategory.REMOVAL
    assert answer.raw == '{"category": "removal", "confidence": 0.8, "rationale": "asks to remove"}'
    assert answer.attempts == 1 and answer.image_sizes == [(640, 480)]
    (sent,) = fake_ollama.chat_requests
    assert sent["model"] == "qwen2.5vl:7b"
    assert sent["stream"] is False
    assert sent["format"] == Classification.model_json_schema()
    assert sent["options"] == {"temperature": 0.0, "seed": 7, "num_ctx": 4096}
    assert sent["keep_alive"] == "1m"
    system, user = sent["messages"]
    assert system == {"role": "system", "content": "SYS"}
    assert user["role"] == "user" and user["content"] == "USER"
    png = base64.b64decode(user["images"][0])
    assert png.startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(png)).size == (640, 480)


def test_images_are_downscaled_to_max_side(fake_ollama):
    fake_ollama.queue(GOOD)
    answer = ask(fake_ollama.vlm(max_image_side=320), Image.new("RGB", (1000, 500), "red"))
    png = base64.b64decode(fake_ollama.chat_requests[0]["messages"][1]["images"][0])
    assert Image.open(io.BytesIO(png)).size == (320, 160)
    assert answer.image_sizes == [(320, 160)]


def test_json_wrapped_in_prose_and_fences_is_accepted(fake_ollama):
    fake_ollama.queue('Sure! Here it is:\n```json\n{"category": "addition", "confidence": 1, '
                      '"rationale": "adds {a} bird"}\n```\nHope that helps.')
    answer = ask(fake_ollama.vlm())
    assert answer.value.category is EditCategory.ADDITION
    assert answer.value.rationale == "adds {a} bird"
    assert len(fake_ollama.chat_requests) == 1


def test_wrong_enum_value_is_re_asked_with_the_error(fake_ollama):
    bad = '{"category": "recolor", "confidence": 0.7, "rationale": "x"}'
    fake_ollama.queue(bad, {"category": "local", "confidence": 0.7, "rationale": "x"})
    answer = ask(fake_ollama.vlm())
    assert answer.value.category is EditCategory.LOCAL
    assert answer.attempts == 2
    first, second = fake_ollama.chat_requests
    assert len(first["messages"]) == 2
    assert second["messages"][2] == {"role": "assistant", "content": bad}
    reask = second["messages"][3]
    assert reask["role"] == "user" and "category" in reask["content"]
    assert second["format"] == first["format"]


def test_missing_field_is_re_asked(fake_ollama):
    fake_ollama.queue('{"category": "global"}', GOOD)
    answer = ask(fake_ollama.vlm())
    assert answer.value.category is EditCategory.REMOVAL
    assert "confidence" in fake_ollama.chat_requests[1]["messages"][3]["content"]


def test_invalid_after_all_retries_raises_with_the_last_error(fake_ollama):
    fake_ollama.queue("no idea", "still no idea", '{"category": "blue", "confidence": 2}')
    with pytest.raises(VLMInvalidAnswerError) as caught:
        ask(fake_ollama.vlm(invalid_answer_retries=2))
    assert len(fake_ollama.chat_requests) == 3
    message = str(caught.value)
    assert "3 attempt" in message and "category" in message
    assert caught.value.raw == '{"category": "blue", "confidence": 2}'
    assert isinstance(caught.value, AgentError) and isinstance(caught.value, BrushEditError)


def test_http_500_is_retried_then_succeeds(fake_ollama):
    fake_ollama.fail_next(500, "llama runner process has terminated")
    fake_ollama.queue(GOOD)
    answer = ask(fake_ollama.vlm(transport_retries=2))
    assert answer.value.category is EditCategory.REMOVAL
    assert len(fake_ollama.chat_requests) == 2


def test_503_beyond_the_retry_budget_is_a_request_error(fake_ollama):
    fake_ollama.fail_next(503, "server busy", times=5)
    with pytest.raises(VLMRequestError, match="503"):
        ask(fake_ollama.vlm(transport_retries=1))
    assert len(fake_ollama.chat_requests) == 2


def test_backoff_is_exponential(fake_ollama, monkeypatch):
    slept = []
    monkeypatch.setattr("agents.ollama_vlm.time.sleep", slept.append)
    fake_ollama.fail_next(500, times=2)
    fake_ollama.queue(GOOD)
    ask(fake_ollama.vlm(transport_retries=2, retry_base_delay=0.25))
    assert slept == [0.25, 0.5]


def test_timeout_raises_vlm_timeout(fake_ollama):
    fake_ollama.delay_next(4.0)
    started = time.perf_counter()
    with pytest.raises(VLMTimeoutError, match=r"0\.3 s"):
        ask(fake_ollama.vlm(timeout=0.3))
    # well before the server's 4 s answer, with room for a loaded machine
    assert time.perf_counter() - started < 2.5


def test_unknown_model_says_how_to_pull_it(fake_ollama):
    with pytest.raises(VLMModelNotFoundError, match=r"ollama pull llava:13b"):
        ask(fake_ollama.vlm(model="llava:13b"))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_says_how_to_start_ollama():
    host = f"http://127.0.0.1:{_closed_port()}"
    vlm = OllamaVLM(host=host, transport_retries=1, retry_base_delay=0.0)
    with pytest.raises(VLMUnavailableError) as caught:
        ask(vlm)
    assert "ollama serve" in str(caught.value) and host in str(caught.value)


def test_host_defaults_to_ollama_host_env(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "http://10.1.2.3:9999")
    assert OllamaVLM().host == "http://10.1.2.3:9999"
    monkeypatch.delenv("OLLAMA_HOST")
    assert OllamaVLM().host == "http://127.0.0.1:11434"
    assert OllamaVLM(host="http://h:1").host == "http://h:1"


def test_check_reports_a_healthy_server(fake_ollama):
    status = fake_ollama.vlm().check()
    assert status.ok and status.reachable and status.model_present and status.vision
    assert status.version == "0.12.6" and "vision" in status.capabilities


def test_check_reports_a_missing_model(fake_ollama):
    status = fake_ollama.vlm(model="gemma3:4b").check()
    assert status.reachable and not status.model_present and not status.ok
    assert status.fix == "ollama pull gemma3:4b"


def test_check_reports_a_model_without_vision():
    with FakeOllama(models=["llama3.2:3b"], capabilities=["completion", "tools"]) as server:
        status = server.vlm().check()
    assert status.model_present and status.vision is False and not status.ok
    assert "vision" in (status.error or "")


def test_check_reports_an_unreachable_server():
    status = OllamaVLM(host=f"http://127.0.0.1:{_closed_port()}").check()
    assert not status.reachable and "ollama serve" in (status.fix or "")


def test_scripted_reply_objects(fake_ollama):
    fake_ollama.queue(Reply(content=GOOD))
    assert ask(fake_ollama.vlm()).value.confidence == 0.8


HOSTS = {  # OLLAMA_HOST as written -> the URL the `ollama` client reads it as
    "": "http://127.0.0.1:11434",
    "1.2.3.4": "http://1.2.3.4:11434",
    ":56789": "http://127.0.0.1:56789",
    "example.com:56789/path/": "http://example.com:56789/path",
    "http://example.com": "http://example.com:80",
    "https://example.com": "https://example.com:443",
    "[0001:002:003:0004::1]:56789": "http://[0001:002:003:0004::1]:56789",
}


@pytest.mark.parametrize("host", list(HOSTS))
def test_hosts_are_read_as_the_ollama_client_reads_them(host):
    from agents.ollama_vlm import ollama_base_url

    assert ollama_base_url(host) == HOSTS[host]
