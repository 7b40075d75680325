"""The graph's nodes: small module-level steps that each read a few state fields and return a
partial update (the verifier returns a `Command` that also says where to go).

Each node is `(state, runtime: Runtime[Context]) -> update`: `traced` (graphs/tracing.py)
resolves `runtime.context` into the run's models and stores, times the step and writes its
trace row; the body gets them as `run.context` and calls the agent functions directly. The
verifier's decisions are the pure rules of graphs/policy.py. Nodes never keep images in state:
they read and write the artifact store by hash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

import graphs.policy as policy
from graphs.artifacts import artifact_url
from graphs.handles import load_inpainter
from graphs.state import PER_TURN_INPUTS, PER_TURN_RESET, State
from graphs.traces import to_jsonable
from graphs.tracing import NodeRun, traced, turn_of
from tools.errors import BrushEditError, InvalidRequestError, MaskNeededError, ModelLoadError
from tools.types import EditCategory, EditOptions, EditPlan, EditResult, join_prompts

if TYPE_CHECKING:
    from langgraph.types import Command

    from tools.registry import PromptStyle

NEEDS_SEGMENTATION = {EditCategory.REMOVAL, EditCategory.LOCAL, EditCategory.BACKGROUND}
VerifyRoute = Literal["finish", "mask", "caption", "inpaint"]
VERIFY_DESTINATIONS: tuple[str, ...] = get_args(VerifyRoute)
"""Where the verifier's `Command` may go (given to `add_node`, the node being wrapped)."""


def _plan(state: State) -> EditPlan:
    return EditPlan.model_validate(state["plan"])


def _options(state: State) -> EditOptions:
    return EditOptions.model_validate(state.get("options") or {})


# -- planning ------------------------------------------------------------------------------------


@traced("start")
def start(state: State, run: NodeRun) -> dict[str, Any]:
    """Take the turn's request, and clear what the previous turn left in the thread's state.

    The session facade's turns arrive checked, their image and mask stored
    (`EditSession.prepare`); what the LangGraph server hands over raw is checked here and its
    image references resolved (`_receive`). The knobs give the defaults of omitted options.
    """
    if run.raw_input:
        instruction, options, source, user_mask, caption = _receive(state, run)
    else:
        instruction, caption = state["instruction"], state.get("caption")
        options = EditOptions.model_validate(state["options"])
        source, user_mask = state["image"], state.get("mask")
    turn = turn_of(state, "start")
    run.inputs = {"instruction": instruction, "options": options}
    run.images = {"source": source, "user_mask": user_mask}
    run.params = {"planner_mode": run.context.settings.planner,
                  "max_attempts": options.max_attempts}
    run.update["history"] = []  # the turn's own: the last turn's why-lines stay with it
    planner = _planner_path(run)  # may say why it falls back (kept for later refusals)
    return {**PER_TURN_RESET, **PER_TURN_INPUTS, "instruction": instruction,
            "options": options.model_dump(mode="json"), "max_attempts": options.max_attempts,
            "source_image": source, "current_image": source, "user_mask": user_mask,
            "user_caption": caption, "mask_review": bool(state.get("review_mask")),
            "turn": turn, "last_turn": turn, "history": run.update["history"],
            "planner": planner}


def _receive(state: State, run: NodeRun) -> tuple[str, EditOptions, str, str | None, str | None]:
    """A raw request checked (`check_turn_input`) and its image and mask stored: (instruction,
    options, source hash, user mask hash, caption)."""
    from graphs.inputs import import_image, import_mask
    from graphs.requests import check_turn_input

    store, knobs = run.context.store, run.context.settings
    checked = check_turn_input(state, EditOptions(max_attempts=knobs.max_attempts,
                                                  inpainter=knobs.inpainter))
    if state.get("image"):
        source, scale = import_image(store, state["image"], knobs.max_image_side,
                                     access=run.context.inputs)
    elif state.get("current_image"):
        source, scale = state["current_image"], 1.0
    else:
        raise InvalidRequestError(
            "no image to edit: send `image` (a path, an http(s) URL, a data: URI or a stored "
            "image's hash); later turns on the same thread may omit it", field="image"
        )
    user_mask = import_mask(store, state["mask"], source, scale,
                            access=run.context.inputs) if state.get("mask") else None
    return checked["instruction"], checked["options"], source, user_mask, checked["caption"]


def _planner_path(run: NodeRun) -> str:
    """`vlm` when the VLM will be asked; `auto` skips a server its probe found unusable."""
    context = run.context
    mode = context.settings.planner
    if context.vlm is None or mode == "rules":
        return "rules"
    if mode == "auto":
        status = context.vlm_probe.status(context.vlm)
        if status is not None and not status.ok:
            reason = status.error or "the VLM server is not usable"
            fix = f" (fix: {status.fix})" if status.fix else ""
            run.history("fallback", step="start", reason=f"{reason}{fix}")
            run.emit({"type": "fallback", "step": "start", "reason": reason})
            return "rules"
    return "vlm"


@traced("classify")
def classify(state: State, run: NodeRun) -> dict[str, Any]:
    """Decide the edit category (VLM), or plan everything with the rule parser."""
    from agents.classify import classify_edit

    context = run.context
    instruction = state["instruction"]
    run.inputs = {"instruction": instruction}
    if context.settings.planner == "vlm" and context.vlm is None:
        from tools.errors import ConfigError

        raise ConfigError("planner `vlm` needs a vision-language model, and none is set up")
    plan = None
    if run.asks_vlm:
        image = context.store.get_image(state["source_image"])
        with run.fallback("classify"):
            answer = classify_edit(run.vlm, image, instruction)
            plan = EditPlan(
                instruction=instruction, category=EditCategory.parse(answer.category),
                confidence=answer.confidence, rationale=answer.rationale, source="vlm",
            )
    if plan is None:
        plan = _rule_plan(run, instruction).model_copy(update={"source": "rules"})
        run.update["planner"] = "rules"
    run.outputs = {"category": plan.category.value, "planner": run.planner,
                   "plan": plan.model_dump(mode="json")}
    run.history("plan", planner=run.planner, category=plan.category.value)
    return {"plan": plan.model_dump(mode="json")}


@traced("identify")
def identify(state: State, run: NodeRun) -> dict[str, Any]:
    """Name the object to segment (the VLM path; the rule plan already has one)."""
    from agents.identify import identify_object

    plan = _plan(state)
    run.inputs = {"instruction": plan.instruction, "category": plan.category.value}
    if plan.source == "rules" or plan.category == EditCategory.GLOBAL:
        run.outputs = {"object": plan.object, "skipped": "rule plan" if plan.source == "rules"
                       else "global edits have no object"}
        return {}
    answered = False
    if run.asks_vlm:
        image = run.context.store.get_image(state["source_image"])
        with run.fallback("identify"):
            plan = plan.model_copy(update={
                "object": identify_object(run.vlm, image, plan.instruction, plan.category)})
            answered = True
    if not answered:
        from agents.errors import InstructionNotUnderstoodError

        try:
            rules_plan = _rule_plan(run, plan.instruction)
            plan = plan.model_copy(update={"object": rules_plan.object, "box": rules_plan.box})
        except InstructionNotUnderstoodError:
            if not state.get("user_mask"):  # nothing else can say what to segment
                raise
            run.history("object", reason="the rules cannot read the instruction; the user's "
                        "mask says where to edit")
    run.outputs = {"object": plan.object}
    return {"plan": plan.model_dump(mode="json")}


def _rule_plan(run: NodeRun, instruction: str) -> EditPlan:
    """The rule parser's plan; its refusal says why the VLM did not plan, when it failed."""
    from agents.errors import InstructionNotUnderstoodError
    from agents.rules import parse_instruction

    try:
        return parse_instruction(instruction)
    except InstructionNotUnderstoodError as exc:
        failure = run.fallback_reason
        if failure:
            raise exc.after_vlm_failure(failure) from None
        raise


# -- mask ----------------------------------------------------------------------------------------


def mask_policy(run: NodeRun, retry: dict[str, Any]) -> Any:
    """The configured `MaskPolicy`, relaxed once per mask retry."""
    from tools.masks import MaskPolicy

    return policy.relaxed_policy(run.context.settings.mask_policy or MaskPolicy(), retry)


@traced("mask")
def mask(state: State, run: NodeRun) -> dict[str, Any]:
    """Find the area to edit: the user's mask, a segmentation, or a box for additions."""
    store, segmenter = run.context.store, run.context.segmenter
    plan = _plan(state)
    image = store.get_image(state["source_image"])
    user_mask = store.get_mask(state["user_mask"]) if state.get("user_mask") else None
    retry = state.get("retry") or {}
    rules = mask_policy(run, retry)
    run.inputs = {"category": plan.category.value, "object": plan.object,
                  "user_mask": state.get("user_mask")}
    run.params = {"policy": rules, "mask_relax": retry.get("mask_relax", 0),
                  "user_mask_extra_dilation_px": retry.get("extra_dilation_px", 0)}
    if user_mask is None and plan.category in NEEDS_SEGMENTATION and segmenter is None:
        raise MaskNeededError.no_segmenter(_what(plan))
    if user_mask is None and plan.category == EditCategory.ADDITION and plan.box is None:
        from graphs.placement import addition_box

        plan = addition_box(run, plan, image, rules)
    proposal = _propose(run, plan, image, user_mask, rules)
    mask, notes = proposal.mask, list(proposal.notes)
    extra = int(retry.get("extra_dilation_px", 0))
    if extra and proposal.source == "user":
        from tools.masks import dilate

        mask = dilate(mask, extra)
        notes.append(f"user mask dilated by {extra} px after the verifier blamed the mask")
    digest = store.put_mask(mask)
    run.outputs.update({"mask_source": proposal.source, "found": bool(proposal.found),
                        "coverage": round(float((mask > 0).mean()), 4), "notes": notes,
                        "proposal": proposal.summary()})
    run.images = {"source": state["source_image"], "mask": digest}
    return {"edit_mask": digest, "mask_source": str(proposal.source), "mask_notes": notes,
            "plan": plan.model_dump(mode="json")}


def _propose(run: NodeRun, plan: EditPlan, image: Any, user_mask: Any, rules: Any) -> Any:
    """`propose_mask`, once more relaxed when nothing was found, or `MaskNeededError`."""
    from tools.masks import propose_mask

    segmenter = run.context.segmenter
    try:
        proposal = propose_mask(plan, image, segmenter, box=plan.box, user_mask=user_mask,
                                policy=rules)
    except (ModelLoadError, ImportError, OSError) as exc:
        if user_mask is None and plan.category in NEEDS_SEGMENTATION:
            raise MaskNeededError.no_segmenter(_what(plan), load_error=str(exc)) from exc
        raise
    if not proposal.found and user_mask is None and proposal.source != "full":
        # Nothing found: one more look with lower thresholds and united boxes before giving up.
        relaxed = propose_mask(plan, image, segmenter, box=plan.box, user_mask=None,
                               policy=rules.relaxed())
        run.history("mask_relaxed", found=bool(relaxed.found),
                    reason="nothing found at the default thresholds; retried relaxed")
        if relaxed.found:
            proposal = relaxed
    if not proposal.found and user_mask is None and proposal.source != "full":
        why = "; ".join(proposal.notes) or "no detection"
        raise MaskNeededError(
            f"could not find {_what(plan)} in the image ({why}); give a mask of the area to edit",
            looked_for=_what(plan),
        )
    return proposal


@traced("review")
def review(state: State, run: NodeRun) -> dict[str, Any]:
    """Pause for a person to approve or replace the proposed mask (human in the loop).

    An unusable answer is asked again (with the error in the interrupt), since LangGraph replays
    a stored resume value: refusing it would leave the thread stuck on it for good.
    """
    from langgraph.types import interrupt

    from graphs.inputs import read_review_answer
    from graphs.requests import MAX_REVIEW_ANSWERS

    proposed = state["edit_mask"]
    payload = {
        "kind": "mask_review", "session_id": run.session_id, "turn": state.get("turn"),
        "attempt": state.get("attempt", 1), "image": state["source_image"],
        "image_url": artifact_url(state["source_image"]),
        "mask": proposed, "mask_url": artifact_url(proposed),
        "mask_source": state.get("mask_source"),
        "notes": state.get("mask_notes") or [], "instruction": state["instruction"],
    }
    decision = interrupt(payload)
    for asked in range(1, MAX_REVIEW_ANSWERS + 1):
        try:
            verdict, digest = read_review_answer(run.context.store, decision, state["source_image"],
                                                 access=run.context.inputs)
            break
        except BrushEditError as exc:
            if asked == MAX_REVIEW_ANSWERS:
                raise InvalidRequestError(f"the mask review got {asked} unusable answers "
                                          f"(the last: {exc}); the edit is cancelled") from None
            decision = interrupt({**payload, "error": str(exc), "notes": [
                f"the last answer was refused: {exc}", *payload["notes"]]})
    run.inputs = {"mask": proposed, "decision": decision}
    run.images = {"source": state["source_image"], "proposed_mask": proposed}
    if verdict == "replaced":
        run.history("review", decision="replaced", mask=digest)
        run.outputs = {"decision": "replaced"}
        run.images["mask"] = digest
        return {"edit_mask": digest, "mask_source": "user-review",
                "mask_notes": ["mask replaced during review"]}
    if verdict == "approved":
        run.history("review", decision="approved")
        run.outputs = {"decision": "approved"}
        return {}
    raise InvalidRequestError("the mask was rejected during review; the edit is cancelled")


def route_after_mask(state: State) -> Literal["review", "caption", "inpaint"]:
    """A person reviews the mask when asked to; a mask retry keeps the caption it had."""
    if state.get("mask_review"):
        return "review"
    return route_after_review(state)


def route_after_review(state: State) -> Literal["caption", "inpaint"]:
    return "inpaint" if state.get("edit_caption") else "caption"


# -- caption and inpaint -------------------------------------------------------------------------


@traced("caption")
def caption(state: State, run: NodeRun) -> dict[str, Any]:
    """Write the prompt the chosen inpainter wants (`tools.registry.prompt_style`): a caption of
    what the edited region shows afterwards for fill models, an edit instruction for instruction
    editors (a removal says what should be there instead, and that the rest stays). A caption
    the user gave is what the area shows: an instruction editor gets it inside its template."""
    from agents.rules import caption_for_plan, negative_for_plan
    from tools.registry import prompt_style

    plan = _plan(state)
    style = prompt_style(_options(state).inpainter)
    critique = (state.get("retry") or {}).get("critique")
    run.inputs = {"instruction": plan.instruction, "category": plan.category.value,
                  "object": plan.object, "critique": critique}
    text, negative = None, negative_for_plan(plan)
    user_caption = state.get("user_caption")
    if user_caption:
        plan = plan.model_copy(update={"target_caption": user_caption})
    if user_caption and not critique:
        run.params["source"] = "user"
    elif plan.source == "vlm" and run.asks_vlm:
        text, negative, plan = _vlm_caption(state, run, plan, critique, negative, style)
    if text is None:
        run.params.setdefault("source", "user" if user_caption else "rules")
        plan = plan.model_copy(update={"target_caption": caption_for_plan(plan)})
        text = caption_for_plan(plan, style)
    run.params.setdefault("source", "vlm")
    run.params["prompt_style"] = style
    plan = plan.model_copy(update={"negative_prompt": negative})
    run.outputs = {"caption": text, "prompt": text, "prompt_style": style,
                   "target_caption": plan.target_caption, "negative_prompt": negative}
    return {"edit_caption": text, "prompt_style": style, "plan": plan.model_dump(mode="json")}


def _vlm_caption(state: State, run: NodeRun, plan: EditPlan, critique: str | None,
                 negative: str | None, style: PromptStyle
                 ) -> tuple[str | None, str | None, EditPlan]:
    """The VLM's prompt of `style` (None after a fallback), the negative prompt, and the plan
    with its target caption. A removal's caption is the background that replaces the object (an
    instruction editor is told to put it there), and the object goes into the negative prompt
    (BrushNet's advice)."""
    from agents.caption import caption_target, describe_removal
    from agents.rules import caption_for_plan

    instruction = plan.instruction
    if critique:
        instruction = (f"{instruction}\n(The previous result was rejected: {critique} "
                       "Write a prompt that fixes this.)")
    image = run.context.store.get_image(state["source_image"])
    with run.fallback("caption"):
        if plan.category is EditCategory.REMOVAL:
            answer = describe_removal(run.vlm, image, instruction, plan.object)
            plan = plan.model_copy(update={"target_caption": answer.background})
            return caption_for_plan(plan, style), answer.removed, plan
        text = caption_target(run.vlm, image, instruction, plan.category, plan.object, style)
        if style == "caption":
            plan = plan.model_copy(update={"target_caption": text})
        return text, negative, plan
    return None, negative, plan


@traced("inpaint")
def inpaint(state: State, run: NodeRun) -> dict[str, Any]:
    """Paint the masked area; every sample is stored, measured and checked."""
    store = run.context.store
    plan = _plan(state)
    retry = state.get("retry") or {}
    options, seed = policy.attempt_options(_options(state), retry)
    name = options.inpainter
    _check_category(name, plan.category)  # before any weights load
    inpainter = load_inpainter(run.context.inpainters, name, on_event=run.emit)
    inpainter = inpainter.variant(int(retry.get("seed_offset", 0)))  # deterministic: new method
    attempt = state.get("attempt", 1)
    negative = join_prompts(plan.negative_prompt, options.negative_prompt)

    def progress(step: int, total: int, *_: Any, **__: Any) -> None:
        run.emit({"type": "progress", "node": "inpaint", "step": int(step),
                  "total": int(total), "attempt": attempt, "turn": state.get("turn")})

    run.inputs = {"caption": state.get("edit_caption"), "category": plan.category.value,
                  "mask": state["edit_mask"], "prompt_style": state.get("prompt_style")}
    knobs = options.resolved()  # what the inpainter runs with: its own where none was chosen
    run.params = {"inpainter": name, "seed": seed, "steps": knobs.steps,
                  "guidance_scale": knobs.guidance_scale,
                  "model_defaults": _model_defaults(name, options),
                  "conditioning_scale": options.conditioning_scale,
                  "samples": options.samples, "negative_prompt": negative,
                  "user_negative_prompt": options.negative_prompt,
                  "plan_negative_prompt": plan.negative_prompt, "blending": options.blending}
    if getattr(inpainter, "method", None):
        run.params["method"] = inpainter.method
    source, area = store.get_image(state["source_image"]), store.get_mask(state["edit_mask"])
    results = inpainter.inpaint(
        source, area, state.get("edit_caption") or "", category=plan.category, options=options,
        seed=seed, negative_prompt=negative, progress=progress, cancel=run.cancelled,
    )
    run.raise_if_cancelled("inpaint")  # a stop after the last step: its images are no result
    new = [_candidate(store, plan, source, image, area, state, attempt, seed)
           for image in results]
    if not new:
        raise BrushEditError(f"the {name} inpainter returned no image")
    run.outputs = {"candidates": [{k: c[k] for k in ("image", "metrics", "score")} for c in new]}
    _record_conductor(run, results[0])
    run.images = {"source": state["source_image"], "mask": state["edit_mask"],
                  **{f"result_{i}": c["image"] for i, c in enumerate(new)}}
    return {"candidates": [*(state.get("candidates") or []), *new]}


def _model_defaults(name: str, options: EditOptions) -> list[str]:
    """The knobs left to inpainter `name`'s own default: unset, and read by it (the OpenCV fill
    reads neither steps nor guidance, so it has none)."""
    from tools.registry import INPAINTERS

    reads = INPAINTERS[name].uses_options
    return [k for k in ("steps", "guidance_scale") if getattr(options, k) is None and k in reads]


def _check_category(name: str, category: EditCategory) -> None:
    """`UnsupportedEditError` (its sentence, from the backend's class) when the registered
    inpainter `name` cannot do `category`: a global edit on a fill model, an addition on opencv."""
    from tools.inpaint import INPAINTERS as CLASSES

    backend = CLASSES.get(name)
    if backend is not None:
        backend.check_category(category)


def _record_conductor(run: NodeRun, image: Any) -> None:
    """What a diffusers conductor did (`tools.conductors.run_record`: conductor, model,
    pipeline, prompt and its style, steps, guidance, seed, working size, crop) in the trace."""
    from tools.conductors.base import run_record

    record = run_record(image)
    if record is None:
        return
    data = record.as_dict()
    run.params.update(steps=record.steps, guidance_scale=record.guidance_scale,
                      negative_prompt=record.negative_prompt)
    run.outputs["conductor"] = data


def _candidate(store: Any, plan: EditPlan, source: Any, image: Any, area: Any, state: State,
               attempt: int, seed: int) -> dict[str, Any]:
    """Store one sample and measure it: metrics, objective checks (a conductor's result also
    the alignment of its raw output, `tools.metrics.conductor_checks`) and its score."""
    from tools.metrics import conductor_checks, edit_metrics, objective_checks

    metrics = {k: float(v) for k, v in edit_metrics(source, image, area).items()
               if isinstance(v, (int, float))}
    checks = [to_jsonable(c) for c in (*objective_checks(plan.category, source, image, area),
                                       *conductor_checks(plan.category, source, image, area))]
    return {"image": store.put_image(image), "attempt": attempt, "seed": seed,
            "mask": state["edit_mask"], "caption": state.get("edit_caption"),
            "metrics": metrics, "checks": checks, "verdict": None,
            "score": policy.score(metrics, checks)}


# -- verify and finish ---------------------------------------------------------------------------


@traced("verify")
def verify(state: State, run: NodeRun) -> Command[VerifyRoute]:
    """Judge this attempt (objective checks, then the VLM critique) and route: `finish` when
    accepted or out of attempts (`max_attempts`, set by `start`), else the blamed stage."""
    from langgraph.types import Command

    attempt = state.get("attempt", 1)
    plan = _plan(state)
    candidates = [dict(c) for c in state.get("candidates") or []]
    best = policy.best_of(candidates, attempt)
    failed = [c for c in best["checks"] if not c.get("passed", True)]
    vlm_verdict = _vlm_verdict(state, run, plan, best)
    decision = policy.judge(failed, vlm_verdict)
    verdict = {"attempt": attempt, "decision": decision.decision, "stage": decision.stage,
               "reason": decision.reason, "suggestion": decision.suggestion,
               "candidate": best["image"], "failed_checks": [c.get("name") for c in failed],
               "vlm": vlm_verdict, "by": "vlm+checks" if vlm_verdict else "checks"}
    for c in candidates:
        if c["image"] == best["image"] and c.get("attempt") == attempt:
            c["verdict"] = verdict
    run.inputs = {"candidate": best["image"], "attempt": attempt}
    run.verdict = verdict
    run.images = {"source": state["source_image"], "mask": best["mask"], "result": best["image"]}
    run.outputs = {"decision": decision.decision, "stage": decision.stage,
                   "reason": decision.reason}
    cap = int(state.get("max_attempts") or _options(state).max_attempts)
    where = policy.route(decision, attempt, cap)
    update: dict[str, Any] = {"candidates": candidates, "route": where,
                              "verdicts": [*(state.get("verdicts") or []), verdict]}
    if where == "give_up":
        run.history("give_up", reason=decision.reason, attempts=attempt)
    elif where != "accept":
        update.update(_retry(state, run, decision), attempt=attempt + 1)
    return Command(goto="finish" if where in ("accept", "give_up") else where, update=update)


def _vlm_verdict(state: State, run: NodeRun, plan: EditPlan, best: dict[str, Any]) -> Any:
    """The VLM's critique of the best candidate as JSON (None without one or after a fallback)."""
    if not run.asks_vlm:
        return None
    from agents.verify import verify_edit

    store = run.context.store
    with run.fallback("verify"):
        return to_jsonable(verify_edit(
            run.vlm, store.get_image(state["source_image"]), store.get_image(best["image"]),
            store.get_mask(best["mask"]), plan.instruction, plan))
    return None


def _retry(state: State, run: NodeRun, decision: policy.Decision) -> dict[str, Any]:
    """The next attempt's parameters for the blamed stage, recorded and announced."""
    knobs = run.context.settings
    steps = policy.RetrySteps(dilation_step_px=knobs.dilation_step_px,
                              guidance_step=knobs.guidance_step,
                              conditioning_step=knobs.conditioning_step)
    retry, changed = policy.next_retry(state.get("retry") or {}, decision, _options(state),
                                       mask_policy(run, {}), steps)
    stage = policy.blamed_stage(decision.stage)
    if stage == "inpaint":
        options = _options(state)
        method = getattr(load_inpainter(run.context.inpainters, options.inpainter).variant(
            retry["seed_offset"]), "method", None)
        if method:  # a deterministic fill changes method instead of seed
            changed = {"method": method}
    run.history("retry", stage=stage, reason=decision.reason, changed=changed)
    run.outputs["changed"] = changed
    run.emit({"type": "retry", "stage": stage, "reason": decision.reason,
              "attempt": state.get("attempt", 1), "changed": changed})
    return {"retry": retry}


@traced("finish")
def finish(state: State, run: NodeRun) -> dict[str, Any]:
    """Hand back the accepted candidate, or the best one with the verifier's last reason."""
    candidates = state.get("candidates") or []
    verdicts = state.get("verdicts") or []
    accepted = state.get("route") == "accept"
    chosen, reason = policy.final_choice(candidates, verdicts[-1] if verdicts else {}, accepted,
                                         state.get("attempt", 1))
    options = _options(state)
    result = EditResult(
        image=chosen["image"], source_image=state["source_image"],
        image_url=artifact_url(chosen["image"]),
        instruction=state["instruction"], plan=_plan(state), mask=chosen.get("mask"),
        caption=chosen.get("caption"), accepted=accepted, attempts=state.get("attempt", 1),
        reason=reason, planner=run.planner, inpainter=options.inpainter,
        candidates=[c["image"] for c in candidates], metrics=chosen.get("metrics") or {},
        session_id=run.session_id, turn=state.get("turn"),
    )
    run.outputs = {"accepted": accepted, "image": chosen["image"], "reason": reason,
                   "planner": run.planner}
    run.images = {"source": state["source_image"], "mask": chosen.get("mask"),
                  "result": chosen["image"]}
    update: dict[str, Any] = {"result": result.model_dump(mode="json")}
    if accepted:  # the next turn on this thread edits the accepted result
        update["current_image"] = chosen["image"]
    return update


# -- helpers -------------------------------------------------------------------------------------


def _what(plan: EditPlan) -> str:
    return f"“{plan.object}”" if plan.object else f"the area for this {plan.category.value} edit"
