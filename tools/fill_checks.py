"""Model-free measures of a removal: is the filled hole as textured as its surroundings, and did
the mask leave part of the object standing at its border?

`smear_measure` compares texture statistics inside the mask with a ring just outside it. A good
fill continues the surroundings, so its sharpness (Laplacian spread), gradient energy (mean
gradient magnitude) and colour spread come close to the ring's; a smear (diffusion fill, blur)
loses the first two and a flat fill loses all three. Statistics are taken after a light blur
(sigma 1 px), so sensor and JPEG noise do not count as texture, and a ring without texture
(a plain wall, a sky) cannot convict a smooth fill.

`leftover_measure` looks for strong edges of the source that cross the mask boundary from the
kept area and run on, roughly straight, deep inside the mask: the outline of an object the mask
cut in two. A background edge running up to a properly dilated mask stops where the object began
(within the dilation margin); an object's own edges continue through the hidden part.

Both take uint8 or float RGB images and a project mask (uint8, 255 = edited); cv2 is imported
only when they run. `objective_checks` in `tools.metrics` turns them into checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tools.images import to_float_image
from tools.mask_ops import Mask, as_mask

TEXTURE_SIGMA = 1.0
"""Blur (px) before texture statistics: noise below this scale is not texture."""

MIN_REGION_PX = 48
"""Fewer pixels than this inside the mask or in the ring: too little to judge a texture."""


@dataclass(frozen=True)
class TextureStats:
    """Texture of one region on the [0, 1] scale (luminance after a 1 px blur; colour raw)."""

    sharpness: float  # standard deviation of the Laplacian
    gradient: float  # mean gradient magnitude (Sobel, per pixel)
    spread: float  # mean over channels of the colour standard deviation
    pixels: int


@dataclass(frozen=True)
class SmearMeasure:
    """Texture inside the filled hole against the ring just outside it."""

    inside: TextureStats
    ring: TextureStats
    ring_width_px: int

    @property
    def measurable(self) -> bool:
        return min(self.inside.pixels, self.ring.pixels) >= MIN_REGION_PX

    def ratio(self, name: str) -> float:
        """inside / ring for `sharpness`, `gradient` or `spread` (1.0 when the ring is flat)."""
        ring = getattr(self.ring, name)
        if ring <= 1e-9:
            return 1.0
        return float(getattr(self.inside, name) / ring)


@dataclass(frozen=True)
class LeftoverMeasure:
    """Edges crossing the mask boundary that continue deep inside it."""

    crossings: int  # separate boundary places where such an edge crosses
    long_crossings: int  # of those, the ones running on at least 1.5 x `min_run_px`
    longest_run_px: int  # how far the longest of them runs on inside the mask
    min_run_px: int  # how far an edge must run on to count
    candidates: int  # strong edge pixels at the boundary that cross it (any run)

    @property
    def evidence(self) -> int:
        """Crossings, a long one counting twice: one short crossing can be a background edge
        that happens to line up with something inside; two, or one that runs on far, are an
        object's outline or markings running on under the mask."""
        return self.crossings + self.long_crossings


def _luminance(image: np.ndarray) -> np.ndarray:
    if image.shape[2] == 1:
        return image[..., 0]
    return image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114


def _float_image(image: Any) -> np.ndarray:
    return to_float_image(image).astype(np.float32)


def _gradients(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    smooth = cv2.GaussianBlur(gray, (0, 0), TEXTURE_SIGMA, borderType=cv2.BORDER_REFLECT)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
    return gx, gy


def texture_stats(image: Any, region: np.ndarray) -> TextureStats:
    """`TextureStats` of `image` over the boolean `region`."""
    import cv2

    array = _float_image(image)
    gray = _luminance(array)
    smooth = cv2.GaussianBlur(gray, (0, 0), TEXTURE_SIGMA, borderType=cv2.BORDER_REFLECT)
    gx, gy = _gradients(gray)
    lap = cv2.Laplacian(smooth, cv2.CV_32F, ksize=1)
    count = int(region.sum())
    if count == 0:
        return TextureStats(0.0, 0.0, 0.0, 0)
    magnitude = np.sqrt(gx * gx + gy * gy)
    spread = float(np.mean([array[..., c][region].std() for c in range(array.shape[2])]))
    return TextureStats(
        sharpness=float(lap[region].std()),
        gradient=float(magnitude[region].mean()),
        spread=spread,
        pixels=count,
    )


def ring_width(mask: Mask) -> int:
    """Width of the comparison ring: a quarter of the hole's equivalent diameter, 4..32 px."""
    area = float(np.count_nonzero(mask))
    diameter = 2.0 * math.sqrt(area / math.pi) if area else 0.0
    return int(min(32, max(4, round(diameter / 4))))


def smear_measure(result: Any, mask: Mask, *, ring_px: int | None = None) -> SmearMeasure:
    """Texture inside the mask (2 px in from its edge) against a ring just outside it."""
    from tools.mask_ops import dilate, erode

    edit = as_mask(mask)
    width = ring_px or ring_width(edit)
    inside = erode(edit, 2) > 0
    near = dilate(edit, 2) > 0
    ring = (dilate(edit, 2 + width) > 0) & ~near
    image = _float_image(result)
    return SmearMeasure(texture_stats(image, inside), texture_stats(image, ring), width)


def leftover_measure(
    source: Any,
    result: Any,
    mask: Mask,
    *,
    min_run_px: int | None = None,
    edge_threshold: float = 0.08,
) -> LeftoverMeasure:
    """Count strong edges that cross the mask boundary and run on inside it.

    A strong edge pixel (source gradient >= `edge_threshold`, on the 0..1 scale after a 1 px
    blur, and still an edge in `result`) within 2 px outside the mask is a crossing when the
    edge runs across the boundary (within 30 degrees of its normal, where the boundary is
    straight, not at a corner). From there the edge is traced into the mask in the source, one
    pixel at a time, while it stays an edge that bends less than 25 degrees per step and 30 in
    all; it continues when the trace stays inside the mask for `min_run_px` (default: twice
    the removal dilation of `tools.mask_policy.MaskPolicy` scaled to the image, at least 12 px),
    so past the margin where a background edge meets the object's outline and stops. Continuing
    pixels next to each other are one crossing; `evidence` weighs them.
    """
    import cv2

    from tools.mask_ops import dilate, scaled_px
    from tools.mask_policy import MaskPolicy

    edit = as_mask(mask)
    height, width = edit.shape
    inside = edit > 0
    src = _float_image(source)
    res = _float_image(result)
    gx, gy = _gradients(_luminance(src))
    magnitude = np.sqrt(gx * gx + gy * gy)
    rgx, rgy = _gradients(_luminance(res))
    visible = np.sqrt(rgx * rgx + rgy * rgy) >= edge_threshold
    strong = magnitude >= edge_threshold
    margin = scaled_px(MaskPolicy().removal_dilation_px, (width, height))
    if min_run_px is None:
        min_run_px = max(12, 2 * margin)
    band = (dilate(edit, 2) > 0) & ~inside
    soft = cv2.GaussianBlur(edit.astype(np.float32) / 255.0, (0, 0), 3.0)
    nx = cv2.Sobel(soft, cv2.CV_32F, 1, 0, ksize=3)
    ny = cv2.Sobel(soft, cv2.CV_32F, 0, 1, ksize=3)
    # the boundary's direction over a wider stretch: where it disagrees, the boundary bends
    # (a corner), and "crossing" it means little
    wide = cv2.GaussianBlur(edit.astype(np.float32) / 255.0, (0, 0), 8.0)
    wx = cv2.Sobel(wide, cv2.CV_32F, 1, 0, ksize=3)
    wy = cv2.Sobel(wide, cv2.CV_32F, 0, 1, ksize=3)
    with np.errstate(invalid="ignore", divide="ignore"):
        ux, uy = gx / magnitude, gy / magnitude
    ys, xs = np.nonzero(band & strong & visible)
    continuing = np.zeros(inside.shape, np.int32)
    candidates = 0
    longest = 0
    crossing = math.cos(math.radians(30))
    straight = math.cos(math.radians(20))
    for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
        n = math.hypot(nx[y, x], ny[y, x])
        w = math.hypot(wx[y, x], wy[y, x])
        if n < 1e-6 or w < 1e-6:
            continue
        if (nx[y, x] * wx[y, x] + ny[y, x] * wy[y, x]) / (n * w) < straight:
            continue  # a corner of the mask
        # the edge's tangent (perpendicular to the gradient) against the inward normal
        along = (-uy[y, x] * nx[y, x] + ux[y, x] * ny[y, x]) / n
        if abs(along) < crossing:
            continue  # the edge runs along the boundary, not across it
        candidates += 1
        run = _trace(ux, uy, strong, inside, y, x, 1.0 if along > 0 else -1.0,
                     4 * min_run_px)
        longest = max(longest, run)
        if run >= min_run_px:
            continuing[y, x] = run
    crossings = long_crossings = 0
    if continuing.any():
        count, labels = cv2.connectedComponents(
            cv2.dilate((continuing > 0).astype(np.uint8), np.ones((3, 3), np.uint8)),
            connectivity=8,
        )
        crossings = count - 1
        runs = np.zeros(count, np.int32)
        np.maximum.at(runs, labels[continuing > 0], continuing[continuing > 0])
        long_crossings = int(np.count_nonzero(runs[1:] >= 1.5 * min_run_px))
    return LeftoverMeasure(
        crossings=int(crossings), long_crossings=long_crossings, longest_run_px=int(longest),
        min_run_px=int(min_run_px), candidates=int(candidates),
    )


def _trace(
    ux: np.ndarray, uy: np.ndarray, strong: np.ndarray, inside: np.ndarray,
    y: int, x: int, sign: float, limit: int,
) -> int:
    """Follow the edge through (y, x) into the mask; how many steps it stays an edge inside.

    Each step moves one pixel along the edge's tangent and lands on the strong-edge pixel (of
    the 3 x 3 around the target) whose direction is closest to the current one, within 25
    degrees: the trace bends with a curved outline but stops where the edge ends or turns (a
    background edge meeting the object's outline).
    """
    height, width = strong.shape
    gy, gx = float(uy[y, x]), float(ux[y, x])
    ty, tx = sign * gx, -sign * gy  # tangent (-gy, gx) times sign, as (dy, dx)
    fy, fx = float(y), float(x)
    tolerance = math.cos(math.radians(25))
    total = math.cos(math.radians(30))
    g0y, g0x = gy, gx
    steps = 0
    visited = {(y, x)}
    for _ in range(limit):
        cy, cx = round(fy + ty), round(fx + tx)
        best, best_dot = None, tolerance
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                qy, qx = cy + dy, cx + dx
                if not (0 <= qy < height and 0 <= qx < width) or not strong[qy, qx]:
                    continue
                if (qy, qx) in visited or (qy - fy) * ty + (qx - fx) * tx <= 0.3:
                    continue  # forward only, never back over the trace
                dot = abs(float(uy[qy, qx]) * gy + float(ux[qy, qx]) * gx)
                if abs(float(uy[qy, qx]) * g0y + float(ux[qy, qx]) * g0x) < total:
                    continue  # turned too far from where it crossed: another edge
                if dot > best_dot or (dot == best_dot and best is None):
                    best, best_dot = (qy, qx), dot
        if best is None:
            break
        if not inside[best]:
            if steps or len(visited) > 4:
                break  # left the mask again, or never got into it
        else:
            steps += 1
        qy, qx = best
        visited.add(best)
        hy, hx = float(uy[qy, qx]), float(ux[qy, qx])
        if hy * gy + hx * gx < 0:
            hy, hx = -hy, -hx
        gy, gx = hy, hx
        new_ty, new_tx = gx, -gy
        if new_ty * ty + new_tx * tx < 0:
            new_ty, new_tx = -new_ty, -new_tx
        ty, tx = new_ty, new_tx
        fy, fx = float(qy), float(qx)
    return steps
