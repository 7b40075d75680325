"""The verifier: does the result carry out the instruction, and if not, which step to redo."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, model_validator

from agents.base import VisionLanguageModel
from agents.imaging import mask_image
from agents.prompting import quote, request_block, system_prompt, user_prompt
from tools.types import EditPlan

if TYPE_CHECKING:
    from PIL import Image

    from tools.mask_ops import Mask

RetryStage = Literal["mask", "caption", "inpaint"]


class Verdict(BaseModel):
    """Accept, or retry from a named stage (required when retrying)."""

    decision: Literal["accept", "retry"]
    stage: RetryStage | None = None
    reason: str = Field(default="", max_length=500)
    suggestion: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _stage_when_retrying(self) -> Verdict:
        if self.decision == "retry" and self.stage is None:
            raise ValueError("a retry must name the stage to redo: 'mask', 'caption' or 'inpaint'")
        if self.decision == "accept":
            self.stage = None
        return self


def verify_edit(
    vlm: VisionLanguageModel,
    source: Image.Image,
    result: Image.Image,
    mask: Mask,
    instruction: str,
    plan: EditPlan,
) -> Verdict:
    """Show the VLM source, result and mask; get a `Verdict`."""
    plan_data = plan.model_dump_json(include={"category", "object", "target_caption"})
    answer = vlm.ask(
        system=system_prompt("verify"),
        user=user_prompt("verify", plan=quote("plan", plan_data), request=request_block(instruction)),
        images=[source, result, mask_image(mask)],
        schema=Verdict,
    )
    return answer.value
