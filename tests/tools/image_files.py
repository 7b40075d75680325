"""Image files written byte by byte for the loader's tests: any PNG bit depth, EXIF tags."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
"""Channels -> PNG colour type (grey, grey + alpha, RGB, RGBA)."""


def png_bytes(array: np.ndarray, bit_depth: int = 8, *, exif: bytes | None = None,
              level: int = 6) -> bytes:
    """A PNG of `array` ((H, W) or (H, W, C), C = 1..4) at 8 or 16 bits per sample.

    Written directly (Pillow cannot save 16-bit RGB, RGBA or grey + alpha PNGs); `exif` adds
    an eXIf chunk, as phones and editors write it.
    """
    if array.ndim == 2:
        array = array[..., None]
    height, width, channels = array.shape
    sample = ">u2" if bit_depth == 16 else "u1"
    rows = array.astype(sample).reshape(height, width * channels)
    filtered = np.zeros((height, 1 + rows.dtype.itemsize * width * channels), np.uint8)
    filtered[:, 1:] = rows.view(np.uint8).reshape(height, -1)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, PNG_COLOUR_TYPES[channels], 0, 0, 0)
    chunks = [(b"IHDR", header)]
    if exif is not None:
        chunks.append((b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    chunks += [(b"IDAT", zlib.compress(filtered.tobytes(), level)), (b"IEND", b"")]
    return _png(chunks)


def saved(image: Image.Image, fmt: str, **options) -> bytes:
    """`image` saved by Pillow in `fmt`."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def exif_with_orientation(orientation: int) -> bytes:
    """EXIF bytes holding only an orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def stored_for_orientation(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores so that applying EXIF `orientation` shows `upright`."""
    undo = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, 1),
        7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
        8: lambda a: np.rot90(a, -1),
    }
    return np.ascontiguousarray(undo[orientation](upright))


def png_header_only(width: int, height: int, bit_depth: int = 8) -> bytes:
    """A valid PNG header claiming (width, height) with an empty image stream: opens, never
    decodes (a decompression bomb's shape, or a probe's test)."""
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, 2, 0, 0, 0)),
              (b"IDAT", zlib.compress(b"")), (b"IEND", b"")]
    return _png(chunks)


def _png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(data)) + kind + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        for kind, data in chunks
    )
