# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""Training-mask sampling and augmentation as in BrushNet's training recipe.

All masks here are float32 `(H, W)` arrays with 1 = hole (area to generate), the pipeline's public convention.
Functions take an explicit `numpy.random.Generator` so a seed reproduces a run.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import PIL.Image


def random_brush_mask(
    height: int,
    width: int,
    rng: np.random.Generator,
    max_strokes: int = 4,
    max_vertices: int = 8,
    max_width_fraction: float = 0.15,
) -> np.ndarray:
    """Free-form brush strokes: a few random polylines drawn with random thick round brushes."""
    mask = np.zeros((height, width), dtype=np.uint8)
    size = min(height, width)
    for _ in range(int(rng.integers(1, max_strokes + 1))):
        brush = max(1, int(rng.uniform(0.04, max_width_fraction) * size))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        for _ in range(int(rng.integers(2, max_vertices + 1))):
            angle = rng.uniform(0, 2 * np.pi)
            length = rng.uniform(0.1, 0.4) * size
            nx = int(np.clip(x + length * np.cos(angle), 0, width - 1))
            ny = int(np.clip(y + length * np.sin(angle), 0, height - 1))
            cv2.line(mask, (x, y), (nx, ny), 1, thickness=brush)
            cv2.circle(mask, (nx, ny), brush // 2, 1, thickness=-1)
            x, y = nx, ny
    return mask.astype(np.float32)


def erode_or_dilate(mask: np.ndarray, rng: np.random.Generator, max_kernel: int = 15) -> np.ndarray:
    """Erode or dilate (50/50) with a random square kernel, so the branch does not overfit exact object edges.

    An erosion that would empty the mask is skipped.
    """
    k = int(rng.integers(3, max_kernel + 1))
    kernel = np.ones((k, k), dtype=np.uint8)
    binary = (mask > 0.5).astype(np.uint8)
    if rng.random() < 0.5:
        out = cv2.erode(binary, kernel)
        if out.sum() == 0:
            return binary.astype(np.float32)
    else:
        out = cv2.dilate(binary, kernel)
    return out.astype(np.float32)


def swap_inside_outside(mask: np.ndarray) -> np.ndarray:
    """Inpaint the outside instead of the inside (outpainting around an object)."""
    return 1.0 - mask


def augment_mask(
    mask: np.ndarray, rng: np.random.Generator, p_morph: float = 0.3, p_swap: float = 0.5
) -> np.ndarray:
    """Erode/dilate with probability `p_morph` (30%), then swap inside/outside with probability `p_swap` (50%)."""
    if rng.random() < p_morph:
        mask = erode_or_dilate(mask, rng)
    if rng.random() < p_swap:
        mask = swap_inside_outside(mask)
    return mask


def load_mask(path: str | Path, height: int, width: int) -> np.ndarray:
    """Load a segmentation mask image (white = object) as a binary hole mask of the given size."""
    image = PIL.Image.open(path).convert("L").resize((width, height), PIL.Image.NEAREST)
    return (np.asarray(image, dtype=np.float32) / 255.0 >= 0.5).astype(np.float32)


def sample_training_mask(
    height: int,
    width: int,
    rng: np.random.Generator,
    segmentation_mask: np.ndarray | None = None,
    p_segmentation: float = 0.5,
    p_morph: float = 0.3,
    p_swap: float = 0.5,
) -> np.ndarray:
    """One training hole mask: the segmentation mask (when given, with probability `p_segmentation`) or random
    brush strokes, then [`augment_mask`]."""
    if segmentation_mask is not None and segmentation_mask.any() and rng.random() < p_segmentation:
        mask = segmentation_mask.astype(np.float32)
    else:
        mask = random_brush_mask(height, width, rng)
    return augment_mask(mask, rng, p_morph=p_morph, p_swap=p_swap)
