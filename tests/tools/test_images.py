"""Image input: every kind of bad file gets one clear InvalidImageError; odd modes become RGB."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tools import InvalidImageError, InvalidMaskError, as_mask, content_hash, load_mask, read_image


def _png_bytes(image: Image.Image, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kw)
    return buffer.getvalue()


def _jpeg_bytes(image: Image.Image, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kw)
    return buffer.getvalue()


def _rgb(w: int = 32, h: int = 24) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "RGB")


def _huge_png_header(width: int, height: int) -> bytes:
    """A valid PNG header claiming a giant size, with a tiny (wrong) body: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(
        b"IEND", b""
    )


BAD_INPUTS = {
    "empty bytes": (b"", "empty"),
    "text file": (b"hello, I am not an image\n" * 10, "not an image"),
    "html": (b"<!doctype html><html><body>hi</body></html>", "not an image"),
    "truncated png": (_png_bytes(_rgb(64, 64))[:200], "damaged or truncated"),
    "truncated jpeg": (_jpeg_bytes(_rgb(64, 64))[:300], "damaged or truncated"),
    "png signature only": (b"\x89PNG\r\n\x1a\n", "not an image"),
    "decompression bomb": (_huge_png_header(50_000, 50_000), "over the limit"),
    "oversized header": (_huge_png_header(10_000, 10_000), "100,000,000 pixels"),
    "too small": (_png_bytes(_rgb(4, 4)), "at least"),
    "one pixel line": (_png_bytes(_rgb(200, 1)), "at least"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not an image"),
    "pdf": (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "not an image"),
    "random bytes": (np.random.default_rng(1).bytes(4096), "not an image"),
    "corrupt png body": (
        _png_bytes(_rgb(64, 64))[:60] + b"\x00" * 400 + _png_bytes(_rgb(64, 64))[-12:],
        "damaged or truncated",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_bad_bytes_are_refused_with_one_clear_message(kind: str) -> None:
    data, expected = BAD_INPUTS[kind]
    with pytest.raises(InvalidImageError) as info:
        read_image(data)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and "Traceback" not in message


def test_bad_paths(tmp_path) -> None:
    with pytest.raises(InvalidImageError, match="does not exist"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(InvalidImageError, match="is a folder"):
        read_image(tmp_path)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(InvalidImageError, match="empty"):
        read_image(empty)


def test_unsupported_format_is_named(tmp_path) -> None:
    buffer = io.BytesIO()
    _rgb(16, 16).save(buffer, format="ICO")
    with pytest.raises(InvalidImageError, match="ICO file, which is not supported"):
        read_image(buffer.getvalue())


def test_pixel_limit_is_configurable() -> None:
    data = _png_bytes(_rgb(100, 100))
    assert read_image(data, max_pixels=10_000).image.size == (100, 100)
    with pytest.raises(InvalidImageError, match="over the limit of 9,999 pixels"):
        read_image(data, max_pixels=9_999)


def test_exif_orientation_is_applied() -> None:
    image = _rgb(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    loaded = read_image(_jpeg_bytes(image, exif=exif.tobytes()))
    assert loaded.image.size == (20, 40)
    assert "EXIF orientation applied" in loaded.notes


def test_rgba_is_composited_on_white_and_said() -> None:
    rgba = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    loaded = read_image(_png_bytes(rgba))
    pixels = np.asarray(loaded.image)
    assert loaded.image.mode == "RGB"
    assert tuple(pixels[5, 5]) == (255, 255, 255)
    assert tuple(pixels[0, 0]) == (0, 0, 255)
    assert "transparent pixels composited on white" in loaded.notes


@pytest.mark.parametrize("mode", ["L", "LA", "P", "CMYK", "1", "I;16", "I", "F"])
def test_every_mode_becomes_8bit_rgb(mode: str) -> None:
    if mode in ("I;16", "I"):
        source = Image.fromarray((np.arange(32 * 32).reshape(32, 32) * 60).astype(np.uint16))
        buffer = io.BytesIO()
        if mode == "I":
            source.convert("I").save(buffer, format="TIFF")
        else:
            source.save(buffer, format="PNG")
        data = buffer.getvalue()
    elif mode == "F":
        source = Image.fromarray(np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32), "F")
        buffer = io.BytesIO()
        source.save(buffer, format="TIFF")
        data = buffer.getvalue()
    else:
        source = _rgb(32, 32).convert(mode)
        buffer = io.BytesIO()
        source.save(buffer, format="JPEG" if mode == "CMYK" else "PNG")
        data = buffer.getvalue()
    image = read_image(data).image
    assert image.mode == "RGB" and image.size == (32, 32)
    array = np.asarray(image)
    if mode in ("I;16", "I", "F"):
        assert array.max() > 200, "high bit depths are scaled, not clipped to black"


def test_palette_with_transparency_is_composited() -> None:
    image = Image.new("P", (16, 16), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.info["transparency"] = 0
    image.putpixel((1, 1), 1)
    pixels = np.asarray(read_image(_png_bytes(image, transparency=0)).image)
    assert tuple(pixels[0, 0]) == (255, 255, 255)
    assert tuple(pixels[1, 1]) == (255, 0, 0)


def test_animated_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), color) for color in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    loaded = read_image(buffer.getvalue())
    assert any("2 frames" in note for note in loaded.notes)
    assert np.asarray(loaded.image)[0, 0, 0] > 200


def test_content_hash_depends_on_pixels_only() -> None:
    a, b = _rgb(16, 16), _rgb(16, 16)
    assert content_hash(a) == content_hash(b)
    b.putpixel((0, 0), (1, 2, 3))
    assert content_hash(a) != content_hash(b)


def test_load_mask_sizes_and_alpha(tmp_path) -> None:
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:15] = 200
    path = tmp_path / "mask.png"
    Image.fromarray(mask).save(path)
    loaded = load_mask(path, size=(30, 20))
    assert loaded.dtype == np.uint8 and set(np.unique(loaded)) == {0, 255}
    assert loaded[6, 6] == 255 and loaded[0, 0] == 0
    with pytest.raises(InvalidMaskError, match="30x20 but the image is 60x40"):
        load_mask(path, size=(60, 40))
    assert load_mask(path, size=(60, 40), resize=True).shape == (40, 60)
    painted = np.zeros((20, 30, 4), np.uint8)
    painted[2:4, 2:4, 3] = 255  # a painted layer: colour black, only alpha varies
    Image.fromarray(painted, "RGBA").save(tmp_path / "layer.png")
    assert load_mask(tmp_path / "layer.png").sum() == 4 * 255


@pytest.mark.parametrize(
    "value",
    [
        np.array([[True, False]]),
        np.array([[1, 0]], np.uint8),
        np.array([[255, 0]], np.uint8),
        np.array([[0.9, 0.1]], np.float32),
        np.array([[[255, 255, 255], [0, 0, 0]]], np.uint8),
        Image.fromarray(np.array([[255, 0]], np.uint8)),
    ],
)
def test_as_mask_is_the_one_conversion(value) -> None:
    mask = as_mask(value)
    assert mask.dtype == np.uint8 and mask.shape == (1, 2)
    assert mask.tolist() == [[255, 0]]


@pytest.mark.parametrize(
    "value",
    [np.zeros((2, 2, 2)), np.zeros((2, 2, 2, 2)), np.zeros((0, 3)), np.array([[np.nan, 1.0]])],
)
def test_as_mask_rejects_nonsense(value) -> None:
    with pytest.raises(InvalidMaskError):
        as_mask(value)
