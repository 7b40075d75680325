"""The graph's state: JSON-safe values and content hashes only (images live in the store).

`InputState` is what a caller sends for one turn; `State` adds what the nodes work out. A session
is one LangGraph thread, so `State` survives between turns: the `start` node resets every
per-turn field, and lists are replaced whole (no reducers) because nodes run one at a time.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

PlannerPath = Literal["vlm", "rules"]
Stage = Literal["mask", "caption", "inpaint"]
Route = Literal["accept", "mask", "caption", "inpaint", "give_up"]


class InputState(TypedDict, total=False):
    """One turn's request."""

    source_image: str
    """Content hash of the image to edit (already in the artifact store)."""
    instruction: str
    user_mask: str | None
    """Content hash of a mask the user drew (white = edit), or None to let the agents find one."""
    options: dict[str, Any]
    """`tools.types.EditOptions` as a dict."""
    review_mask: bool
    """Pause after the mask proposal so a person can approve or replace it."""
    user_caption: str | None
    """A diffusion prompt the user wrote; it replaces the planner's caption."""
    turn: int
    """Turn number within the session (1-based); traces are filed under it."""


class RetryParams(TypedDict, total=False):
    """What the verifier changed for the next attempt (starts empty each turn)."""

    mask_relax: int
    """How many times `MaskPolicy.relaxed()` applies (lower thresholds, united boxes, dilation)."""
    extra_dilation_px: int
    """Extra dilation of a user-drawn mask (the policy does not touch user masks)."""
    critique: str
    seed_offset: int
    guidance_scale: float
    conditioning_scale: float


class Candidate(TypedDict, total=False):
    """One inpainted sample and what the checks thought of it."""

    image: str
    attempt: int
    seed: int
    mask: str
    caption: str
    metrics: dict[str, float]
    checks: list[dict[str, Any]]
    verdict: dict[str, Any] | None
    score: list[float]


class State(InputState, total=False):
    """Everything the nodes know about the current turn."""

    planner: PlannerPath
    """Which path planned this turn: the VLM agents or the rule parser (after a fallback)."""
    plan: dict[str, Any]
    """`tools.types.EditPlan` as a dict."""
    mask: str | None
    mask_source: str | None
    mask_notes: list[str]
    caption: str | None
    candidates: list[Candidate]
    """Every sample of every attempt, in order."""
    verdicts: list[dict[str, Any]]
    """One combined verdict per attempt: decision, stage, reason, failed checks, VLM verdict."""
    attempt: int
    """1-based attempt counter, bumped when the verifier asks for a retry."""
    retry: RetryParams
    route: Route
    history: list[dict[str, Any]]
    """What happened and why, in order (plans, fallbacks, retries, reviews)."""
    result: dict[str, Any] | None
    """`tools.types.EditResult` as a dict once the turn is finished."""
    notes: list[str]


PER_TURN_RESET: dict[str, Any] = {
    "planner": None,
    "plan": None,
    "mask": None,
    "mask_source": None,
    "mask_notes": [],
    "caption": None,
    "candidates": [],
    "verdicts": [],
    "attempt": 1,
    "retry": {},
    "route": None,
    "history": [],
    "result": None,
    "notes": [],
}
"""Fields the `start` node clears so nothing leaks from the previous turn."""
