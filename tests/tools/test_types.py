"""The edit vocabulary's validation: categories, boxes, plans and options."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tools import Box, EditCategory, EditOptions, EditPlan


def test_category_aliases() -> None:
    assert EditCategory.parse(" Remove ") is EditCategory.REMOVAL
    assert EditCategory.parse("GLOBAL") is EditCategory.GLOBAL
    with pytest.raises(ValueError):
        EditCategory.parse("recolour")


def test_box_validation_and_clamping() -> None:
    with pytest.raises(ValidationError, match="empty"):
        Box(x0=10, y0=10, x1=10, y1=20)
    box = Box.clamped(-5, 3.6, 900, 50, width=100, height=40)
    assert box.as_tuple() == (0, 4, 100, 40) and box.area == 100 * 36
    with pytest.raises(ValidationError):
        Box.clamped(200, 0, 300, 10, width=100, height=40)


def test_plan_and_options_round_trip_as_json() -> None:
    plan = EditPlan(
        instruction="add a bird",
        category="addition",
        box=Box(x0=1, y0=2, x1=3, y1=4),
        target_caption="a bird",
    )
    assert EditPlan.model_validate_json(plan.model_dump_json()) == plan
    with pytest.raises(ValidationError):
        EditOptions(steps=0)
    with pytest.raises(ValidationError):
        EditOptions(inpainter="photoshop")
