"""The graph's nodes: small steps that each read a few state fields and return a partial update.

Every node runs inside `_traced`, which times it, gives it its own `RecordingVLM` so the trace row
holds the exact prompts and raw answers, writes one trace row, and emits `node` events on the
custom stream. Nodes never keep images in state: they read and write the artifact store by hash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphs.artifacts import artifact_url
from graphs.state import PER_TURN_INPUTS, PER_TURN_RESET, State
from graphs.traces import Stopwatch, to_jsonable
from tools.errors import BrushEditError, InvalidRequestError, MaskNeededError, ModelLoadError
from tools.types import EditCategory, EditOptions, EditPlan, EditResult, join_prompts

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from graphs.components import Components

logger = logging.getLogger(__name__)

NEEDS_SEGMENTATION = {EditCategory.REMOVAL, EditCategory.LOCAL, EditCategory.BACKGROUND}
STAGES = ("mask", "caption", "inpaint")
NO_SEGMENTER = (
    "no segmentation model is available to find {what}: give a mask of the area to edit, or "
    "install the GroundingDINO and SAM weights (`brushedit doctor` says how)"
)


@dataclass
class NodeContext:
    """What a node body gets besides the state: tools, the event sink and its trace row."""

    components: Components
    state: State
    session_id: str
    emit: Callable[[dict[str, Any]], None]
    vlm: Any = None
    inputs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    images: dict[str, Any] = field(default_factory=dict)
    verdict: Any = None
    update: dict[str, Any] = field(default_factory=dict)
    why: list[dict[str, Any]] = field(default_factory=list)

    @property
    def planner(self) -> str:
        return self.update.get("planner") or self.state.get("planner") or "rules"

    def history(self, event: str, **details: Any) -> None:
        """Append a why-line to the turn's history (kept in state and in the trace)."""
        entry = {"event": event, "attempt": self.state.get("attempt", 1), **to_jsonable(details)}
        base = self.update.get("history", list(self.state.get("history") or []))
        self.update["history"] = [*base, entry]
        self.why.append(entry)

    def ask_vlm(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call an agent function, or return `_FALLBACK` when the rules path should take over.

        With planner `auto`, any VLM failure (server down, model missing, timeout, unusable
        answers) switches the rest of the turn to the rule parser and says why; with planner
        `vlm` the error reaches the user.
        """
        if self.planner != "vlm" or self.vlm is None:
            return _FALLBACK
        from agents.errors import AgentError

        try:
            return fn(self.vlm, *args, **kwargs)
        except AgentError as exc:
            if self.components.settings.planner == "vlm":
                raise
            self.update["planner"] = "rules"
            self.history("fallback", step=what, reason=f"{type(exc).__name__}: {exc}")
            self.emit({"type": "fallback", "step": what, "reason": str(exc)})
            return _FALLBACK


_FALLBACK = object()


def traced(name: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    """Wrap a node body `(self, ctx) -> update` with timing, events, VLM recording and a trace row."""

    def decorate(body: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        def node(self: EditNodes, state: State, config: RunnableConfig) -> dict[str, Any]:
            from langgraph.config import get_stream_writer
            from langgraph.errors import GraphBubbleUp

            components = self.components
            session_id = str(config.get("configurable", {}).get("thread_id", "default"))
            emit = _safe_writer(get_stream_writer())
            recorder = None
            if components.vlm is not None:
                from agents.vlm import RecordingVLM

                recorder = RecordingVLM(components.vlm)
            ctx = NodeContext(components, state, session_id, emit, vlm=recorder)
            turn, attempt = turn_of(state, name), state.get("attempt", 1)
            clock = Stopwatch()
            emit({"type": "node", "node": name, "status": "start", "turn": turn,
                  "attempt": attempt})
            status, error = "ok", None
            try:
                update = body(self, ctx)
                update = {**ctx.update, **(update or {})}
                return update
            except GraphBubbleUp:  # an interrupt: the node re-runs on resume, record nothing
                status = None
                raise
            except Exception as exc:
                status, error = "error", f"{type(exc).__name__}: {exc}"
                raise
            finally:
                calls = recorder.drain() if recorder is not None else []
                if status is not None:
                    duration = clock.elapsed_ms()
                    components.traces.record(
                        session_id, name, turn=turn, attempt=attempt, status=status,
                        started=clock.started, duration_ms=duration, inputs=ctx.inputs,
                        outputs={**ctx.outputs, **({"history": ctx.why} if ctx.why else {})},
                        params=ctx.params, verdict=ctx.verdict,
                        images=ctx.images, calls=calls, error=error,
                    )
                    emit({"type": "node", "node": name, "status": "end" if status == "ok"
                          else "error", "turn": turn, "attempt": attempt,
                          "duration_ms": duration, "summary": _summary(ctx.outputs),
                          **({"error": error} if error else {})})

        # Not functools.wraps: LangGraph reads the signature to decide whether to pass `config`.
        node.__name__ = name
        node.__qualname__ = f"EditNodes.{name}"
        node.__doc__ = body.__doc__
        return node

    return decorate


def _safe_writer(writer: Callable[[Any], None]) -> Callable[[dict[str, Any]], None]:
    def emit(event: dict[str, Any]) -> None:
        try:
            writer(to_jsonable(event))
        except Exception:  # a broken progress listener must not break an edit
            logger.debug("event listener failed", exc_info=True)

    return emit


def _summary(outputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in outputs.items() if isinstance(v, (str, int, float, bool)) or v is None}


def _agents() -> Any:
    """The agent functions (imported on first use: they pull in the Ollama client)."""
    from types import SimpleNamespace

    from agents import rules
    from agents.box import propose_box
    from agents.caption import caption_target, describe_removal
    from agents.classify import classify_edit
    from agents.identify import identify_object
    from agents.verify import verify_edit

    return SimpleNamespace(
        classify_edit=classify_edit, identify_object=identify_object,
        caption_target=caption_target, propose_box=propose_box, verify_edit=verify_edit,
        describe_removal=describe_removal, rules=rules,
    )


def _plan(state: State) -> EditPlan:
    return EditPlan.model_validate(state["plan"])


class EditNodes:
    """The node functions, bound to one `Components` bundle."""

    def __init__(self, components: Components) -> None:
        self.components = components

    # -- planning ------------------------------------------------------------------------

    @traced("start")
    def start(self, ctx: NodeContext) -> dict[str, Any]:
        """Check the request and clear what the previous turn left in the thread's state."""
        from graphs.inputs import check_turn_input, import_image, import_mask

        state, components = ctx.state, self.components
        check_turn_input(state)
        instruction = (state.get("instruction") or "").strip()
        if not instruction:
            raise InvalidRequestError("the instruction is empty; say what to change")
        options = EditOptions.model_validate(state.get("options") or {})
        if state.get("image"):
            source, scale = import_image(components.store, state["image"],
                                         components.settings.max_image_side)
        elif state.get("current_image"):
            source, scale = state["current_image"], 1.0
        else:
            raise InvalidRequestError(
                "no image to edit: send `image` (a path, an http(s) URL, a data: URI or a stored "
                "image's hash); later turns on the same thread may omit it"
            )
        user_mask = (import_mask(components.store, state["mask"], source, scale)
                     if state.get("mask") else None)
        caption = (state.get("caption") or "").strip() or None
        turn = turn_of(state, "start")
        ctx.inputs = {"instruction": instruction, "options": options}
        ctx.images = {"source": source, "user_mask": user_mask}
        ctx.params = {"planner_mode": components.settings.planner,
                      "max_attempts": self._max_attempts(options)}
        update = {**PER_TURN_RESET, **PER_TURN_INPUTS, "instruction": instruction,
                  "options": options.model_dump(mode="json"), "source_image": source,
                  "current_image": source, "user_mask": user_mask, "user_caption": caption,
                  "mask_review": bool(state.get("review_mask")), "turn": turn,
                  "last_turn": turn, "history": [], "planner": self._planner_path(ctx)}
        return update

    def _planner_path(self, ctx: NodeContext) -> str:
        """`vlm` when the VLM will be asked; `auto` skips a server its probe found unusable."""
        components = self.components
        mode = components.settings.planner
        if components.vlm is None or mode == "rules":
            return "rules"
        if mode == "auto":
            status = components.vlm_status()
            if status is not None and not status.ok:
                reason = status.error or "the VLM server is not usable"
                fix = f" (fix: {status.fix})" if status.fix else ""
                ctx.history("fallback", step="start", reason=f"{reason}{fix}")
                ctx.emit({"type": "fallback", "step": "start", "reason": reason})
                return "rules"
        return "vlm"

    @traced("classify")
    def classify(self, ctx: NodeContext) -> dict[str, Any]:
        """Decide the edit category (VLM), or plan everything with the rule parser."""
        state, store = ctx.state, self.components.store
        instruction = state["instruction"]
        ctx.inputs = {"instruction": instruction}
        if self.components.settings.planner == "vlm" and self.components.vlm is None:
            from tools.errors import ConfigError

            raise ConfigError("planner `vlm` needs a vision-language model, and none is set up")
        agents = _agents()
        image = store.get_image(state["source_image"]) if ctx.planner == "vlm" else None
        answer = ctx.ask_vlm("classify", agents.classify_edit, image, instruction)
        if answer is _FALLBACK:
            plan = agents.rules.parse_instruction(instruction).model_copy(update={"source": "rules"})
            ctx.update["planner"] = "rules"
        else:
            plan = EditPlan(
                instruction=instruction, category=EditCategory.parse(answer.category),
                confidence=answer.confidence, rationale=answer.rationale, source="vlm",
            )
        ctx.outputs = {"category": plan.category.value, "planner": ctx.planner,
                       "plan": plan.model_dump(mode="json")}
        ctx.history("plan", planner=ctx.planner, category=plan.category.value)
        return {"plan": plan.model_dump(mode="json")}

    @traced("identify")
    def identify(self, ctx: NodeContext) -> dict[str, Any]:
        """Name the object to segment (the VLM path; the rule plan already has one)."""
        state = ctx.state
        plan = _plan(state)
        ctx.inputs = {"instruction": plan.instruction, "category": plan.category.value}
        if plan.source == "rules" or plan.category == EditCategory.GLOBAL:
            ctx.outputs = {"object": plan.object, "skipped": "rule plan" if plan.source == "rules"
                           else "global edits have no object"}
            return {}
        image = self.components.store.get_image(state["source_image"])
        agents = _agents()
        answer = ctx.ask_vlm("identify", agents.identify_object, image, plan.instruction,
                             plan.category)
        if answer is _FALLBACK:
            rules_plan = agents.rules.parse_instruction(plan.instruction)
            plan = plan.model_copy(update={"object": rules_plan.object, "box": rules_plan.box})
        else:
            plan = plan.model_copy(update={"object": answer})
        ctx.outputs = {"object": plan.object}
        return {"plan": plan.model_dump(mode="json")}

    # -- mask --------------------------------------------------------------------------------

    @traced("mask")
    def mask(self, ctx: NodeContext) -> dict[str, Any]:
        """Find the area to edit: the user's mask, a segmentation, or a box for additions."""
        from tools.masks import propose_mask

        state, store = ctx.state, self.components.store
        plan = _plan(state)
        image = store.get_image(state["source_image"])
        user_mask = store.get_mask(state["user_mask"]) if state.get("user_mask") else None
        retry = state.get("retry") or {}
        policy = self._mask_policy(retry)
        ctx.inputs = {"category": plan.category.value, "object": plan.object,
                      "user_mask": state.get("user_mask")}
        ctx.params = {"policy": policy, "mask_relax": retry.get("mask_relax", 0),
                      "user_mask_extra_dilation_px": retry.get("extra_dilation_px", 0)}
        segmenter = self.components.segmenter
        if user_mask is None and plan.category in NEEDS_SEGMENTATION and segmenter is None:
            raise MaskNeededError(NO_SEGMENTER.format(what=_what(plan)))
        box = plan.box
        if user_mask is None and plan.category == EditCategory.ADDITION and box is None:
            answer = ctx.ask_vlm("propose_box", _agents().propose_box, image, plan.instruction)
            if answer is not _FALLBACK:
                box = answer
                plan = plan.model_copy(update={"box": box})
        if user_mask is None and plan.category == EditCategory.ADDITION and box is None:
            box = _default_box(image.size)
            plan = plan.model_copy(update={"box": box})
            ctx.history("default_box", box=box, reason="no VLM box proposal; a centred box "
                        "was used (give a mask to choose where)")
        try:
            proposal = propose_mask(
                plan, image, segmenter, box=box, user_mask=user_mask, policy=policy
            )
        except (ModelLoadError, ImportError, OSError) as exc:
            if user_mask is None and plan.category in NEEDS_SEGMENTATION:
                raise MaskNeededError(
                    NO_SEGMENTER.format(what=_what(plan)) + f" (loading failed: {exc})"
                ) from exc
            raise
        if not proposal.found and user_mask is None and proposal.source != "full":
            # Nothing found: one more look with lower thresholds and united boxes before giving up.
            relaxed = propose_mask(
                plan, image, segmenter, box=box, user_mask=None, policy=policy.relaxed()
            )
            ctx.history("mask_relaxed", found=bool(relaxed.found),
                        reason="nothing found at the default thresholds; retried relaxed")
            if relaxed.found:
                proposal = relaxed
        if not proposal.found and user_mask is None and proposal.source != "full":
            why = "; ".join(proposal.notes) or "no detection"
            raise MaskNeededError(
                f"could not find {_what(plan)} in the image ({why}); give a mask of the area "
                "to edit"
            )
        mask = proposal.mask
        extra = int(retry.get("extra_dilation_px", 0))
        notes = list(proposal.notes)
        if extra and proposal.source == "user":
            from tools.masks import dilate

            mask = dilate(mask, extra)
            notes.append(f"user mask dilated by {extra} px after the verifier blamed the mask")
        digest = store.put_mask(mask)
        coverage = float((mask > 0).mean())
        ctx.outputs = {"mask_source": proposal.source, "found": bool(proposal.found),
                       "coverage": round(coverage, 4), "notes": notes,
                       "proposal": proposal.summary()}
        ctx.images = {"source": state["source_image"], "mask": digest}
        return {"edit_mask": digest, "mask_source": str(proposal.source), "mask_notes": notes,
                "plan": plan.model_dump(mode="json")}

    @traced("review")
    def review(self, ctx: NodeContext) -> dict[str, Any]:
        """Pause for a person to approve or replace the proposed mask (human in the loop)."""
        from langgraph.types import interrupt

        state, store = ctx.state, self.components.store
        proposed = state["edit_mask"]
        payload = {
            "kind": "mask_review", "session_id": ctx.session_id, "turn": state.get("turn"),
            "attempt": state.get("attempt", 1), "image": state["source_image"],
            "image_url": artifact_url(state["source_image"]),
            "mask": proposed, "mask_url": artifact_url(proposed),
            "mask_source": state.get("mask_source"),
            "notes": state.get("mask_notes") or [], "instruction": state["instruction"],
        }
        from graphs.inputs import MAX_REVIEW_ANSWERS, read_review_answer

        decision = interrupt(payload)
        for asked in range(1, MAX_REVIEW_ANSWERS + 1):
            try:  # an unusable answer is asked again: it must not leave the thread stuck on it
                verdict, digest = read_review_answer(store, decision, state["source_image"])
                break
            except BrushEditError as exc:
                if asked == MAX_REVIEW_ANSWERS:
                    raise InvalidRequestError(f"the mask review got {asked} unusable answers "
                                              f"(the last: {exc}); the edit is cancelled") from None
                decision = interrupt({**payload, "error": str(exc), "notes": [
                    f"the last answer was refused: {exc}", *payload["notes"]]})
        ctx.inputs = {"mask": proposed, "decision": decision}
        ctx.images = {"source": state["source_image"], "proposed_mask": proposed}
        if verdict == "replaced":
            ctx.history("review", decision="replaced", mask=digest)
            ctx.outputs = {"decision": "replaced"}
            ctx.images["mask"] = digest
            return {"edit_mask": digest, "mask_source": "user-review",
                    "mask_notes": ["mask replaced during review"]}
        if verdict == "approved":
            ctx.history("review", decision="approved")
            ctx.outputs = {"decision": "approved"}
            return {}
        raise InvalidRequestError("the mask was rejected during review; the edit is cancelled")

    # -- caption and inpaint -----------------------------------------------------------------

    @traced("caption")
    def caption(self, ctx: NodeContext) -> dict[str, Any]:
        """Write the diffusion prompt: what the edited region should show afterwards."""
        state = ctx.state
        plan = _plan(state)
        critique = (state.get("retry") or {}).get("critique")
        instruction = plan.instruction
        if critique:
            instruction = (f"{instruction}\n(The previous result was rejected: {critique} "
                           "Write a caption that fixes this.)")
        ctx.inputs = {"instruction": plan.instruction, "category": plan.category.value,
                      "object": plan.object, "critique": critique}
        agents = _agents()
        caption = _FALLBACK
        negative = agents.rules.negative_for_plan(plan)
        removal = plan.category is EditCategory.REMOVAL
        user_caption = state.get("user_caption")
        if user_caption and not critique:
            caption = user_caption
            ctx.params["source"] = "user"
        elif plan.source == "vlm" and removal:
            # a removal's caption is the background that replaces the object; the object
            # itself goes into the negative prompt (BrushNet's advice for removal)
            image = self.components.store.get_image(state["source_image"])
            answer = ctx.ask_vlm("caption", agents.describe_removal, image, instruction,
                                 plan.object)
            if answer is not _FALLBACK:
                caption, negative = answer.background, answer.removed
        elif plan.source == "vlm":
            image = self.components.store.get_image(state["source_image"])
            caption = ctx.ask_vlm("caption", agents.caption_target, image, instruction,
                                  plan.category, plan.object)
        if caption is _FALLBACK:
            caption = user_caption or plan.target_caption or agents.rules.caption_for_plan(plan)
            ctx.params["source"] = "user" if user_caption else "rules"
        elif "source" not in ctx.params:
            ctx.params["source"] = "vlm"
        plan = plan.model_copy(update={"target_caption": caption, "negative_prompt": negative})
        ctx.outputs = {"caption": caption, "negative_prompt": negative}
        return {"edit_caption": caption, "plan": plan.model_dump(mode="json")}

    @traced("inpaint")
    def inpaint(self, ctx: NodeContext) -> dict[str, Any]:
        """Paint the masked area; every sample is stored, measured and checked."""
        from tools.metrics import edit_metrics, objective_checks

        state, store = ctx.state, self.components.store
        plan = _plan(state)
        options, seed = self._attempt_options(state)
        name = options.inpainter
        source = store.get_image(state["source_image"])
        mask = store.get_mask(state["edit_mask"])
        inpainter = self.components.inpainter(name, on_event=ctx.emit)
        retries = int((state.get("retry") or {}).get("seed_offset", 0))
        inpainter = inpainter.variant(retries)  # a deterministic backend changes its method
        attempt = state.get("attempt", 1)
        negative = join_prompts(plan.negative_prompt, options.negative_prompt)

        def progress(step: int, total: int, *_: Any, **__: Any) -> None:
            ctx.emit({"type": "progress", "node": "inpaint", "step": int(step),
                      "total": int(total), "attempt": attempt, "turn": state.get("turn")})

        ctx.inputs = {"caption": state.get("edit_caption"), "category": plan.category.value,
                      "mask": state["edit_mask"]}
        ctx.params = {"inpainter": name, "seed": seed, "steps": options.steps,
                      "guidance_scale": options.guidance_scale,
                      "conditioning_scale": options.conditioning_scale,
                      "samples": options.samples, "negative_prompt": negative,
                      "user_negative_prompt": options.negative_prompt,
                      "plan_negative_prompt": plan.negative_prompt,
                      "blending": options.blending}
        if getattr(inpainter, "method", None):
            ctx.params["method"] = inpainter.method
        results = inpainter.inpaint(
            source, mask, state.get("edit_caption") or "", category=plan.category, options=options,
            seed=seed, negative_prompt=negative, progress=progress,
        )
        candidates = list(state.get("candidates") or [])
        new = []
        for image in results:
            digest = store.put_image(image)
            metrics = {k: float(v) for k, v in edit_metrics(source, image, mask).items()
                       if isinstance(v, (int, float))}
            checks = [to_jsonable(c) for c in objective_checks(plan.category, source, image, mask)]
            new.append({"image": digest, "attempt": attempt, "seed": seed,
                        "mask": state["edit_mask"], "caption": state.get("edit_caption"),
                        "metrics": metrics, "checks": checks,
                        "verdict": None, "score": score(metrics, checks)})
        if not new:
            raise BrushEditError(f"the {name} inpainter returned no image")
        ctx.outputs = {"candidates": [{k: c[k] for k in ("image", "metrics", "score")}
                                      for c in new]}
        ctx.images = {"source": state["source_image"], "mask": state["edit_mask"],
                      **{f"result_{i}": c["image"] for i, c in enumerate(new)}}
        return {"candidates": candidates + new}

    # -- verify --------------------------------------------------------------------------------

    @traced("verify")
    def verify(self, ctx: NodeContext) -> dict[str, Any]:
        """Judge this attempt: objective checks first, then the VLM critique; pick the route."""
        state, store = ctx.state, self.components.store
        attempt = state.get("attempt", 1)
        plan = _plan(state)
        candidates = [dict(c) for c in state.get("candidates") or []]
        mine = [c for c in candidates if c.get("attempt") == attempt]
        best = max(mine, key=lambda c: c["score"])
        failed = [c for c in best["checks"] if not c.get("passed", True)]
        vlm_verdict = None
        if ctx.planner == "vlm":
            answer = ctx.ask_vlm(
                "verify", _agents().verify_edit, store.get_image(state["source_image"]),
                store.get_image(best["image"]), store.get_mask(best["mask"]), plan.instruction,
                plan,
            )
            if answer is not _FALLBACK:
                vlm_verdict = to_jsonable(answer)
        if failed:
            decision = "retry"
            # a mask that cut the object must be fixed first: refilling cannot bring it back
            blamed = {c.get("stage") for c in failed}
            stage = "mask" if "mask" in blamed else _stage(failed[0].get("stage"))
            reason = "; ".join(str(c.get("message") or c.get("name")) for c in failed)
            suggestion = None
        elif vlm_verdict and vlm_verdict.get("decision") == "retry":
            decision = "retry"
            stage = _stage(vlm_verdict.get("stage"))
            reason = str(vlm_verdict.get("reason") or "the verifier asked for another try")
            suggestion = vlm_verdict.get("suggestion")
        else:
            decision, stage, suggestion = "accept", None, None
            reason = (vlm_verdict or {}).get("reason") or "all objective checks passed"
        verdict = {"attempt": attempt, "decision": decision, "stage": stage, "reason": reason,
                   "suggestion": suggestion, "candidate": best["image"],
                   "failed_checks": [c.get("name") for c in failed], "vlm": vlm_verdict,
                   "by": "vlm+checks" if vlm_verdict else "checks"}
        for c in candidates:
            if c["image"] == best["image"] and c.get("attempt") == attempt:
                c["verdict"] = verdict
        max_attempts = self._max_attempts(EditOptions.model_validate(state.get("options") or {}))
        update: dict[str, Any] = {"candidates": candidates,
                                  "verdicts": [*(state.get("verdicts") or []), verdict]}
        ctx.inputs = {"candidate": best["image"], "attempt": attempt}
        ctx.verdict = verdict
        ctx.images = {"source": state["source_image"], "mask": best["mask"],
                      "result": best["image"]}
        ctx.outputs = {"decision": decision, "stage": stage, "reason": reason}
        if decision == "accept":
            update["route"] = "accept"
        elif attempt >= max_attempts:
            update["route"] = "give_up"
            ctx.history("give_up", reason=reason, attempts=attempt)
        else:
            retry, changed = self._next_retry(state, stage, reason, suggestion)
            update.update(route=stage, retry=retry, attempt=attempt + 1)
            ctx.history("retry", stage=stage, reason=reason, changed=changed)
            ctx.outputs["changed"] = changed
            ctx.emit({"type": "retry", "stage": stage, "reason": reason, "attempt": attempt,
                      "changed": changed})
        return update

    @traced("finish")
    def finish(self, ctx: NodeContext) -> dict[str, Any]:
        """Hand back the accepted candidate, or the best one with the verifier's last reason."""
        state = ctx.state
        candidates = state.get("candidates") or []
        verdicts = state.get("verdicts") or []
        last = verdicts[-1] if verdicts else {}
        accepted = state.get("route") == "accept"
        if accepted:
            chosen = next(c for c in candidates if c["image"] == last.get("candidate"))
            reason = last.get("reason", "")
        else:
            chosen = max(candidates, key=lambda c: c["score"])
            reason = (f"not accepted after {state.get('attempt', 1)} attempt(s): "
                      f"{last.get('reason', '')}; returning the best candidate by objective "
                      f"metrics (attempt {chosen['attempt']})")
        options = EditOptions.model_validate(state.get("options") or {})
        plan = _plan(state)
        result = EditResult(
            image=chosen["image"], source_image=state["source_image"],
            image_url=artifact_url(chosen["image"]),
            instruction=state["instruction"], plan=plan, mask=chosen.get("mask"),
            caption=chosen.get("caption"), accepted=accepted, attempts=state.get("attempt", 1),
            reason=reason, planner=ctx.planner, inpainter=options.inpainter,
            candidates=[c["image"] for c in candidates], metrics=chosen.get("metrics") or {},
            session_id=ctx.session_id, turn=state.get("turn"),
        )
        ctx.outputs = {"accepted": accepted, "image": chosen["image"], "reason": reason,
                       "planner": ctx.planner}
        ctx.images = {"source": state["source_image"], "mask": chosen.get("mask"),
                      "result": chosen["image"]}
        update: dict[str, Any] = {"result": result.model_dump(mode="json")}
        if accepted:  # the next turn on this thread edits the accepted result
            update["current_image"] = chosen["image"]
        return update

    # -- helpers ---------------------------------------------------------------------------------

    def _max_attempts(self, options: EditOptions) -> int:
        return options.max_attempts

    def _mask_policy(self, retry: dict[str, Any]) -> Any:
        """The configured policy, relaxed once per mask retry (lower thresholds, united boxes,
        1.5x dilation)."""
        from tools.masks import MaskPolicy

        policy = self.components.settings.mask_policy or MaskPolicy()
        for _ in range(int(retry.get("mask_relax", 0))):
            policy = policy.relaxed()
        return policy

    def _attempt_options(self, state: State) -> tuple[EditOptions, int]:
        options = EditOptions.model_validate(state.get("options") or {})
        retry = state.get("retry") or {}
        changes = {k: retry[k] for k in ("guidance_scale", "conditioning_scale") if k in retry}
        if changes:
            options = options.model_copy(update=changes)
        return options, options.seed + int(retry.get("seed_offset", 0))

    def _next_retry(
        self, state: State, stage: str, reason: str, suggestion: str | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The changed parameter for the blamed stage (and a record of what changed)."""
        knobs = self.components.settings
        retry = dict(state.get("retry") or {})
        changed: dict[str, Any] = {}
        if stage == "mask":
            retry["mask_relax"] = int(retry.get("mask_relax", 0)) + 1
            retry["extra_dilation_px"] = (
                int(retry.get("extra_dilation_px", 0)) + knobs.dilation_step_px
            )
            policy = self._mask_policy(retry)
            changed = {"mask_relax": retry["mask_relax"],
                       "removal_dilation_px": policy.removal_dilation_px,
                       "local_dilation_px": policy.local_dilation_px,
                       "union_boxes": policy.union_boxes,
                       "box_thresholds": list(policy.box_thresholds),
                       "user_mask_extra_dilation_px": retry["extra_dilation_px"]}
        elif stage == "caption":
            retry["critique"] = suggestion or reason
            changed = {"critique": retry["critique"]}
        else:
            options, _ = self._attempt_options(state)
            retry["seed_offset"] = int(retry.get("seed_offset", 0)) + 1
            retry["guidance_scale"] = round(min(options.guidance_scale + knobs.guidance_step,
                                                30.0), 3)
            retry["conditioning_scale"] = round(
                min(options.conditioning_scale + knobs.conditioning_step, 10.0), 3)
            changed = {"seed": options.seed + retry["seed_offset"],
                       "guidance_scale": retry["guidance_scale"],
                       "conditioning_scale": retry["conditioning_scale"]}
            method = getattr(self.components.inpainter(options.inpainter).variant(
                retry["seed_offset"]), "method", None)
            if method:  # a deterministic fill changes method instead of seed
                changed = {"method": method}
        return retry, changed


def turn_of(state: State, node: str) -> int | None:
    """The turn a node belongs to: `start` counts one on when the caller sent no new number."""
    turn = state.get("turn")
    if node != "start":
        return turn
    last = state.get("last_turn")
    if isinstance(turn, bool) or not isinstance(turn, int) or not 1 <= turn < 2**31:
        turn = None  # a bad `turn` is refused by `start`; its trace row counts on meanwhile
    if turn is None or (last is not None and turn <= last):
        return (last or 0) + 1
    return turn


def score(metrics: dict[str, float], checks: list[dict[str, Any]]) -> list[float]:
    """Sort key for candidates: share of objective checks passed, then background PSNR."""
    passed = sum(1 for c in checks if c.get("passed", True))
    share = passed / len(checks) if checks else 1.0
    psnr = next((v for k, v in sorted(metrics.items()) if "psnr" in k.lower()), 0.0)
    psnr = min(float(psnr), 100.0) if psnr == psnr else 0.0
    return [round(share, 6), round(psnr, 4)]


def _stage(value: Any) -> str:
    return value if value in STAGES else "inpaint"


def _what(plan: EditPlan) -> str:
    return f"“{plan.object}”" if plan.object else f"the area for this {plan.category.value} edit"


def _default_box(size: tuple[int, int]) -> Any:
    """The middle third of the image, where an addition without a proposed box goes."""
    from tools.types import Box

    width, height = size
    return Box(x0=width // 3, y0=height // 3, x1=max(width * 2 // 3, width // 3 + 1),
               y1=max(height * 2 // 3, height // 3 + 1))
