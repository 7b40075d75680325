"""Kind 13: the EXIF orientation is applied to masks exactly as to photos (one loader path).

Files are written as cameras and editors write them: the pixels stored sideways, with an
orientation tag (JPEG APP1, PNG eXIf). A mask saved with its photo's tag must fit the photo.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.tools.image_files import exif_with_orientation, png_bytes, saved, stored_for_orientation
from tools.images import load_mask, probe_image, read_image
from tools.mask_ops import as_mask

UPRIGHT = (40, 64)  # (W, H) as displayed: a portrait photo, like the audit's 400x640


def upright_photo() -> np.ndarray:
    """Four flat quadrants of distinct colours (JPEG keeps flat blocks exactly enough)."""
    width, height = UPRIGHT
    photo = np.zeros((height, width, 3), np.uint8)
    photo[: height // 2, : width // 2] = (220, 30, 30)
    photo[: height // 2, width // 2 :] = (30, 220, 30)
    photo[height // 2 :, : width // 2] = (30, 30, 220)
    photo[height // 2 :, width // 2 :] = (230, 230, 40)
    return photo


def upright_mask() -> np.ndarray:
    """An asymmetric mark (top left, 8-px aligned) so every flip and turn shows."""
    mask = np.zeros(UPRIGHT[::-1], np.uint8)
    mask[8:24, 0:16] = 255
    mask[40:48, 24:40] = 255
    return mask


def tagged(array: np.ndarray, orientation: int, fmt: str) -> bytes:
    stored = stored_for_orientation(array, orientation)
    exif = exif_with_orientation(orientation)
    if fmt == "JPEG":
        return saved(Image.fromarray(stored), "JPEG", exif=exif, quality=95)
    return png_bytes(stored, exif=exif)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_test_files_are_what_pillow_displays_upright(orientation: int) -> None:
    """The helper that stores pixels sideways is checked against Pillow's own transpose."""
    data = tagged(upright_mask(), orientation, "PNG")
    import io

    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert np.array_equal(np.asarray(shown), upright_mask())


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_mask_with_its_photos_orientation_tag_fits_the_photo(orientation: int, fmt: str) -> None:
    photo = read_image(tagged(upright_photo(), orientation, fmt))
    assert photo.image.size == UPRIGHT
    got, want = np.asarray(photo.image).astype(int), upright_photo().astype(int)
    for y, x in ((12, 8), (12, 30), (50, 8), (50, 30)):  # each quadrant's inside
        assert np.abs(got[y, x] - want[y, x]).max() < 12, (y, x)
    mask = load_mask(tagged(upright_mask(), orientation, fmt), size=photo.image.size)
    assert np.array_equal(mask, upright_mask())


def test_the_audit_case_a_sideways_jpeg_mask_is_not_refused() -> None:
    """A 640x400-stored JPEG mask tagged 'rotate 90' was refused as 640x400 vs 400x640."""
    photo = np.zeros((640, 400, 3), np.uint8)
    mask = np.zeros((640, 400), np.uint8)
    mask[100:300, 50:200] = 255
    image = read_image(tagged(photo, 6, "JPEG")).image
    assert image.size == (400, 640)
    fitted = load_mask(tagged(mask, 6, "JPEG"), size=image.size)
    assert fitted.shape == (640, 400)
    assert np.array_equal(fitted > 0, mask > 0)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_photo_and_mask_loaders_orient_one_file_alike(orientation: int) -> None:
    """One path: a file read as a photo and as a mask comes out in the same orientation."""
    data = tagged(upright_mask(), orientation, "PNG")
    assert np.array_equal(as_mask(read_image(data).image), load_mask(data))


def test_a_pil_image_given_directly_is_oriented_too(tmp_path) -> None:
    path = tmp_path / "mask.jpg"
    path.write_bytes(tagged(upright_mask(), 6, "JPEG"))
    with Image.open(path) as opened:
        assert np.array_equal(load_mask(opened), upright_mask())
    with Image.open(path) as opened:
        assert read_image(opened).image.size == UPRIGHT
    with Image.open(path) as opened:  # already turned upright: its tag is gone, nothing twice
        assert np.array_equal(load_mask(ImageOps.exif_transpose(opened)), upright_mask())


def test_an_untagged_mask_drawn_on_the_upright_photo_still_fits() -> None:
    mask = load_mask(png_bytes(upright_mask()), size=UPRIGHT)
    assert np.array_equal(mask, upright_mask())


def test_the_probe_reports_the_displayed_size() -> None:
    header = probe_image(tagged(upright_photo(), 6, "JPEG"))
    assert (header.width, header.height) == UPRIGHT[::-1]  # as stored
    assert header.size == UPRIGHT and header.orientation == 6


def test_a_nonsense_orientation_tag_is_ignored() -> None:
    stored = upright_mask()
    for value in (0, 9, 300):
        data = saved(Image.fromarray(stored), "PNG", exif=exif_with_orientation(value))
        assert np.array_equal(load_mask(data), stored)


def test_orientation_and_the_working_size_together() -> None:
    """A sideways JPEG decoded at a reduced scale: the working size is the displayed one, and
    the full-size mask with the same tag fits it."""
    loaded = read_image(tagged(upright_photo(), 6, "JPEG"), max_side=32)
    assert loaded.image.size == (20, 32) and loaded.original_size == UPRIGHT
    mask = load_mask(tagged(upright_mask(), 6, "JPEG"), size=loaded.image.size, resize=True)
    assert np.array_equal(mask, upright_mask()[::2, ::2])


def test_a_phone_mpo_photo_is_read_as_its_first_picture() -> None:
    """Many phones write MPO (a JPEG with preview pictures), with an orientation tag."""
    first = Image.fromarray(stored_for_orientation(upright_photo(), 6))
    data = saved(first, "MPO", save_all=True, append_images=[first.resize((8, 13))],
                 exif=exif_with_orientation(6))
    loaded = read_image(data)
    assert loaded.format == "MPO" and loaded.image.size == UPRIGHT
