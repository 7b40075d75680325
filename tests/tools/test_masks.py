"""Mask operations: shape, dtype and value set are preserved, and the obvious laws hold."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tools.errors import InvalidMaskError
from tools.masks import (
    area_fraction,
    bounding_box,
    bounding_ellipse,
    dilate,
    empty_mask,
    erode,
    feather,
    from_box,
    full_mask,
    invert,
    scaled_px,
    shift,
    union,
)
from tools.types import Box

FAST = settings(max_examples=60, deadline=None)

shapes = st.tuples(st.integers(1, 24), st.integers(1, 24))
masks = shapes.flatmap(lambda shape: arrays(np.uint8, shape, elements=st.sampled_from([0, 255])))
pxs = st.integers(0, 6)


def is_mask_like(out: np.ndarray, shape: tuple[int, ...]) -> bool:
    return out.dtype == np.uint8 and out.shape == shape and set(np.unique(out)) <= {0, 255}


def subset(a: np.ndarray, b: np.ndarray) -> bool:
    """Every pixel marked in `a` is marked in `b`."""
    return bool(np.all(b[a > 0] > 0))


@pytest.mark.parametrize(
    ("operation", "grows"), [(dilate, True), (erode, False)], ids=["dilate", "erode"]
)
@FAST
@given(mask=masks, px=pxs)
def test_dilate_grows_and_erode_shrinks_keeping_the_convention(operation, grows, mask, px):
    out = operation(mask, px)
    assert is_mask_like(out, mask.shape)
    assert subset(mask, out) if grows else subset(out, mask)


@FAST
@given(masks)
def test_invert_twice_is_identity(mask):
    once = invert(mask)
    assert is_mask_like(once, mask.shape)
    assert not np.any((once > 0) & (mask > 0))
    np.testing.assert_array_equal(invert(once), mask)


@FAST
@given(
    shapes.flatmap(
        lambda s: st.tuples(*[arrays(np.uint8, s, elements=st.sampled_from([0, 255]))] * 2)
    )
)
def test_union_is_commutative_idempotent_and_a_superset(pair):
    a, b = pair
    ab = union(a, b)
    assert is_mask_like(ab, a.shape)
    np.testing.assert_array_equal(ab, union(b, a))
    np.testing.assert_array_equal(union(a, a), a)
    assert subset(a, ab) and subset(b, ab)


@FAST
@given(masks, st.integers(-5, 5), st.integers(-5, 5))
def test_shift_there_and_back_keeps_the_interior(mask, dx, dy):
    moved = shift(mask, dx, dy)
    assert is_mask_like(moved, mask.shape)
    back = shift(moved, -dx, -dy)
    h, w = mask.shape
    # pixels far enough from the border to survive both moves are unchanged
    ys = slice(abs(dy), h - abs(dy)) if h > 2 * abs(dy) else slice(0, 0)
    xs = slice(abs(dx), w - abs(dx)) if w > 2 * abs(dx) else slice(0, 0)
    np.testing.assert_array_equal(back[ys, xs], mask[ys, xs])
    assert subset(back, mask)


@FAST
@given(
    st.integers(0, 30), st.integers(0, 30), st.integers(1, 30), st.integers(1, 30),
    st.integers(1, 40), st.integers(1, 40),
)  # fmt: skip
def test_from_box_rect_marks_exactly_the_clipped_box(x0, y0, w, h, width, height):
    box = Box(x0=x0, y0=y0, x1=x0 + w, y1=y0 + h)
    out = from_box(box, (width, height))
    assert is_mask_like(out, (height, width))
    expected = max(0, min(box.x1, width) - min(x0, width)) * max(
        0, min(box.y1, height) - min(y0, height)
    )
    assert np.count_nonzero(out) == expected


@FAST
@given(st.integers(8, 40), st.integers(8, 40))
def test_from_box_ellipse_area_is_pi_over_four_of_the_box(w, h):
    box = Box(x0=2, y0=3, x1=2 + w, y1=3 + h)
    out = from_box(box, (60, 60), shape="ellipse")
    assert is_mask_like(out, (60, 60))
    assert subset(out, from_box(box, (60, 60)))
    assert np.count_nonzero(out) == pytest.approx(math.pi / 4 * w * h, rel=0.12)


@FAST
@given(masks)
def test_bounding_box_holds_every_marked_pixel(mask):
    box = bounding_box(mask)
    if not mask.any():
        assert box is None
        return
    inside = from_box(box, (mask.shape[1], mask.shape[0]))
    assert subset(mask, inside)
    # tight: each edge row/column of the box has a marked pixel
    assert mask[box.y0].any() and mask[box.y1 - 1].any()
    assert mask[:, box.x0].any() and mask[:, box.x1 - 1].any()


@FAST
@given(masks)
def test_bounding_ellipse_contains_the_mask(mask):
    out = bounding_ellipse(mask)
    assert is_mask_like(out, mask.shape)
    assert subset(mask, out)


@FAST
@given(masks, st.integers(0, 4))
def test_feather_is_a_soft_alpha_in_unit_range(mask, radius):
    alpha = feather(mask, radius)
    assert alpha.dtype == np.float32 and alpha.shape == mask.shape
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    if radius == 0:
        np.testing.assert_array_equal(alpha, mask / 255.0)


def test_dilate_and_erode_use_a_square_element_of_radius_px():
    mask = empty_mask((11, 11))
    mask[5, 5] = 255
    grown = dilate(mask, 2)
    assert np.count_nonzero(grown) == 25  # a 5x5 square
    assert bounding_box(grown) == Box(x0=3, y0=3, x1=8, y1=8)
    np.testing.assert_array_equal(erode(grown, 2), mask)


def test_erode_does_not_eat_the_image_border():
    np.testing.assert_array_equal(erode(full_mask((8, 6)), 3), full_mask((8, 6)))


def test_shift_moves_right_and_down():
    mask = empty_mask((5, 4))
    mask[1, 1] = 255
    moved = shift(mask, 2, 1)
    assert moved[2, 3] == 255 and np.count_nonzero(moved) == 1
    assert not shift(mask, 10, 0).any()


def test_area_fraction_and_full_and_empty():
    mask = empty_mask((4, 5))
    mask[0, :2] = 255
    assert area_fraction(mask) == pytest.approx(2 / 20)
    assert area_fraction(full_mask((3, 3))) == 1.0
    assert area_fraction(empty_mask((3, 3))) == 0.0


@pytest.mark.parametrize(
    ("px", "size", "expected"),
    [(15, (512, 512), 15), (15, (1024, 1024), 30), (15, (256, 256), 8), (1, (64, 64), 1),
     (0, (2048, 2048), 0), (10, (1024, 256), 10)],
)  # fmt: skip
def test_scaled_px_follows_image_size(px, size, expected):
    assert scaled_px(px, size) == expected


def test_bad_arguments_raise_clear_errors():
    mask = full_mask((4, 4))
    with pytest.raises(ValueError, match="`px` must be an integer >= 0"):
        dilate(mask, -1)
    with pytest.raises(InvalidMaskError, match="sizes must match"):
        union(mask, full_mask((5, 4)))
    with pytest.raises(InvalidMaskError, match="at least one mask"):
        union()
    with pytest.raises(InvalidMaskError, match="uint8"):
        invert(np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="'rect' or 'ellipse'"):
        from_box(Box(x0=0, y0=0, x1=2, y1=2), (4, 4), shape="circle")
    with pytest.raises(ValueError, match="`size` must be positive"):
        empty_mask((0, 3))
