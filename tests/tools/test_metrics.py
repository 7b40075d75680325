"""Metrics on small hand-computed arrays, SSIM against scikit-image, and the objective checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tools.masks import empty_mask, full_mask
from tools.metrics import (
    PSNR_CAP,
    Check,
    CheckThresholds,
    change_inside,
    edit_metrics,
    mask_coverage,
    masked_mse,
    masked_psnr,
    masked_ssim,
    objective_checks,
)
from tools.types import EditCategory


def right_half(size: int = 12) -> np.ndarray:
    mask = empty_mask((size, size))
    mask[:, size // 2 :] = 255
    return mask


def test_mse_and_psnr_count_only_unmasked_pixels():
    source = np.zeros((12, 12, 3), np.uint8)
    result = source.copy()
    result[0, 0] = 255  # outside the mask, all three channels
    result[0, 11] = 255  # inside the mask: ignored
    mse = masked_mse(source, result, right_half())
    assert mse == pytest.approx(3 / (72 * 3))  # one pixel of 72 unmasked, error 1 per channel
    assert masked_psnr(source, result, right_half()) == pytest.approx(10 * math.log10(72))


def test_identical_outside_gives_the_psnr_cap_and_ssim_one():
    source = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    result = source.copy()
    result[:, 8:] = 0  # only inside the mask
    mask = right_half(16)
    assert masked_mse(source, result, mask) == 0.0
    assert masked_psnr(source, result, mask) == PSNR_CAP == 100.0
    assert masked_ssim(source, result, mask) == pytest.approx(1.0)


def test_change_inside_is_the_mean_absolute_difference_in_the_mask():
    source = np.zeros((12, 12, 3), np.uint8)
    result = source.copy()
    result[:, 6:] = 51  # 0.2 on the [0, 1] scale
    result[:, :6, 0] = 255  # outside: ignored
    assert change_inside(source, result, right_half()) == pytest.approx(0.2)
    assert change_inside(source, result, empty_mask((12, 12))) == 0.0


def test_full_mask_has_nothing_outside_to_compare():
    source = np.zeros((12, 12, 3), np.uint8)
    result = np.full((12, 12, 3), 255, np.uint8)
    assert masked_mse(source, result, full_mask((12, 12))) == 0.0
    assert masked_psnr(source, result, full_mask((12, 12))) == PSNR_CAP
    assert change_inside(source, result, full_mask((12, 12))) == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(11, 11, 3), (24, 31, 3), (40, 40, 3)])
def test_ssim_matches_scikit_image(shape):
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(sum(shape))
    source = rng.integers(0, 256, shape, dtype=np.uint8)
    noise = rng.normal(0, 20, shape)
    result = np.clip(source + noise, 0, 255).astype(np.uint8)
    mask = empty_mask((shape[1], shape[0]))
    mask[2:8, 3:9] = 255
    keep = (1 - mask / 255.0)[..., None]
    expected = structural_similarity(
        source / 255.0 * keep, result / 255.0 * keep, channel_axis=2, data_range=1.0,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    )  # fmt: skip
    assert masked_ssim(source, result, mask) == pytest.approx(expected, abs=1e-3)


def test_ssim_refuses_images_smaller_than_its_window():
    with pytest.raises(ValueError, match="at least 11 px"):
        masked_ssim(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), full_mask((8, 8)))


def test_inputs_may_be_pil_or_float_and_must_agree_in_size():
    from PIL import Image

    source = np.zeros((12, 12, 3), np.uint8)
    as_float = np.zeros((12, 12, 3), np.float32)
    assert masked_mse(Image.fromarray(source), as_float, right_half()) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        masked_mse(source, np.zeros((12, 13, 3), np.uint8), right_half())
    with pytest.raises(ValueError, match="does not match"):
        masked_mse(source, source, empty_mask((5, 5)))


def test_edit_metrics_names_every_measure():
    source = np.zeros((12, 12, 3), np.uint8)
    result = source.copy()
    result[:, 6:] = 51
    metrics = edit_metrics(source, result, right_half())
    assert set(metrics) == {
        "psnr_outside",
        "ssim_outside",
        "mse_outside",
        "change_inside",
        "coverage",
    }
    assert metrics["coverage"] == mask_coverage(right_half()) == 0.5
    assert metrics["psnr_outside"] == PSNR_CAP and metrics["change_inside"] == pytest.approx(0.2)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def quarter_mask(size: int = 16) -> np.ndarray:
    mask = empty_mask((size, size))
    mask[: size // 2, : size // 2] = 255
    return mask


def test_a_good_removal_passes_every_check():
    source = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    result = source.copy()
    result[:8, :8] = 128
    checks = by_name(objective_checks(EditCategory.REMOVAL, source, result, quarter_mask()))
    assert set(checks) == {
        "mask_not_empty", "mask_coverage", "background_psnr", "background_ssim", "changed_inside",
        "fill_texture", "fill_colour", "object_at_border",
    }  # fmt: skip
    assert "too small" in checks["fill_texture"].message  # an 8x8 hole has no texture to judge
    assert all(check.passed for check in checks.values()), checks
    assert checks["mask_coverage"].stage == "mask" and checks["changed_inside"].stage == "inpaint"


def test_an_inpaint_that_changed_nothing_fails():
    source = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    checks = by_name(objective_checks("removal", source, source.copy(), quarter_mask()))
    assert not checks["changed_inside"].passed
    assert checks["changed_inside"].value == 0.0 and checks["changed_inside"].threshold == 0.01
    assert checks["background_psnr"].passed and checks["background_ssim"].passed


def test_a_damaged_background_fails_at_the_inpaint_stage():
    rng = np.random.default_rng(4)
    source = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    result = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    checks = by_name(objective_checks(EditCategory.LOCAL, source, result, quarter_mask()))
    assert not checks["background_psnr"].passed and checks["background_psnr"].stage == "inpaint"
    assert not checks["background_ssim"].passed
    assert "dB" in checks["background_psnr"].message


@pytest.mark.parametrize(
    ("category", "coverage", "passes"),
    [(EditCategory.REMOVAL, 0.5, True), (EditCategory.REMOVAL, 0.75, False),
     (EditCategory.LOCAL, 0.75, True), (EditCategory.LOCAL, 0.875, False)],
)  # fmt: skip
def test_mask_coverage_limits_per_category(category, coverage, passes):
    mask = empty_mask((16, 16))
    mask[: int(16 * coverage)] = 255
    source = np.zeros((16, 16, 3), np.uint8)
    checks = by_name(objective_checks(category, source, source, mask))
    assert checks["mask_coverage"].passed is passes
    assert checks["mask_coverage"].value == pytest.approx(coverage)


def test_an_empty_mask_fails_except_that_global_must_be_full():
    source = np.zeros((16, 16, 3), np.uint8)
    result = np.full((16, 16, 3), 200, np.uint8)
    empty = by_name(objective_checks(EditCategory.REMOVAL, source, result, empty_mask((16, 16))))
    assert not empty["mask_not_empty"].passed and "empty" in empty["mask_not_empty"].message
    full = by_name(objective_checks(EditCategory.GLOBAL, source, result, full_mask((16, 16))))
    assert set(full) == {"mask_full", "changed_inside"}
    assert full["mask_full"].passed and full["changed_inside"].passed
    half = by_name(objective_checks(EditCategory.GLOBAL, source, result, quarter_mask()))
    assert not half["mask_full"].passed


def test_thresholds_are_adjustable_and_checks_serialise():
    source = np.zeros((16, 16, 3), np.uint8)
    result = source.copy()
    result[:8, :8] = 3  # change of about 0.012
    strict = CheckThresholds(min_change_inside=0.05)
    checks = by_name(objective_checks("removal", source, result, quarter_mask(), thresholds=strict))
    assert not checks["changed_inside"].passed and checks["changed_inside"].threshold == 0.05
    assert (
        Check.model_validate_json(checks["changed_inside"].model_dump_json())
        == checks["changed_inside"]
    )
