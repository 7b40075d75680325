"""OllamaVLM against a model server that misbehaves: trickling, not JSON, huge, blind models."""

from __future__ import annotations

import json
import time

import pytest

from agents.errors import (
    AgentError,
    VLMBadResponseError,
    VLMNoVisionError,
    VLMTimeoutError,
)
from tests.agents.helpers import GOOD, ask
from tests.fakes.ollama_server import FakeOllama, Reply


def test_a_trickling_server_hits_the_total_deadline(fake_ollama):
    # one byte every 0.3 s: every read returns well within the timeout, the whole never ends
    fake_ollama.send_next(Reply.trickling(0.3, GOOD))
    vlm = fake_ollama.vlm(timeout=1.5, transport_retries=0)
    started = time.monotonic()
    with pytest.raises(VLMTimeoutError, match=r"did not answer within 1\.5 s"):
        ask(vlm)
    assert time.monotonic() - started < 4.0


def test_a_silent_server_after_the_headers_is_cut_at_the_deadline(fake_ollama):
    fake_ollama.send_next(Reply.trickling(30.0, GOOD))  # headers, then nothing for 30 s
    vlm = fake_ollama.vlm(timeout=1.0, transport_retries=0)
    started = time.monotonic()
    with pytest.raises(VLMTimeoutError):
        ask(vlm)
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "an HTML page"),
        ('{"model": "qwen2.5vl:7b", "message": {"role": "assis', "cut-off or invalid JSON"),
        (json.dumps({"model": "qwen2.5vl:7b", "done": True}), "without a `message`"),
        (json.dumps({"message": {"role": "assistant", "content": None}}), "without a `message`"),
        (json.dumps([1, 2, 3]), "wrong shape"),
        ("", "an empty body"),
    ],
)
def test_a_body_that_is_not_ollamas_is_a_vlm_error(fake_ollama, body, words):
    fake_ollama.send_next(Reply.body(body))
    with pytest.raises(VLMBadResponseError, match=words) as caught:
        ask(fake_ollama.vlm(transport_retries=0))
    assert isinstance(caught.value, AgentError)  # the family `auto` falls back on
    assert "OLLAMA_HOST" in str(caught.value)


def test_an_oversized_answer_is_cut_off(fake_ollama):
    fake_ollama.queue("x" * 50_000)
    vlm = fake_ollama.vlm(max_answer_bytes=10_000, transport_retries=0)
    with pytest.raises(VLMBadResponseError, match="over 10,000 bytes"):
        ask(vlm)


def test_the_default_answer_cap_is_about_a_megabyte():
    from agents.ollama_vlm import DEFAULT_MAX_ANSWER_BYTES, OllamaVLM

    assert OllamaVLM().max_answer_bytes == DEFAULT_MAX_ANSWER_BYTES <= 2_000_000


def test_a_model_without_vision_is_refused_with_the_fix(image):
    with FakeOllama(models=["llama3.2:3b"], capabilities=["completion", "tools"]) as server:
        vlm = server.vlm()
        with pytest.raises(VLMNoVisionError, match=r"no vision capability.*ollama pull"):
            ask(vlm, image)
        with pytest.raises(VLMNoVisionError):  # remembered: no second /api/show, no chat
            ask(vlm, image)
        assert server.chat_requests == []
        assert sum(r.path == "/api/show" for r in server.requests) == 1

        status = vlm.check()
        assert not status.ok and status.vision is False
        assert "ollama pull qwen3-vl:8b-instruct" in status.fix  # the default model


def test_a_vision_model_is_checked_once_and_then_used(fake_ollama, image):
    fake_ollama.queue(GOOD, GOOD)
    vlm = fake_ollama.vlm()
    ask(vlm, image)
    ask(vlm, image)
    assert sum(r.path == "/api/show" for r in fake_ollama.requests) == 1
    assert len(fake_ollama.chat_requests) == 2


def test_check_survives_a_proxy_page_and_a_trickle(fake_ollama):
    fake_ollama.send_next(Reply.body("<html>login</html>"), path="/api/tags")
    status = fake_ollama.vlm().check()
    assert not status.reachable and "HTML page" in status.error and status.fix

    fake_ollama.send_next(Reply.trickling(0.5), path="/api/tags")
    started = time.monotonic()
    status = fake_ollama.vlm(timeout=1.0).check()
    assert not status.ok and "did not answer" in status.error
    assert time.monotonic() - started < 3.0


def test_doctor_refuses_a_blind_model_with_the_pull_fix():
    from interfaces.doctor import check_ollama

    with FakeOllama(models=["llama3.2:3b"], capabilities=["completion"]) as server:
        server_check, model_check, family_check = check_ollama(server.url, "llama3.2:3b")
    assert server_check.ok and not model_check.ok and not family_check.ok
    assert "no vision capability" in model_check.detail
    assert model_check.fix.startswith("ollama pull ")
