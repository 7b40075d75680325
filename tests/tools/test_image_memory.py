"""Kind 11: small files with large memory. The size is checked from the header before any pixel
is decoded, on every input path; decoding is done in the cheapest mode; the peak memory of
loading stays near the 8-bit size of what is loaded (measured in a fresh process)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.tools.image_files import png_header_only, saved
from tools.errors import ImageTooLargeError
from tools.image_limits import DEFAULT_MAX_PIXELS
from tools.images import load_mask, probe_image, read_image

ROOT = Path(__file__).resolve().parents[2]
MB = 1 << 20


def gradient_png(path: Path, width: int, height: int, bit_depth: int = 16) -> None:
    """A grey PNG of a horizontal gradient, streamed row by row: a few hundred KB on disk for
    tens of megapixels (the audit's 77 KB file decoded to 0.9 GB)."""
    row = np.linspace(0, 2**bit_depth - 1, width).astype(">u2" if bit_depth == 16 else "u1")
    line = b"\x00" + row.tobytes()
    stream = zlib.compressobj(9)
    idat = b"".join(stream.compress(line) for _ in range(height)) + stream.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    with path.open("wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        for kind, data in ((b"IHDR", header), (b"IDAT", idat), (b"IEND", b"")):
            crc = zlib.crc32(kind + data) & 0xFFFFFFFF
            out.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc))


PEAK_SCRIPT = """
import gc, json, sys
from PIL import Image
import numpy as np
import tools.bit_depth, tools.images
Image.init()
gc.collect()
def status(key):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
                if line.startswith(key))
try:
    with open("/proc/self/clear_refs", "w") as reset:
        reset.write("5")  # the peak (VmHWM) starts again from here
except OSError as exc:
    print(json.dumps({"skip": f"cannot reset the peak RSS here ({exc})"}))
    sys.exit(0)
rss = status("VmRSS")
path, what, max_side = sys.argv[1], sys.argv[2], (int(sys.argv[3]) or None)
if what == "mask":
    out = tools.images.load_mask(path)
    size = out.shape[::-1]
else:
    out = tools.images.read_image(path, max_side=max_side).image
    size = out.size
print(json.dumps({"peak": status("VmHWM") - rss, "size": list(size)}))
"""


def peak_of_loading(path: Path, what: str, max_side: int | None = None) -> tuple[int, tuple]:
    """Bytes of memory the loader's process grew by at its peak, and the loaded size.

    Measured in a fresh process whose peak (VmHWM) is reset once the imports are done; not
    `ru_maxrss`, which a child inherits from the forking process.
    """
    done = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(path), what, str(max_side or 0)],
        capture_output=True, text=True, check=True, timeout=120, cwd=ROOT,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if "skip" in answer:
        pytest.skip(answer["skip"])
    return answer["peak"], tuple(answer["size"])


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                      reason="peak memory is read from /proc")
SIDE = 4000  # 16 megapixels: large enough that the process's noise (a few MB) does not matter


@pytest.fixture(scope="module")
def sixteen_bit_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("memory") / "grey16.png"
    gradient_png(path, SIDE, SIDE)
    assert path.stat().st_size < 2 * MB  # a small file...
    return path


@linux_only
def test_a_16bit_photo_costs_about_its_8bit_rgb_size(sixteen_bit_png: Path) -> None:
    """...whose 8-bit RGB working image is 48 MB (Pillow keeps RGB at 4 bytes a pixel, and the
    16-bit decode itself is 2 bytes a pixel). Before: about 26 bytes a pixel, 0.4 GB here."""
    peak, size = peak_of_loading(sixteen_bit_png, "image")
    assert size == (SIDE, SIDE)
    working = SIDE * SIDE * 3
    print(f"\npeak {peak / MB:.0f} MB for a {working / MB:.0f} MB 8-bit RGB image")
    assert peak <= 2 * working


@linux_only
def test_a_16bit_photo_loaded_at_the_working_size_costs_its_decode(sixteen_bit_png: Path) -> None:
    """At a working size the peak is the file's own decode (2 bytes a pixel) and its 8-bit
    grey copy; nothing at full size in RGB."""
    peak, size = peak_of_loading(sixteen_bit_png, "image", max_side=1024)
    assert size == (1024, 1024)
    decode, grey = SIDE * SIDE * 2, SIDE * SIDE
    print(f"\npeak {peak / MB:.0f} MB; decode {decode / MB:.0f} MB, 8-bit grey {grey / MB:.0f} MB")
    assert peak <= 1.25 * (decode + grey)


@linux_only
def test_a_16bit_mask_costs_its_decode_and_the_mask(sixteen_bit_png: Path) -> None:
    """Before: about 12 bytes a pixel (a full-size int64 copy); now the decode plus the mask."""
    peak, size = peak_of_loading(sixteen_bit_png, "mask")
    assert size == (SIDE, SIDE)
    decode, mask = SIDE * SIDE * 2, SIDE * SIDE
    print(f"\npeak {peak / MB:.0f} MB; decode {decode / MB:.0f} MB, mask {mask / MB:.0f} MB")
    assert peak <= 1.25 * (decode + mask)


@linux_only
def test_a_jpeg_is_decoded_at_a_reduced_scale_toward_the_working_size(tmp_path: Path) -> None:
    """JPEG `draft`: a 4096x3072 photo wanted at 1024 px is decoded at a quarter of each side,
    so its full 48 MB RGB decode never happens."""
    xs = np.arange(4096, dtype=np.uint8)[None, :, None]  # wraps at 256: stripes
    ys = np.arange(3072, dtype=np.uint8)[:, None, None]
    pixels = np.broadcast_to(xs, (3072, 4096, 3)) + np.broadcast_to(ys, (3072, 4096, 3))
    path = tmp_path / "big.jpg"
    path.write_bytes(saved(Image.fromarray(pixels), "JPEG"))
    peak, size = peak_of_loading(path, "image", max_side=1024)
    assert size == (1024, 768)
    full_decode = 4096 * 3072 * 4
    print(f"\npeak {peak / MB:.0f} MB against a {full_decode / MB:.0f} MB full decode")
    assert peak < full_decode / 4


# --- the header is checked before decoding, on every path -------------------------------------


BOMB = png_header_only(10_000, 10_000)  # 100 MP claimed, a few bytes on disk


def test_the_probe_reads_only_the_header(tmp_path: Path) -> None:
    ok = png_header_only(300, 200)  # no pixel data at all: decoding it would fail
    header = probe_image(ok)
    assert (header.width, header.height, header.format, header.mode) == (300, 200, "PNG", "RGB")
    path = tmp_path / "bomb.png"
    path.write_bytes(BOMB)
    for source in (BOMB, path, str(path)):
        with pytest.raises(ImageTooLargeError) as info:
            probe_image(source)
        error = info.value
        assert (error.width, error.height, error.max_pixels) == (10_000, 10_000, DEFAULT_MAX_PIXELS)
        assert error.pixels == 100_000_000 and "over the limit" in str(error)


@pytest.mark.parametrize("load", [read_image, load_mask, probe_image])
def test_every_loader_refuses_a_bomb_from_its_header(load) -> None:
    with pytest.raises(ImageTooLargeError, match="10000x10000"):
        load(BOMB)


def test_pillows_own_bomb_guard_becomes_our_error() -> None:
    """Past twice Pillow's limit, Pillow itself refuses while opening; the size is kept."""
    with pytest.raises(ImageTooLargeError) as info:
        read_image(png_header_only(60_000, 60_000))
    assert info.value.pixels == 3_600_000_000 and "over the limit" in str(info.value)
    assert info.value.width is None


def test_arrays_and_pil_images_given_directly_are_checked_before_conversion() -> None:
    """A broadcast array claims 400 MP while holding one pixel: converting it would allocate
    gigabytes, so the size must be refused first; a lazily opened PIL image likewise."""
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (20_000, 20_000, 3))
    for load in (read_image, load_mask, probe_image):
        with pytest.raises(ImageTooLargeError, match=r"the (image|mask) is 20000x20000"):
            load(huge)
    import io

    with pytest.warns(Image.DecompressionBombWarning):  # Pillow's warning, past 89 MP
        lazy = Image.open(io.BytesIO(BOMB))
    for load in (read_image, load_mask, probe_image):
        with pytest.raises(ImageTooLargeError):
            load(lazy)


def test_the_pixel_limit_is_the_callers() -> None:
    data = png_header_only(300, 200)
    with pytest.raises(ImageTooLargeError, match="over the limit of 59,999 pixels"):
        probe_image(data, max_pixels=59_999)
    assert probe_image(data, max_pixels=60_000).pixels == 60_000
