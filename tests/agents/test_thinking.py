"""Thinking models and models that ignore the answer format, on Ollama and OpenAI servers."""

from __future__ import annotations

import json

import pytest

from agents.classify import Classification
from agents.errors import VLMFormatIgnoredError, VLMInvalidAnswerError
from agents.parsing import answer_text
from tests.agents.helpers import GOOD, ask
from tests.fakes.ollama_server import FakeOllama, Reply
from tests.fakes.openai_server import FakeOpenAI


def test_json_only_in_the_thinking_text_is_used(image):
    with FakeOllama.as_family("qwen3-vl", json_in_thinking=True) as server:
        answer = ask(server.vlm(), image)
        (sent,) = server.chat_requests
    assert sent["think"] is True  # the model thinks: asked to, so `format` holds
    assert answer.value.rationale.startswith("the request reads as") and answer.from_thinking
    assert answer.family == "qwen3-vl" and answer.attempts == 1


def test_a_model_that_does_not_think_gets_no_think_switch(image):
    with FakeOllama.as_family("qwen3-vl", model="qwen3-vl:8b-instruct") as server:
        server.capabilities = ["completion", "vision", "tools"]  # an Instruct build
        answer = ask(server.vlm(), image)
        (sent,) = server.chat_requests
    assert "think" not in sent and not answer.from_thinking


def test_think_on_keeps_a_model_that_drops_the_format_with_thinking_off(image):
    """qwen3.5 ignores `format` when `think=false` (ollama #14645): it is asked with think on."""
    with FakeOllama.as_family("qwen3.5", ignores_format="think_off") as server:
        answer = ask(server.vlm(), image)
        (sent,) = server.chat_requests
    assert sent["think"] is True and answer.attempts == 1


def test_a_prose_answer_is_re_asked_with_the_schema(image):
    with FakeOllama.as_family("qwen3-vl") as server:
        server.queue("The user wants to remove something, I think.", GOOD)
        answer = ask(server.vlm(), image)
        _, second = server.chat_requests
    assert answer.attempts == 2
    reask = second["messages"][-1]["content"]
    assert "not a JSON object" in reask
    assert json.loads(reask.split("JSON schema:\n", 1)[1]) == Classification.model_json_schema()


def test_a_model_that_ignores_the_format_is_refused_with_its_family(image):
    with FakeOllama.as_family("qwen3-vl", ignores_format="always") as server:
        with pytest.raises(VLMFormatIgnoredError) as caught:
            ask(server.vlm(invalid_answer_retries=1), image)
        assert len(server.chat_requests) == 2  # asked, re-asked, refused
    refusal = caught.value
    assert isinstance(refusal, VLMInvalidAnswerError)
    assert refusal.family == "qwen3-vl" and refusal.family_label == "Qwen3-VL"
    assert refusal.think is True and refusal.attempts == 2 and refusal.schema == "Classification"
    assert "Qwen3-VL family" in str(refusal) and "ignored the requested JSON" in str(refusal)


def test_an_empty_answer_counts_as_ignoring_the_format(image):
    with FakeOllama.as_family("qwen2.5-vl") as server:
        server.queue("", "", "")
        with pytest.raises(VLMFormatIgnoredError, match=r"Qwen2\.5-VL family") as caught:
            ask(server.vlm(), image)
    assert caught.value.think is None and "empty" in caught.value.error


def test_json_in_the_reasoning_of_an_openai_server_is_used(image):
    with FakeOpenAI(models=["Qwen/Qwen3-VL-8B-Thinking"], family="qwen3-vl", thinks=True,
                    json_in_thinking=True) as server:
        answer = ask(server.vlm(), image)
    assert answer.from_thinking and answer.value.rationale.startswith("the request reads as")


def test_reasoning_under_its_newer_name_is_used_too(image):
    with FakeOpenAI(family="qwen3-vl", thinks=True, json_in_thinking=True,
                    reasoning_field="reasoning") as server:
        assert ask(server.vlm(), image).from_thinking


def test_an_inline_think_block_is_not_read_as_the_answer(image):
    with FakeOpenAI() as server:
        server.queue('<think>maybe {"category": "global"}?</think>' + json.dumps(GOOD))
        answer = ask(server.vlm(), image)
    assert answer.value.category.value == "removal" and not answer.from_thinking


def test_an_openai_model_ignoring_the_format_is_refused_the_same_way(image):
    with (FakeOpenAI(family="qwen2.5-vl", ignores_format="always") as server,
          pytest.raises(VLMFormatIgnoredError, match=r"Qwen2\.5-VL family")):
        ask(server.vlm(invalid_answer_retries=1), image)


@pytest.mark.parametrize(
    ("content", "thinking", "expected"),
    [
        ('{"a": 1}', "ignored", ('{"a": 1}', False)),
        ("", '{"a": 1}', ('{"a": 1}', True)),
        (None, '{"a": 1}', ('{"a": 1}', True)),
        ('<think>plan {"b": 2}</think>\n{"a": 1}', None, ('\n{"a": 1}', False)),
        ('<think>{"b": 2}</think>', None, ('{"b": 2}', True)),
        ('reasoning here</think>{"a": 1}', None, ('{"a": 1}', False)),
        ("   ", None, ("   ", False)),
    ],
)
def test_answer_text(content, thinking, expected):
    assert answer_text(content, thinking) == expected


def test_scripted_replies_can_think():
    assert Reply.in_thinking(GOOD) == Reply(content="", thinking=GOOD)


def test_the_recording_keeps_the_family_and_where_the_json_came_from(image):
    from agents.recording import RecordingVLM

    with FakeOllama.as_family("qwen3-vl", json_in_thinking=True) as server:
        vlm = RecordingVLM(server.vlm())
        ask(vlm, image)
    (call,) = vlm.drain()
    assert call.family == "qwen3-vl" and call.from_thinking
    assert vlm.family.family.name == "qwen3-vl"  # the wrapped model's family stays visible
