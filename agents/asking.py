"""Asking a chat model in messages, and asking again after an answer that cannot be used.

Shared by every concrete model (Ollama, OpenAI-compatible servers, LangChain): images are
downscaled once, an invalid answer is re-asked with the reason, and a model whose every answer
came without JSON is refused as one that ignores the answer format, with its family named.
"""

from __future__ import annotations

import json
import logging
from abc import abstractmethod
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, NamedTuple

from agents.base import AskByQuestion, T, VLMAnswer, VLMQuestion
from agents.errors import VLMFormatIgnoredError, VLMInvalidAnswerError
from agents.imaging import downscale
from agents.parsing import AnswerError, NoJSONError, parse_answer, schema_name

if TYPE_CHECKING:
    from PIL import Image

    from agents.families import FamilyMatch

logger = logging.getLogger(__name__)

REASK = (
    "Your previous answer could not be used: {error}. Answer again with only one JSON object "
    "that follows the requested schema exactly."
)
REASK_NO_JSON = (
    "Your previous answer could not be used: {error}. Answer again with only one JSON object, "
    "no other text, that validates against this JSON schema:\n{schema}"
)

SCHEMA_HINT = "\n\nAnswer with only one JSON object that validates against this JSON schema:\n{schema}"


def with_schema_hint(system: str, schema: type[Any]) -> str:
    """The system prompt plus the schema, for a server that cannot be given the schema itself."""
    compact = json.dumps(schema.model_json_schema(), separators=(",", ":"))
    return system + SCHEMA_HINT.format(schema=compact)


class Said(NamedTuple, Generic[T]):
    """One answer that validated: the value, the text it came from, and whether that text was the
    model's thinking rather than its answer proper."""

    value: T
    raw: str
    from_thinking: bool = False


def parse_keeping_raw(raw: str, schema: type[T]) -> T:
    """`parse_answer`, but an `AnswerError` carries the text it rejected as `.raw`."""
    try:
        return parse_answer(raw, schema)
    except AnswerError as exc:
        exc.raw = raw  # type: ignore[attr-defined]
        raise


def check_options(*, timeout: float, transport_retries: int, invalid_answer_retries: int,
                  max_answer_bytes: int, max_image_side: int, family: str | None) -> None:
    """`ValueError` naming the first out-of-range option of a server-backed model."""
    if transport_retries < 0 or invalid_answer_retries < 0:
        raise ValueError("`transport_retries` and `invalid_answer_retries` must be >= 0")
    if not timeout or timeout <= 0:
        raise ValueError(f"`timeout` must be a positive number of seconds, got {timeout!r}")
    if max_answer_bytes < 1:
        raise ValueError(f"`max_answer_bytes` must be positive, got {max_answer_bytes}")
    if max_image_side < 28:
        raise ValueError(f"`max_image_side` must be at least 28, got {max_image_side}")
    if family is not None:
        from agents.families import family_named

        family_named(family)  # an unknown name is refused here, not at the first call


def reask_text(error: AnswerError, schema: type[Any]) -> str:
    """The follow-up after an unusable answer; the schema itself when no JSON came at all."""
    if isinstance(error, NoJSONError):
        compact = json.dumps(schema.model_json_schema(), separators=(",", ":"))
        return REASK_NO_JSON.format(error=error, schema=compact)
    return REASK.format(error=error)


class ReAskingVLM(AskByQuestion):
    """A chat model asked in messages: images downscaled to `max_image_side`, and an invalid
    answer re-asked (with the reason) up to `invalid_answer_retries` times.

    A model says how a conversation starts (`_start`: the messages, and `reply(messages)` giving
    a `Said` or raising an `AnswerError` that carries the rejected text as `.raw`) and goes on
    after an invalid answer (`_follow_up`); `answer` is the same for all of them.
    """

    max_image_side: int
    invalid_answer_retries: int
    _log: logging.Logger = logger

    @property
    def _log_name(self) -> str:
        """How log lines and `VLMInvalidAnswerError` name the model."""
        return self.model_id

    @cached_property
    def family(self) -> FamilyMatch:
        """The model's family, from its name (servers that say more override this)."""
        from agents.families import resolve_family

        return resolve_family(self._log_name)

    def _think_for(self, match: FamilyMatch) -> bool | None:
        """The thinking switch sent to a model of this family (None: left to the server)."""
        return None

    def answer(self, question: VLMQuestion[T]) -> VLMAnswer[T]:
        """Ask; after each invalid answer re-ask with the reason, up to the retry bound."""
        system, user, images, schema = question
        prepared = [downscale(image, self.max_image_side) for image in images]
        match = self.family
        messages, reply = self._start(system, user, prepared, schema, match)
        attempts = self.invalid_answer_retries + 1
        error, raw, without_json = "", "", 0
        for attempt in range(1, attempts + 1):
            try:
                said = reply(messages)
            except AnswerError as exc:
                error = str(exc)
                raw = getattr(exc, "raw", raw)
                without_json += isinstance(exc, NoJSONError)
                self._log.info("%s: invalid %s answer (%s)", self._log_name, schema.__name__,
                               error)
                messages = [*messages, *self._follow_up(raw, reask_text(exc, schema))]
                continue
            return VLMAnswer[schema](  # type: ignore[valid-type]
                value=said.value,
                raw=said.raw,
                model=self.model_id,
                attempts=attempt,
                image_sizes=[image.size for image in prepared],
                family=match.family.name,
                from_thinking=said.from_thinking,
            )
        family = match.family
        if without_json == attempts:
            raise VLMFormatIgnoredError(
                self._log_name, schema_name(schema), attempts, error, raw, family=family.name,
                family_label=family.label, think=self._think_for(match),
            )
        raise VLMInvalidAnswerError(self._log_name, schema_name(schema), attempts, error, raw,
                                    family=family.name)

    @abstractmethod
    def _start(
        self, system: str, user: str, images: list[Image.Image], schema: type[T],
        match: FamilyMatch,
    ) -> tuple[list[Any], Callable[[list[Any]], Said[T]]]:
        """The first messages, and `reply(messages)`: a `Said`, or an `AnswerError`; `match` is
        the model's family, found once per question."""

    @abstractmethod
    def _follow_up(self, raw: str, reask: str) -> list[Any]:
        """The messages appended after the invalid answer `raw`, ending with `reask`."""
