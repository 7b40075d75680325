"""Box conversions: units, layouts, rescaling and clamping."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from PIL import Image

from agents.box import BoxProposal, propose_box, to_pixel_box
from agents.errors import BoxProposalError
from tests.fakes.ollama_server import by_schema
from tools.types import Box


def convert(values, layout="corners", units="pixels", seen=(1000, 500), original=(2000, 1000)):
    proposal = BoxProposal(bbox_2d=values, layout=layout, units=units)
    return to_pixel_box(proposal, seen, original)


def test_pixels_in_the_sent_image_are_rescaled_to_the_original():
    assert convert([100, 50, 300, 250]) == Box(x0=200, y0=100, x1=600, y1=500)


def test_normalised_1000():
    box = convert([100, 100, 500, 500], units="normalized_1000")
    assert box == Box(x0=200, y0=100, x1=1000, y1=500)


def test_normalised_1_detected_even_when_claimed_as_pixels():
    assert convert([0.1, 0.2, 0.5, 0.6]) == Box(x0=200, y0=200, x1=1000, y1=600)


def test_0_1000_detected_when_pixels_overflow_a_small_picture():
    box = convert([100, 600, 300, 900], seen=(400, 300), original=(400, 300))
    assert box == Box(x0=40, y0=180, x1=120, y1=270)


def test_xywh_declared_and_detected():
    expected = Box(x0=200, y0=100, x1=400, y1=300)
    assert convert([100, 50, 100, 100], layout="xywh") == expected
    assert convert([100, 50, 100, 100], layout="corners") == expected  # x1 <= x0: must be w/h


def test_clamped_to_the_image():
    assert convert([900, 400, 1200, 900]) == Box(x0=1800, y0=800, x1=2000, y1=1000)


def test_box_outside_the_image_is_a_clear_error():
    with pytest.raises(BoxProposalError, match="no area"):
        convert([1100, 600, 1200, 700], seen=(1000, 500))


@given(
    x0=st.integers(0, 990), y0=st.integers(0, 490), w=st.integers(1, 500), h=st.integers(1, 300),
    width=st.integers(64, 4000), height=st.integers(64, 4000),
)
def test_any_pixel_answer_maps_inside_the_original(x0, y0, w, h, width, height):
    seen = (1000, 500)
    values = [x0, y0, min(x0 + w, 1000), min(y0 + h, 500)]
    assume(max(values) > 1)  # all values <= 1 reads as 0-1 normalised, by design
    try:
        box = convert(values, seen=seen, original=(width, height))
    except BoxProposalError:
        return  # a sliver that rounds to nothing on a smaller original
    assert 0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height
    assert abs(box.x0 - values[0] * width / seen[0]) <= 1
    assert abs(box.y1 - values[3] * height / seen[1]) <= 1


@given(st.floats(0.01, 0.45), st.floats(0.01, 0.45), st.floats(0.05, 0.5), st.floats(0.05, 0.5))
def test_units_agree(x, y, w, h):
    """The same box in 0-1, 0-1000 and pixel units lands on (nearly) the same pixels."""
    seen, original = (1008, 756), (1600, 1200)
    corners = [x, y, x + w, y + h]
    a = convert(corners, units="normalized_1", seen=seen, original=original)
    b = convert([v * 1000 for v in corners], units="normalized_1000", seen=seen, original=original)
    c = convert([corners[0] * seen[0], corners[1] * seen[1], corners[2] * seen[0],
                 corners[3] * seen[1]], seen=seen, original=original)
    for other in (b, c):
        assert max(abs(p - q) for p, q in zip(a.as_tuple(), other.as_tuple(), strict=True)) <= 2


def test_propose_box_sends_a_grid_snapped_picture_and_rescales(fake_ollama):
    fake_ollama.responder = by_schema({"GroundedBox": {"bbox_2d": [28, 56, 280, 280]}})
    box = propose_box(fake_ollama.vlm(), Image.new("RGB", (2000, 1500), "gray"), "add a kite")
    request = fake_ollama.requests_for("GroundedBox")[0]
    assert "1008 pixels wide and 756 pixels high" in request["messages"][1]["content"]
    scale = 2000 / 1008
    assert box == Box.clamped(28 * scale, 56 * scale, 280 * scale, 280 * scale, 2000, 1500)
