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


def test_a_thinking_model_on_an_openai_server_is_switched_to_think(image):
    """A qwen3.5 served with thinking off drops the format (vLLM's reasoning parser constrains
    only the answer after thinking): asked with vLLM's switch on, it answers in one go."""
    with FakeOpenAI(models=["Qwen/Qwen3.5-9B"], family="qwen3.5", thinks=False,
                    ignores_format="think_off") as server:
        answer = ask(server.vlm(), image)
        (sent,) = server.chat_requests
    assert sent["chat_template_kwargs"] == {"enable_thinking": True}
    assert answer.attempts == 1 and answer.family == "qwen3.5"


def test_without_the_switch_that_server_is_refused_with_the_family(image):
    with FakeOpenAI(models=["Qwen/Qwen3.5-9B"], family="qwen3.5", thinks=False,
                    ignores_format="think_off", strict=True) as server:
        vlm = server.vlm(invalid_answer_retries=1)
        with pytest.raises(VLMFormatIgnoredError, match=r"Qwen3\.5") as caught:
            ask(vlm, image)
        sent = server.chat_requests
    assert [("chat_template_kwargs" in r) for r in sent] == [True, False, False]
    assert not vlm.thinking_switch and caught.value.think is None


def test_a_server_refusing_the_switch_is_asked_without_it_from_then_on(image):
    with FakeOpenAI(models=["Qwen/Qwen3-VL-8B-Thinking"], family="qwen3-vl", thinks=True,
                    json_in_thinking=True, strict=True) as server:
        vlm = server.vlm()
        first, second = ask(vlm, image), ask(vlm, image)
        sent = server.chat_requests
    assert [("chat_template_kwargs" in r) for r in sent] == [True, False, False]
    assert first.from_thinking and second.from_thinking and first.attempts == 1


def test_a_model_that_does_not_think_gets_no_switch_on_an_openai_server(image):
    with FakeOpenAI(models=["Qwen/Qwen3-VL-8B-Instruct"], family="qwen3-vl") as server:
        ask(server.vlm(), image)
        (sent,) = server.chat_requests
    assert "chat_template_kwargs" not in sent


def test_an_ollama_model_without_a_thinking_switch_is_asked_without_it(image):
    """An Ollama that lists no capabilities: the family says qwen3.5 thinks, the server says the
    model does not support thinking; asked again without the switch, and not sent it again."""
    with FakeOllama.as_family("qwen3.5") as server:
        server.capabilities = []
        vlm = server.vlm(transport_retries=0)
        first, second = ask(vlm, image), ask(vlm, image)
        sent = server.chat_requests
    assert [r.get("think") for r in sent] == [True, None, None]
    assert first.attempts == 1 and second.attempts == 1 and not vlm.thinking_switch
