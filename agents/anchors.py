"""Where an addition goes when the instruction names a thing to put it by: "a hat on the man".

A model family that cannot point (Gemma, Llama 3.2 Vision, moondream) is never asked for a box.
Its additions can still be placed when the instruction names an anchor the detector can find:
`find_anchor` reads the anchor and the relation from the words, and `place_by_anchor` turns the
anchor's detected box into the new object's box. The shapes are rules of thumb (a thing "on"
something straddles its top edge, a thing "next to" it stands on the same ground), meant to put
the object in the right part of the picture for the inpainter, not to size it exactly. No model,
no detector here: the graph finds the anchor's box and calls this.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.phrases import normalise_noun_phrase, vocab
from tools.types import Box, EditCategory

Relation = Literal["on", "above", "under", "beside", "left_of", "right_of", "in", "in_front_of"]

_RELATIONS: tuple[tuple[str, Relation], ...] = (
    ("on top of", "on"), ("onto", "on"), ("atop", "on"), ("on", "on"),
    ("above", "above"), ("over", "above"),
    ("underneath", "under"), ("beneath", "under"), ("below", "under"), ("under", "under"),
    ("next to", "beside"), ("beside", "beside"), ("near", "beside"), ("by", "beside"),
    ("to the left of", "left_of"), ("left of", "left_of"),
    ("to the right of", "right_of"), ("right of", "right_of"),
    ("in front of", "in_front_of"),
    ("inside", "in"), ("into", "in"), ("in", "in"),
)
_NOT_THINGS = vocab(
    "picture image photo photograph scene frame it them middle center centre left right top "
    "bottom corner side edge foreground background distance front back sky"
)
"""Anchors the detector cannot find as one thing: the picture itself and places in it."""
_DESCRIBES_THE_NEW_THING = vocab("a an another some")
"""Articles that start a description of the added thing itself ("a man in a red coat")."""
_COLOURS = vocab(
    "red orange yellow green blue purple violet pink brown black white grey gray gold golden "
    "silver beige navy dark light bright pale"
)
"""A phrase of colours alone ("a man in red") describes the new thing, not a thing to find."""


class Anchor(BaseModel):
    """The thing an addition goes by, as the instruction says it."""

    model_config = ConfigDict(frozen=True)

    anchor: str = Field(description="Noun phrase for the detector: `man`, `wooden table`.")
    relation: Relation
    words: str = Field(description="The relation and anchor as written: `on the man`.")


def find_anchor(instruction: str) -> Anchor | None:
    """The anchor of an addition ("add a hat on the man" -> on / man); None for other edits,
    or when the place named is the picture itself or a part of it ("in the top left corner").

    The first relation whose words name a definite thing wins, reading left to right: a
    relation that describes the new thing ("a man *in a red coat* next to the car", "a man in
    red") or names a place that is no thing ("a cat in the corner next to the lamp") is passed
    over, and a relation inside the anchor's own clause ("next to the woman *sitting on the
    bench*") comes after the anchor and is never reached.
    """
    from agents.rules import parse_instruction

    if parse_instruction(instruction).category is not EditCategory.ADDITION:
        return None
    text = " ".join(instruction.lower().replace("’", "'").split()).rstrip(".!?")
    for phrase, rest in _relations(text):
        anchor = _thing(rest)
        if anchor is not None:
            return Anchor(anchor=anchor, relation=dict(_RELATIONS)[phrase],
                          words=f"{phrase} {rest}")
    return None


def _relations(text: str) -> list[tuple[str, str]]:
    """(relation words, the rest of the text) for every relation, left to right; where two
    start at one place ("in front of", "in") the longer comes first."""
    longest_first = sorted((phrase for phrase, _ in _RELATIONS), key=len, reverse=True)
    return [(phrase, text[start + len(phrase):].strip())
            for start in range(1, len(text)) if text[start - 1] == " "
            for phrase in longest_first if text.startswith(phrase + " ", start)]


def _thing(words: str) -> str | None:
    """The noun phrase `words` start with, when it names a thing already in the picture."""
    first = words.split()[0] if words.split() else ""
    if first in _DESCRIBES_THE_NEW_THING:
        return None
    anchor = normalise_noun_phrase(words)
    if not anchor or set(anchor.split()) & _NOT_THINGS or set(anchor.split()) <= _COLOURS:
        return None
    return anchor


def place_by_anchor(anchor: Box, relation: Relation, image_size: tuple[int, int]) -> Box:
    """The new object's box, from the anchor's box and the relation, inside the picture."""
    width, height = image_size
    aw, ah = anchor.width, anchor.height
    cx = (anchor.x0 + anchor.x1) / 2
    if relation == "on" and aw >= 2.5 * ah:  # a flat surface (a lake, a road, a rug): on it
        relation = "in"
    if relation in ("on", "above", "under", "in", "in_front_of"):
        w, h = aw * 0.5, ah * (0.5 if relation == "in" else 0.3)
        y0 = {
            "on": anchor.y0 - h / 2,  # straddles the top edge
            "above": anchor.y0 - h,  # just over it
            "under": anchor.y1 - h / 2,  # straddles the bottom edge
            "in": (anchor.y0 + anchor.y1) / 2 - h / 2,
            "in_front_of": anchor.y1 - h,  # over the lower part
        }[relation]
        return _inside(cx - w / 2, y0, w, h, width, height)
    w, h = aw * 0.6, ah * 0.8
    room_right, room_left = width - anchor.x1, anchor.x0
    right = relation == "right_of" or (relation == "beside" and room_right >= min(w, room_left))
    w = min(w, max(room_right if right else room_left, 8.0))  # narrower, not over the anchor
    x0 = anchor.x1 if right else anchor.x0 - w
    return _inside(x0, anchor.y1 - h, w, h, width, height)  # on the same ground


def _inside(x0: float, y0: float, w: float, h: float, width: int, height: int) -> Box:
    """The box moved (not cut) into the picture, at least 8 pixels a side."""
    w, h = min(max(w, 8.0), width), min(max(h, 8.0), height)
    x0 = min(max(x0, 0.0), width - w)
    y0 = min(max(y0, 0.0), height - h)
    return Box.clamped(x0, y0, x0 + w, y0 + h, width, height)
