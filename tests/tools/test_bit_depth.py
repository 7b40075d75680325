"""Kind 7: every bit depth and mode is scaled to 8 bits by its real range, never clipped.

Each high-depth or unusual file is compared with its 8-bit twin (the same picture at 8 bits):
the photo must load to the same pixels, the mask must mark the same pixels. A 25%-grey 16-bit
background means 25% grey (not painted), as it does at 8 bits.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.tools.image_files import png_bytes, saved
from tools.bit_depth import array_to_8bit, value_range
from tools.errors import InvalidImageError, InvalidMaskError
from tools.images import load_mask, read_image
from tools.mask_ops import as_mask

H, W = 24, 32


def grey8() -> np.ndarray:
    """A 25%-grey background with a white square and a gradient row: an 8-bit mask photo."""
    array = np.full((H, W), 64, np.uint8)
    array[4:12, 6:18] = 255
    array[20] = np.linspace(0, 255, W).astype(np.uint8)
    return array


def colour8() -> np.ndarray:
    rng = np.random.default_rng(7)
    array = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    array[:8, :8] = (64, 64, 64)
    return array


def _i16(array: np.ndarray, mode: str) -> Image.Image:
    wide = array.astype(np.uint32) * 257
    dtype = ">u2" if mode == "I;16B" else "<u2"
    return Image.frombytes(mode, (array.shape[1], array.shape[0]), wide.astype(dtype).tobytes())


def _i32(array: np.ndarray) -> Image.Image:
    top = 2**31 - 1
    values = np.round(array.astype(np.float64) * top / 255).astype(np.int32)
    return Image.fromarray(values, "I")


def _ppm16(array: np.ndarray) -> bytes:
    header = f"P5 {array.shape[1]} {array.shape[0]} 65535\n".encode()
    return header + (array.astype(np.uint32) * 257).astype(">u2").tobytes()


def _palette(array: np.ndarray) -> bytes:
    image = Image.fromarray(array, "L").convert("P")  # Pillow's grey palette: exact for L
    return saved(image, "PNG")


# name -> (the high-depth or unusual file's bytes, its 8-bit twin's bytes)
GREY_TWINS = {
    "16-bit grey PNG (I;16)": lambda g: (png_bytes(g.astype(np.uint16) * 257, 16),
                                         png_bytes(g)),
    "I;16 TIFF": lambda g: (saved(_i16(g, "I;16"), "TIFF"), saved(Image.fromarray(g), "TIFF")),
    "I;16B TIFF": lambda g: (saved(_i16(g, "I;16B"), "TIFF"), saved(Image.fromarray(g), "TIFF")),
    "I 32-bit TIFF": lambda g: (saved(_i32(g), "TIFF"), saved(Image.fromarray(g), "TIFF")),
    "I holding 16-bit values": lambda g: (saved(_i16(g, "I;16").convert("I"), "TIFF"),
                                          png_bytes(g)),
    "F TIFF in 0..1": lambda g: (saved(Image.fromarray(g.astype(np.float32) / 255, "F"), "TIFF"),
                                 png_bytes(g)),
    "F TIFF in 0..255": lambda g: (saved(Image.fromarray(g.astype(np.float32), "F"), "TIFF"),
                                   png_bytes(g)),
    "16-bit PGM": lambda g: (_ppm16(g), png_bytes(g)),
    "16-bit grey + alpha PNG": lambda g: (
        png_bytes(np.dstack([g, np.full_like(g, 255)]).astype(np.uint16) * 257, 16),
        png_bytes(g)),
    "8-bit grey + alpha PNG (LA)": lambda g: (png_bytes(np.dstack([g, np.full_like(g, 255)])),
                                              png_bytes(g)),
    "palette PNG (P)": lambda g: (_palette(g), png_bytes(g)),
}
COLOUR_TWINS = {
    "16-bit RGB PNG": lambda c: (png_bytes(c.astype(np.uint16) * 257, 16), png_bytes(c)),
    "16-bit RGBA PNG": lambda c: (
        png_bytes(np.dstack([c, np.full(c.shape[:2], 255, np.uint8)]).astype(np.uint16) * 257,
                  16),
        png_bytes(c)),
}


@pytest.mark.parametrize("name", sorted(GREY_TWINS))
def test_a_grey_file_loads_as_its_8bit_twin(name: str) -> None:
    deep, twin = GREY_TWINS[name](grey8())
    got, want = np.asarray(read_image(deep).image), np.asarray(read_image(twin).image)
    assert got.shape == want.shape == (H, W, 3)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1, name
    assert abs(int(got[0, 0, 0]) - 64) <= 1, "a 25%-grey background stays 25% grey"


@pytest.mark.parametrize("name", sorted(GREY_TWINS))
def test_a_grey_mask_marks_what_its_8bit_twin_marks(name: str) -> None:
    deep, twin = GREY_TWINS[name](grey8())
    got, want = load_mask(deep), load_mask(twin)
    assert np.array_equal(got, want), name
    assert got[0, 0] == 0, "the 25%-grey background is not painted"
    assert got[5, 7] == 255
    assert 0.1 < (got > 0).mean() < 0.3


@pytest.mark.parametrize("name", sorted(COLOUR_TWINS))
def test_a_colour_file_loads_and_masks_as_its_8bit_twin(name: str) -> None:
    deep, twin = COLOUR_TWINS[name](colour8())
    assert np.array_equal(np.asarray(read_image(deep).image), np.asarray(read_image(twin).image))
    assert np.array_equal(load_mask(deep), load_mask(twin))


def test_one_bit_files_are_black_and_white() -> None:
    two_tone = np.where(grey8() > 127, 255, 0).astype(np.uint8)
    deep = saved(Image.fromarray(two_tone).convert("1"), "PNG")
    assert np.array_equal(np.asarray(read_image(deep).image), np.asarray(read_image(png_bytes(two_tone)).image))
    assert np.array_equal(load_mask(deep), load_mask(png_bytes(two_tone)))


def test_the_audit_case_a_quarter_grey_16bit_mask_edits_what_its_twin_edits() -> None:
    """The hostile round's case: the 16-bit mask edited 100% of the image, its twin 11.8%."""
    g = np.full((100, 100), 64, np.uint8)
    g[20:54, 30:65] = 255  # 11.9% of the image
    for data in (png_bytes(g.astype(np.uint16) * 257, 16), png_bytes(g)):
        assert (load_mask(data) > 0).mean() == pytest.approx(0.119)


@pytest.mark.parametrize(
    ("deep", "eight"),
    [
        (grey8().astype(np.uint16) * 257, grey8()),  # uint16: 0..65535
        (grey8().astype(np.float32) / 255, grey8()),  # float in 0..1
        (grey8().astype(np.int64), grey8()),  # plain integers 0..255 (numpy's default dtype)
        ((grey8().astype(np.int64) * 257), grey8()),  # integers beyond 255: 16-bit data
        (colour8().astype(np.uint16) * 257, colour8()),
    ],
    ids=["uint16", "float 0..1", "int64 0..255", "int64 16-bit", "uint16 RGB"],
)
def test_arrays_given_directly_are_scaled_like_files(deep: np.ndarray, eight: np.ndarray) -> None:
    assert np.array_equal(np.asarray(read_image(deep).image), np.asarray(read_image(eight).image))
    assert np.array_equal(load_mask(deep), load_mask(eight))
    assert np.array_equal(as_mask(deep), as_mask(eight))


def test_pil_images_given_directly_are_scaled_not_clipped() -> None:
    g = grey8()
    for image in (_i16(g, "I;16"), _i16(g, "I;16B"), _i32(g), Image.fromarray(g / 255.0)):
        assert np.array_equal(as_mask(image), as_mask(g)), image.mode
        assert np.array_equal(np.asarray(read_image(image).image)[..., 0], g), image.mode


def test_binary_masks_stay_binary_at_any_depth() -> None:
    """0/1 label maps (uint8, uint16, int64 or a 16-bit file) mark the 1s."""
    labels = np.zeros((H, W), np.uint8)
    labels[3:9, 3:9] = 1
    for array in (labels, labels.astype(np.uint16), labels.astype(np.int64)):
        assert as_mask(array).sum() == 36 * 255
    assert load_mask(png_bytes(labels.astype(np.uint16), 16)).sum() == 36 * 255


def test_value_ranges() -> None:
    assert value_range(np.dtype(np.uint8), 0, 3) == 255
    assert value_range(np.dtype(">u2"), 0, 3) == 65535  # big-endian 16-bit is still 16-bit
    assert value_range(np.dtype(np.int32), 0, 255) == 255
    assert value_range(np.dtype(np.int32), 0, 256) == 65535
    assert value_range(np.dtype(np.int32), 0, 70000) == 2**31 - 1
    assert value_range(np.dtype(np.float32), 0, 1.0) == 1.0
    assert value_range(np.dtype(np.float32), 0, 3.5) == 255.0
    assert value_range(np.dtype(np.float64), 0, 1e6) == 1e6


def test_negative_values_count_as_black_and_nan_is_refused() -> None:
    assert array_to_8bit(np.array([[-5.0, 0.5, 1.0]])).tolist() == [[0, 128, 255]]
    with pytest.raises(InvalidImageError, match="NaN"):
        read_image(np.array([[np.nan] * 20] * 20, np.float32))
    with pytest.raises(InvalidMaskError, match="NaN"):
        as_mask(np.array([[np.nan, 1.0]]))
    with pytest.raises(InvalidMaskError, match="NaN"):
        as_mask(Image.fromarray(np.array([[0.5, np.nan]], np.float32), "F"))


def test_notes_say_a_high_depth_image_was_scaled() -> None:
    loaded = read_image(png_bytes(grey8().astype(np.uint16) * 257, 16))
    assert "I;16 image scaled to 8 bits" in loaded.notes
