"""Step (iii): what the edited region shows afterwards; used directly as the diffusion prompt."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, field_validator

from agents.base import VisionLanguageModel
from agents.errors import VLMInvalidAnswerError
from agents.phrases import looks_like_refusal
from agents.prompting import neutralise, request_block, system_prompt, user_prompt
from tools.types import EditCategory, EditPlan

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)
MAX_CAPTION_WORDS = 30


class TargetCaption(BaseModel):
    """A short visual description; apologies and refusals are rejected so the model re-asks."""

    caption: str = Field(min_length=1, max_length=300)

    @field_validator("caption")
    @classmethod
    def _descriptive(cls, value: str) -> str:
        value = " ".join(value.split()).strip(" \"'")
        if not value:
            raise ValueError("the caption is empty")
        if looks_like_refusal(value):
            raise ValueError("this is an apology or refusal; describe the picture content instead")
        return " ".join(value.split()[:MAX_CAPTION_WORDS])


def caption_target(
    vlm: VisionLanguageModel,
    image: Image.Image,
    instruction: str,
    category: EditCategory,
    object: str | None,  # the contract's name, as in EditPlan
) -> str:
    """Describe the region after the edit; falls back to a rule caption if the model won't."""
    category = EditCategory.parse(category) if isinstance(category, str) else category
    try:
        answer = vlm.ask(
            system=system_prompt("caption"),
            user=user_prompt(
                "caption",
                category=category.value,
                object=neutralise(object or "none", limit=80),
                request=request_block(instruction),
            ),
            images=[image],
            schema=TargetCaption,
        )
        return answer.value.caption
    except VLMInvalidAnswerError as exc:
        logger.warning("no usable caption from the model (%s); using a rule caption", exc.error)
    return _rule_caption(instruction, category, object)


def _rule_caption(instruction: str, category: EditCategory, obj: str | None) -> str:
    from agents.rules import caption_for_plan, parse_instruction

    parsed = parse_instruction(instruction)
    if parsed.category is not category:
        parsed = EditPlan(instruction=instruction, category=category, object=obj)
    return caption_for_plan(parsed)
