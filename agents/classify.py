"""Step (i) of BrushEdit's instructor: which of the five kinds of edit the instruction asks for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, field_validator

from agents.base import VisionLanguageModel
from agents.prompting import request_block, system_prompt, user_prompt
from tools.types import EditCategory

if TYPE_CHECKING:
    from PIL import Image


class Classification(BaseModel):
    """The model's view of an instruction's edit category."""

    category: EditCategory
    confidence: float = Field(ge=0.0, le=1.0)
    rationale: str = Field(default="", description="One short sentence.")

    @field_validator("category", mode="before")
    @classmethod
    def _aliases(cls, value: object) -> object:
        # "remove" (the reference code's word) and "Addition" are the same category.
        return EditCategory.parse(value) if isinstance(value, str) else value

    @field_validator("rationale")
    @classmethod
    def _short(cls, value: str) -> str:
        value = " ".join(value.split())
        return value if len(value) <= 240 else value[:239] + "…"


def classify_edit(vlm: VisionLanguageModel, image: Image.Image, instruction: str) -> Classification:
    """Ask the VLM for the edit category of `instruction` on `image`."""
    answer = vlm.ask(
        system=system_prompt("classify"),
        user=user_prompt("classify", request=request_block(instruction)),
        images=[image],
        schema=Classification,
    )
    return answer.value
