"""Where an addition's new object goes, and how the trace says it was decided.

1. The VLM's box, read by its family's rule (`agents.box.locate_box`); the trace row keeps the
   `BoxPlacement` (rule, how the family was found, heuristics or not, the model's own numbers).
2. A family that cannot point (`NoGroundingError`) is not asked: the place comes from the
   detector when the instruction names a thing to put the object by ("add a hat on the man":
   the segmenter finds "man", `agents.anchors.place_by_anchor` puts the hat on it), else the
   edit is refused with `PlacementNeededError` (a mask of the place is needed). Never a made-up
   place.
3. Planned by the rules (chosen, or after the VLM failed): the named thing when the detector
   finds it, else the middle third of the picture, said in the history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tools.errors import ModelLoadError, PlacementNeededError
from tools.types import Box, EditPlan

if TYPE_CHECKING:
    from agents.anchors import Anchor
    from agents.errors import NoGroundingError
    from graphs.tracing import NodeRun


def addition_box(run: NodeRun, plan: EditPlan, image: Any, rules: Any) -> EditPlan:
    """`plan` with the box its new object goes in (see the module); `rules` is the mask policy
    whose detector thresholds find an anchor."""
    from agents.box import locate_box
    from agents.errors import NoGroundingError

    cannot_point: NoGroundingError | None = None
    if run.asks_vlm:
        with run.fallback("propose_box"):
            try:
                return _by_model(run, plan, locate_box(run.vlm, image, plan.instruction))
            except NoGroundingError as exc:
                cannot_point = exc
    placed = _by_anchor(run, plan, image, rules, cannot_point)
    if placed is not None:
        return placed
    if cannot_point is not None:
        raise _refusal(cannot_point)
    box = default_box(image.size)
    run.outputs["placement"] = {"by": "default", "box": box.as_tuple()}
    run.history("default_box", box=box, reason="no VLM box proposal; a centred box was used "
                "(give a mask to choose where)")
    return plan.model_copy(update={"box": box})


def _by_model(run: NodeRun, plan: EditPlan, placement: Any) -> EditPlan:
    """The model's box, its reading kept in the trace; heuristics are said in the history."""
    run.outputs["placement"] = {
        "by": "model", "box": placement.box.as_tuple(), "model": placement.model,
        "family": placement.family, "convention": placement.convention.value,
        "family_source": placement.source, "heuristic": placement.heuristic,
        "answer": placement.answer, "sent": list(placement.sent),
    }
    if placement.heuristic:
        run.history("heuristic_box", model=placement.model, family=placement.family,
                    reason="no known box rule for this model's family: its units and layout "
                    "were read by the checked heuristics (name its family to use the family's "
                    "rule)")
    return plan.model_copy(update={"box": placement.box})


def _by_anchor(run: NodeRun, plan: EditPlan, image: Any, rules: Any,
               cannot_point: NoGroundingError | None) -> EditPlan | None:
    """The place next to the detected thing the instruction names, or None (no such thing,
    or planned by the rules and not found). A family that cannot point is refused instead
    when the thing cannot be found."""
    from agents.anchors import find_anchor, place_by_anchor

    anchor = find_anchor(plan.instruction)
    if anchor is None:
        return None
    detected, why = _detect(run, image, anchor, rules)
    if detected is None:
        if cannot_point is not None:
            raise _refusal(cannot_point, anchor=anchor.anchor, why=why)
        run.history("anchor_not_found", anchor=anchor.anchor, reason=why)
        return None
    box = place_by_anchor(detected, anchor.relation, image.size)
    run.outputs["placement"] = {
        "by": "anchor", "box": box.as_tuple(), "anchor": anchor.anchor,
        "relation": anchor.relation, "words": anchor.words, "detected": detected.as_tuple(),
        "family": cannot_point.family if cannot_point is not None else None,
    }
    who = (f"{cannot_point.family_label} cannot point at places" if cannot_point is not None
           else "planned by the rules")
    run.history("anchor_box", anchor=anchor.anchor, relation=anchor.relation, box=box,
                reason=f"{who}: placed {anchor.words!r} by the detected {anchor.anchor!r}")
    return plan.model_copy(update={"box": box})


def _detect(run: NodeRun, image: Any, anchor: Anchor, rules: Any) -> tuple[Box | None, str]:
    """The anchor's detected box (the segmenter's best), or None and why not."""
    segmenter = run.context.segmenter
    if segmenter is None:
        return None, "no detector is set up"
    try:
        found = rules.segment(segmenter, image, anchor.anchor)
    except (ModelLoadError, ImportError, OSError) as exc:
        return None, f"the detector could not load: {exc}"
    run.outputs["anchor_detection"] = found.summary()
    boxes = found.chosen_boxes if found.found else []
    if not boxes:
        return None, "the detector found nothing"
    return boxes[0], ""


def _refusal(cannot_point: NoGroundingError, **anchor: Any) -> PlacementNeededError:
    return PlacementNeededError(cannot_point.model or "the model", cannot_point.family_label,
                                **anchor)


def default_box(size: tuple[int, int]) -> Box:
    """The middle third of the image, where an addition planned by the rules goes."""
    width, height = size
    return Box(x0=width // 3, y0=height // 3, x1=max(width * 2 // 3, width // 3 + 1),
               y1=max(height * 2 // 3, height // 3 + 1))
