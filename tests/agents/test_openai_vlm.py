"""OpenAIVLM against a real HTTP server speaking the OpenAI chat-completions API."""

from __future__ import annotations

import base64
import io
import json
import socket
import time

import pytest
from PIL import Image

from agents import errors
from agents.classify import Classification
from agents.errors import AgentError, VLMRequestError
from agents.openai_vlm import OpenAIVLM, openai_base_url
from agents.vlm import OllamaVLM, VisionLanguageModel, make_vlm
from tests.agents.helpers import GOOD, ask
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import DEFAULT_MODEL, FakeOpenAI
from tests.fakes.scripted import Reply


@pytest.fixture
def fake_openai():
    with FakeOpenAI() as server:
        yield server


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sends_the_documented_request(fake_openai, image):
    fake_openai.queue(GOOD)
    vlm = fake_openai.vlm(temperature=0.0, seed=7)
    assert isinstance(vlm, VisionLanguageModel) and vlm.model_id == f"openai:{DEFAULT_MODEL}"
    answer = ask(vlm, image)
    assert answer.value.category.value == "removal" and answer.image_sizes == [(640, 480)]
    assert answer.family == "qwen2.5-vl"
    (sent,) = fake_openai.chat_requests
    assert sent["model"] == DEFAULT_MODEL and sent["temperature"] == 0.0 and sent["seed"] == 7
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "Classification", "schema": Classification.model_json_schema()}}
    system, user = sent["messages"]
    assert system == {"role": "system", "content": "SYS"}
    text, picture = user["content"]
    assert text == {"type": "text", "text": "USER"}
    url = picture["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size == (640, 480)


def test_an_invalid_answer_is_re_asked(fake_openai):
    fake_openai.queue('{"category": "recolor"}', GOOD)
    answer = ask(fake_openai.vlm())
    assert answer.attempts == 2
    second = fake_openai.chat_requests[1]["messages"]
    assert second[2] == {"role": "assistant", "content": '{"category": "recolor"}'}
    assert "category" in second[3]["content"]


def test_a_server_refusing_json_schema_gets_json_object_then_remembers():
    with FakeOpenAI(json_schema=False) as server:
        vlm = server.vlm()
        ask(vlm)
        ask(vlm)
        kinds = [r.get("response_format", {}).get("type") for r in server.chat_requests]
    assert kinds == ["json_schema", "json_object", "json_object"]
    assert vlm.format_mode == "json_object"
    assert "JSON schema:" in server.chat_requests[1]["messages"][0]["content"]


def test_a_server_refusing_both_formats_gets_the_schema_in_the_prompt():
    with FakeOpenAI(json_schema=False, json_object=False) as server:
        answer = ask(server.vlm())
        last = server.chat_requests[-1]
    assert "response_format" not in last and answer.value.confidence == 0.9
    assert json.loads(last["messages"][0]["content"].split("JSON schema:\n", 1)[1]) == (
        Classification.model_json_schema())


def test_http_500_is_retried_then_succeeds(fake_openai):
    fake_openai.fail_next(500, "engine crashed")
    fake_openai.queue(GOOD)
    assert ask(fake_openai.vlm(transport_retries=1)).value.category.value == "removal"
    assert len(fake_openai.chat_requests) == 2


def test_unreachable_server_names_itself_and_its_address():
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    with pytest.raises(errors.VLMUnavailableError) as caught:
        ask(OpenAIVLM("m", url, transport_retries=1, retry_base_delay=0.0))
    error = caught.value
    assert error.server == "openai" and error.url == url and url in str(error)
    assert "OpenAI-compatible server" in str(error) and "ollama" not in str(error).lower()


def test_a_missing_model_lists_what_the_server_serves(fake_openai):
    with pytest.raises(errors.VLMModelNotFoundError) as caught:
        ask(fake_openai.vlm(model="qwen3-vl"))
    error = caught.value
    assert error.server == "openai" and error.available == [DEFAULT_MODEL]
    assert DEFAULT_MODEL in str(error) and "ollama pull" not in str(error)


def test_an_address_without_the_api_path_says_where_it_usually_is(fake_openai):
    with pytest.raises(VLMRequestError, match=r"usually ends in /v1") as caught:
        ask(fake_openai.vlm(base_url=f"{fake_openai.url}/api"))
    assert caught.value.status == 404


def test_a_model_listed_without_vision_is_refused_before_asking(image):
    with FakeOpenAI(vision=False) as server:
        with pytest.raises(errors.VLMNoVisionError) as caught:
            ask(server.vlm(), image)
        assert server.chat_requests == []
    assert caught.value.server == "openai" and "cannot take images" in str(caught.value)


def test_a_server_refusing_images_is_a_no_vision_error_not_a_retry(image):
    with FakeOpenAI(vision=False) as server:
        with pytest.raises(errors.VLMNoVisionError, match="mmproj"):
            ask(server.vlm(check_vision=False, transport_retries=2), image)
        assert len(server.chat_requests) == 1


def test_a_trickling_server_hits_the_total_deadline(fake_openai):
    fake_openai.send_next(Reply.trickling(0.3, GOOD))
    started = time.monotonic()
    with pytest.raises(errors.VLMTimeoutError, match=r"within 1 s") as caught:
        ask(fake_openai.vlm(timeout=1.0, transport_retries=0))
    assert time.monotonic() - started < 3.0
    assert caught.value.server == "openai"


BODIES = {  # what the server sent instead of a chat completion: the words that describe it
    json.dumps({"id": "chatcmpl-1", "object": "chat.completion"}): "without a message",
    json.dumps({"choices": [{"message": {"role": "assistant", "content": None}}]}):
        "without a message",
    json.dumps([1, 2, 3]): "wrong shape",
    "": "an empty body",
}


@pytest.mark.parametrize("body", list(BODIES))
def test_a_body_that_is_not_a_chat_completion_is_a_vlm_error(fake_openai, body):
    fake_openai.send_next(Reply.body(body))
    with pytest.raises(errors.VLMBadResponseError, match=BODIES[body]) as caught:
        ask(fake_openai.vlm(transport_retries=0))
    assert caught.value.server == "openai" and "/v1" in str(caught.value)


def test_check_reports_a_healthy_server():
    with FakeOpenAI(models=["Qwen/Qwen3-VL-8B-Instruct"], family="qwen3-vl",
                    vision=True) as server:
        status = server.vlm().check()
    assert status.ok and status.server == "openai" and status.url == f"{server.url}/v1"
    assert status.vision is True and status.family.family.name == "qwen3-vl"


def test_check_reports_a_missing_model_and_a_blind_one():
    with FakeOpenAI(models=["a", "b"]) as server:
        status = server.vlm(model="c").check()
    assert status.reachable and not status.model_present and "a, b" in status.fix
    with FakeOpenAI(vision=False) as server:
        status = server.vlm().check()
    assert status.model_present and status.vision is False and not status.ok


@pytest.mark.parametrize("sees", [True, False])
def test_check_shows_a_server_that_lists_no_vision_a_picture(sees):
    """vLLM and llama.cpp list no capabilities: the model is shown a tiny picture, and a
    server that refuses images (llama.cpp without its projector) is a blind model."""
    with FakeOpenAI(vision=sees, lists_vision=False) as server:
        status = server.vlm().check()
        (probe,) = server.chat_requests
    assert status.capabilities == [] and status.vision is sees and status.vision_probed
    assert status.ok is sees and probe["max_tokens"] == 1
    assert probe["messages"][0]["content"][1]["type"] == "image_url"


def test_check_leaves_vision_unknown_when_the_probe_itself_fails(fake_openai):
    fake_openai.fail_next(400, "max_tokens must be at least 16")
    status = fake_openai.vlm().check()
    assert status.vision is None and not status.vision_probed and status.ok


def test_check_reports_an_unreachable_server_and_a_proxy_page(fake_openai):
    status = OpenAIVLM("m", f"http://127.0.0.1:{_closed_port()}").check()
    assert not status.reachable and "/v1" in status.fix
    fake_openai.send_next(Reply.body("<html>login</html>"), path="/v1/models")
    status = fake_openai.vlm().check()
    assert not status.reachable and "HTML page" in status.error


@pytest.mark.parametrize(
    ("given", "root"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"),
        ("http://localhost:1234/v1/", "http://localhost:1234/v1"),
        ("http://h:8080/v1/chat/completions", "http://h:8080/v1"),
        ("https://example.com/openai/v1", "https://example.com/openai/v1"),
    ],
)
def test_addresses_are_read_as_people_write_them(given, root):
    assert openai_base_url(given) == root


@pytest.mark.parametrize("given", ["127.0.0.1:8000", "http://127.0.0.1:99999/v1", "ftp://h/v1"])
def test_an_address_that_is_not_a_url_is_a_request_error(given):
    with pytest.raises(VLMRequestError, match="not a valid URL"):
        ask(OpenAIVLM("m", given))
    assert not OpenAIVLM("m", given).check().ok


def test_make_vlm_picks_the_server_by_whether_a_url_is_given(monkeypatch):
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    openai_vlm = make_vlm("Qwen/Qwen3-VL-8B-Instruct", url="http://127.0.0.1:8000", timeout=9)
    assert isinstance(openai_vlm, OpenAIVLM) and openai_vlm.url == "http://127.0.0.1:8000/v1"
    assert openai_vlm.timeout == 9
    ollama_vlm = make_vlm(host="http://h:1", family="qwen3-vl")
    assert isinstance(ollama_vlm, OllamaVLM) and ollama_vlm.host == "http://h:1"
    assert ollama_vlm.model == "qwen3-vl:8b-instruct" and ollama_vlm.family_override == "qwen3-vl"
    with pytest.raises(ValueError, match="`model`"):
        make_vlm(url="http://127.0.0.1:8000/v1")
    with pytest.raises(ValueError, match="unknown model family"):
        make_vlm("m", url="http://127.0.0.1:8000/v1", family="nope")


# --- the same faults, the same errors, whichever server -----------------------------------------


def _scenario(server, fault: str) -> dict:
    """Script `fault` on `server`; the keyword arguments for its VLM."""
    if fault == "down":
        server.stop()
    elif fault == "missing model":
        return {"model": "no-such-model"}
    elif fault == "timeout":
        server.delay_next(1.5)
        return {"timeout": 0.5}
    elif fault == "5xx":
        server.fail_next(503, "busy", times=5)
    elif fault == "html":
        server.send_next(Reply.body("<html><body>502 Bad Gateway</body></html>"))
    elif fault == "cut":
        server.send_next(Reply.body('{"message": {"role": "assistant", "content": "{\\"ca',
                                    content_type="application/json"))
    elif fault == "huge":
        server.queue("x" * 20_000)
        return {"max_answer_bytes": 5_000}
    return {}


FAULTS = {
    "down": errors.VLMUnavailableError,
    "missing model": errors.VLMModelNotFoundError,
    "timeout": errors.VLMTimeoutError,
    "5xx": VLMRequestError,
    "html": errors.VLMBadResponseError,
    "cut": errors.VLMBadResponseError,
    "huge": errors.VLMBadResponseError,
}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("kind", ["ollama", "openai"])
def test_the_same_fault_is_the_same_error(kind, fault):
    server = (FakeOllama() if kind == "ollama" else FakeOpenAI()).start()
    try:
        options = {"transport_retries": 1, **_scenario(server, fault)}
        with pytest.raises(FAULTS[fault]) as caught:
            ask(server.vlm(**options))
    finally:
        server.stop()
    error = caught.value
    assert type(error) is FAULTS[fault] and isinstance(error, AgentError)
    assert getattr(error, "server", None) == kind
