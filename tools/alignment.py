"""Did the conductor keep the photo where it was? Shift and zoom of its raw output, measured
on the structure outside the edit.

Instruction editors redraw the whole picture, and some move it while doing so: Qwen-Image-Edit
is known to shift or zoom slightly (more at high resolution). We composite our own background
back, so a moved picture shows up at the seam: the edited object no longer meets its
surroundings. `measure_alignment` compares the conductor's raw output (before compositing) with
the source outside the mask (dilated past the blend seam): a coarse translation from OpenCV's
phase correlation of gradient magnitudes, refined to scale and translation by ECC
(`cv2.findTransformECC`, affine, with that mask). `Alignment.drift_px` is how far any point of
the region moved (corners included, so a zoom counts), in pixels of the photo.

Images are uint8 RGB arrays or PIL images, masks uint8 with 255 = edited; cv2 loads on use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tools.images import to_float_image
from tools.mask_ops import Mask, as_mask

MEASURE_SIDE = 512
"""Images are measured at most this long (shift resolution: about side / 512 px, refined by ECC)."""
MIN_PIXELS = 2048
"""Fewer usable pixels outside the mask than this (at measuring size): too little to judge."""
MIN_TEXTURE = 0.004
"""Mean gradient magnitude (0..1 per px) the outside needs: a plain wall cannot show a shift."""
MIN_CORRELATION = 0.3
"""Below this correlation (outside the mask, once aligned) the output does not show the source's
structure at all: a shift cannot be told, and it is not what went wrong."""


@dataclass(frozen=True)
class Alignment:
    """How the raw output sits on the source, in pixels of the photo.

    `dx`, `dy`: where the region's centre moved to; `scale`: zoom (1.0 = none); `drift_px`:
    the largest displacement of any corner or the centre (shift and zoom together).
    `measurable` is False when the outside has too few textured pixels to tell; then the
    numbers are 0 / 1.
    """

    dx: float
    dy: float
    scale: float
    drift_px: float
    measurable: bool
    method: str
    pixels: int
    note: str = ""


def _gray(image: Any) -> np.ndarray:
    rgb = to_float_image(image)
    if rgb.shape[2] == 1:
        return rgb[..., 0].astype(np.float32)
    return (rgb[..., :3] @ np.array([0.299, 0.587, 0.114])).astype(np.float32)


def _not_measurable(pixels: int, why: str) -> Alignment:
    return Alignment(0.0, 0.0, 1.0, 0.0, False, "none", pixels, why)


def measure_alignment(
    source: Any,
    raw: Any,
    mask: Mask,
    *,
    box: tuple[int, int, int, int] | None = None,
    margin_px: int | None = None,
    whole_image: bool = False,
) -> Alignment:
    """Shift and zoom of `raw` against `source`, judged outside `mask` (inside `box`, the
    region the conductor painted, when given).

    `margin_px` widens the mask before measuring (default: the blend seam, 10 px, or 2% of the
    region's longer side if more). `whole_image` measures everywhere (a global edit has no
    outside; its structure should still stay put).
    """
    import cv2

    src, out = _gray(source), _gray(raw)
    if src.shape != out.shape:
        raise ValueError(f"source and raw output differ in size: {src.shape} vs {out.shape}")
    hole = as_mask(mask) > 0
    if box is not None:
        x0, y0, x1, y1 = box
        src, out, hole = src[y0:y1, x0:x1], out[y0:y1, x0:x1], hole[y0:y1, x0:x1]
    height, width = src.shape
    factor = min(1.0, MEASURE_SIDE / max(height, width))
    size = (max(8, round(width * factor)), max(8, round(height * factor)))
    src_s = cv2.resize(src, size, interpolation=cv2.INTER_AREA)
    out_s = cv2.resize(out, size, interpolation=cv2.INTER_AREA)
    if whole_image:
        keep = np.ones(src_s.shape, np.uint8)
    else:
        margin = margin_px if margin_px is not None else max(10, round(0.02 * max(height, width)))
        grown = cv2.dilate(hole.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8))
        keep = cv2.resize(1 - grown, size, interpolation=cv2.INTER_NEAREST)
    pixels = int(keep.sum())
    if pixels < MIN_PIXELS:
        return _not_measurable(pixels, f"only {pixels} px outside the edit to compare")
    grad_src, grad_out = _gradient(src_s), _gradient(out_s)
    texture = float(grad_src[keep > 0].mean())
    if texture < MIN_TEXTURE:
        return _not_measurable(pixels, f"the surroundings are plain (gradient {texture:.4f})")
    warp, method = _estimate(src_s, out_s, grad_src, grad_out, keep)
    correlation = _correlation(src_s, out_s, warp, keep)
    if correlation < MIN_CORRELATION:
        return _not_measurable(
            pixels, f"the output does not show the source's structure outside the edit "
            f"(correlation {correlation:.2f})")
    return _in_photo_pixels(warp, method, factor, (width, height), pixels)


def _correlation(src: np.ndarray, out: np.ndarray, warp: np.ndarray, keep: np.ndarray) -> float:
    """Normalised correlation of the source and the output brought back by `warp`, outside the
    mask (where the warped output has pixels)."""
    import cv2

    height, width = src.shape
    back = cv2.warpAffine(out, warp, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderValue=-1.0)
    region = (keep > 0) & (back >= 0)
    if region.sum() < MIN_PIXELS // 4:
        return 0.0
    a = src[region] - src[region].mean()
    b = back[region] - back[region].mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def _gradient(gray: np.ndarray) -> np.ndarray:
    import cv2

    smooth = cv2.GaussianBlur(gray, (0, 0), 1.0)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


SEARCH_SCALES = tuple(round(1 + 0.01 * k, 2) for k in range(-8, 9))
"""Zooms tried before the fine fit (0.92 .. 1.08): ECC alone only finds a zoom it starts near."""


def _estimate(
    src: np.ndarray, out: np.ndarray, grad_src: np.ndarray, grad_out: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, str]:
    """The 2x3 affine taking source coordinates to raw-output coordinates.

    Coarse: for each zoom of `SEARCH_SCALES`, the raw gradients are scaled back about the
    centre and phase-correlated with the source's; the strongest peak gives zoom and shift.
    Fine: ECC (affine, outside the mask only) from there. ECC failing to converge leaves the
    coarse answer.
    """
    import cv2

    weight = keep.astype(np.float32)
    window = cv2.createHanningWindow(src.shape[::-1], cv2.CV_32F)
    height, width = src.shape
    cx, cy = width / 2, height / 2
    best = (-1.0, 1.0, 0.0, 0.0)
    for scale in SEARCH_SCALES:
        # u(x) = raw(scale * (x - c) + c): the raw output with the zoom undone
        undo = np.array([[scale, 0, (1 - scale) * cx], [0, scale, (1 - scale) * cy]], np.float32)
        undone = cv2.warpAffine(grad_out, undo, (width, height),
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        (dx, dy), response = cv2.phaseCorrelate(grad_src * weight, undone * weight, window)
        if response > best[0]:
            best = (response, scale, dx, dy)
    _, scale, dx, dy = best
    warp = np.array([[scale, 0, (1 - scale) * cx + scale * dx],
                     [0, scale, (1 - scale) * cy + scale * dy]], np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
    try:
        # ECC maps the input (raw) onto the template (source): its warp takes source coordinates
        # to raw coordinates, as the coarse estimate does.
        _, refined = cv2.findTransformECC(
            src, out, warp.copy(), cv2.MOTION_AFFINE, criteria, keep.astype(np.uint8), 5
        )
    except cv2.error:
        return warp, "phase"
    return refined, "ecc"


def _in_photo_pixels(
    warp: np.ndarray, method: str, factor: float, size: tuple[int, int], pixels: int
) -> Alignment:
    width, height = size
    linear = warp[:, :2].astype(np.float64)
    scale = math.sqrt(abs(np.linalg.det(linear)))
    points = np.array(
        [[width / 2, height / 2], [0, 0], [width, 0], [0, height], [width, height]], np.float64
    ) * factor
    moved = points @ linear.T + warp[:, 2]
    displacement = (moved - points) / factor
    dx, dy = displacement[0]
    drift = float(np.hypot(displacement[:, 0], displacement[:, 1]).max())
    return Alignment(float(dx), float(dy), float(scale), drift, True, method, pixels)


def drift_limit(size: tuple[int, int], fraction: float, floor_px: float) -> float:
    """The largest drift (px) an aligned edit may show on a `size` photo region."""
    return max(floor_px, fraction * max(size))
