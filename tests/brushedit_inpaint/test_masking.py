"""Mask conventions, blur blend, working size, and the training-mask augmentations."""

from __future__ import annotations

import cv2
import numpy as np
import PIL.Image
import torch

from brushedit_inpaint import masking
from brushedit_inpaint.processing import (
    blur_blend,
    hole_to_known_mask,
    to_float_rgb,
    to_hole_mask,
    working_size,
)


def test_mask_polarity_is_white_means_generate():
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[2:4, 2:4] = 255
    for given in (
        mask,
        PIL.Image.fromarray(mask),
        PIL.Image.fromarray(mask).convert("RGB"),
        mask.astype(bool),
        torch.from_numpy(mask / 255.0),
        np.stack([mask] * 3, -1),
    ):
        hole = to_hole_mask(given)
        assert hole.shape == (8, 8) and hole.sum() == 4 and hole[2, 2] == 1
    known = hole_to_known_mask(to_hole_mask(mask))
    assert known[2, 2] == 0 and known[0, 0] == 1


def test_image_formats_agree():
    image = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    ref = to_float_rgb(image)
    assert np.allclose(to_float_rgb(PIL.Image.fromarray(image)), ref)
    assert np.allclose(to_float_rgb(image / 255.0), ref)
    assert np.allclose(to_float_rgb(torch.from_numpy(ref).permute(2, 0, 1)), ref)


def test_blur_blend_formula():
    rng = np.random.default_rng(0)
    orig, gen = (
        rng.random((40, 40, 3)).astype(np.float32),
        rng.random((40, 40, 3)).astype(np.float32),
    )
    mask = np.zeros((40, 40), dtype=np.float32)
    mask[10:20, 10:20] = 1
    out = blur_blend(orig, gen, mask)
    blur = cv2.GaussianBlur(mask, (21, 21), 0)
    m = (1 - (1 - mask) * (1 - blur))[:, :, None]
    assert np.allclose(out, orig * (1 - m) + gen * m)
    assert np.allclose(out[12, 12], gen[12, 12]) and np.allclose(out[39, 39], orig[39, 39])
    assert not np.allclose(out[21, 15], orig[21, 15])  # soft seam just outside the hole


def test_working_size_keeps_aspect_and_multiples_of_8():
    assert working_size(512, 512) == (512, 512)
    assert working_size(500, 333) == (496, 328)
    assert working_size(2048, 1024) == (1024, 512)
    h, w = working_size(3000, 1000)
    assert h % 8 == 0 and w % 8 == 0 and h == 1024 and abs(w / h - 1 / 3) < 0.01


def test_random_brush_mask_is_binary_and_seeded():
    a = masking.random_brush_mask(64, 64, np.random.default_rng(3))
    b = masking.random_brush_mask(64, 64, np.random.default_rng(3))
    assert np.array_equal(a, b) and set(np.unique(a)) <= {0.0, 1.0} and 0 < a.mean() < 1


def test_erode_dilate_and_swap():
    mask = np.zeros((64, 64), dtype=np.float32)
    mask[16:48, 16:48] = 1
    areas = {masking.erode_or_dilate(mask, np.random.default_rng(s)).sum() for s in range(20)}
    assert min(areas) < mask.sum() < max(areas)
    assert np.array_equal(masking.swap_inside_outside(mask), 1 - mask)


def test_augment_rates_match_recipe():
    mask = np.zeros((32, 32), dtype=np.float32)
    mask[8:24, 8:24] = 1
    rng = np.random.default_rng(0)
    swapped = sum(masking.augment_mask(mask, rng, p_morph=0.0)[0, 0] == 1 for _ in range(400))
    assert 150 < swapped < 250  # ~50%
    morphed = sum(
        masking.augment_mask(mask, rng, p_swap=0.0).sum() != mask.sum() for _ in range(400)
    )
    assert 80 < morphed < 160  # ~30%


def test_segmentation_mask_used(tmp_path):
    seg = np.zeros((32, 32), dtype=np.uint8)
    seg[4:10, 4:10] = 255
    PIL.Image.fromarray(seg).save(tmp_path / "m.png")
    loaded = masking.load_mask(tmp_path / "m.png", 32, 32)
    out = masking.sample_training_mask(
        32, 32, np.random.default_rng(0), loaded, p_segmentation=1.0, p_morph=0.0, p_swap=0.0
    )
    assert np.array_equal(out, loaded)
