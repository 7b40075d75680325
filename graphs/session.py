"""The session facade: what every interface and the evals call.

A session is one LangGraph thread (thread_id = session id) plus a turn table in the trace store.
Each turn runs the graph once; an accepted result becomes the next turn's source, `undo` moves
back to any earlier turn, and a run that died half-way resumes from its last checkpoint. A turn's
request is checked here, once (`prepare`, with `graphs.requests`' rules), before anything is
recorded; the graph then trusts it.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from graphs.artifacts import is_hash
from graphs.cancel import CANCELLED, CancelToken
from graphs.inputs import import_image, import_mask
from graphs.requests import (
    CHECKED_TURN,
    check_caption,
    check_instruction,
    check_options,
    check_session_name,
)
from graphs.storage import storage_full
from tools.errors import BrushEditError, EditCancelledError, InternalError, InvalidRequestError
from tools.types import EditOptions, EditPlan, EditResult

if TYPE_CHECKING:
    from graphs.admission import Slot
    from graphs.claims import Claim
    from graphs.context import Context

logger = logging.getLogger(__name__)

EventSink = Callable[[dict[str, Any]], None]

ImageInput = "str | Path | bytes | Image.Image | None"


class PreparedTurn(BaseModel):
    """A turn's request after the facade's checks, its image and mask stored: ready to run.

    Only `EditSession.prepare` makes one; `EditSession.run` trusts it and checks nothing again.
    """

    model_config = ConfigDict(frozen=True)

    instruction: str
    source: str = Field(description="Hash of the stored image the turn edits.")
    mask: str | None = Field(default=None, description="Hash of the stored, fitted user mask.")
    options: EditOptions
    caption: str | None = None
    review_mask: bool = False


class Turn(BaseModel):
    """One instruction applied within a session."""

    turn: int
    instruction: str
    source: str = Field(description="Hash of the image the turn started from.")
    image: str | None = Field(default=None, description="Hash of the result, once finished.")
    mask: str | None = None
    accepted: bool = False
    kept: bool = Field(default=False, description="Not accepted, but kept by the user.")
    undone: bool = False
    status: str = Field(description="running, done, failed, cancelled or abandoned.")
    reason: str | None = None


class MaskReview(BaseModel):
    """A paused edit waiting for a person to approve or replace its mask."""

    kind: str = "mask_review"
    session_id: str
    turn: int | None = None
    attempt: int = 1
    image: str
    mask: str
    mask_source: str | None = None
    notes: list[str] = Field(default_factory=list)
    instruction: str
    image_url: str | None = None
    mask_url: str | None = None
    mask_path: str = Field(default="", description="The proposed mask's file on this machine.")


class PlannedEdit(BaseModel):
    """What `EditSession.plan` found: the plan, the proposed mask and who planned it."""

    plan: EditPlan
    mask: str
    """Content hash of the proposed mask (white = edit)."""
    planner: str
    """"vlm" or "rules": the path that ran."""
    review: MaskReview


class EditSession:
    """A persistent, multi-turn editing conversation over one run `Context`.

    The session owns its compiled graph: `build_graph` with the context's checkpointer (an
    in-memory one when the context has none), compiled on first use.
    """

    def __init__(self, components: Context, session_id: str) -> None:
        self.components = components
        self.id = session_id
        self.config = {"configurable": {"thread_id": session_id, CHECKED_TURN: True}}
        self._compiled: Any = None

    @classmethod
    def open(cls, components: Context, session_id: str | None = None) -> EditSession:
        """Continue session `session_id`, or start a new one (new id) when it is None.

        Nothing is recorded until a turn starts, so an edit refused for its input (a missing
        file, an empty instruction) leaves no empty session behind.
        """
        if session_id is not None:
            check_session_name(session_id)
        return cls(components, session_id or uuid.uuid4().hex[:12])

    def __repr__(self) -> str:
        return f"EditSession({self.id!r})"

    # -- editing ---------------------------------------------------------------------------

    def edit(
        self,
        image: ImageInput,
        instruction: str,
        *,
        review: Callable[[MaskReview], dict[str, Any]] | None = None,
        **turn: Any,
    ) -> EditResult:
        """Run one turn to the end and return its result: `submit`, answering each pause.

        Args:
            image, instruction, turn: as for `submit` (`mask`, `options`, `caption`,
                `review_mask`, `on_event`).
            review: with `review_mask`, called with each `MaskReview`; returns
                `{"approve": True}` or `{"mask": <hash>}`.
        """
        if turn.get("review_mask") and review is None:
            raise InvalidRequestError(
                "review_mask needs a `review` callback; use `submit` and `resume` to review later"
            )
        outcome = self.submit(image, instruction, **turn)
        while isinstance(outcome, MaskReview):
            assert review is not None
            outcome = self.resume(review(outcome), on_event=turn.get("on_event"),
                                  cancel=turn.get("cancel"))
        return outcome

    def submit(self, image: ImageInput, instruction: str, *,
               on_event: EventSink | None = None, cancel: CancelToken | None = None,
               **request: Any) -> EditResult | MaskReview:
        """Start a turn; returns its result, or a `MaskReview` when it paused for a person.

        `prepare(image, instruction, **request)` (`mask`, `options`, `caption`, `review_mask`),
        then `run`; `on_event` receives progress dicts (`node`, `progress`, `retry`, `load`...);
        `cancel`, a `graphs.cancel.CancelToken`, stops the turn when another thread sets it.
        """
        return self.run(self.prepare(image, instruction, **request), on_event=on_event,
                        cancel=cancel)

    def prepare(
        self,
        image: ImageInput,
        instruction: str,
        *,
        mask: Any = None,
        options: EditOptions | dict[str, Any] | None = None,
        caption: str | None = None,
        review_mask: bool = False,
        max_pixels: int | None = None,
    ) -> PreparedTurn:
        """Check a turn's request and store its image and mask; nothing is recorded yet.

        The one door every surface's request goes through (`graphs.requests`' checks, the
        image downscaled to `max_image_side`, the mask fitted to it once).

        Args:
            image: a path, bytes, PIL image or artifact hash; None continues from the current
                image (the last accepted result).
            instruction: what to change, in words.
            mask: optional user mask (path, bytes, array, PIL image or hash; white = edit).
            options: `EditOptions`, or the fields to change from the session's defaults.
            caption: the target caption (diffusion prompt) to use instead of the planner's.
            review_mask: pause after the mask proposal with a `MaskReview` (answer it with
                `resume`).
            max_pixels: the largest image file accepted (`tools.images`' default when None).
        """
        text = check_instruction(instruction)
        caption = check_caption(caption)
        checked = check_options(options, defaults=self.default_options())
        source, scale = self._import_image(image, max_pixels)
        user_mask = (import_mask(self.components.store, mask, source, scale,
                                 access=self.components.inputs) if mask is not None else None)
        return PreparedTurn(instruction=text, source=source, mask=user_mask, options=checked,
                            caption=caption, review_mask=bool(review_mask))

    def lease(self, *, slot: bool = True) -> TurnLease:
        """Claim this session for one turn (in the session database, for every process) and
        take one of the process's edit slots: `ConflictError` while another turn holds the
        session, `ServerBusyError` when every slot is taken. `run`, `resume` and `delete`
        take one themselves; a caller that must answer before the turn starts (the HTTP API)
        takes it first and hands it over."""
        claims = self.components.session_claims()
        claim = claims.claim(self.id)
        try:
            slots = self.components.slots
            taken = slots.take() if slot and slots is not None else None
        except BaseException:
            claim.release()
            raise
        return TurnLease(claim, taken)

    @contextlib.contextmanager
    def _leased(self, lease: TurnLease | None, *, slot: bool = True) -> Iterator[TurnLease]:
        """The caller's lease on this session (still the caller's to release), or a new one
        for the block."""
        if lease is not None and lease.holds(self.id):
            yield lease
            return
        with self.lease(slot=slot) as taken:
            yield taken

    def run(self, turn: PreparedTurn, *, on_event: EventSink | None = None,
            cancel: CancelToken | None = None, lease: TurnLease | None = None
            ) -> EditResult | MaskReview:
        """Run a prepared turn: claim the session (`lease`), file the turn, run the graph.

        `cancel.cancel()` from another thread (or Ctrl-C in this one) stops the turn within a
        diffusion step or at the next node: the turn is filed `cancelled`, no result is kept,
        and `EditCancelledError` is raised.
        """
        traces = self.components.traces
        with self._leased(lease):
            for row in traces.turns(self.id):
                if row["status"] in ("running", "review"):  # left by a crash, or not answered
                    traces.set_turn_status(self.id, row["turn"], "abandoned")
            number = self._next_turn()
            traces.start_turn(self.id, number, turn.instruction, turn.source)
            payload = {
                "image": turn.source, "instruction": turn.instruction, "mask": turn.mask,
                "options": turn.options.model_dump(mode="json"), "review_mask": turn.review_mask,
                "caption": turn.caption, "turn": number,
            }
            _emit(on_event, {"type": "turn", "status": "start", "turn": number,
                             "session_id": self.id, "instruction": turn.instruction,
                             "source": turn.source})
            return self._run(payload, number, on_event, cancel)

    def resume(
        self, decision: dict[str, Any] | None = None, *, on_event: EventSink | None = None,
        cancel: CancelToken | None = None, lease: TurnLease | None = None,
    ) -> EditResult | MaskReview:
        """Continue a paused or interrupted turn.

        With a `MaskReview` pending, `decision` answers it (`{"approve": True}`, or
        `{"mask": <hash or path or array>}`); after a crash, call it with no decision to run on
        from the last completed node.
        """
        with self._leased(lease):
            return self._resume(decision, on_event, cancel)

    def _resume(self, decision: dict[str, Any] | None, on_event: EventSink | None,
                cancel: CancelToken | None = None) -> EditResult | MaskReview:
        from langgraph.types import Command

        state = self._graph().get_state(self.config)
        if not state.next:
            raise InvalidRequestError(f"session {self.id} has no unfinished edit to resume")
        turn = int(state.values.get("turn") or self._next_turn() - 1)
        pending = self.pending()
        if pending is not None:
            if decision is None:
                raise InvalidRequestError(
                    "this edit is waiting for a mask review: answer {'approve': True} or "
                    "{'mask': ...}"
                )
            if decision.get("mask") is not None and not is_hash(decision["mask"]):
                decision = {**decision, "mask": import_mask(
                    self.components.store, decision["mask"], state.values["source_image"], 1.0,
                    access=self.components.inputs)}
            self._set_status(turn, "running")
            return self._run(Command(resume=decision), turn, on_event, cancel)
        self._set_status(turn, "running")
        return self._run(None, turn, on_event, cancel)

    def plan(
        self, image: ImageInput, instruction: str, *, mask: Any = None,
        max_pixels: int | None = None,
    ) -> PlannedEdit:
        """Plan an edit and propose its mask without inpainting.

        The same nodes as an edit (VLM or rules, segmentation, box) run up to the mask review,
        where the turn stops and is filed as `planned`; the trace keeps every step. The plan's
        target caption is the planner's, or the rule caption when the planner gave none.
        """
        outcome = self.submit(image, instruction, mask=mask, review_mask=True,
                              max_pixels=max_pixels)
        if not isinstance(outcome, MaskReview):  # pragma: no cover - the graph always pauses
            raise InvalidRequestError("planning did not stop at the mask review")
        values = self._graph().get_state(self.config).values
        plan = EditPlan.model_validate(values["plan"])
        if not plan.target_caption:
            from agents.rules import caption_for_plan

            plan = plan.model_copy(update={"target_caption": caption_for_plan(plan)})
        self._set_status(outcome.turn or self._next_turn() - 1, "planned")
        return PlannedEdit(plan=plan, mask=outcome.mask,
                           planner=str(values.get("planner") or plan.source), review=outcome)

    def pending(self) -> MaskReview | None:
        """The mask review this session is waiting for, if any."""
        state = self._graph().get_state(self.config)
        for task in state.tasks:
            for item in task.interrupts:
                if isinstance(item.value, dict) and item.value.get("kind") == "mask_review":
                    review = MaskReview.model_validate(item.value)
                    review.mask_path = str(self.components.store.path(review.mask))
                    return review
        return None

    def unfinished(self) -> bool:
        """True when a turn stopped before its end (a crash, Ctrl-C, a cancel, or a pending
        mask review): `resume` finishes it from its last completed step."""
        rows = self.components.traces.turns(self.id)
        return bool(rows) and rows[-1]["status"] in ("running", "review", CANCELLED) and bool(
            self._graph().get_state(self.config).next
        )

    # -- history -------------------------------------------------------------------------------

    def turns(self) -> list[Turn]:
        """Every turn, oldest first (undone ones included, flagged)."""
        return [
            Turn(turn=r["turn"], instruction=r["instruction"], source=r["source"],
                 image=r["result"], mask=r["mask"], accepted=r["accepted"], kept=r["kept"],
                 undone=r["undone"], status=r["status"], reason=r["reason"])
            for r in self.components.traces.turns(self.id)
        ]

    @property
    def current_image(self) -> str | None:
        """Hash of the image the next turn starts from (None before the first turn)."""
        turns = self.turns()
        if not turns:
            return None
        current = turns[0].source
        for t in turns:
            if t.undone or t.status != "done":
                continue
            current = t.image if (t.accepted or t.kept) and t.image else t.source
        return current

    def undo(self, turn: int | None = None) -> str:
        """Go back one turn, or to just after `turn` (0 = the original image).

        Returns the hash of the image the next turn will start from.
        """
        active = [t for t in self.turns() if not t.undone and t.status == "done"]
        if turn is None:
            if not active:
                raise InvalidRequestError("nothing to undo in this session")
            targets = [active[-1].turn]
        else:
            if turn != 0 and turn not in {t.turn for t in active}:
                known = ", ".join(str(t.turn) for t in active) or "none"
                raise InvalidRequestError(
                    f"turn {turn} cannot be restored; active turns: {known} (0 = original image)"
                )
            targets = [t.turn for t in active if t.turn > turn]
        self.components.traces.set_turn_flags(self.id, targets, undone=True)
        self.components.traces.record(
            self.id, "undo", outputs={"undone": targets, "current": self.current_image},
            images={"current": self.current_image},
        )
        current = self.current_image
        assert current is not None
        return current

    def keep(self, turn: int | None = None) -> str:
        """Continue from a result the verifier did not accept (the latest one by default)."""
        done = [t for t in self.turns() if not t.undone and t.status == "done"]
        chosen = [t for t in done if turn is None or t.turn == turn]
        if not chosen:
            raise InvalidRequestError("no finished turn to keep")
        self.components.traces.set_turn_flags(self.id, [chosen[-1].turn], kept=True)
        current = self.current_image
        assert current is not None
        return current

    def delete(self, *, lease: TurnLease | None = None) -> None:
        """Forget this session for good: its turns, trace and checkpoints, with their text
        overwritten in the database files (`graphs.erasure`), and every stored image no other
        session uses. `ConflictError` while a turn runs in it."""
        from graphs.erasure import erase_session

        with self._leased(lease, slot=False):
            erase_session(self.components, self.id)

    def trace(self) -> list[dict[str, Any]]:
        """Every trace event of this session (JSON-able dicts, oldest first)."""
        return self.components.traces.events(self.id)

    def default_options(self) -> EditOptions:
        knobs = self.components.settings
        return EditOptions(max_attempts=knobs.max_attempts, inpainter=knobs.inpainter)

    def path(self, digest: str) -> Path:
        """File of an artifact (result, mask, source) by hash."""
        return self.components.store.path(digest)

    # -- internals -------------------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """The graph state of this session's thread (plan, candidates, verdicts...)."""
        return dict(self._graph().get_state(self.config).values)

    def _graph(self) -> Any:
        """This session's graph, compiled on first use with the context's checkpointer."""
        if self._compiled is None:
            from graphs.graph import build_graph

            saver = self.components.checkpointer
            if saver is None:
                from langgraph.checkpoint.memory import InMemorySaver

                saver = InMemorySaver()
            self._compiled = build_graph(checkpointer=saver)
        return self._compiled

    def _run(self, payload: Any, turn: int, on_event: EventSink | None,
             cancel: CancelToken | None = None) -> EditResult | MaskReview:
        from langgraph.errors import GraphDrained

        graph = self._graph()
        traces = self.components.traces
        token = cancel if cancel is not None else CancelToken()
        try:
            for mode, chunk in graph.stream(
                payload, self.config, context=self.components,
                stream_mode=["custom", "updates"], durability="sync", control=token.control,
            ):
                if mode == "custom":
                    _emit(on_event, chunk)
        except (EditCancelledError, GraphDrained, KeyboardInterrupt) as exc:
            token.cancel("interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else
                         "stopped by the caller")
            stopped = self._cancelled(turn, exc, token, on_event)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise stopped from None
        except BrushEditError as exc:
            self._record_failure(turn, str(exc))
            raise
        except Exception as exc:
            full = storage_full(exc)
            if full is not None:  # a full disk is the server's state, not a bug
                self._record_failure(turn, str(full))
                raise full from exc
            logger.error("turn %s of session %s failed unexpectedly", turn, self.id,
                         exc_info=exc)
            self._record_failure(turn, f"{InternalError.__name__}: {InternalError.MESSAGE}")
            raise
        review = self.pending()
        if review is not None:
            self._set_status(turn, "review")
            _emit(on_event, {"type": "interrupt", **review.model_dump()})
            return review
        values = graph.get_state(self.config).values
        result = EditResult.model_validate(values["result"])
        traces.finish_turn(self.id, turn, result=result.image, mask=result.mask,
                           accepted=result.accepted, reason=result.reason)
        _emit(on_event, {"type": "result", "turn": turn, "image": result.image,
                         "accepted": result.accepted, "attempts": result.attempts,
                         "planner": result.planner, "reason": result.reason,
                         "path": str(self.components.store.path(result.image))})
        return result

    def _cancelled(self, turn: int, exc: BaseException, token: CancelToken,
                   on_event: EventSink | None) -> EditCancelledError:
        """File the turn `cancelled` with a trace row saying where it stopped; the error to
        raise. Nothing of the turn was kept: no result, no accepted image."""
        if isinstance(exc, EditCancelledError):
            stopped = exc
        else:
            stopped = EditCancelledError(f"the edit was {token.reason or 'cancelled'} before it "
                                         "finished")
        where = {k: v for k, v in {"node": stopped.node, "inpainter": stopped.inpainter,
                                   "step": stopped.step, "total": stopped.total}.items()
                 if v is not None}
        self.components.traces.record(
            self.id, "cancel", turn=turn, status=CANCELLED,
            outputs={"reason": token.reason, **where}, error=str(stopped),
        )
        self._set_status(turn, CANCELLED, reason=str(stopped))
        _emit(on_event, {"type": CANCELLED, "turn": turn, "session_id": self.id,
                         "reason": token.reason, "message": str(stopped), **where})
        return stopped

    def _set_status(self, turn: int, status: str, reason: str | None = None) -> None:
        self.components.traces.set_turn_status(self.id, turn, status, reason=reason)

    def _record_failure(self, turn: int, reason: str) -> None:
        """File the turn as failed; a log that cannot take even that (a full disk) is said in
        one log line, and the turn's own error is what the caller gets."""
        try:
            self._set_status(turn, "failed", reason=reason)
        except Exception as exc:
            logger.warning("could not record that turn %s of session %s failed: %s", turn,
                           self.id, " ".join(str(exc).split())[:200])

    def _next_turn(self) -> int:
        rows = self.components.traces.turns(self.id)
        return (max(r["turn"] for r in rows) + 1) if rows else 1

    def _import_image(self, image: Any, max_pixels: int | None = None) -> tuple[str, float]:
        """Store the source image (downscaled to `max_image_side`); returns (hash, scale)."""
        if image is None:
            current = self.current_image
            if current is None:
                raise InvalidRequestError(
                    "no image given and this session has no previous result to continue from"
                )
            return current, 1.0
        return import_image(self.components.store, image,
                            self.components.settings.max_image_side, max_pixels=max_pixels,
                            access=self.components.inputs)


class TurnLease:
    """What lets one turn run: its session's claim (`graphs.claims`) and one of the process's
    edit slots (`graphs.admission`); `release` (or the `with` block's end) frees both."""

    def __init__(self, claim: Claim, slot: Slot | None = None) -> None:
        self.claim = claim
        self.slot = slot

    def holds(self, session_id: str) -> bool:
        return not self.claim.released and self.claim.session_id == session_id

    def release(self) -> None:
        if self.slot is not None:
            self.slot.release()
        self.claim.release()

    def __enter__(self) -> TurnLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _emit(sink: EventSink | None, event: dict[str, Any]) -> None:
    if sink is not None:
        sink(event)
