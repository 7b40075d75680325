"""LangChainVLM over langchain-core's fake chat models: no network."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from pydantic import Field

from agents.classify import Classification, classify_edit
from agents.errors import VLMInvalidAnswerError
from agents.vlm import LangChainVLM, VisionLanguageModel
from tools.types import EditCategory


class RecordingFake(GenericFakeChatModel):
    """Keeps the messages it was given (the fake models do not)."""

    seen: list[Any] = Field(default_factory=list)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(messages)
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


class ToolCallingFake(RecordingFake):
    """Pretends to support tools, so `with_structured_output` takes its structured path."""

    def bind_tools(self, tools, **kwargs):
        return self


def fake(*answers, cls=RecordingFake):
    return cls(messages=iter(answers), seen=[])


def test_fallback_path_parses_json_text_and_sends_images_as_data_urls(image):
    model = fake('Answer: {"category": "removal", "confidence": 0.9, "rationale": "r"}')
    vlm = LangChainVLM(model)
    assert isinstance(vlm, VisionLanguageModel)
    answer = vlm.ask(system="SYS", user="USER", images=[image], schema=Classification)
    assert answer.value.category is EditCategory.REMOVAL
    system, human = model.seen[0]
    assert system.content.startswith("SYS") and '"title":"Classification"' in system.content
    text, picture = human.content
    assert text == {"type": "text", "text": "USER"}
    assert picture["image_url"]["url"].startswith("data:image/png;base64,iVBOR")


def test_fallback_re_asks_after_an_invalid_answer():
    model = fake('{"category": "paint", "confidence": 0.5}',
                 '{"category": "global", "confidence": 0.5, "rationale": "style"}')
    answer = LangChainVLM(model).ask(system="S", user="U", schema=Classification)
    assert answer.value.category is EditCategory.GLOBAL and answer.attempts == 2
    retry = model.seen[1]
    assert retry[2].content == '{"category": "paint", "confidence": 0.5}'
    assert "category" in retry[3].content


def test_gives_up_after_the_retry_budget():
    model = fake("nope", "nope", "nope")
    with pytest.raises(VLMInvalidAnswerError, match="2 attempt"):
        LangChainVLM(model, invalid_answer_retries=1).ask(system="S", user="U", schema=Classification)


def test_structured_path_reads_tool_call_arguments():
    args = {"category": "background", "confidence": 0.7, "rationale": "backdrop"}
    call = AIMessage(content="", tool_calls=[{"name": "Classification", "args": args, "id": "1"}])
    model = fake(call, cls=ToolCallingFake)
    answer = LangChainVLM(model).ask(system="S", user="U", schema=Classification)
    assert answer.value.category is EditCategory.BACKGROUND
    assert json.loads(answer.raw) == args
    assert "JSON schema" not in model.seen[0][0].content  # the schema travels as a tool


def test_structured_path_falls_back_to_text_when_no_tool_was_called():
    text = AIMessage(content='```json\n{"category": "addition", "confidence": 1, "rationale": "a"}```')
    answer = LangChainVLM(fake(text, cls=ToolCallingFake)).ask(
        system="S", user="U", schema=Classification
    )
    assert answer.value.category is EditCategory.ADDITION


def test_agent_function_through_langchain(image):
    model = fake('{"category": "local", "confidence": 0.8, "rationale": "recolour"}')
    result = classify_edit(LangChainVLM(model), image, "make the car red")
    assert result.category is EditCategory.LOCAL
    assert "<user_request>\nmake the car red\n</user_request>" in model.seen[0][1].content[0]["text"]
