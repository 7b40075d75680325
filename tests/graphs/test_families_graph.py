"""Additions through the graph for every model family, on Ollama and on an OpenAI-compatible
server: the new object lands where the model meant on the original picture, a family that
cannot point places it by the detected anchor or refuses in one sentence, and a thinking
model's answers are used end to end with the trace saying so."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from agents.anchors import place_by_anchor
from agents.errors import VLMFormatIgnoredError
from graphs.session import EditSession
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.vlm_families import FAKE_FAMILIES
from tests.graphs.helpers import DarkSegmenter, make_components, picture
from tools.errors import PlacementNeededError
from tools.types import Box, EditOptions

POINTING = [name for name in FAKE_FAMILIES
            if name not in ("gemma3", "llama3.2-vision", "moondream")]
BLIND = ["gemma3", "llama3.2-vision", "moondream"]
SERVERS = ["ollama", "openai"]
MEANT = (130, 30, 170, 62)
"""Where the magenta marker says the new object goes, in pixels of the 200x120 picture."""
MEANT_SMALL = (40, 4, 60, 20)
"""The same on the graph tests' 64x64 picture (small enough for a quick tiny BrushNet run)."""


@contextlib.contextmanager
def family_server(kind: str, family: str, **behaviour: Any) -> Iterator[Any]:
    """A fake Ollama or OpenAI-compatible server whose model answers as `family` does."""
    if kind == "ollama":
        server = FakeOllama.as_family(family, **behaviour)
    else:
        server = FakeOpenAI(models=[FAKE_FAMILIES[family].model], family=family, **behaviour)
    with server:
        yield server


def marked_picture() -> Image.Image:
    """A wide textured picture (so square-padding and grids matter) with the marker."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:120, 0:200]
    pixels = np.stack([90 + x // 2, 120 + y // 2, 150 + (x + y) // 4], axis=-1)
    pixels = pixels + rng.integers(-5, 6, pixels.shape)
    x0, y0, x1, y1 = MEANT
    pixels[y0:y1, x0:x1] = (255, 0, 255)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def small_marked_picture() -> Image.Image:
    pixels = np.array(picture())
    x0, y0, x1, y1 = MEANT_SMALL
    pixels[y0:y1, x0:x1] = (255, 0, 255)
    return Image.fromarray(pixels)


def mask_row(session: EditSession) -> dict[str, Any]:
    return next(e for e in session.trace() if e["node"] == "mask")


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("family", POINTING)
def test_an_addition_lands_where_the_model_meant(tmp_path, kind, family):
    with family_server(kind, family) as server:
        components = make_components(tmp_path / "d", vlm=server.vlm(), planner="vlm")
        session = EditSession.open(components)
        planned = session.plan(marked_picture(), "add a red balloon")
    assert planned.planner == "vlm" and planned.plan.category.value == "addition"
    box = planned.plan.box.as_tuple()
    assert max(abs(a - b) for a, b in zip(box, MEANT, strict=True)) <= 3, (family, box)
    placement = mask_row(session)["outputs"]["placement"]
    assert placement["by"] == "model" and placement["family"] == family
    assert placement["heuristic"] is (family == "unknown")
    assert len(placement["answer"]) == 4 and placement["sent"]
    history = mask_row(session)["outputs"].get("history") or []
    assert any(h["event"] == "heuristic_box" for h in history) is (family == "unknown")


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("family", BLIND)
def test_a_family_that_cannot_point_puts_it_by_the_detected_anchor(tmp_path, kind, family):
    with family_server(kind, family) as server:
        components = make_components(tmp_path / "d", vlm=server.vlm(), planner="vlm",
                                     segmenter=DarkSegmenter())
        session = EditSession.open(components)
        planned = session.plan(picture(), "add a hat on the man")
        asked_for_boxes = [r for r in server.chat_requests if "bbox_2d" in str(r)]
    man = Box(x0=20, y0=20, x1=40, y1=40)  # what the detector finds: the dark square
    assert planned.plan.box == place_by_anchor(man, "on", (64, 64))
    assert not asked_for_boxes  # the family is never asked where
    placement = mask_row(session)["outputs"]["placement"]
    assert placement["by"] == "anchor" and placement["anchor"] == "man"
    assert placement["detected"] == [20, 20, 40, 40] and placement["family"] == family


@pytest.mark.parametrize("planner", ["vlm", "auto"])
@pytest.mark.parametrize("kind", SERVERS)
def test_without_an_anchor_it_refuses_in_one_sentence_never_a_centred_box(tmp_path, kind,
                                                                           planner):
    with family_server(kind, "gemma3") as server:
        components = make_components(tmp_path / "d", vlm=server.vlm(), planner=planner,
                                     segmenter=DarkSegmenter())
        session = EditSession.open(components)
        with pytest.raises(PlacementNeededError) as caught:
            session.edit(picture(), "add a hat")
    message = str(caught.value)
    assert "gemma3:4b (Gemma 3) cannot point at places" in message
    assert "give a mask of where the new object goes" in message and "\n" not in message
    assert caught.value.field == "mask" and caught.value.anchor is None
    assert session.turns()[0].status == "failed"
    assert not [e for e in session.trace() if e["node"] == "inpaint"]


def test_an_anchor_the_detector_cannot_find_is_refused_naming_it(tmp_path):
    class Blind(DarkSegmenter):
        def _segment(self, image, phrase, *args):
            return super()._segment(Image.new("RGB", image.size, "white"), phrase, *args)

    with family_server("ollama", "moondream") as server:
        components = make_components(tmp_path / "d", vlm=server.vlm(), planner="vlm",
                                     segmenter=Blind())
        with pytest.raises(PlacementNeededError) as caught:
            EditSession.open(components).edit(picture(), "add a hat on the man")
    assert caught.value.anchor == "man" and "“man”" in str(caught.value)
    assert "the detector found nothing" in str(caught.value)


@pytest.mark.parametrize("kind", SERVERS)
def test_a_thinking_model_is_used_end_to_end_and_traced(tmp_path, tiny_brushnet, kind):
    behaviour = {"json_in_thinking": True} if kind == "ollama" else {"thinks": True,
                                                                     "json_in_thinking": True}
    with family_server(kind, "qwen3-vl", **behaviour) as server:
        components = make_components(tmp_path / "d", vlm=server.vlm(), planner="vlm",
                                     segmenter=DarkSegmenter(),
                                     inpainters={"brushnet": tiny_brushnet},
                                     inpainter="brushnet")
        session = EditSession.open(components)
        result = session.edit(small_marked_picture(), "add a red balloon", options=EditOptions(
            inpainter="brushnet", steps=1, max_attempts=1))
    assert result.planner == "vlm" and result.plan.source == "vlm" and result.accepted
    box = result.plan.box.as_tuple()
    assert max(abs(a - b) for a, b in zip(box, MEANT_SMALL, strict=True)) <= 2
    calls = [c for e in session.trace() for c in e["calls"]]
    assert {c["family"] for c in calls} == {"qwen3-vl"}
    assert all(c["from_thinking"] is True and c["parsed"] for c in calls)
    assert {c["parsed"].get("decision") for c in calls} >= {"accept"}  # the verdict too


@pytest.mark.parametrize("kind", SERVERS)
def test_a_model_that_ignores_the_format_is_the_same_error_on_both_servers(tmp_path, kind):
    with family_server(kind, "qwen3-vl", ignores_format="always") as server:
        components = make_components(tmp_path / "d", vlm=server.vlm(invalid_answer_retries=1),
                                     planner="vlm")
        with pytest.raises(VLMFormatIgnoredError) as caught:
            EditSession.open(components).edit(picture(), "add a hat")
    assert caught.value.family_label == "Qwen3-VL" and "Qwen3-VL" in str(caught.value)
