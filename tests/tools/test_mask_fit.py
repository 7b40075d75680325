"""One rule for a mask of another size, wherever it enters: same shape is resized, never stretched."""

from __future__ import annotations

import numpy as np
import pytest

from tools.errors import InvalidMaskError
from tools.masks import fit_mask, propose_mask, same_aspect
from tools.types import EditCategory, EditPlan


def test_same_aspect_allows_a_pixel_of_rounding():
    assert same_aspect((1000, 750), (1000, 750))
    assert same_aspect((1023, 767), (512, 384))
    assert not same_aspect((64, 32), (64, 64))
    assert not same_aspect((100, 100), (100, 90))


def test_fit_mask_resizes_only_what_keeps_its_shape():
    mask = np.zeros((20, 30), np.uint8)
    mask[:10, :15] = 255
    assert fit_mask(mask, (30, 20)) is not None
    assert fit_mask(mask, (60, 40), resize=True).shape == (40, 60)
    with pytest.raises(InvalidMaskError, match="give a mask of the image's size"):
        fit_mask(mask, (60, 40))
    with pytest.raises(InvalidMaskError, match="aspect ratio differs"):
        fit_mask(mask, (30, 30), resize=True)


def test_propose_mask_refuses_to_stretch_a_user_mask():
    from PIL import Image

    image = Image.new("RGB", (64, 48))
    wide = np.ones((10, 80), bool)
    plan = EditPlan(instruction="remove it", category=EditCategory.REMOVAL, object="it")
    with pytest.raises(InvalidMaskError, match="never stretched"):
        propose_mask(plan, image, None, user_mask=wide)
