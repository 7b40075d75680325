"""Step (ii): the object an edit is about, as a short noun phrase a detector can ground."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, field_validator

from agents.base import VisionLanguageModel
from agents.phrases import normalise_noun_phrase
from agents.prompting import request_block, system_prompt, user_prompt
from tools.types import EditCategory

if TYPE_CHECKING:
    from PIL import Image

NOTHING_TO_IDENTIFY = (EditCategory.ADDITION, EditCategory.GLOBAL)


class IdentifiedObject(BaseModel):
    """At most five words, one noun phrase, no article ("white cat")."""

    object: str = Field(min_length=1, max_length=80)

    @field_validator("object")
    @classmethod
    def _noun_phrase(cls, value: str) -> str:
        phrase = normalise_noun_phrase(value)
        if phrase is None:
            raise ValueError("name the object with a noun phrase such as 'white cat'")
        return phrase


def identify_object(
    vlm: VisionLanguageModel, image: Image.Image, instruction: str, category: EditCategory
) -> str | None:
    """The object to segment; None for additions and global edits (nothing to segment).

    For background edits it is the foreground subject to keep.
    """
    category = EditCategory.parse(category) if isinstance(category, str) else category
    if category in NOTHING_TO_IDENTIFY:
        return None
    answer = vlm.ask(
        system=system_prompt("identify"),
        user=user_prompt("identify", category=category.value, request=request_block(instruction)),
        images=[image],
        schema=IdentifiedObject,
    )
    return answer.value.object



