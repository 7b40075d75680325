"""Step (iii): the prompt the inpainter wants, in its style (`tools.registry.PromptStyle`).

For fill models (`caption` style: BrushNet, FLUX.1 Fill, SD inpainting) it is what the edited
region shows afterwards; for instruction editors (`instruction` style: FLUX.1 Kontext,
Qwen-Image-Edit, FLUX.2 klein) it says what to change and that the rest stays. Removals get their
own prompt pair (`describe_removal`): the background that should be there instead (the caption,
or the "instead" of the instruction) and the removed object for the negative prompt.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, Field, field_validator, model_validator

from agents.base import VisionLanguageModel
from agents.errors import VLMInvalidAnswerError
from agents.phrases import looks_like_refusal
from agents.prompting import neutralise, request_block, system_prompt, user_prompt
from agents.rules import KEEP_THE_REST, MAX_INSTRUCTION_WORDS
from tools.registry import PromptStyle
from tools.types import EditCategory, EditPlan

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)
MAX_CAPTION_WORDS = 30
_Answer = TypeVar("_Answer", bound=BaseModel)


def _description(value: str, strip: str, empty: str) -> str:
    """A model's description, single-spaced, without the `strip` characters round it and cut to
    `MAX_CAPTION_WORDS`; empty text (`empty` says why) or a refusal fails, so the model re-asks."""
    value = " ".join(value.split()).strip(strip)
    if not value:
        raise ValueError(empty)
    if looks_like_refusal(value):
        raise ValueError("this is an apology or refusal; describe the picture content instead")
    return " ".join(value.split()[:MAX_CAPTION_WORDS])


_NO_ANSWER = {
    "caption": "no usable caption from the model (%s); using a rule caption",
    "removal": "no usable removal prompt from the model (%s); using the rules",
    "instruction": "no usable edit instruction from the model (%s); using the rules",
}


def _ask(vlm: VisionLanguageModel, image: Image.Image, instruction: str, prompt: str,
         schema: type[_Answer], **fields: str) -> _Answer | None:
    """The model's answer to the `prompt` templates about `instruction`, or None (logged: the
    rules stand in) when it gives no usable one."""
    try:
        return vlm.ask(
            system=system_prompt(prompt),
            user=user_prompt(prompt, **fields, request=request_block(instruction)),
            images=[image],
            schema=schema,
        ).value
    except VLMInvalidAnswerError as exc:
        logger.warning(_NO_ANSWER[prompt], exc.error)
        return None


class TargetCaption(BaseModel):
    """A short visual description; apologies and refusals are rejected so the model re-asks."""

    caption: str = Field(min_length=1, max_length=300)

    @field_validator("caption")
    @classmethod
    def _descriptive(cls, value: str) -> str:
        return _description(value, " \"'", "the caption is empty")


class EditInstruction(BaseModel):
    """An instruction editor's prompt; apologies and refusals are rejected so the model re-asks,
    and one that forgets to keep the rest is told to."""

    instruction: str = Field(min_length=1, max_length=400)

    @field_validator("instruction")
    @classmethod
    def _an_instruction(cls, value: str) -> str:
        value = " ".join(value.split()).strip(" \"'")
        if not value:
            raise ValueError("the instruction is empty")
        if looks_like_refusal(value):
            raise ValueError("this is an apology or refusal; write the edit instruction instead")
        value = " ".join(value.split()[:MAX_INSTRUCTION_WORDS]).rstrip(" .;,")
        if "unchanged" not in value.lower() and "as it is" not in value.lower():
            value = f"{value}; {KEEP_THE_REST}"
        return f"{value}."


def caption_target(
    vlm: VisionLanguageModel,
    image: Image.Image,
    instruction: str,
    category: EditCategory,
    object: str | None,  # the contract's name, as in EditPlan
    style: PromptStyle = "caption",
) -> str:
    """The inpainter's prompt for this edit in its `style`: the region described after the edit
    (`caption`), or the edit instruction (`instruction`); falls back to the rule planner's
    template of that style if the model won't."""
    category = EditCategory.parse(category) if isinstance(category, str) else category
    if style == "instruction":
        return _edit_instruction(vlm, image, instruction, category, object)
    answer = _ask(vlm, image, instruction, "caption", TargetCaption,
                  category=category.value, object=neutralise(object or "none", limit=80))
    return answer.caption if answer is not None else _rule_caption(instruction, category, object)


class RemovalPrompt(BaseModel):
    """A removal's prompts: the background that replaces the object, and the object itself
    (which joins the negative prompt)."""

    background: str = Field(min_length=1, max_length=300)
    removed: str = Field(min_length=1, max_length=120)

    @field_validator("background", "removed")
    @classmethod
    def _descriptive(cls, value: str) -> str:
        return _description(value, " \"'.", "this field is empty")

    @model_validator(mode="after")
    def _background_without_the_object(self) -> RemovalPrompt:
        head = self.removed.lower().split()[-1]
        if re.search(rf"\b{re.escape(head)}s?\b", self.background.lower()):
            raise ValueError(
                f"the background mentions the removed object ({head!r}); describe only what "
                "remains once it is gone"
            )
        return self


def describe_removal(
    vlm: VisionLanguageModel,
    image: Image.Image,
    instruction: str,
    object: str | None,  # the contract's name, as in EditPlan
) -> RemovalPrompt:
    """The background caption and the negative-prompt object for a removal.

    Falls back to the rule planner's (`background` / the plan's object) if the model won't.
    """
    answer = _ask(vlm, image, instruction, "removal", RemovalPrompt,
                  object=neutralise(object or "the object named in the request", limit=80))
    if answer is not None:
        return answer
    from agents.rules import negative_for_plan

    caption = _rule_caption(instruction, EditCategory.REMOVAL, object)
    plan = EditPlan(instruction=instruction, category=EditCategory.REMOVAL, object=object)
    return RemovalPrompt(background=caption, removed=negative_for_plan(plan) or "object")


def _edit_instruction(vlm: VisionLanguageModel, image: Image.Image, instruction: str,
                      category: EditCategory, object: str | None) -> str:
    """The VLM's instruction for an instruction editor, or the rule planner's template."""
    answer = _ask(vlm, image, instruction, "instruction", EditInstruction,
                  category=category.value, object=neutralise(object or "none", limit=80))
    if answer is not None:
        return answer.instruction
    return _rule_caption(instruction, category, object, style="instruction")


def _rule_caption(instruction: str, category: EditCategory, obj: str | None,
                  style: PromptStyle = "caption") -> str:
    """The rule planner's prompt of `style`; for an instruction the rules cannot read (the VLM
    planned it: another language, say), the prompt built from the VLM's category and object."""
    from agents.errors import InstructionNotUnderstoodError
    from agents.rules import caption_for_plan, parse_instruction

    try:
        parsed = parse_instruction(instruction)
    except InstructionNotUnderstoodError:
        parsed = None
    if parsed is None or parsed.category is not category:
        parsed = EditPlan(instruction=instruction, category=category, object=obj)
    return caption_for_plan(parsed, style)
