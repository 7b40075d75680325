"""`VisionLanguageModel` over any langchain-core chat model (OpenAI, Anthropic, Ollama, fakes...).

langchain-core is imported only when a `LangChainVLM` is used, keeping `import agents` light.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agents.asking import ReAskingVLM, Said, parse_keeping_raw, with_schema_hint
from agents.base import T
from agents.errors import VLMTimeoutError
from agents.imaging import data_url
from agents.parsing import answer_text

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from PIL import Image

    from agents.families import FamilyMatch

logger = logging.getLogger(__name__)



class LangChainVLM(ReAskingVLM):
    """Structured questions to a LangChain chat model.

    Uses `with_structured_output(schema, include_raw=True)` where the model supports it; otherwise
    asks for JSON in the prompt and parses the text. Either way the answer is validated and, when
    invalid, re-asked up to `invalid_answer_retries` times.
    """

    supports_images = True
    supports_schema = True
    _log = logger

    def __init__(
        self,
        chat_model: BaseChatModel,
        *,
        max_image_side: int = 1024,
        invalid_answer_retries: int = 2,
        structured: bool | None = None,
        model_id: str | None = None,
    ) -> None:
        if invalid_answer_retries < 0:
            raise ValueError("`invalid_answer_retries` must be >= 0")
        self.chat_model = chat_model
        self.max_image_side = max_image_side
        self.invalid_answer_retries = invalid_answer_retries
        self.structured = structured
        self.model_id = model_id or _model_name(chat_model)

    def __repr__(self) -> str:
        return f"LangChainVLM({self.model_id!r})"

    def _start(
        self, system: str, user: str, images: list[Image.Image], schema: type[T],
        match: FamilyMatch,
    ) -> tuple[list[Any], Callable[[list[Any]], Said[T]]]:
        """Structured output where the model has it, else the schema in the system prompt."""
        from langchain_core.messages import HumanMessage, SystemMessage

        runnable = self._structured_runnable(schema)
        if runnable is None:
            system = with_schema_hint(system, schema)
        content: list[dict[str, Any]] = [{"type": "text", "text": user}]
        content += [{"type": "image_url", "image_url": {"url": data_url(i)}} for i in images]
        messages: list[Any] = [SystemMessage(content=system), HumanMessage(content=content)]
        return messages, lambda history: self._invoke(runnable, history, schema)

    def _follow_up(self, raw: str, reask: str) -> list[Any]:
        from langchain_core.messages import AIMessage, HumanMessage

        return [AIMessage(content=raw), HumanMessage(content=reask)]

    def _structured_runnable(self, schema: type[T]) -> Any | None:
        if self.structured is False:
            return None
        try:
            return self.chat_model.with_structured_output(schema, include_raw=True)
        except NotImplementedError:
            if self.structured:
                raise
            return None

    def _invoke(self, runnable: Any | None, messages: list[Any], schema: type[T]) -> Said[T]:
        try:
            if runnable is None:
                message = self.chat_model.invoke(messages)
                raw, from_thinking = answer_text(_text_of(message), _reasoning_of(message))
                return Said(parse_keeping_raw(raw, schema), raw, from_thinking)
            result = runnable.invoke(messages)
        except TimeoutError:
            raise VLMTimeoutError(self.model_id, None) from None
        raw = _raw_text(result.get("raw"))
        parsed = result.get("parsed")
        if isinstance(parsed, schema):
            return Said(parsed, raw)
        if isinstance(parsed, dict):
            raw = raw or json.dumps(parsed)
        raw, from_thinking = answer_text(raw, _reasoning_of(result.get("raw")))
        return Said(parse_keeping_raw(raw, schema), raw, from_thinking)


def _reasoning_of(message: Any) -> str | None:
    """A thinking model's reasoning as LangChain integrations keep it (`reasoning_content`)."""
    extra = getattr(message, "additional_kwargs", None) or {}
    reasoning = extra.get("reasoning_content") or extra.get("reasoning")
    return reasoning if isinstance(reasoning, str) else None


def _raw_text(message: Any) -> str:
    """The model's answer as text: tool-call arguments when it used a tool, else its content."""
    tool_calls = getattr(message, "tool_calls", None) or []
    if tool_calls:
        return json.dumps(tool_calls[0].get("args", {}))
    return _text_of(message)


def _text_of(message: Any) -> str:
    content = getattr(message, "content", message)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p if isinstance(p, str) else p.get("text", "") for p in content]
        return "".join(str(p) for p in parts)
    return str(content)


def _model_name(chat_model: Any) -> str:
    for attribute in ("model_name", "model", "model_id"):
        value = getattr(chat_model, attribute, None)
        if isinstance(value, str) and value:
            return f"langchain:{value}"
    return f"langchain:{getattr(chat_model, '_llm_type', type(chat_model).__name__)}"
