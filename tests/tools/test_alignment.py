"""The alignment check on synthetic edits with a known shift and zoom."""

from __future__ import annotations

import numpy as np
import pytest

from tools.alignment import measure_alignment
from tools.metrics import CheckThresholds, alignment_check

WIDTH, HEIGHT = 320, 240


def scene(seed: int = 0) -> np.ndarray:
    """A textured photo: smooth blobs plus fine grain, uint8 RGB."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.random((HEIGHT // 8, WIDTH // 8, 3)).astype(np.float32),
                        (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    grain = cv2.GaussianBlur(rng.random((HEIGHT, WIDTH, 3)).astype(np.float32), (0, 0), 2)
    return (np.clip(0.7 * coarse + 0.6 * (grain - 0.5), 0, 1) * 255).astype(np.uint8)


def edit_mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[80:170, 110:220] = 255
    return mask


def moved(image: np.ndarray, dx: float, dy: float, zoom: float) -> np.ndarray:
    """`image` zoomed by `zoom` about its centre, then shifted by (dx, dy): a drifting editor."""
    import cv2

    warp = np.array([[zoom, 0, (1 - zoom) * WIDTH / 2 + dx],
                     [0, zoom, (1 - zoom) * HEIGHT / 2 + dy]], np.float32)
    return cv2.warpAffine(image, warp, (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT)


def edited(source: np.ndarray, dx: float = 0.0, dy: float = 0.0, zoom: float = 1.0) -> np.ndarray:
    """The raw output of an editor that repainted the mask and moved everything else."""
    raw = moved(source, dx, dy, zoom)
    mask = edit_mask() > 0
    raw[mask] = np.random.default_rng(9).integers(0, 256, (int(mask.sum()), 3))
    return raw


@pytest.mark.parametrize(
    ("dx", "dy", "zoom"),
    [(0.0, 0.0, 1.0), (3.0, -2.0, 1.0), (0.5, 0.0, 1.0), (-11.0, 7.0, 1.0), (0.0, 0.0, 1.02),
     (2.0, 1.0, 0.97), (-15.0, 9.0, 1.05)],
)
def test_the_measured_shift_and_zoom_match_the_truth(dx, dy, zoom):
    source = scene()
    found = measure_alignment(source, edited(source, dx, dy, zoom), edit_mask())
    assert found.measurable
    assert found.dx == pytest.approx(dx, abs=0.25) and found.dy == pytest.approx(dy, abs=0.25)
    assert found.scale == pytest.approx(zoom, abs=0.002)
    offsets = [(0, 0)] + [(sx * WIDTH / 2, sy * HEIGHT / 2) for sx in (-1, 1) for sy in (-1, 1)]
    truth = max(np.hypot((zoom - 1) * ox + dx, (zoom - 1) * oy + dy) for ox, oy in offsets)
    assert found.drift_px == pytest.approx(truth, abs=0.6)


def test_the_check_passes_a_kept_picture_and_fails_a_drifting_one():
    source, mask = scene(1), edit_mask()
    kept = alignment_check("local", source, edited(source), mask)
    assert kept.passed and kept.value == pytest.approx(0.0, abs=0.3) and kept.stage == "inpaint"
    assert kept.threshold == pytest.approx(2.0)  # 0.5% of 320 px is below the 2 px floor
    shifted = alignment_check("local", source, edited(source, 4.0, 0.0), mask)
    assert not shifted.passed and shifted.name == "aligned"
    assert "shifted or zoomed" in shifted.message and "+4.0" in shifted.message
    zoomed = alignment_check("removal", source, edited(source, zoom=1.03), mask)
    assert not zoomed.passed and "zoom 1.030x" in zoomed.message
    lenient = CheckThresholds(max_drift=0.02)
    assert alignment_check("local", source, edited(source, 4.0, 0.0), mask,
                           thresholds=lenient).passed


def test_plain_or_unrelated_surroundings_cannot_show_a_shift_so_the_check_passes_saying_why():
    flat = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    found = measure_alignment(flat, edited(flat, 5.0, 0.0), edit_mask())
    assert not found.measurable and "plain" in found.note
    check = alignment_check("local", flat, edited(flat, 5.0, 0.0), edit_mask())
    assert check.passed and check.message.startswith("alignment not judged")
    unrelated = measure_alignment(scene(4), scene(5), edit_mask())
    assert not unrelated.measurable and "does not show the source" in unrelated.note
    almost_all = np.full((HEIGHT, WIDTH), 255, np.uint8)
    almost_all[:4, :4] = 0
    assert not measure_alignment(scene(), scene(), almost_all).measurable


def test_a_global_edit_is_measured_on_the_whole_picture():
    source = scene(2)
    full = np.full((HEIGHT, WIDTH), 255, np.uint8)
    brighter = np.clip(moved(source, 6.0, 0.0, 1.0).astype(int) + 30, 0, 255).astype(np.uint8)
    check = alignment_check("global", source, brighter, full)
    assert not check.passed and check.value == pytest.approx(6.0, abs=0.5)


def test_a_box_limits_the_comparison_to_the_painted_region():
    source, mask = scene(3), edit_mask()
    raw = source.copy()
    box = (60, 40, 280, 210)  # the conductor painted this crop, shifted; the rest is the source
    raw[40:210, 60:280] = moved(source, 3.0, 0.0, 1.0)[40:210, 60:280]
    found = measure_alignment(source, raw, mask, box=box)
    assert found.dx == pytest.approx(3.0, abs=0.3)
    with pytest.raises(ValueError, match="differ in size"):
        measure_alignment(source, source[:100], mask)
