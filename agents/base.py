"""The one contract every vision-language model honours: a structured, schema-checked answer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, NamedTuple, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from PIL import Image

T = TypeVar("T", bound=BaseModel)


class VLMAnswer(BaseModel, Generic[T]):
    """A validated answer plus what is needed to trace and interpret it."""

    value: T
    raw: str = Field(description="The model's text exactly as received (of the accepted attempt).")
    model: str
    attempts: int = Field(default=1, ge=1, description="Requests made, re-asks included.")
    image_sizes: list[tuple[int, int]] = Field(
        default_factory=list, description="(W, H) of each image as the model received it."
    )
    family: str | None = Field(
        default=None, description="The model family's name (`agents.families`), when known."
    )
    from_thinking: bool = Field(
        default=False,
        description="The JSON came from the model's thinking text, its answer proper being empty.",
    )


@runtime_checkable
class VisionLanguageModel(Protocol):
    """Ask a question about images and get an instance of `schema` back, or an `AgentError`.

    Any object with a `model_id` and this `ask` is one. The concrete models subclass
    `AskByQuestion` and inherit this `ask`, which hands one `VLMQuestion` to their `answer`.
    """

    model_id: str

    def ask(
        self,
        *,
        system: str,
        user: str,
        images: Sequence[Image.Image] = (),
        schema: type[T],
    ) -> VLMAnswer[T]:
        return self.answer(VLMQuestion(system, user, images, schema))  # type: ignore[attr-defined]


class VLMQuestion(NamedTuple, Generic[T]):
    """One `ask`, as a value: the system prompt, the user text, the images, and the schema the answer must fit."""

    system: str
    user: str
    images: Sequence[Image.Image]
    schema: type[T]


class AskByQuestion(VisionLanguageModel, ABC):
    """Base of the concrete models: `ask` (the protocol's keyword call) hands one `VLMQuestion` to `answer`."""

    @abstractmethod
    def answer(self, question: VLMQuestion[T]) -> VLMAnswer[T]:
        """Answer `question` with a validated instance of its schema, or raise an `AgentError`."""
