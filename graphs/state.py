"""The graph's state: JSON-safe values and content hashes only (images live in the store).

`InputState` is what a caller sends for one turn; `State` adds what the nodes work out. A session
is one LangGraph thread, so `State` survives between turns: the `start` node resets every
per-turn field, and lists are replaced whole (no reducers) because nodes run one at a time.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from typing_extensions import TypedDict

PlannerPath = Literal["vlm", "rules"]
Stage = Literal["mask", "caption", "inpaint"]
Route = Literal["accept", "mask", "caption", "inpaint", "give_up"]

class InputState(TypedDict, total=False):
    """One turn's request, as a LangGraph-server client or the session facade sends it.

    Per-turn fields (`image`, `mask`, `caption`, `review_mask`) are consumed by the `start` node
    and cleared, so nothing leaks into the next turn of the same thread.
    """

    image: Annotated[
        str | None,
        Field(description="The image to edit: a local path, an http(s) URL, a `data:` URI or a "
              "stored image's hash. Omit it to continue from the thread's last accepted result."),
    ]
    instruction: Annotated[str, Field(description="What to change, in plain words.")]
    mask: Annotated[
        str | None,
        Field(description="Optional mask of the area to edit (white = edit), in the same forms as "
              "`image`; omitted, the agents find the area."),
    ]
    options: Annotated[
        dict[str, Any],
        Field(description="Edit options (`EditOptions`: seed, steps, guidance_scale, inpainter, "
              "...); omitted fields take their defaults."),
    ]
    caption: Annotated[
        str | None,
        Field(description="What the edited area should show, in your words; it replaces the "
              "planner's caption (an instruction editor gets it inside its edit instruction)."),
    ]
    review_mask: Annotated[
        bool,
        Field(description="Pause after the mask proposal (an interrupt) so a person can approve "
              "or replace it; resume with `Command(resume={'approve': True})` or "
              "`Command(resume={'mask': <image reference>})`."),
    ]
    turn: Annotated[
        int,
        Field(description="Turn number within the thread (1-based); counted for you if omitted."),
    ]


class Progress(TypedDict, total=False):
    """Where the turn is, after each node: what a `values`-driven UI shows while it runs."""

    node: str
    """The node that just finished."""
    done: list[str]
    """The nodes finished this turn, in order (a retry runs some again)."""
    turn: int | None
    attempt: int
    max_attempts: int | None


class Preview(TypedDict, total=False):
    """The picture to show now: the source, then the mask on it, then the latest candidate,
    then the result."""

    kind: Literal["source", "candidate", "result"]
    image: str
    """Content hash of the picture."""
    image_url: str
    """`/artifacts/<hash>` on this server."""
    mask: str | None
    """Hash of the mask being painted, once the mask node found it."""
    mask_url: str | None


class OutputState(TypedDict, total=False):
    """What a turn hands back: its result at the end, its progress and picture all along."""

    result: Annotated[
        dict[str, Any] | None,
        Field(description="`EditResult`: `image` (hash), `source_image` (hash), `image_url` "
              "(`/artifacts/<hash>` on this server), `accepted`, `reason`, `plan`, `metrics`..."),
    ]
    progress: Annotated[
        Progress | None,
        Field(description="Where the turn is, updated after every node: `node` (just "
              "finished), `done` (this turn's nodes so far), `turn`, `attempt`, `max_attempts`."),
    ]
    preview: Annotated[
        Preview | None,
        Field(description="The picture to show now, updated after every node: `kind` (source, "
              "candidate or result), `image` (hash) and `image_url`, and the `mask` being "
              "painted (`mask_url`)."),
    ]


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
    steps: int
    """More steps for a step-distilled conductor (FLUX.2 klein), whose guidance is no knob."""


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


class State(InputState, OutputState, total=False):
    """Everything the nodes know about the current turn."""

    source_image: str
    """Content hash of the image this turn edits (resolved from `image` by `start`)."""
    user_mask: str | None
    """Content hash of the mask the user gave this turn, or None to let the agents find one."""
    user_caption: str | None
    """The user's diffusion prompt for this turn, or None."""
    mask_review: bool
    """This turn pauses for a mask review (from `review_mask`)."""
    current_image: str | None
    """What the next turn edits when it sends no `image`: the last accepted result."""
    last_turn: int
    """The turn number `start` gave the previous turn (to count turns for server clients)."""

    planner: PlannerPath
    """Which path planned this turn: the VLM agents or the rule parser (after a fallback)."""
    plan: dict[str, Any]
    """`tools.types.EditPlan` as a dict."""
    edit_mask: str | None
    """Content hash of the mask this attempt paints (the user's, proposed or reviewed)."""
    mask_source: str | None
    mask_notes: list[str]
    edit_caption: str | None
    """The diffusion prompt this attempt uses, in the inpainter's `prompt_style`."""
    prompt_style: str | None
    """`caption` (what the area shows: fill models) or `instruction` (what to change:
    instruction editors), as `tools.registry.BackendSpec.prompt_style` says for the inpainter."""
    candidates: list[Candidate]
    """Every sample of every attempt, in order."""
    verdicts: list[dict[str, Any]]
    """One combined verdict per attempt: decision, stage, reason, failed checks, VLM verdict."""
    attempt: int
    """1-based attempt counter, bumped when the verifier asks for a retry."""
    max_attempts: int
    """The attempt cap of this turn (its options' `max_attempts`, set by `start`)."""
    retry: RetryParams
    route: Route
    history: list[dict[str, Any]]
    """What happened and why, in order (plans, fallbacks, retries, reviews)."""
    notes: list[str]


PER_TURN_RESET: dict[str, Any] = {
    "planner": None,
    "plan": None,
    "edit_mask": None,
    "mask_source": None,
    "mask_notes": [],
    "edit_caption": None,
    "prompt_style": None,
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

PER_TURN_INPUTS: dict[str, Any] = {"image": None, "mask": None, "caption": None,
                                   "review_mask": False}
"""Public inputs `start` consumes and clears: a later run that omits them must not see them."""

RUN_INPUT_DEFAULTS: dict[str, Any] = {**PER_TURN_INPUTS, "instruction": None, "options": None,
                                      "turn": None}
"""What a server run's input leaves out is none of these: a run that failed before `start`
cleared them (or whose `instruction`, `options` and `turn` the thread still holds) must not lend
them to the next run, which would repeat its error or silently reuse its mask and options."""
