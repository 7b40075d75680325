"""How large and how small an image may be: the one place every limit on image size lives.

Every step after loading relies on these numbers, so the loader refuses what a later step
could not handle (a crash deep inside an edit is a worse answer than a sentence up front):

- `MIN_SIDE`: the smallest side any step accepts. The quality check's SSIM window is 11 px
  (`tools.metrics.SSIM_WINDOW`); the diffusion conductors work in latents of 1/8 the size, so
  16 px leaves them two latent pixels. A test holds every later minimum to this constant.
- `DEFAULT_MAX_PIXELS`: checked from the file's header before a pixel is decoded.
- `working_size`: the one aspect-keeping downscale. An image whose short side would fall under
  `MIN_SIDE` at the working size (10000x100 at 1024 px) is refused, never squeezed.
"""

from __future__ import annotations

from tools.errors import ImageTooLargeError, ImageTooSmallError

MIN_SIDE = 16
"""Smallest width or height (px) the loader accepts, before and after the working downscale."""
DEFAULT_MAX_PIXELS = 40_000_000
"""40 megapixels: larger than any photo we expect, far below what would exhaust memory."""
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""256 MiB: a 40-megapixel uncompressed TIFF fits; reading stops as soon as a file passes it."""


def check_image_size(
    width: int, height: int, *, name: str = "the image", max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = MIN_SIDE,
) -> None:
    """Refuse a (W, H) over `max_pixels` (`ImageTooLargeError`) or with a side under
    `min_side` (`ImageTooSmallError`); call it with a header's size, before decoding.

    Masks pass `min_side=1`: a mask is held to its image's size by `tools.mask_ops.fit_mask`
    (a small mask of the image's aspect ratio is scaled up), and the image to `MIN_SIDE`.
    """
    if width * height > max_pixels:
        raise ImageTooLargeError(name, max_pixels, width=width, height=height)
    if min(width, height) < min_side:
        raise ImageTooSmallError(name, width, height, min_side)


def working_size(
    size: tuple[int, int], max_side: int | None, *, name: str = "the image"
) -> tuple[int, int]:
    """(W, H) shrunk (never enlarged), keeping the aspect ratio, so the long side is at most
    `max_side`; `ImageTooSmallError` when the short side would fall under `MIN_SIDE`."""
    check_max_side(max_side)
    width, height = int(size[0]), int(size[1])
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    working = (round(width * scale), round(height * scale))
    if min(working) < MIN_SIDE:
        raise ImageTooSmallError(name, width, height, MIN_SIDE, working=working,
                                 max_side=max_side)
    return working


def check_max_side(max_side: int | None) -> None:
    """A working size is None (full size) or a whole number of at least `MIN_SIDE`; anything
    else is the caller's bug (`ValueError`), not the image's fault."""
    if max_side is not None and (
        isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < MIN_SIDE
    ):
        raise ValueError(f"`max_side` must be a whole number >= {MIN_SIDE}, got {max_side!r}")
