"""Robustness metrics against values worked out by hand on tiny inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evals.metrics import (
    background_metrics,
    compare_to_canonical,
    mask_iou,
    normalise_object,
    object_agrees,
    plans_equal,
    robustness_score,
    singularise,
    summarise,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eyes", "eye"),
        ("a red car.", "red car"),
        ("those glasses", "glass"),
        ("puppies", "puppy"),
        ("the bus", "bus"),
        ("cat's", "cat"),
        ("", None),
        (None, None),
        ("the", None),
    ],
)
def test_normalise_object(text, expected):
    assert normalise_object(text) == expected


def test_singularise_leaves_singulars_alone():
    assert [singularise(w) for w in ("grass", "cactus", "iris", "tree")] == [
        "grass",
        "cactus",
        "iris",
        "tree",
    ]


def test_agreement():
    assert object_agrees("the cats", "Cat")
    assert object_agrees(None, "")
    assert not object_agrees("cat", "dog")
    assert plans_equal(
        {"category": "removal", "object": "The cat"}, {"category": "removal", "object": "cats"}
    )
    assert not plans_equal(
        {"category": "local", "object": "cat"}, {"category": "removal", "object": "cat"}
    )
    assert plans_equal({"category": None}, {"category": "removal"}) is None


def test_mask_iou_by_hand():
    a = np.zeros((4, 4), np.uint8)
    b = np.zeros((4, 4), np.uint8)
    a[0:2, 0:2] = 255  # 4 pixels
    b[1:3, 1:3] = 255  # 4 pixels, 1 shared
    assert mask_iou(a, b) == pytest.approx(1 / 7)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    assert mask_iou(a, None) is None
    with pytest.raises(ValueError, match="shapes differ"):
        mask_iou(a, np.zeros((3, 3)))


def test_background_metrics_follow_the_paper_formula():
    source = np.zeros((16, 16, 3), np.uint8)
    result = source.copy()
    mask = np.zeros((16, 16), np.uint8)
    mask[:8] = 255  # top half is the edit
    result[:8] = 200  # change inside only: background untouched
    clean = background_metrics(source, result, mask)
    assert clean["bg_mse"] == 0.0
    assert clean["bg_psnr"] == 100.0  # identical background: the cap
    assert clean["bg_ssim"] == pytest.approx(1.0)
    assert clean["change_inside"] == pytest.approx(200 / 255)

    result[8:, :] = 51  # every background pixel off by 0.2 on the [0, 1] scale
    dirty = background_metrics(source, result, mask)
    # ((s - r)(1 - m))^2 summed, over unmasked pixels x channels: 0.2^2
    assert dirty["bg_mse"] == pytest.approx(0.04)
    assert dirty["bg_psnr"] == pytest.approx(10 * math.log10(1 / 0.04))


def _row(item, family, index, category, obj, planner="rules", **extra):
    return {
        "item": item,
        "family": family,
        "index": index,
        "planner": planner,
        "category": category,
        "object": obj,
        "ok": True,
        **extra,
    }


def test_robustness_and_agreement_by_hand():
    rows = [
        _row(
            "a",
            "canonical",
            0,
            "removal",
            "cat",
            expected_category="removal",
            expected_object="cat",
            mask="m0",
        ),
        _row("a", "typos", 0, "removal", "cats", mask="m0"),  # same plan, same mask
        _row("a", "typos", 1, "removal", "cta", mask="m1"),  # object differs, mask half
        _row("a", "casing", 0, "local", "cat", mask="m0"),  # category differs
        _row("a", "casing", 1, None, None, ok=False, error_type="X"),  # no plan: not counted
    ]
    masks = {
        "m0": np.array([[255, 255], [0, 0]], np.uint8),
        "m1": np.array([[255, 0], [0, 0]], np.uint8),
    }
    compared = compare_to_canonical(rows, load_mask=masks.__getitem__)
    by_key = {(r["family"], r["index"]): r for r in compared}
    assert by_key[("typos", 0)]["plan_equal"] is True
    assert by_key[("typos", 1)]["plan_equal"] is False
    assert by_key[("typos", 1)]["iou_canonical"] == 0.5
    assert by_key[("casing", 0)]["category_agrees"] is False
    assert "plan_equal" not in by_key[("casing", 1)]
    assert by_key[("canonical", 0)]["category_correct"] is True
    assert "plan_equal" not in by_key[("canonical", 0)]
    variants = [r for r in compared if r["family"] != "canonical"]
    assert robustness_score(variants) == pytest.approx(1 / 3)
    assert robustness_score([r for r in variants if r["family"] == "typos"]) == 0.5
    summary = summarise(compared)
    assert summary["robustness"] == pytest.approx(1 / 3)
    assert summary["category_agreement"] == pytest.approx(2 / 3)
    assert summary["object_agreement"] == pytest.approx(2 / 3)
    assert summary["iou_canonical"] == pytest.approx((1.0 + 0.5 + 1.0) / 3)
    assert summary["errors"] == {"X": 1}
    assert summary["planned"] == 4


def test_rows_of_other_planners_and_items_are_not_mixed():
    rows = [
        _row("a", "canonical", 0, "removal", "cat"),
        _row("a", "canonical", 0, "local", "cat", planner="vlm"),
        _row("a", "typos", 0, "local", "cat", planner="vlm"),
        _row("b", "typos", 0, "local", "cat"),  # item b has no canonical row: not compared
    ]
    compared = compare_to_canonical(rows)
    assert compared[2]["plan_equal"] is True
    assert "plan_equal" not in compared[3]
    assert robustness_score(compared) == 1.0
    assert robustness_score([]) is None
