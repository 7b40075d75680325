"""An addition lands where the model meant, on the original picture, for every family.

The fake servers look at the picture they receive, find the magenta rectangle a test drew, and
write its place the way each family does (`tests.fakes.vlm_families`); the box `propose_box`
returns must be that rectangle on the original picture, within a few pixels.
"""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from agents.box import (
    BoxPlacement,
    BoxProposal,
    family_to_pixels,
    locate_box,
    propose_box,
    to_pixel_box,
)
from agents.errors import BoxProposalError, NoGroundingError
from agents.families import BoxConvention, family_named
from tests.fakes.ollama_server import FakeOllama, images_of
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.vlm_families import answer_box
from tools.types import Box


def scene(size: tuple[int, int], marker: tuple[int, int, int, int]) -> Image.Image:
    """A grey picture with a magenta rectangle where the new object belongs."""
    picture = Image.new("RGB", size, (128, 128, 128))
    ImageDraw.Draw(picture).rectangle((marker[0], marker[1], marker[2] - 1, marker[3] - 1),
                                      fill=(255, 0, 255))
    return picture


def assert_near(box: Box, marker: tuple[int, int, int, int], tolerance: float) -> None:
    off = max(abs(a - b) for a, b in zip(box.as_tuple(), marker, strict=True))
    assert off <= tolerance, f"{box.as_tuple()} is {off} px from {marker}"


CASES = [
    # family, original size, marker, tolerance in original pixels
    ("qwen2.5-vl", (2000, 1500), (1200, 300, 1500, 700), 5),
    ("qwen2.5-vl", (1008, 1008), (100, 600, 400, 900), 4),  # over the pixel budget: 980 x 980
    ("qwen2-vl", (1600, 900), (200, 100, 700, 500), 4),
    ("qwen3-vl", (1008, 756), (600, 400, 900, 700), 3),  # 0-1000 on a 1,008-px picture
    ("qwen3-vl", (756, 1008), (100, 650, 500, 950), 3),
    ("qwen3.5", (1280, 720), (50, 60, 400, 300), 4),
    ("minicpm-v", (1600, 1200), (800, 100, 1400, 500), 4),
    ("llava", (1200, 600), (100, 100, 500, 400), 5),  # wide: padded top and bottom
    ("llava", (500, 900), (250, 500, 450, 850), 5),  # tall: padded left and right
    ("unknown", (800, 600), (300, 200, 500, 400), 3),  # no rule: the checked heuristics
]


@pytest.mark.parametrize(("family", "size", "marker", "tolerance"), CASES)
def test_ollama_box_lands_on_the_marker(family, size, marker, tolerance):
    with FakeOllama.as_family(family) as server:
        placement = locate_box(server.vlm(), scene(size, marker), "add a cat")
    assert_near(placement.box, marker, tolerance)
    assert placement.family == family and placement.heuristic == (family == "unknown")
    assert placement.source == ("fallback" if family == "unknown" else placement.source)


def test_qwen3_grid_read_as_pixels_would_miss_by_far():
    """Today's guess read a 0-1000 answer as pixels once the picture reached 1,000 px."""
    marker = (600, 400, 900, 700)
    with FakeOllama.as_family("qwen3-vl") as server:
        placement = locate_box(server.vlm(), scene((1008, 756), marker), "add a cat")
    guessed = to_pixel_box(BoxProposal(bbox_2d=placement.answer), placement.sent, (1008, 756))
    assert max(abs(a - b) for a, b in zip(guessed.as_tuple(), marker, strict=True)) > 100
    assert_near(placement.box, marker, 3)


def test_qwen25_answers_in_the_frame_its_processor_resized_to():
    """A picture off the 28-pixel grid (500 x 375) is resized by the processor (to 504 x 364)
    before the model sees it; its pixels are of that frame."""
    marker = (300, 150, 450, 300)
    answer = answer_box("qwen2.5-vl", scene((500, 375), marker), "GroundedBox")
    assert max(answer["bbox_2d"]) > 450  # written in the larger frame, not the picture's
    corners = family_to_pixels(answer["bbox_2d"], family_named("qwen2.5-vl"), (500, 375),
                               (1000, 750))
    assert_near(Box.clamped(*corners, 1000, 750), tuple(2 * v for v in marker), 4)


def test_qwen25_is_sent_a_picture_its_processor_leaves_alone():
    with FakeOllama.as_family("qwen2.5-vl") as server:
        propose_box(server.vlm(), scene((1008, 1008), (10, 10, 90, 90)), "add a cat")
        (sent,) = images_of(server.requests_for("GroundedBox")[0])
        prompt = server.requests_for("GroundedBox")[0]["messages"][1]["content"]
    assert sent.size == (980, 980)  # 36 * 28 squared is over 1280 * 28 * 28 pixels
    assert "980 pixels wide and 980 pixels high" in prompt


def test_llava_is_sent_a_square():
    with FakeOllama.as_family("llava") as server:
        propose_box(server.vlm(), scene((1200, 600), (10, 10, 90, 90)), "add a cat")
        (sent,) = images_of(server.requests_for("GroundedBox")[0])
    assert sent.size == (672, 672)


def test_minicpm_box_tags_without_json_are_read():
    marker = (800, 100, 1400, 500)
    with FakeOllama.as_family("minicpm-v", bare_boxes=True) as server:
        placement = locate_box(server.vlm(), scene((1600, 1200), marker), "add a cat")
        request = server.requests_for("TaggedBox")[0]
    assert "<box>x1 y1 x2 y2</box>" in request["messages"][1]["content"]
    assert placement.raw.startswith("<ref>object</ref><box>")
    assert_near(placement.box, marker, 4)


@pytest.mark.parametrize("family", ["gemma3", "llama3.2-vision", "moondream"])
def test_a_family_without_grounding_is_not_asked(family):
    with FakeOllama.as_family(family) as server:
        vlm = server.vlm()
        with pytest.raises(NoGroundingError) as caught:
            propose_box(vlm, scene((640, 480), (10, 10, 90, 90)), "add a hat on the man")
        assert server.chat_requests == []
    refusal = caught.value
    assert isinstance(refusal, BoxProposalError)
    assert refusal.family == family and refusal.model == vlm.model
    assert "a mask or a box" in str(refusal) and "--" not in str(refusal)


@pytest.mark.parametrize(
    ("model", "family", "size", "marker", "options"),
    [
        ("Qwen/Qwen3-VL-8B-Instruct", "qwen3-vl", (1008, 756), (600, 400, 900, 700), {}),
        ("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2.5-vl", (2000, 1500), (1200, 300, 1500, 700), {}),
        ("llava-hf/llava-1.5-7b-hf", "llava", (1200, 600), (100, 100, 500, 400), {}),
        ("openbmb/MiniCPM-V-2_6", "minicpm-v", (1600, 1200), (800, 100, 1400, 500),
         {"json_schema": False}),
    ],
)
def test_openai_server_box_lands_on_the_marker(model, family, size, marker, options):
    with FakeOpenAI(models=[model], family=family, **options) as server:
        placement = locate_box(server.vlm(), scene(size, marker), "add a cat")
    assert isinstance(placement, BoxPlacement) and placement.family == family
    assert placement.source == "name" and not placement.heuristic
    assert_near(placement.box, marker, 5)


def test_a_box_outside_the_picture_names_the_family():
    with FakeOllama.as_family("qwen3-vl") as server:
        server.queue({"bbox_2d": [1100, 1100, 1200, 1200]})
        with pytest.raises(BoxProposalError, match="no area") as caught:
            propose_box(server.vlm(), scene((640, 480), (10, 10, 90, 90)), "add a cat")
    assert caught.value.family == "qwen3-vl"


def test_every_convention_is_covered_here():
    conventions = {BoxConvention.GRID_1000, BoxConvention.RESIZED_PIXELS,
                   BoxConvention.BOX_TAG_1000, BoxConvention.PADDED_SQUARE_1,
                   BoxConvention.HEURISTIC, BoxConvention.NONE}
    assert conventions == set(BoxConvention)


def test_a_box_that_is_not_finite_is_re_asked():
    marker = (300, 200, 500, 400)
    with FakeOllama.as_family("qwen3-vl") as server:
        server.queue('{"bbox_2d": [NaN, 0, 10, 10]}')
        placement = locate_box(server.vlm(), scene((800, 600), marker), "add a cat")
        assert len(server.requests_for("GroundedBox")) == 2
    assert_near(placement.box, marker, 3)


def test_a_served_alias_goes_by_the_checkpoint_vllm_serves():
    """`vllm serve Qwen/Qwen3-VL-8B-Instruct --served-model-name vlm`: the name says nothing,
    `/v1/models` says `root`; read as pixels the 0-1000 answer would land elsewhere."""
    marker = (600, 400, 900, 700)
    with FakeOpenAI(models=["vlm"], family="qwen3-vl",
                    roots={"vlm": "Qwen/Qwen3-VL-8B-Instruct"}) as server:
        vlm = server.vlm()
        placement = locate_box(vlm, scene((1008, 756), marker), "add a cat")
    assert placement.family == "qwen3-vl" and not placement.heuristic
    assert vlm.family.evidence == "served from 'Qwen/Qwen3-VL-8B-Instruct'"
    assert vlm.family.model == "vlm" and placement.model == "vlm"
    assert_near(placement.box, marker, 3)


def test_an_alias_of_an_unknown_checkpoint_stays_unknown_and_says_so():
    with FakeOpenAI(models=["vlm"], roots={"vlm": "/models/mystery-vision"}) as server:
        match = server.vlm().family
    assert match.source == "fallback" and match.heuristic and "'vlm'" in match.evidence
