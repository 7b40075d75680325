"""Removals end to end: background captions with the object in the negative prompt (rules and VLM
planners), and a verifier that rejects a smeared fill or a mask that cut the object in half."""

from __future__ import annotations

import numpy as np
from PIL import Image

from graphs.session import EditSession
from tests.graphs.helpers import make_components
from tests.tools.test_fill_checks import disc, spoon_scene, texture
from tools.inpaint import OpenCVInpainter
from tools.masks import dilate
from tools.types import EditOptions

OPENCV = EditOptions(inpainter="opencv", max_attempts=2)


def by_node(trace, node):
    return [e for e in trace if e["node"] == node]


def retries(trace):
    return [h for e in trace for h in e["outputs"].get("history", []) if h["event"] == "retry"]


def test_rules_removal_prompts_reach_the_inpainter(tmp_path):
    source, _table, bar = spoon_scene()
    session = EditSession.open(make_components(tmp_path / "d", planner="rules"))
    result = session.edit(Image.fromarray(source), "remove the spoon from the table",
                          mask=dilate(bar, 6), options=OPENCV)

    assert result.plan.target_caption == "empty table" and result.plan.negative_prompt == "spoon"
    trace = session.trace()
    (caption,) = by_node(trace, "caption")
    assert caption["outputs"] == {"caption": "empty table", "negative_prompt": "spoon",
                                  "target_caption": "empty table", "prompt": "empty table",
                                  "prompt_style": "caption"}  # BrushNet and OpenCV: caption style
    (inpaint,) = by_node(trace, "inpaint")
    assert inpaint["params"]["negative_prompt"] == "spoon, ugly, low quality"
    assert inpaint["params"]["user_negative_prompt"] == "ugly, low quality"
    assert inpaint["params"]["method"] == "fsr_fast"  # the measured default


def test_vlm_removal_prompts_come_from_the_model_and_keep_the_user_negative(tmp_path,
                                                                          fake_ollama):
    smart = fake_ollama.smart

    def respond(request):
        if request["format"].get("title") == "RemovalPrompt":
            return {"background": "smooth wooden table top", "removed": "silver spoon"}
        return smart(request)

    fake_ollama.responder = respond
    source, _table, bar = spoon_scene()
    components = make_components(tmp_path / "d", vlm=fake_ollama.vlm(), planner="vlm")
    session = EditSession.open(components)
    options = OPENCV.model_copy(update={"negative_prompt": "blurry, ugly"})
    result = session.edit(Image.fromarray(source), "remove the spoon", mask=dilate(bar, 6),
                          options=options)

    assert result.planner == "vlm" and result.caption == "smooth wooden table top"
    assert result.plan.negative_prompt == "silver spoon"
    trace = session.trace()
    (caption,) = by_node(trace, "caption")
    (call,) = caption["calls"]
    assert "Object to remove: spoon." in call["prompt"] and "negative prompt" in call["system"]
    assert caption["params"]["source"] == "vlm"
    (inpaint,) = by_node(trace, "inpaint")
    assert inpaint["params"]["negative_prompt"] == "silver spoon, blurry, ugly"
    assert [r["format"]["title"] for r in fake_ollama.chat_requests].count("RemovalPrompt") == 1


def test_verifier_rejects_a_smeared_fill_and_retries_with_another_method(tmp_path):
    truth = texture()
    mask = disc()
    source = truth.copy()
    source[mask > 0] = (40, 40, 200)
    components = make_components(tmp_path / "d", planner="rules",
                                 inpainters={"opencv": OpenCVInpainter(method="telea")})
    session = EditSession.open(components)
    result = session.edit(Image.fromarray(source), "remove the blue disc", mask=mask,
                          options=OPENCV)

    trace = session.trace()
    (retry,) = retries(trace)
    assert retry["stage"] == "inpaint" and "smeared" in retry["reason"]
    assert retry["changed"] == {"method": "fsr_fast"}
    first, second = by_node(trace, "inpaint")
    assert first["params"]["method"] == "telea" and second["params"]["method"] == "fsr_fast"
    verdicts = [v["outputs"]["decision"] for v in by_node(trace, "verify")]
    assert verdicts == ["retry", "accept"] and result.accepted and result.attempts == 2


def test_verifier_blames_a_mask_that_leaves_half_the_spoon(tmp_path):
    source, _table, bar = spoon_scene()
    lower = bar.copy()
    lower[:64] = 0
    session = EditSession.open(make_components(tmp_path / "d", planner="rules"))
    result = session.edit(Image.fromarray(source), "remove the spoon", mask=dilate(lower, 4),
                          options=OPENCV)

    trace = session.trace()
    (retry,) = retries(trace)
    assert retry["stage"] == "mask" and "left outside the mask" in retry["reason"]
    assert retry["changed"]["user_mask_extra_dilation_px"] == 12
    masks = by_node(trace, "mask")
    assert len(masks) == 2 and masks[1]["params"]["user_mask_extra_dilation_px"] == 12
    # dilation cannot reach the far half of the handle: the edit ends unaccepted, saying why
    assert not result.accepted and "left outside the mask" in result.reason


def test_verifier_accepts_a_clean_removal(tmp_path):
    source, table, bar = spoon_scene()
    session = EditSession.open(make_components(tmp_path / "d", planner="rules"))
    result = session.edit(Image.fromarray(source), "remove the spoon", mask=dilate(bar, 6),
                          options=OPENCV)

    assert result.accepted and result.attempts == 1
    (verify,) = by_node(session.trace(), "verify")
    assert verify["verdict"]["failed_checks"] == []
    assert verify["outputs"]["reason"] == "all objective checks passed"
    image = np.asarray(components_image(session, result.image))
    assert np.abs(image.astype(int) - table).max() < 40  # the bar is gone


def components_image(session, digest):
    return session.components.store.get_image(digest)
