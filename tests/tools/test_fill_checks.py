"""The removal checks that need no model: smeared or flat fills, and objects cut by the mask."""

from __future__ import annotations

import numpy as np
import pytest

from tools.fill_checks import leftover_measure, smear_measure
from tools.inpaint import OpenCVInpainter
from tools.masks import dilate
from tools.metrics import objective_checks

SIZE = 128


def texture(seed: int = 0) -> np.ndarray:
    """A wood-like background: stripes with a wobble and grain (textured at any scale)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    stripes = np.sin((x + 6 * np.sin(y / 9.0)) / 2.2) * 45
    grain = rng.normal(0, 14, (SIZE, SIZE))
    import cv2

    grain = cv2.GaussianBlur(grain, (0, 0), 1.2) * 2.2
    base = np.stack([150 + stripes + grain, 100 + stripes * 0.7 + grain, 60 + grain], -1)
    return np.clip(base, 0, 255).astype(np.uint8)


def disc(cx: int = 64, cy: int = 64, r: int = 22) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    return (((x - cx) ** 2 + (y - cy) ** 2 <= r * r) * 255).astype(np.uint8)


def by_name(checks):
    return {c.name: c for c in checks}


def test_a_smeared_fill_fails_and_the_true_background_passes():
    truth = texture()
    mask = disc()
    source = truth.copy()
    source[mask > 0] = (40, 40, 200)  # the object to remove
    telea = OpenCVInpainter(method="telea").fill(source, mask)

    smeared = by_name(objective_checks("removal", source, telea, mask))
    assert not smeared["fill_texture"].passed and smeared["fill_texture"].stage == "inpaint"
    assert "smeared" in smeared["fill_texture"].message
    clean = by_name(objective_checks("removal", source, truth, mask))
    assert all(c.passed for c in clean.values()), {n: c.message for n, c in clean.items()}
    assert clean["fill_texture"].value > 0.7


def test_a_flat_fill_fails_the_colour_check():
    truth = texture(1)
    mask = disc()
    flat = truth.copy()
    flat[mask > 0] = truth[mask == 0].mean(axis=0).astype(np.uint8)
    checks = by_name(objective_checks("removal", truth, flat, mask))
    assert not checks["fill_colour"].passed and "flat" in checks["fill_colour"].message
    assert checks["fill_colour"].value < 0.01


def test_a_smooth_fill_next_to_a_plain_wall_is_right():
    wall = np.full((SIZE, SIZE, 3), 180, np.uint8)
    wall[..., 0] = np.linspace(150, 200, SIZE).astype(np.uint8)[None, :]
    mask = disc()
    source = wall.copy()
    source[mask > 0] = 20
    filled = OpenCVInpainter(method="telea").fill(source, mask)
    checks = by_name(objective_checks("removal", source, filled, mask))
    assert checks["fill_texture"].passed and "plain" in checks["fill_texture"].message
    measure = smear_measure(filled, mask)
    assert measure.measurable and measure.ring.gradient < 0.008


def spoon_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source, the table without the bar, the bar's mask): a long bright bar (a spoon handle)
    on a smooth table."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    table = np.stack([120 + x // 4, 90 + y // 6, 60 + 0 * x], -1).astype(np.uint8)
    bar = ((np.abs(x - 64) <= 6) & (y >= 14) & (y <= 114)).astype(np.uint8) * 255
    source = table.copy()
    source[bar > 0] = (225, 225, 230)
    source[(bar > 0) & (np.abs(x - 62) <= 1)] = (160, 160, 170)  # a groove along the handle
    return source, table, bar


def test_a_mask_that_cuts_the_object_in_half_is_blamed():
    source, table, bar = spoon_scene()
    lower = bar.copy()
    lower[:64] = 0
    half = dilate(lower, 4)
    result = np.where((half > 0)[..., None], table, source)  # a perfect fill of the half

    checks = by_name(objective_checks("removal", source, result, half))
    border = checks["object_at_border"]
    assert not border.passed and border.stage == "mask"
    assert border.value >= 2 and "left outside the mask" in border.message
    measure = leftover_measure(source, result, half)
    assert measure.longest_run_px >= measure.min_run_px


def test_a_mask_over_the_whole_object_is_not_blamed():
    source, table, bar = spoon_scene()
    full = dilate(bar, 6)
    result = np.where((full > 0)[..., None], table, source)
    checks = by_name(objective_checks("removal", source, result, full))
    assert checks["object_at_border"].passed and checks["object_at_border"].value == 0


@pytest.mark.parametrize("method", ["fsr_fast", "shiftmap", "telea", "ns"])
def test_every_opencv_method_fills_only_the_hole(method):
    truth = texture(2)
    mask = disc(r=10)
    out = OpenCVInpainter(method=method).fill(truth, mask)
    assert out.shape == truth.shape and out.dtype == np.uint8
    assert np.array_equal(out[mask == 0], truth[mask == 0])
    assert np.abs(out[mask > 0].astype(int) - truth[mask > 0]).mean() < 60
