"""Where a conductor looks and at what size, and how its output goes back onto the photo.

`frame_edit` picks the region a conductor paints (the whole photo, or for a large photo with a
small mask the crop around the mask that BrushNet's pipelines use) and the working size: the
region scaled, aspect kept, to the model's native area (FLUX: about 1024**2 pixels) in multiples
of its size step. `place` puts the output back at the photo's size (resized to the region, pasted
into the photo) and `composite` blends it with BrushNet's blur blend
(`brushedit_inpaint.blend_weights`), so every pixel outside the blend zone is the source pixel
itself, bit for bit.

Images are uint8 RGB arrays (H, W, 3), masks uint8 (H, W) with 255 = repaint. numpy at import;
cv2 and the BrushNet helpers (torch) load when a function runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tools.inpainter import crop_padding
from tools.mask_ops import Mask

BLEND_KERNEL = 21
"""BrushNet's blur blend kernel (21 x 21): the seam reaches 10 px outside the mask."""


@dataclass(frozen=True)
class Framing:
    """The region of the photo a conductor paints and the size it paints it at.

    `box` is `(x0, y0, x1, y1)` in the photo (x1, y1 exclusive), None for the whole photo;
    sizes are `(width, height)`.
    """

    photo_size: tuple[int, int]
    box: tuple[int, int, int, int] | None
    working_size: tuple[int, int]

    @property
    def region_size(self) -> tuple[int, int]:
        if self.box is None:
            return self.photo_size
        x0, y0, x1, y1 = self.box
        return x1 - x0, y1 - y0


def native_size(
    width: int, height: int, side: int, multiple: int, min_side: int = 0
) -> tuple[int, int]:
    """`(width, height)` scaled, aspect kept, to about `side`**2 pixels, both multiples of
    `multiple`, the longer side at most `2 * side`, each at least `min_side` (and one multiple)."""
    scale = math.sqrt(side * side / (width * height))
    scale = min(scale, 2 * side / max(width, height))
    floor = max(multiple, math.ceil(min_side / multiple) * multiple)
    w = max(floor, int(round(width * scale / multiple)) * multiple)
    h = max(floor, int(round(height * scale / multiple)) * multiple)
    return w, h


def frame_edit(
    photo_size: tuple[int, int],
    mask: Mask,
    *,
    side: int,
    multiple: int,
    min_side: int = 0,
    crop: bool = True,
) -> Framing:
    """The region and working size for an edit of a `photo_size` photo at `side`**2 pixels.

    A photo larger than the native size whose mask, with `tools.inpainter.CROP_PADDING` around
    it, spans at most half its longer side is edited through a crop around the mask (widened to
    the photo's aspect ratio), like BrushNet's pipelines: the model then spends its native
    resolution on the edit instead of on the whole photo. `crop=False` always takes the whole
    photo (maskless edits).
    """
    padding = crop_padding(photo_size, mask, side) if crop else None
    box = None
    if padding is not None:
        from brushedit_inpaint.toolbox import mask_crop_box

        box = mask_crop_box(mask > 0, padding, photo_size[0], photo_size[1])
        if box == (0, 0, photo_size[0], photo_size[1]):
            box = None
    framing = Framing(photo_size, box, (0, 0))
    width, height = framing.region_size
    return Framing(photo_size, box, native_size(width, height, side, multiple, min_side))


def region(image: np.ndarray, mask: Mask, framing: Framing) -> tuple[np.ndarray, Mask]:
    """The photo and mask cut to `framing.box` and resized to the working size (area filter
    or bicubic for the image, nearest neighbour for the mask, so it stays binary)."""
    from brushedit_inpaint.processing import resize_image, resize_mask

    if framing.box is not None:
        x0, y0, x1, y1 = framing.box
        image, mask = image[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    width, height = framing.working_size
    work = resize_image(image.astype(np.float32) / 255.0, height, width)
    work_mask = resize_mask(mask, height, width)
    return _to_uint8(work), np.where(work_mask > 127, 255, 0).astype(np.uint8)


def blend_zone(mask: Mask, *, blending: bool = True) -> np.ndarray:
    """Boolean (H, W): the pixels `composite` may change (the mask, plus the blur blend's seam
    when `blending`); every other pixel of the result equals the source exactly."""
    if not blending:
        return mask > 0
    from brushedit_inpaint.processing import blend_weights

    return blend_weights((mask > 0).astype(np.float32), BLEND_KERNEL) > 0


def place(source: np.ndarray, generated: np.ndarray, framing: Framing) -> np.ndarray:
    """The conductor's raw output at the photo's size: `generated` (any size) resized to the
    region and, for a crop, pasted into the source. Nothing is blended yet: this is what the
    alignment check compares with the source."""
    from brushedit_inpaint.processing import resize_image
    from brushedit_inpaint.toolbox import paste_crop

    width, height = framing.region_size
    full = resize_image(generated.astype(np.float32) / 255.0, height, width)
    if framing.box is not None:
        full = paste_crop(source.astype(np.float32) / 255.0, full, framing.box)
    return _to_uint8(full)


def composite(source: np.ndarray, placed: np.ndarray, mask: Mask, *, blending: bool) -> np.ndarray:
    """The raw output (`place`) blended onto the `source` photo.

    With `blending`, BrushNet's blur blend (`m = 1 - (1 - mask) * (1 - blur)`,
    `out = source * (1 - m) + placed * m`); without it, the output inside the mask only.
    Outside `blend_zone(mask)` the result is the source array itself.
    """
    from brushedit_inpaint.processing import blend_weights

    hole = (mask > 0).astype(np.float32)
    weight = (blend_weights(hole, BLEND_KERNEL) if blending else hole)[..., None]
    original = source.astype(np.float32) / 255.0
    blended = _to_uint8(original * (1.0 - weight) + placed.astype(np.float32) / 255.0 * weight)
    return np.where(weight > 0, blended, source)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats to uint8 by rounding, so `u / 255` comes back as `u` exactly."""
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
