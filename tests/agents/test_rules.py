"""The rule parser: accuracy on the labelled set, and the behaviours it promises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.rules import caption_for_plan, parse_instruction
from tools.types import EditCategory, EditPlan

DATA = Path(__file__).resolve().parents[1] / "data" / "instructions.jsonl"


def load_rows() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]


def test_labelled_set_is_big_and_covers_every_category():
    rows = load_rows()
    assert len(rows) >= 120
    assert {r["category"] for r in rows} == {c.value for c in EditCategory}


def test_accuracy_on_the_labelled_set():
    rows = load_rows()
    plans = [parse_instruction(r["text"]) for r in rows]
    category = sum(p.category.value == r["category"] for p, r in zip(plans, rows, strict=True))
    obj = sum(p.object == r["object"] for p, r in zip(plans, rows, strict=True))
    n = len(rows)
    print(f"\nrule parser: category {category / n:.1%}, object {obj / n:.1%} (n={n})")
    assert category / n >= 0.90
    assert obj / n >= 0.85


@pytest.mark.parametrize(
    ("text", "category", "obj", "caption"),
    [
        ("Replace the cat with a corgi", "local", "cat", "a corgi"),
        ("add a bird on the branch", "addition", None, "a bird"),
        ("Change the white cat to a black dog", "local", "white cat", "a black dog"),
        ("don't touch the sky, just remove the cat", "removal", "cat", "background"),
        ("the cat, remove it", "removal", "cat", "background"),
        ("change the background to a beach", "background", None, "a beach"),
        ("make the car red", "local", "car", "red car"),
        ("let's see it in winter", "global", None, None),
    ],
)
def test_examples(text, category, obj, caption):
    plan = parse_instruction(text)
    assert (plan.category.value, plan.object) == (category, obj)
    assert plan.source == "rules" and plan.instruction == text
    if caption is not None:
        assert plan.target_caption == caption
    assert plan.target_caption


def test_objects_are_at_most_five_words():
    plan = parse_instruction("remove the very big old rusty red vintage pickup truck")
    assert plan.object is not None and len(plan.object.split()) <= 5


def test_caption_for_plan_never_empty():
    for category in EditCategory:
        plan = EditPlan(instruction="do something", category=category)
        assert caption_for_plan(plan).strip()
    assert caption_for_plan(EditPlan(instruction="x", category="addition", object="kite")) == "a kite"
    assert caption_for_plan(EditPlan(instruction="x", category="local", target_caption=" a fox ")) \
        == "a fox"


@pytest.mark.parametrize("text", ["", "   ", "???", "hello there"])
def test_odd_input_still_gives_a_plan(text):
    plan = parse_instruction(text)
    assert isinstance(plan.category, EditCategory)
    assert plan.confidence is not None and plan.confidence <= 0.6
