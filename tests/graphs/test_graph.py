"""The editing graph end to end: VLM path (fake Ollama), retries, offline fallback, review."""

from __future__ import annotations

import numpy as np
import pytest

from graphs.session import EditSession, MaskReview
from tests.graphs.helpers import DarkSegmenter, make_components, nodes_of, object_mask, picture
from tools.errors import MaskNeededError, UnsupportedEditError
from tools.types import EditOptions

FAST = {"steps": 3}


@pytest.fixture
def vlm_components(tmp_path, fake_ollama, tiny_brushnet):
    return make_components(
        tmp_path / "data", vlm=fake_ollama.vlm(), planner="vlm", segmenter=DarkSegmenter(),
        inpainters={"brushnet": tiny_brushnet}, inpainter="brushnet",
    )


def test_full_vlm_edit_with_tiny_brushnet(vlm_components):
    events = []
    session = EditSession.open(vlm_components)
    result = session.edit(picture(), "remove the dark square", options=EditOptions(
        inpainter="brushnet", **FAST), on_event=events.append)

    assert result.accepted and result.planner == "vlm" and result.attempts == 1
    assert result.inpainter == "brushnet" and result.plan.category.value == "removal"
    assert vlm_components.store.path(result.image).is_file()
    assert result.metrics["psnr_outside"] > 30  # blending kept the background
    trace = session.trace()
    assert nodes_of(trace) == ["start", "classify", "identify", "mask", "caption", "inpaint",
                               "verify", "finish"]
    by_node = {e["node"]: e for e in trace}
    for node in ("classify", "identify", "caption", "verify"):
        (call,) = by_node[node]["calls"]
        assert call["prompt"] and call["system"] and call["raw"] and call["parsed"]
        assert call["model"].endswith("qwen2.5vl:7b")
    assert by_node["mask"]["images"]["mask"] and by_node["mask"]["outputs"]["mask_source"]
    assert by_node["inpaint"]["params"]["seed"] == 1234
    assert by_node["verify"]["verdict"]["decision"] == "accept"
    kinds = {e["type"] for e in events}
    assert {"turn", "node", "progress", "result"} <= kinds
    steps = [e for e in events if e["type"] == "progress"]
    assert steps[-1]["step"] == steps[-1]["total"]


def test_rejected_attempt_takes_the_retry_branch(vlm_components, fake_ollama):
    fake_ollama.set_verdicts("retry:inpaint", "accept")
    session = EditSession.open(vlm_components)
    result = session.edit(picture(), "remove the dark square",
                          options=EditOptions(inpainter="brushnet", **FAST))

    assert result.accepted and result.attempts == 2 and len(result.candidates) == 2
    trace = session.trace()
    assert nodes_of(trace).count("inpaint") == 2 and nodes_of(trace).count("verify") == 2
    first, second = [e for e in trace if e["node"] == "inpaint"]
    assert second["params"]["seed"] == first["params"]["seed"] + 1
    assert second["params"]["guidance_scale"] > first["params"]["guidance_scale"]
    retry = next(e for e in trace if e["node"] == "verify")
    assert retry["verdict"]["decision"] == "retry" and retry["verdict"]["stage"] == "inpaint"
    assert retry["outputs"]["history"][0]["reason"] == "the inpaint step went wrong"
    assert nodes_of(trace).count("caption") == 1  # only the blamed stage re-ran


def test_mask_retry_relaxes_the_policy_then_gives_up_with_best(vlm_components, fake_ollama):
    fake_ollama.set_verdicts("retry:mask", "retry:caption", "retry:inpaint")
    session = EditSession.open(vlm_components)
    result = session.edit(picture(), "remove the dark square",
                          options=EditOptions(inpainter="brushnet", max_attempts=3, **FAST))

    assert not result.accepted and result.attempts == 3
    assert "not accepted after 3 attempt(s)" in result.reason
    assert result.image in result.candidates
    trace = session.trace()
    masks = [e for e in trace if e["node"] == "mask"]
    assert len(masks) == 2 and masks[1]["params"]["mask_relax"] == 1
    assert vlm_components.segmenter.calls[1]["union"] is True
    captions = [e for e in trace if e["node"] == "caption"]
    assert len(captions) == 2 and captions[1]["inputs"]["critique"] == "redo the caption"
    assert "previous result was rejected" in captions[1]["calls"][0]["prompt"]
    history = [h for e in trace for h in e["outputs"].get("history", [])]
    assert [h["stage"] for h in history if h["event"] == "retry"] == ["mask", "caption"]
    assert history[-1]["event"] == "give_up"


def test_offline_falls_back_to_rules_and_opencv(tmp_path):
    from agents.ollama_vlm import OllamaVLM
    from tests.conftest import closed_port

    vlm = OllamaVLM(model="qwen2.5vl:7b", host=f"http://127.0.0.1:{closed_port()}", timeout=2)
    components = make_components(tmp_path / "data", vlm=vlm, planner="auto")
    events = []
    session = EditSession.open(components)
    result = session.edit(picture(), "remove the dark square", mask=object_mask(),
                          on_event=events.append)

    assert result.planner == "rules" and result.inpainter == "opencv" and result.accepted
    assert any(e["type"] == "fallback" for e in events)
    start = next(e for e in session.trace() if e["node"] == "start")
    assert start["outputs"]["history"][0]["event"] == "fallback"
    assert "no answer at" in start["outputs"]["history"][0]["reason"]
    assert "ollama serve" in start["outputs"]["history"][0]["reason"]  # the fix, in words
    classify = next(e for e in session.trace() if e["node"] == "classify")
    assert classify["calls"] == []  # the probe said no: the VLM is not asked at all


class CountingProbeVLM:
    """A VLM whose server probe is counted and always says it is down."""

    def __init__(self) -> None:
        self.checks = 0

    def check(self):
        from agents.ollama_vlm import OllamaStatus

        self.checks += 1
        return OllamaStatus(host="http://nowhere", model="m", error="no answer at nowhere",
                            fix="start it with `ollama serve`")

    def chat(self, *args, **kwargs):  # pragma: no cover - the probe keeps the VLM out
        raise AssertionError("the VLM must not be called when its probe failed")


def test_planner_probe_is_cached_between_runs(tmp_path):
    vlm = CountingProbeVLM()
    components = make_components(tmp_path / "data", vlm=vlm, planner="auto")
    session = EditSession.open(components)
    for _ in range(3):
        result = session.edit(picture(), "remove the dark square", mask=object_mask())
        assert result.planner == "rules"
    assert vlm.checks == 1
    components.vlm_probe.forget()  # as if its time had run out
    session.edit(picture(), "remove the dark square", mask=object_mask())
    assert vlm.checks == 2


def test_planner_vlm_reports_an_unreachable_server(tmp_path):
    from agents.errors import VLMUnavailableError
    from agents.ollama_vlm import OllamaVLM
    from tests.conftest import closed_port

    vlm = OllamaVLM(model="m", host=f"http://127.0.0.1:{closed_port()}", timeout=2)
    session = EditSession.open(make_components(tmp_path / "d", vlm=vlm, planner="vlm"))
    with pytest.raises(VLMUnavailableError, match="ollama serve"):
        session.edit(picture(), "remove the dark square", mask=object_mask())
    assert session.turns()[0].status == "failed"


def test_no_segmenter_and_no_mask_says_what_to_do(tmp_path):
    session = EditSession.open(make_components(tmp_path / "d", planner="rules"))
    with pytest.raises(MaskNeededError, match=r"give a mask.*brushedit doctor"):
        session.edit(picture(), "remove the dark square")


def test_opencv_refuses_non_removal_edits(tmp_path):
    session = EditSession.open(make_components(tmp_path / "d", planner="rules"))
    with pytest.raises(UnsupportedEditError):
        session.edit(picture(), "make the square red", mask=object_mask())


def test_mask_review_interrupt_and_resume(tmp_path):
    components = make_components(tmp_path / "d", planner="rules", segmenter=DarkSegmenter())
    session = EditSession.open(components)
    paused = session.submit(picture(), "remove the dark square", review_mask=True)

    assert isinstance(paused, MaskReview) and session.pending() == paused
    assert components.store.has(paused.mask) and session.unfinished()
    assert nodes_of(session.trace())[-1] == "mask"  # nothing ran past the proposal
    replacement = np.zeros((64, 64), np.uint8)
    replacement[10:50, 10:50] = 255
    result = session.resume({"mask": replacement})

    assert result.accepted and session.pending() is None
    assert components.store.get_mask(result.mask).sum() == replacement.sum()
    review = next(e for e in session.trace() if e["node"] == "review")
    assert review["outputs"]["decision"] == "replaced"
    assert nodes_of(session.trace()).count("mask") == 1  # resume did not redo the mask

    approved = session.edit(picture(1), "remove the dark square", review_mask=True,
                            review=lambda pending: {"approve": True})
    assert approved.turn == 2 and approved.accepted


def test_plan_runs_the_graph_to_the_mask_and_stops(tmp_path, fake_ollama):
    components = make_components(
        tmp_path / "data", vlm=fake_ollama.vlm(), planner="vlm", segmenter=DarkSegmenter()
    )
    session = EditSession.open(components)
    planned = session.plan(picture(), "remove the dark square")

    assert planned.planner == "vlm" and planned.plan.category.value == "removal"
    assert planned.plan.target_caption, "a plan always carries a caption"
    mask = components.store.get_mask(planned.mask)
    assert mask.dtype == np.uint8 and mask.any()
    assert nodes_of(session.trace()) == ["start", "classify", "identify", "mask"]
    assert fake_ollama.requests_for("Verdict") == [], "nothing was inpainted or verified"
    (turn,) = session.turns()
    assert turn.status == "planned" and turn.image is None
    follow = session.edit(picture(), "remove the dark square", mask=object_mask())
    assert follow.turn == 2 and follow.accepted, "a planned turn does not block the next edit"
