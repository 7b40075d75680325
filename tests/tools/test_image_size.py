"""Kind 9: one minimum size for the loader and every later check; extreme shapes kept, or refused.

Images at the minimum must go through every step after loading (masks, the OpenCV fill, the
metrics and objective checks); one pixel less is refused in one sentence. Downscaling to the
working size keeps the aspect ratio, and an image too thin to survive it is refused, never
squeezed; its own mask then fits the downscaled image.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.tools.image_files import png_bytes, png_header_only
from tools.errors import ImageTooSmallError, InvalidImageError, InvalidMaskError
from tools.image_limits import MIN_SIDE, working_size
from tools.images import load_mask, probe_image, read_image
from tools.mask_ops import fit_user_mask, same_aspect
from tools.types import EditCategory

MAX_SIDE = 1024  # the graph's default working size (`max_image_side`)


def photo(width: int, height: int) -> bytes:
    """A patterned RGB PNG (compresses well, so large ones stay quick to write)."""
    ys, xs = np.indices((height, width))
    return png_bytes(np.dstack([xs * 7 % 256, ys * 5 % 256, (xs + ys) % 256]).astype(np.uint8))


def mask_for(width: int, height: int) -> np.ndarray:
    """A mark over the middle third of the long side, the full short side."""
    mask = np.zeros((height, width), np.uint8)
    if width >= height:
        mask[:, width // 3 : 2 * width // 3] = 255
    else:
        mask[height // 3 : 2 * height // 3, :] = 255
    return mask


def spot(width: int, height: int) -> np.ndarray:
    """A square mark of half the short side at the centre."""
    mask = np.zeros((height, width), np.uint8)
    side = min(width, height) // 2
    top, left = (height - side) // 2, (width - side) // 2
    mask[top : top + side, left : left + side] = 255
    return mask


def test_every_later_minimum_is_within_the_loaders() -> None:
    """The quality check's SSIM window and the conductors' 8-px latent grid fit MIN_SIDE."""
    from tools.metrics import SSIM_WINDOW

    assert MIN_SIDE >= SSIM_WINDOW
    assert MIN_SIDE % 8 == 0 and MIN_SIDE // 8 >= 2


@pytest.mark.parametrize(
    "size",
    [(MIN_SIDE - 1, 100), (100, MIN_SIDE - 1), (MIN_SIDE - 1, MIN_SIDE - 1), (8, 8), (10, 10),
     (10000, 8), (8, 10000), (1, 1)],
)
def test_under_the_minimum_is_refused_in_one_sentence(size: tuple[int, int]) -> None:
    data = photo(*size)
    for load in (read_image, probe_image):
        with pytest.raises(ImageTooSmallError) as info:
            load(data)
        error = info.value
        assert (error.width, error.height, error.min_side) == (*size, MIN_SIDE)
        assert f"at least {MIN_SIDE} px" in str(error) and "\n" not in str(error)
    with pytest.raises(ImageTooSmallError):  # arrays given directly: the same rule
        read_image(np.zeros((size[1], size[0], 3), np.uint8))


def test_a_small_mask_is_held_to_its_image_not_to_the_minimum() -> None:
    """A mask has no minimum of its own: one of the image's aspect ratio is scaled up when the
    caller allows it, any other is refused by the one fitting rule."""
    small = np.zeros((8, 8), np.uint8)
    small[2:6, 2:6] = 255
    assert load_mask(png_bytes(small), size=(64, 64), resize=True)[16:48, 16:48].all()
    with pytest.raises(InvalidMaskError, match="8x8 but the image is 64x64"):
        load_mask(png_bytes(small), size=(64, 64))
    with pytest.raises(InvalidMaskError, match="aspect ratio differs"):
        load_mask(png_bytes(small), size=(64, 32), resize=True)


@pytest.mark.parametrize("side", [MIN_SIDE, MIN_SIDE + 1])
@pytest.mark.parametrize("long", [MIN_SIDE, 3 * MIN_SIDE, 64 * MIN_SIDE])
def test_at_the_minimum_every_later_step_runs(side: int, long: int) -> None:
    """Load, mask, fill (OpenCV), measure and check an image of `side` x `long` and turned."""
    from tools.inpaint import OpenCVInpainter
    from tools.metrics import edit_metrics, objective_checks
    from tools.types import EditOptions

    for width, height in ((long, side), (side, long)):
        image = read_image(photo(width, height)).image
        assert image.size == (width, height)
        mask = load_mask(png_bytes(spot(width, height)), size=image.size)
        mask = fit_user_mask(mask, image.size)
        [result] = OpenCVInpainter().inpaint(image, mask, "background",
                                             category=EditCategory.REMOVAL,
                                             options=EditOptions(samples=1))
        assert result.size == image.size
        metrics = edit_metrics(image, result, mask)
        assert 0.0 <= metrics["ssim_outside"] <= 1.0
        for category in EditCategory:
            assert objective_checks(category, image, result, mask)


def thinnest_accepted(max_side: int) -> int:
    """The largest long side whose image with a MIN_SIDE short side survives the downscale."""
    long = max_side
    while round(MIN_SIDE * max_side / (long + 1)) >= MIN_SIDE:
        long += 1
    return long


def test_working_size_keeps_the_aspect_ratio_and_never_enlarges() -> None:
    for size in [(10000, 300), (300, 10000), (4000, 3000), (1025, 1024), (1024, 17), (640, 480)]:
        width, height = working_size(size, MAX_SIDE)
        assert max(width, height) == min(MAX_SIDE, max(size))
        assert same_aspect(size, (width, height))
        assert width <= size[0] and height <= size[1]
    assert working_size((500, 20), None) == (500, 20)


@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_an_extreme_aspect_ratio_keeps_its_shape_or_is_refused(delta: int) -> None:
    """At the edge: the thinnest image that keeps a MIN_SIDE short side at the working size,
    and one a pixel longer; landscape and portrait; the mask fits what was loaded."""
    long = thinnest_accepted(MAX_SIDE) + delta  # delta 1: one pixel past the edge
    for width, height in ((long, MIN_SIDE), (MIN_SIDE, long)):
        data = photo(width, height)
        if delta == 1:
            with pytest.raises(ImageTooSmallError) as info:
                read_image(data, max_side=MAX_SIDE)
            assert info.value.working is not None and min(info.value.working) < MIN_SIDE
            assert info.value.max_side == MAX_SIDE and "too thin" in str(info.value)
            continue
        loaded = read_image(data, max_side=MAX_SIDE)
        assert max(loaded.image.size) == MAX_SIDE and min(loaded.image.size) >= MIN_SIDE
        assert loaded.original_size == (width, height)
        assert same_aspect((width, height), loaded.image.size)
        mask = load_mask(png_bytes(mask_for(width, height)), size=loaded.image.size, resize=True)
        assert mask.shape == loaded.image.size[::-1]
        fraction = (mask > 0).mean()
        assert fraction == pytest.approx(1 / 3, abs=0.02)


def test_the_audit_case_a_10000x8_photo_is_refused_not_squeezed() -> None:
    with pytest.raises(ImageTooSmallError, match=f"at least {MIN_SIDE} px"):
        read_image(photo(10000, 8), max_side=MAX_SIDE)


def test_a_wide_photo_downscaled_keeps_its_shape_and_its_mask_fits() -> None:
    loaded = read_image(photo(10000, 300), max_side=MAX_SIDE)
    assert loaded.image.size == (1024, 31)
    assert loaded.scale == pytest.approx(0.1024)
    mask = load_mask(png_bytes(mask_for(10000, 300)), size=loaded.image.size, resize=True)
    assert mask.shape == (31, 1024)
    with pytest.raises(InvalidMaskError, match="aspect ratio differs"):  # never stretched
        load_mask(png_bytes(mask_for(10000, 200)), size=loaded.image.size, resize=True)


def test_the_working_size_is_checked_before_decoding() -> None:
    """A file whose header says it is too thin is refused without reading its pixels."""
    header_only = png_header_only(20000, 100)
    with pytest.raises(ImageTooSmallError, match="too thin"):
        read_image(header_only, max_side=MAX_SIDE)
    with pytest.raises(InvalidImageError, match="damaged or truncated"):
        read_image(header_only)


@pytest.mark.parametrize("max_side", [MIN_SIDE - 1, 0, True, 512.0, "1024"])
def test_a_bad_max_side_is_a_programming_error(max_side) -> None:
    with pytest.raises(ValueError, match="max_side") as info:
        read_image(photo(100, 100), max_side=max_side)
    assert not isinstance(info.value, InvalidImageError)  # the caller's bug, not the image's


@pytest.mark.parametrize("value", [[[0, 255]], 3.5, None, {"image": "x"}])
def test_what_is_not_an_image_source_is_refused_in_one_sentence(value) -> None:
    for load in (read_image, load_mask, probe_image):
        with pytest.raises(InvalidImageError, match=r"cannot read an? (image|mask) from"):
            load(value)
