"""The server-sent events of an edit, as types: what each `event:` line's `data` holds.

Documentation for clients and code generators (`EditEvent` is in the OpenAPI document, the
`itemSchema` of every `text/event-stream` answer); the job emits plain dicts, and fields beyond
these are allowed, so a newer server never breaks an older client.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from interfaces.common import ErrorDetail
from tools.types import EditResult


def _d(text: str, default: Any = ...) -> Any:
    return Field(default, description=text)


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow")


TURN = "The session turn, from 1."
ATTEMPT = "The verifier attempt, from 1."


class StartedEvent(_Event):
    """The edit's job started (the first event of every edit)."""

    type: Literal["started"] = _d("`started`.")
    edit_id: str = _d("The edit's id.")


class TurnEvent(_Event):
    """The session turn the edit runs."""

    type: Literal["turn"] = _d("`turn`.")
    status: str = _d("`start`.")
    turn: int = _d(TURN)
    session_id: str = _d("The session.")
    instruction: str = _d("The instruction, as checked.")
    source: str = _d("Hash of the image the turn edits.")


class NodeEvent(_Event):
    """A graph node started or ended (classify, identify, mask, caption, inpaint, verify...)."""

    type: Literal["node"] = _d("`node`.")
    node: str = _d("The node's name.")
    status: Literal["start", "end", "error", "cancelled"] = _d("Where the node is.")
    turn: int | None = _d(TURN, None)
    attempt: int = _d(ATTEMPT, 1)
    duration_ms: float | None = _d("How long it ran (on `end`, `error`, `cancelled`).", None)
    summary: dict[str, Any] | None = _d("What the node decided, in short.", None)
    error: str | None = _d("Why it failed or stopped.", None)


class ProgressEvent(_Event):
    """One diffusion step done: `step` of `total`."""

    type: Literal["progress"] = _d("`progress`.")
    node: str = _d("The node stepping (`inpaint`).", "inpaint")
    step: int = _d("Steps done.")
    total: int = _d("Steps in all.")
    attempt: int = _d(ATTEMPT, 1)
    turn: int | None = _d(TURN, None)


class LoadEvent(_Event):
    """A model started or finished loading."""

    type: Literal["load"] = _d("`load`.")
    component: str = _d("The model (inpainter or segmenter).")
    status: Literal["start", "end"] = _d("Started or finished.")


class RetryEvent(_Event):
    """The verifier rejected an attempt and sends the edit back to `stage`."""

    type: Literal["retry"] = _d("`retry`.")
    stage: str = _d("The stage blamed: mask, caption or inpaint.")
    reason: str = _d("The verifier's reason.")
    attempt: int = _d("The attempt rejected.")
    changed: dict[str, Any] = Field(default_factory=dict,
                                    description="What the next attempt changes.")


class FallbackEvent(_Event):
    """The VLM was not usable at `step`: the rule parser plans the rest of the turn."""

    type: Literal["fallback"] = _d("`fallback`.")
    step: str = _d("The step that fell back.")
    reason: str = _d("Why the VLM was not used.")


class ResultEvent(_Event):
    """The turn finished: its chosen image (fetch it from `/artifacts/{image}`)."""

    type: Literal["result"] = _d("`result`.")
    turn: int = _d(TURN)
    image: str = _d("Hash of the chosen result.")
    accepted: bool = _d("Whether the verifier accepted it.")
    attempts: int = _d("Attempts used.")
    planner: str = _d("Who planned: vlm or rules.")
    reason: str = _d("The verifier's reason.")


class DoneEvent(_Event):
    """The edit is done (the last event): its result."""

    type: Literal["done"] = _d("`done`.")
    edit_id: str = _d("The edit's id.")
    result: EditResult = _d("The finished edit's result.")


class ErrorEvent(_Event):
    """The edit failed (the last event)."""

    type: Literal["error"] = _d("`error`.")
    error: ErrorDetail = _d("What went wrong.")


class CancelledEvent(_Event):
    """The edit was cancelled (the last event): where it stopped; nothing of it was kept."""

    type: Literal["cancelled"] = _d("`cancelled`.")
    turn: int = _d(TURN)
    session_id: str = _d("The session.")
    reason: str | None = _d("Who or what stopped it.", None)
    message: str = _d("The error's sentence.")
    node: str | None = _d("The node it stopped in or after.", None)
    step: int | None = _d("The diffusion step it stopped after.", None)
    total: int | None = _d("Diffusion steps it would have run.", None)


class InterruptedEvent(_Event):
    """The server running the edit stopped (the last event): resume it at `resume`."""

    type: Literal["interrupted"] = _d("`interrupted`.")
    edit_id: str = _d("The edit's id.")
    resume: str | None = _d("POST here to resume it.", None)


EditEvent = Annotated[
    StartedEvent | TurnEvent | NodeEvent | ProgressEvent | LoadEvent | RetryEvent
    | FallbackEvent | ResultEvent | DoneEvent | ErrorEvent | CancelledEvent | InterruptedEvent,
    Field(discriminator="type"),
]
"""One server-sent event's `data`; the SSE `event:` name is its `type`."""
