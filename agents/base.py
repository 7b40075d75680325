"""The one contract every vision-language model honours: a structured, schema-checked answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, runtime_checkable

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


@runtime_checkable
class VisionLanguageModel(Protocol):
    """Ask a question about images and get an instance of `schema` back, or an `AgentError`."""

    model_id: str

    def ask(
        self,
        *,
        system: str,
        user: str,
        images: Sequence[Image.Image] = (),
        schema: type[T],
    ) -> VLMAnswer[T]: ...
