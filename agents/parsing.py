"""Turning a model's text into a schema instance, tolerating the usual wrappers around JSON."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ValidationError

from agents.base import T

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


class AnswerError(ValueError):
    """The text holds no JSON object, or one that does not validate; the message says why."""


class NoJSONError(AnswerError):
    """The text is empty or prose: no JSON at all (a model that ignores the answer format)."""


_THINK_BLOCK = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_THINK_END = "</think>"


def answer_text(content: str | None, thinking: str | None = None) -> tuple[str, bool]:
    """The text to read an answer from, and whether it came from the model's thinking.

    The answer proper comes first: `content` without the `<think>...</think>` block a server may
    leave in it (or everything up to a lone `</think>`, when the template opened the block).
    When that is empty, the JSON is looked for in the thinking text (Ollama's `thinking`, an
    OpenAI server's `reasoning_content`, or the inline block): qwen3-vl puts its structured
    answer there (ollama #12831).
    """
    content = content or ""
    lowered = content.lower()
    if "<think>" not in lowered and _THINK_END not in lowered:
        inline, answer = "", content
    elif "<think>" not in lowered:
        end = lowered.rindex(_THINK_END)
        inline, answer = content[:end], content[end + len(_THINK_END):]
    else:
        inline = " ".join(m.group(1) for m in _THINK_BLOCK.finditer(content))
        answer = _THINK_BLOCK.sub("", content)
    if answer.strip():
        return answer, False
    thought = "\n".join(t for t in (thinking or "", inline) if t and t.strip()).strip()
    return (thought, True) if thought else (answer, False)


def extract_json(text: str) -> str:
    """Return the first balanced JSON object in `text` (inside ```json fences or prose)."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        found = _first_object(candidate)
        if found is not None:
            return found
    raise AnswerError("the answer contains no JSON object")


def _first_object(text: str) -> str | None:
    start = text.find("{")
    while start != -1:
        end = _balanced_end(text, start)
        if end is not None:
            snippet = text[start : end + 1]
            try:
                json.loads(snippet)
                return snippet
            except ValueError:
                pass
        start = text.find("{", start + 1)
    return None


def _balanced_end(text: str, start: int) -> int | None:
    depth, in_string, escaped = 0, False, False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def parse_answer(text: str, schema: type[T]) -> T:
    """Validate `text` against `schema`; raise `AnswerError` with a short, model-readable reason."""
    try:
        return schema.model_validate_json(text)
    except ValidationError as exc:
        direct_error: ValidationError | None = exc
    if not text.strip():
        raise NoJSONError("the answer is empty")
    try:
        snippet = extract_json(text)
    except AnswerError:
        if direct_error is not None and _is_json_error(direct_error):
            raise NoJSONError("the answer is not a JSON object") from None
        raise AnswerError(describe_validation_error(direct_error)) from None
    try:
        return schema.model_validate_json(snippet)
    except ValidationError as exc:
        raise AnswerError(describe_validation_error(exc)) from None


def _is_json_error(error: ValidationError) -> bool:
    return any(item.get("type") == "json_invalid" for item in error.errors())


def describe_validation_error(error: ValidationError | None, limit: int = 3) -> str:
    """One line per problem, as `field: message`, at most `limit` of them."""
    if error is None:
        return "the answer did not validate"
    parts = []
    for item in error.errors()[:limit]:
        where = ".".join(str(p) for p in item.get("loc", ())) or "answer"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    more = error.error_count() - limit
    if more > 0:
        parts.append(f"(+{more} more)")
    return "; ".join(parts)


def schema_name(schema: type[BaseModel]) -> str:
    return schema.model_json_schema().get("title", schema.__name__)
