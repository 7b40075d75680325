"""Additions placed by a named anchor: the words read, then the box from the anchor's box."""

from __future__ import annotations

import pytest

from agents.anchors import Anchor, find_anchor, place_by_anchor
from tools.types import Box


@pytest.mark.parametrize(
    ("instruction", "anchor", "relation"),
    [
        ("add a hat on the man", "man", "on"),
        ("Please put a vase on top of the wooden table.", "wooden table", "on"),
        ("add a dog next to the woman sitting on the bench", "woman", "beside"),
        ("add a lamp to the left of the sofa", "sofa", "left_of"),
        ("add a rug under the table", "table", "under"),
        ("add a ball in front of the dog", "dog", "in_front_of"),
        ("add a fish into the bowl", "bowl", "in"),
        # a relation that describes the new thing is passed over for the one that places it
        ("add a man in a red coat next to the car", "car", "beside"),
        ("add a man in red to the right of the car", "car", "right_of"),
        ("add a woman with a hat in front of the house", "house", "in_front_of"),
        ("add a cat in the corner next to the lamp", "lamp", "beside"),
        ("add a hat on the man in the photo", "man", "on"),
        ("add a bird with blue wings above the tall tree in the picture", "tall tree", "above"),
    ],
)
def test_an_addition_by_a_thing_names_it(instruction, anchor, relation):
    found = find_anchor(instruction)
    assert isinstance(found, Anchor) and (found.anchor, found.relation) == (anchor, relation)


@pytest.mark.parametrize(
    "instruction",
    ["add sunglasses", "add a cat in the top left corner", "add a bird in the sky",
     "add a man in a red coat", "add a girl in blue",
     "add a boat in the picture", "remove the cat on the sofa", "make the car on the left red"],
)
def test_no_anchor_where_there_is_no_thing_to_find(instruction):
    assert find_anchor(instruction) is None


MAN = Box(x0=100, y0=100, x1=300, y1=500)


def test_on_straddles_the_top_edge_and_stays_centred():
    hat = place_by_anchor(MAN, "on", (640, 600))
    assert hat.y0 < MAN.y0 < hat.y1 and hat.x0 + hat.x1 == MAN.x0 + MAN.x1
    assert hat.width < MAN.width and hat.height < MAN.height


def test_on_a_flat_surface_sits_inside_it():
    lake = Box(x0=0, y0=300, x1=600, y1=400)
    boat = place_by_anchor(lake, "on", (640, 480))
    assert lake.y0 <= boat.y0 < boat.y1 <= lake.y1


def test_beside_stands_on_the_same_ground_where_there_is_room():
    right = place_by_anchor(MAN, "beside", (640, 600))
    assert right.x0 == MAN.x1 and right.y1 == MAN.y1
    crowded = place_by_anchor(Box(x0=400, y0=100, x1=630, y1=500), "beside", (640, 600))
    assert crowded.x1 == 400  # no room on the right: on the left
    assert place_by_anchor(MAN, "left_of", (640, 600)).x1 <= MAN.x0 + 1


@pytest.mark.parametrize("relation", ["on", "above", "under", "beside", "left_of", "right_of",
                                      "in", "in_front_of"])
def test_every_place_is_inside_the_picture_and_not_empty(relation):
    for anchor in (MAN, Box(x0=0, y0=0, x1=30, y1=20), Box(x0=600, y0=560, x1=640, y1=600)):
        box = place_by_anchor(anchor, relation, (640, 600))
        assert 0 <= box.x0 < box.x1 <= 640 and 0 <= box.y0 < box.y1 <= 600
        assert box.width >= 8 and box.height >= 8
