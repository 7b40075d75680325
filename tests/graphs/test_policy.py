"""The verifier's policy on its own: no graph, no model, no store."""

from __future__ import annotations

import pytest

from graphs import policy
from graphs.policy import Decision, RetrySteps
from tools.masks import MaskPolicy
from tools.option_specs import SEED_MAX
from tools.types import EditOptions


def check(name: str, passed: bool, stage: str | None = None, message: str | None = None):
    return {"name": name, "passed": passed, "stage": stage, "message": message}


def test_score_ranks_checks_passed_before_background_psnr():
    all_pass = policy.score({"background_psnr": 20.0}, [check("a", True), check("b", True)])
    half = policy.score({"background_psnr": 90.0}, [check("a", True), check("b", False)])
    assert all_pass == [1.0, 20.0] and half == [0.5, 90.0]
    assert all_pass > half
    assert policy.score({"psnr": float("nan")}, []) == [1.0, 0.0]  # NaN never wins
    assert policy.score({"psnr": float("inf")}, []) == [1.0, 100.0]  # identical images cap


def test_best_of_picks_within_an_attempt_and_keeps_the_earliest_on_ties():
    cands = [{"image": "a", "attempt": 1, "score": [1.0, 30.0]},
             {"image": "b", "attempt": 2, "score": [1.0, 40.0]},
             {"image": "c", "attempt": 2, "score": [1.0, 40.0]}]
    assert policy.best_of(cands)["image"] == "b"
    assert policy.best_of(cands, attempt=1)["image"] == "a"
    with pytest.raises(ValueError, match="attempt 3"):
        policy.best_of(cands, attempt=3)


def test_failed_checks_decide_before_the_vlm_and_blame_the_mask_first():
    failed = [check("leftover", False, "inpaint", "object still visible"),
              check("cut", False, "mask", "mask cut the object")]
    decision = policy.judge(failed, {"decision": "accept", "reason": "looks fine"})
    assert decision == Decision("retry", "mask", "object still visible; mask cut the object")
    unknown = policy.judge([check("odd", False, "colour")], None)
    assert unknown.stage == "inpaint" and unknown.reason == "odd"


def test_the_vlm_verdict_decides_when_every_check_passes():
    retry = policy.judge([], {"decision": "retry", "stage": "caption", "reason": "wrong colour",
                              "suggestion": "say red"})
    assert retry == Decision("retry", "caption", "wrong colour", "say red")
    assert policy.judge([], {"decision": "accept", "reason": "done"}).reason == "done"
    assert policy.judge([], None) == Decision("accept", None, "all objective checks passed")


def test_route_accepts_retries_the_blamed_stage_and_gives_up_at_the_cap():
    retry = Decision("retry", "caption", "wrong colour")
    assert policy.route(Decision("accept", None, "ok"), 3, 3) == "accept"
    assert policy.route(retry, 1, 3) == "caption"
    assert policy.route(retry, 3, 3) == "give_up"
    assert policy.route(retry, 1, 1) == "give_up"


def test_an_inpaint_retry_moves_seed_guidance_and_conditioning_up_to_their_caps():
    options = EditOptions(seed=7, guidance_scale=29.0, conditioning_scale=1.0)
    decision = Decision("retry", "inpaint", "blurry")
    retry, changed = policy.next_retry({}, decision, options, MaskPolicy(), RetrySteps())
    assert retry == {"seed_offset": 1, "guidance_scale": 30.0, "conditioning_scale": 1.2}
    assert changed == {"seed": 8, "guidance_scale": 30.0, "conditioning_scale": 1.2}
    again, changed = policy.next_retry(retry, decision, options, MaskPolicy(), RetrySteps())
    assert again["seed_offset"] == 2 and again["guidance_scale"] == 30.0
    assert again["conditioning_scale"] == 1.4 and changed["seed"] == 9
    attempt, seed = policy.attempt_options(options, again)
    assert (attempt.guidance_scale, attempt.conditioning_scale, seed) == (30.0, 1.4, 9)
    assert retry == {"seed_offset": 1, "guidance_scale": 30.0, "conditioning_scale": 1.2}


def test_a_conductor_retry_turns_that_models_own_knob():
    """FLUX.1 Fill's embedded guidance goes down from its own 30, FLUX.2 klein (distilled, no
    guidance) gets more steps than its own 4; BrushNet's guidance counts from its own 7.5."""
    decision = Decision("retry", "inpaint", "drifted")
    fill = EditOptions(inpainter="flux-fill", seed=3)
    retry, changed = policy.next_retry({}, decision, fill, MaskPolicy(), RetrySteps())
    assert retry == {"seed_offset": 1, "guidance_scale": 25.0}
    assert changed == {"seed": 4, "guidance_scale": 25.0}
    retry, _ = policy.next_retry(retry, decision, fill, MaskPolicy(), RetrySteps())
    attempt, seed = policy.attempt_options(fill, retry)
    assert (attempt.guidance_scale, attempt.steps, seed) == (20.0, None, 5)
    klein = EditOptions(inpainter="flux2-klein")
    retry, changed = policy.next_retry({}, decision, klein, MaskPolicy(), RetrySteps())
    assert retry == {"seed_offset": 1, "steps": 6} and "guidance_scale" not in changed
    assert policy.attempt_options(klein, retry)[0].steps == 6
    chosen = EditOptions(inpainter="flux2-klein", steps=50)  # asked for 50: 50, then 52
    assert policy.next_retry({}, decision, chosen, MaskPolicy(), RetrySteps())[0]["steps"] == 52
    brushnet, _ = policy.next_retry({}, decision, EditOptions(), MaskPolicy(), RetrySteps())
    assert brushnet["guidance_scale"] == 9.0 and "steps" not in brushnet


def test_a_retry_from_the_largest_seed_wraps_to_zero_instead_of_leaving_the_range():
    options = EditOptions(seed=SEED_MAX)
    decision = Decision("retry", "inpaint", "blurry")
    retry, changed = policy.next_retry({}, decision, options, MaskPolicy(), RetrySteps())
    assert changed["seed"] == 0 and policy.attempt_options(options, retry)[1] == 0
    retry, changed = policy.next_retry(retry, decision, options, MaskPolicy(), RetrySteps())
    assert changed["seed"] == 1 and policy.attempt_options(options, retry)[1] == 1


def test_a_mask_retry_relaxes_the_policy_once_more_and_dilates_user_masks():
    base = MaskPolicy()
    decision = Decision("retry", "mask", "cut")
    steps = RetrySteps(dilation_step_px=5)
    retry, changed = policy.next_retry({}, decision, EditOptions(), base, steps)
    assert retry == {"mask_relax": 1, "extra_dilation_px": 5}
    relaxed = base.relaxed()
    assert changed["removal_dilation_px"] == relaxed.removal_dilation_px
    assert changed["box_thresholds"] == list(relaxed.box_thresholds)
    retry, changed = policy.next_retry(retry, decision, EditOptions(), base, steps)
    assert retry == {"mask_relax": 2, "extra_dilation_px": 10}
    assert changed["local_dilation_px"] == relaxed.relaxed().local_dilation_px
    assert policy.relaxed_policy(base, retry) == relaxed.relaxed()


def test_a_caption_retry_hands_over_the_suggestion_or_the_reason():
    with_hint = Decision("retry", "caption", "wrong colour", "say red")
    retry, changed = policy.next_retry({"seed_offset": 1}, with_hint, EditOptions(), None,
                                       RetrySteps())
    assert retry == {"seed_offset": 1, "critique": "say red"} and changed == {"critique": "say red"}
    retry, _ = policy.next_retry({}, Decision("retry", "caption", "wrong colour"), EditOptions(),
                                 None, RetrySteps())
    assert retry["critique"] == "wrong colour"


def test_final_choice_returns_the_accepted_candidate_or_the_best_with_why():
    cands = [{"image": "a", "attempt": 1, "score": [0.5, 30.0]},
             {"image": "b", "attempt": 2, "score": [1.0, 20.0]}]
    chosen, reason = policy.final_choice(cands, {"candidate": "a", "reason": "fine"}, True, 2)
    assert chosen["image"] == "a" and reason == "fine"
    chosen, reason = policy.final_choice(cands, {"candidate": "a", "reason": "blurry"}, False, 2)
    assert chosen["image"] == "b"
    assert reason.startswith("not accepted after 2 attempt(s): blurry") and "attempt 2" in reason
