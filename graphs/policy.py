"""The verifier's policy, as pure functions: score candidates, decide, plan the next retry.

Nothing here touches a model, a store or the graph: inputs are the JSON-safe values the state
holds (checks, verdicts, retry parameters), so every rule is unit-tested on its own
(tests/graphs/test_policy.py) and the `verify` node only wires them together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tools.option_specs import SEED_MAX
from tools.registry import INPAINTERS
from tools.types import EditOptions

STAGES = ("mask", "caption", "inpaint")
Route = Literal["accept", "give_up", "mask", "caption", "inpaint"]

MAX_GUIDANCE_SCALE = 30.0
MAX_CONDITIONING_SCALE = 10.0


@dataclass(frozen=True)
class RetrySteps:
    """How much one retry changes: extra mask dilation, guidance and conditioning scale."""

    dilation_step_px: int = 12
    guidance_step: float = 1.5
    conditioning_step: float = 0.2


@dataclass(frozen=True)
class Decision:
    """What the verifier concluded about one attempt (before the attempt cap applies)."""

    decision: Literal["accept", "retry"]
    stage: str | None
    """The blamed stage on a retry: mask, caption or inpaint."""
    reason: str
    suggestion: str | None = None


def score(metrics: dict[str, float], checks: list[dict[str, Any]]) -> list[float]:
    """Sort key for candidates: share of objective checks passed, then background PSNR."""
    passed = sum(1 for c in checks if c.get("passed", True))
    share = passed / len(checks) if checks else 1.0
    psnr = next((v for k, v in sorted(metrics.items()) if "psnr" in k.lower()), 0.0)
    psnr = min(float(psnr), 100.0) if psnr == psnr else 0.0
    return [round(share, 6), round(psnr, 4)]


def best_of(candidates: list[dict[str, Any]], attempt: int | None = None) -> dict[str, Any]:
    """The highest-scoring candidate (of one attempt, when given); the earliest wins ties."""
    pool = [c for c in candidates if attempt is None or c.get("attempt") == attempt]
    if not pool:
        raise ValueError(f"no candidate for attempt {attempt}")
    return max(pool, key=lambda c: c["score"])


def blamed_stage(value: Any) -> str:
    """A stage name as the verifier may spell it; anything unknown blames the inpainter."""
    return value if value in STAGES else "inpaint"


def judge(failed: list[dict[str, Any]], vlm_verdict: dict[str, Any] | None) -> Decision:
    """Objective checks first, then the VLM's critique.

    A failed check always means a retry; a mask that cut the object is blamed first, since
    refilling cannot bring it back. With every check passed, the VLM may still ask for one.
    """
    if failed:
        blamed = {c.get("stage") for c in failed}
        stage = "mask" if "mask" in blamed else blamed_stage(failed[0].get("stage"))
        reason = "; ".join(str(c.get("message") or c.get("name")) for c in failed)
        return Decision("retry", stage, reason)
    if vlm_verdict and vlm_verdict.get("decision") == "retry":
        return Decision(
            "retry", blamed_stage(vlm_verdict.get("stage")),
            str(vlm_verdict.get("reason") or "the verifier asked for another try"),
            vlm_verdict.get("suggestion"),
        )
    reason = (vlm_verdict or {}).get("reason") or "all objective checks passed"
    return Decision("accept", None, str(reason))


def route(decision: Decision, attempt: int, max_attempts: int) -> Route:
    """Where the graph goes next: accept, give up at the cap, or back to the blamed stage."""
    if decision.decision == "accept":
        return "accept"
    if attempt >= max_attempts:
        return "give_up"
    return blamed_stage(decision.stage)  # type: ignore[return-value]


def relaxed_policy(policy: Any, retry: dict[str, Any]) -> Any:
    """A `tools.masks.MaskPolicy` relaxed once per mask retry (lower thresholds, united boxes,
    1.5x dilation)."""
    for _ in range(int(retry.get("mask_relax", 0))):
        policy = policy.relaxed()
    return policy


RETRY_KNOBS = ("guidance_scale", "conditioning_scale", "steps")
"""The `EditOptions` fields an inpaint retry may change (each backend's own: `next_retry`)."""


def attempt_options(options: EditOptions, retry: dict[str, Any]) -> tuple[EditOptions, int]:
    """The options and seed of the attempt `retry` describes."""
    changes = {k: retry[k] for k in RETRY_KNOBS if k in retry}
    if changes:
        options = options.model_copy(update=changes)
    return options, retry_seed(options.seed, int(retry.get("seed_offset", 0)))


def retry_seed(seed: int, offset: int) -> int:
    """`seed + offset`, wrapping past `SEED_MAX` to 0 so a retry never leaves the seed range."""
    return (seed + offset) % (SEED_MAX + 1)


def next_retry(
    retry: dict[str, Any], decision: Decision, options: EditOptions, policy: Any,
    steps: RetrySteps,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The retry parameters after blaming `decision.stage`, and a record of what changed.

    mask: relax the mask policy once more and dilate a user mask by another step;
    caption: hand the critique to the captioner; inpaint: next seed, and BrushNet's guidance
    and conditioning up a step (capped), or a conductor's own knob (`_conductor_retry`).
    `options` are the turn's, before any retry; `policy` this attempt's, before the change.
    """
    retry = dict(retry)
    stage = blamed_stage(decision.stage)
    if stage == "mask":
        retry["mask_relax"] = int(retry.get("mask_relax", 0)) + 1
        retry["extra_dilation_px"] = int(retry.get("extra_dilation_px", 0)) + steps.dilation_step_px
        relaxed = relaxed_policy(policy, retry)
        return retry, {"mask_relax": retry["mask_relax"],
                       "removal_dilation_px": relaxed.removal_dilation_px,
                       "local_dilation_px": relaxed.local_dilation_px,
                       "union_boxes": relaxed.union_boxes,
                       "box_thresholds": list(relaxed.box_thresholds),
                       "user_mask_extra_dilation_px": retry["extra_dilation_px"]}
    if stage == "caption":
        retry["critique"] = decision.suggestion or decision.reason
        return retry, {"critique": retry["critique"]}
    if INPAINTERS[options.inpainter].is_conductor:
        return _conductor_retry(retry, options)
    current, _ = attempt_options(options.resolved(), retry)
    retry["seed_offset"] = int(retry.get("seed_offset", 0)) + 1
    retry["guidance_scale"] = round(
        min(float(current.guidance_scale or 0.0) + steps.guidance_step, MAX_GUIDANCE_SCALE), 3)
    retry["conditioning_scale"] = round(
        min(current.conditioning_scale + steps.conditioning_step, MAX_CONDITIONING_SCALE), 3)
    return retry, {"seed": retry_seed(options.seed, retry["seed_offset"]),
                   "guidance_scale": retry["guidance_scale"],
                   "conditioning_scale": retry["conditioning_scale"]}


def _conductor_retry(retry: dict[str, Any], options: EditOptions
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A conductor's inpaint retry: the next seed and the knobs that model has
    (`tools.conductors.retry_changes`: true CFG for Qwen, embedded guidance for FLUX.1 [dev],
    more steps for the step-distilled FLUX.2 klein), counted from the turn's options."""
    from tools.conductors.base import retry_changes

    retry["seed_offset"] = int(retry.get("seed_offset", 0)) + 1
    changes = retry_changes(INPAINTERS[options.inpainter], options, retry["seed_offset"])
    for knob in RETRY_KNOBS:
        retry.pop(knob, None)
    retry.update(changes)
    return retry, {"seed": retry_seed(options.seed, retry["seed_offset"]), **changes}


def final_choice(
    candidates: list[dict[str, Any]], last_verdict: dict[str, Any], accepted: bool, attempts: int
) -> tuple[dict[str, Any], str]:
    """The candidate a turn hands back and why: the accepted one, or the best by score."""
    if accepted:
        chosen = next(c for c in candidates if c["image"] == last_verdict.get("candidate"))
        return chosen, str(last_verdict.get("reason", ""))
    chosen = best_of(candidates)
    reason = (f"not accepted after {attempts} attempt(s): {last_verdict.get('reason', '')}; "
              f"returning the best candidate by objective metrics (attempt {chosen['attempt']})")
    return chosen, reason
