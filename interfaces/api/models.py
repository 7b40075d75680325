"""The API's response and request models, and descriptions for shared models' fields.

Pydantic only (no FastAPI): the OpenAPI document and the route modules both read these.
"""

from typing import Any, Literal

from pydantic import BaseModel, Field

from interfaces.common import ErrorDetail, TurnOut
from tools.types import EditResult

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""Every integer a client sends must fit here (SQLite, msgpack checkpoints, torch seeds)."""
PAGE_LIMIT = 100


class Health(BaseModel):
    status: Literal["ok"] = Field(default="ok", description="Always `ok` while the server runs.")
    version: str = Field(description="Version of the brushedit-agents package.")


class SessionOut(BaseModel):
    """A session and its turns; `image` is what the next edit continues from."""

    id: str = Field(description="Session id, used in every `/sessions/{session_id}` URL.")
    turns: list[TurnOut] = Field(description="Every turn, oldest first (undone ones flagged).")
    image: str | None = Field(default=None, description="Hash of the last kept result.")


class SessionSummary(BaseModel):
    """One line of the session list."""

    id: str = Field(description="Session id.")
    created: str = Field(description="When the session was created (ISO 8601, UTC).")
    updated: str = Field(description="When the session last changed (ISO 8601, UTC).")
    title: str | None = Field(default=None, description="The first instruction, shortened.")
    turns: int = Field(description="Number of turns, undone ones included.")


class SessionPage(BaseModel):
    """A page of sessions, most recently updated first."""

    sessions: list[SessionSummary] = Field(description="This page's sessions.")
    total: int = Field(description="How many sessions exist in all.")
    limit: int = Field(description="Page size asked for.")
    offset: int = Field(description="Sessions skipped before this page.")
    next: str | None = Field(default=None, description="URL of the next page; null on the last.")


class EditLinks(BaseModel):
    events: str = Field(description="Server-sent events of the edit (supports Last-Event-ID).")
    status: str = Field(description="This edit's status and result.")
    resume: str | None = Field(
        default=None, description="POST here to resume the edit; present while interrupted."
    )
    cancel: str | None = Field(
        default=None, description="POST here to stop the edit; present while it runs (or is "
        "interrupted)."
    )
    image: str | None = Field(default=None, description="The result PNG, once done.")
    trace: str = Field(description="The session's full trace.")


class EditOut(BaseModel):
    """One edit: running, done (with its result), failed (with its error), cancelled or
    interrupted."""

    edit_id: str = Field(description="Edit id, used in `/sessions/{session_id}/edits/{edit_id}`.")
    session_id: str = Field(description="The session the edit belongs to.")
    turn: int | None = Field(default=None, description="The session turn it runs, once known.")
    status: Literal["running", "done", "failed", "cancelled", "interrupted"] = Field(
        description="`cancelled`: stopped through `links.cancel` (nothing of it was kept); "
        "`interrupted`: the server stopped during the edit; resume it with `links.resume`."
    )
    result: EditResult | None = Field(default=None, description="The result, once done.")
    error: ErrorDetail | None = Field(default=None, description="Why it failed, if it did.")
    links: EditLinks = Field(description="Where to follow, fetch or resume the edit.")


class EditList(BaseModel):
    """The edits of a session that are still retained, oldest first."""

    edits: list[EditOut] = Field(description="Edits, oldest first.")


class TraceOut(BaseModel):
    """Every node run of a session with its prompts, answers and image hashes."""

    session_id: str = Field(description="The session traced.")
    events: list[dict[str, Any]] = Field(description="Node runs, oldest first, with model calls.")


class UndoIn(BaseModel):
    turn: int | None = Field(
        default=None, ge=0, le=INT64_MAX, description="Go back to this turn; one back if absent."
    )


# Descriptions for the fields of shared models (tools.types) that do not carry their own; the
# OpenAPI document takes a model's own description first.
FIELD_DOCS: dict[str, dict[str, str]] = {
    "EditResult": {
        "image": "Content hash of the chosen result (fetch it from /artifacts/{hash}).",
        "source_image": "Content hash of the image the edit started from.",
        "instruction": "The instruction, as given.",
        "plan": "What the agents decided to edit and how.",
        "mask": "Content hash of the mask that was inpainted.",
        "caption": "The target caption the inpainter was given.",
        "accepted": "Whether the verifier accepted the result.",
        "attempts": "How many inpainting attempts ran.",
        "reason": "The verifier's reason for its verdict.",
        "planner": "Who planned the edit: `vlm` or `rules`.",
        "inpainter": "The inpainter that ran.",
        "candidates": "Content hashes of every candidate image produced.",
        "metrics": "Verifier metrics of the chosen result.",
        "session_id": "The session the edit belongs to.",
        "turn": "The session turn of the edit.",
    },
    "EditPlan": {
        "instruction": "The instruction the plan answers.",
        "category": "Kind of edit: removal, addition, local, background or global.",
        "confidence": "The planner's confidence, 0 to 1.",
        "rationale": "The planner's short explanation.",
        "source": "Who planned it: `vlm` or `rules`.",
    },
    "Box": {
        "x0": "Left edge in pixels.",
        "y0": "Top edge in pixels.",
        "x1": "Right edge in pixels (exclusive).",
        "y1": "Bottom edge in pixels (exclusive).",
    },
    "TurnOut": {
        "turn": "Turn number, from 1.",
        "instruction": "The instruction of the turn.",
        "undone": "The turn was undone; the next edit does not build on it.",
        "reason": "The verifier's reason, or why the turn failed.",
    },
    "ErrorDetail": {"message": "One sentence saying what is wrong and how to fix it."},
    "ErrorBody": {"error": "What went wrong."},
}



def package_version() -> str:
    """Version of the installed brushedit-agents package (`0.0.0` when run from a checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("brushedit-agents")
    except PackageNotFoundError:
        return "0.0.0"
