"""Measures of an edit, following the BrushEdit paper, and the objective checks built on them.

Background fidelity is measured on the UNEDITED region only: both images are multiplied by
(1 - mask) and averages are taken over the unmasked pixels (paper section 4). Images are uint8
(H, W, 3) arrays or PIL images, or float arrays already in [0, 1]; every value is on the [0, 1]
scale. Masks follow the project convention (uint8, 255 = edited).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tools.images import ImageLike, to_float_image
from tools.mask_ops import Mask, area_fraction, as_mask
from tools.types import EditCategory

if TYPE_CHECKING:
    pass

PSNR_CAP = 100.0
"""PSNR of identical regions is infinite; report this finite cap instead (JSON has no inf)."""

SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
"""Gaussian window as in skimage's `gaussian_weights=True` (truncate 3.5 at sigma 1.5: 11 px)."""

def _prepare(
    source: ImageLike, result: ImageLike, mask: Mask
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float images plus the KEEP weight (H, W, 1): 1 where unedited, 0 inside the mask."""
    src, res = to_float_image(source), to_float_image(result)
    if src.shape != res.shape:
        raise ValueError(f"source {src.shape} and result {res.shape} must have the same shape")
    edit = as_mask(mask)
    if edit.shape != src.shape[:2]:
        raise ValueError(f"the mask {edit.shape} does not match the images {src.shape[:2]}")
    keep = 1.0 - (edit.astype(np.float64) / 255.0)[..., None]
    return src, res, keep


def masked_mse(source: ImageLike, result: ImageLike, mask: Mask) -> float:
    """Mean squared error outside the mask: sum(((s - r)(1 - m))^2) / (unmasked pixels * C).

    A full mask leaves nothing to compare and gives 0.0.
    """
    src, res, keep = _prepare(source, result, mask)
    count = float(keep.sum()) * src.shape[2]
    if count == 0:
        return 0.0
    return float(np.sum(((src - res) * keep) ** 2) / count)


def masked_psnr(source: ImageLike, result: ImageLike, mask: Mask) -> float:
    """PSNR (dB, data range 1) of `masked_mse`; identical regions give `PSNR_CAP` (100 dB)."""
    mse = masked_mse(source, result, mask)
    if mse <= 0.0:
        return PSNR_CAP
    return float(min(PSNR_CAP, 10.0 * math.log10(1.0 / mse)))


def masked_ssim(source: ImageLike, result: ImageLike, mask: Mask) -> float:
    """SSIM of both images with the edited region zeroed, averaged over channels.

    Matches `skimage.metrics.structural_similarity(channel_axis=2, data_range=1.0,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`; both sides need >= 11 px.
    """
    src, res, keep = _prepare(source, result, mask)
    return ssim(src * keep, res * keep)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Gaussian-window SSIM of two float (H, W, C) images in [0, 1] (skimage's defaults)."""
    import cv2

    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"SSIM needs two (H, W, C) images of one shape, got {a.shape}, {b.shape}")
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images at least {SSIM_WINDOW} px on each side, got {a.shape}")
    c1, c2 = 0.01**2, 0.03**2
    pad = (SSIM_WINDOW - 1) // 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(
            x, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT
        )

    values = []
    for c in range(a.shape[2]):
        x, y = np.ascontiguousarray(a[..., c]), np.ascontiguousarray(b[..., c])
        ux, uy = blur(x), blur(y)
        vx = blur(x * x) - ux * ux
        vy = blur(y * y) - uy * uy
        vxy = blur(x * y) - ux * uy
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
        values.append(s[pad:-pad, pad:-pad].mean())
    return float(np.mean(values))


def change_inside(source: ImageLike, result: ImageLike, mask: Mask) -> float:
    """Mean absolute difference inside the mask, 0..1; an empty mask gives 0.0."""
    src, res, keep = _prepare(source, result, mask)
    inside = 1.0 - keep
    count = float(inside.sum()) * src.shape[2]
    if count == 0:
        return 0.0
    return float(np.sum(np.abs(src - res) * inside) / count)


def mask_coverage(mask: Mask) -> float:
    """Share of the image the mask marks for editing, 0..1."""
    return area_fraction(as_mask(mask))


def edit_metrics(source: ImageLike, result: ImageLike, mask: Mask) -> dict[str, float]:
    """Every measure of one edit: psnr/ssim/mse outside the mask, change inside, coverage."""
    return {
        "psnr_outside": masked_psnr(source, result, mask),
        "ssim_outside": masked_ssim(source, result, mask),
        "mse_outside": masked_mse(source, result, mask),
        "change_inside": change_inside(source, result, mask),
        "coverage": mask_coverage(mask),
    }


# --- objective checks --------------------------------------------------------------------------

CheckStage = Literal["mask", "inpaint"]


class Check(BaseModel):
    """One pass/fail test of an edit, with the measured value and the bar it had to clear."""

    model_config = ConfigDict(frozen=True)

    name: str
    passed: bool
    value: float
    threshold: float
    stage: CheckStage = Field(description="Which step to blame: the mask or the inpainting.")
    message: str


Share = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]


class CheckThresholds(BaseModel):
    """Bars for `objective_checks`; see docs/tools.md for why these values."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    min_psnr_outside: float = 30.0
    """dB; blended BrushNet edits exceed it."""
    min_ssim_outside: Share = 0.90
    """SSIM outside the mask; the background of a blended edit stays near 1."""
    min_change_inside: Share = 0.01
    """Mean abs change (0..1) below which nothing was done."""
    max_coverage: dict[EditCategory, float] = Field(
        default_factory=lambda: {
            EditCategory.REMOVAL: 0.60,
            EditCategory.LOCAL: 0.80,
            EditCategory.ADDITION: 0.60,
            EditCategory.BACKGROUND: 0.98,
        }
    )
    """Largest plausible mask share per category (global must be 1.0)."""
    min_fill_texture: NonNegative = 0.30
    """Removals: texture inside the fill (geometric mean of its gradient energy and sharpness)
    as a share of the ring's just outside; below it the fill is a smear."""
    min_fill_colour: NonNegative = 0.08
    """Removals: colour spread inside the fill as a share of the ring's; below it the fill is
    flat."""
    min_ring_texture: NonNegative = 0.008
    """Mean gradient magnitude (0..1 per px) the ring needs before a smooth fill counts against
    it: next to a plain wall or sky, smooth is right."""
    max_border_crossings: Annotated[int, Field(ge=0)] = 1
    """Removals: edges that cross the mask boundary and run on deep inside it (an object cut by
    the mask), a long one counting twice; more than this and the mask left part of the object
    outside."""
    max_drift: Share = 0.005
    """Conductors: how far the raw output may have moved (shift and zoom together, at its
    worst point) outside the edit, as a share of the region's longer side; more and the
    edited area no longer meets its surroundings at the seam."""
    min_drift_px: NonNegative = 2.0
    """The drift allowed on small photos, in pixels (resampling alone moves edges by 1 px)."""


def objective_checks(
    category: EditCategory | str,
    source: ImageLike,
    result: ImageLike,
    mask: Mask,
    *,
    thresholds: CheckThresholds | None = None,
) -> list[Check]:
    """Checks any edit must pass, without a model: a plausible mask, a kept background, a change.

    Mask stage: the mask is not empty and not implausibly large for the category (a global edit's
    mask must be full). Inpaint stage: PSNR and SSIM outside the mask clear their bars (skipped
    for global edits, which have no outside) and the masked area actually changed.
    """
    category = EditCategory.parse(category) if isinstance(category, str) else category
    bars = thresholds or CheckThresholds()
    metrics = edit_metrics(source, result, mask)
    coverage = metrics["coverage"]
    checks: list[Check] = []
    if category is EditCategory.GLOBAL:
        checks.append(
            _at_least(
                "mask_full",
                coverage,
                1.0,
                "mask",
                f"a global edit must cover the whole image; the mask covers {coverage:.1%}",
            )
        )
    else:
        checks.append(
            Check(
                name="mask_not_empty",
                passed=coverage > 0.0,
                value=coverage,
                threshold=0.0,
                stage="mask",
                message="the mask is empty: nothing would be edited"
                if coverage == 0.0
                else f"the mask covers {coverage:.1%} of the image",
            )
        )
        limit = bars.max_coverage.get(category, 1.0)
        checks.append(
            Check(
                name="mask_coverage",
                passed=coverage <= limit,
                value=coverage,
                threshold=limit,
                stage="mask",
                message=f"the mask covers {coverage:.1%} of the image; a {category.value} mask "
                f"over {limit:.0%} is suspect",
            )
        )
        psnr, ssim_value = metrics["psnr_outside"], metrics["ssim_outside"]
        checks.append(
            _at_least(
                "background_psnr",
                psnr,
                bars.min_psnr_outside,
                "inpaint",
                f"PSNR outside the mask is {psnr:.1f} dB "
                f"(needs >= {bars.min_psnr_outside:.1f} dB to count as kept)",
            )
        )
        checks.append(
            _at_least(
                "background_ssim",
                ssim_value,
                bars.min_ssim_outside,
                "inpaint",
                f"SSIM outside the mask is {ssim_value:.3f} (needs >= {bars.min_ssim_outside:.2f})",
            )
        )
    if category is EditCategory.REMOVAL and coverage > 0.0:
        checks.extend(removal_checks(source, result, mask, bars))
    change = metrics["change_inside"]
    checks.append(
        _at_least(
            "changed_inside",
            change,
            bars.min_change_inside,
            "inpaint",
            f"the masked area changed by {change:.4f} on average "
            f"(needs >= {bars.min_change_inside:.2f}; below that the inpaint did nothing)",
        )
    )
    return checks


def removal_checks(
    source: ImageLike, result: ImageLike, mask: Mask, bars: CheckThresholds | None = None
) -> list[Check]:
    """A removal's fill against its surroundings, and the mask against the object's outline.

    `fill_texture` and `fill_colour` (inpaint stage) compare the hole with a ring just outside
    it (`tools.fill_checks.smear_measure`): a smear or a flat fill fails. `object_at_border`
    (mask stage) counts source edges crossing the mask boundary that run on deep inside it
    (`tools.fill_checks.leftover_measure`): part of the object was left outside the mask.
    """
    from tools.fill_checks import leftover_measure, smear_measure

    bars = bars or CheckThresholds()
    smear = smear_measure(result, mask)
    texture = math.sqrt(max(smear.ratio("gradient"), 0.0) * max(smear.ratio("sharpness"), 0.0))
    colour = smear.ratio("spread")
    textured = smear.measurable and smear.ring.gradient >= bars.min_ring_texture
    if not smear.measurable:
        why = "the hole or its ring is too small to judge texture"
    elif not textured:
        why = (f"the surroundings are plain (gradient {smear.ring.gradient:.4f} < "
               f"{bars.min_ring_texture}), so a smooth fill is right")
    else:
        why = ""
    checks = [
        _fill_check(
            "fill_texture", texture, bars.min_fill_texture, why,
            what="texture",
            detail=f"gradient energy {smear.ratio('gradient'):.2f}x, sharpness "
            f"{smear.ratio('sharpness'):.2f}x; ",
            flaw="the fill looks smeared",
        ),
        _fill_check(
            "fill_colour", colour, bars.min_fill_colour, why,
            what="colour spread", flaw="the fill is flat",
        ),
    ]  # fmt: skip
    leftover = leftover_measure(source, result, mask)
    evidence = leftover.evidence
    checks.append(
        Check(
            name="object_at_border",
            passed=evidence <= bars.max_border_crossings,
            value=float(evidence),
            threshold=float(bars.max_border_crossings),
            stage="mask",
            message=(
                f"{leftover.crossings} strong edge(s) cross the mask boundary and run on at "
                f"least {leftover.min_run_px} px inside it ({leftover.long_crossings} of them "
                f"over {round(1.5 * leftover.min_run_px)} px; longest "
                f"{leftover.longest_run_px} px)"
                + ("" if evidence <= bars.max_border_crossings else
                   ": part of the object is left outside the mask; a larger (dilated) mask "
                   "should cover it")
            ),
        )
    )
    return checks


def alignment_check(
    category: EditCategory | str,
    source: ImageLike,
    raw: ImageLike,
    mask: Mask,
    *,
    box: tuple[int, int, int, int] | None = None,
    thresholds: CheckThresholds | None = None,
) -> Check:
    """`aligned` (inpaint stage): the conductor's raw output (before compositing) sits where
    the source is, outside the mask (`tools.alignment.measure_alignment`; within `box`, the
    region it painted, when given). A global edit is measured on the whole picture. Passes,
    saying why, when the surroundings cannot show a shift (too small or plain)."""
    from tools.alignment import drift_limit, measure_alignment

    category = EditCategory.parse(category) if isinstance(category, str) else category
    bars = thresholds or CheckThresholds()
    found = measure_alignment(source, raw, mask, box=box,
                              whole_image=category is EditCategory.GLOBAL)
    size = (box[2] - box[0], box[3] - box[1]) if box is not None else as_mask(mask).shape[::-1]
    limit = drift_limit(size, bars.max_drift, bars.min_drift_px)
    if not found.measurable:
        return Check(name="aligned", passed=True, value=0.0, threshold=limit, stage="inpaint",
                     message=f"alignment not judged: {found.note}")
    passed = found.drift_px <= limit
    return Check(
        name="aligned",
        passed=passed,
        value=round(found.drift_px, 2),
        threshold=round(limit, 2),
        stage="inpaint",
        message=(
            f"the conductor's output moved by up to {found.drift_px:.1f} px outside the edit "
            f"(shift {found.dx:+.1f}, {found.dy:+.1f} px, zoom {found.scale:.3f}x; allowed "
            f"{limit:.1f} px)"
            + ("" if passed else ": the picture shifted or zoomed, so the edit will not meet "
               "its surroundings; another seed or guidance may keep it in place")
        ),
    )


def conductor_checks(
    category: EditCategory | str,
    source: ImageLike,
    result: ImageLike,
    mask: Mask,
    *,
    thresholds: CheckThresholds | None = None,
) -> list[Check]:
    """The checks only a conductor's result gets (`aligned`), read from what the conductor
    attached to it (`tools.conductors.raw_output`, `run_record`); none for other results."""
    from tools.conductors.base import raw_output, run_record

    raw = raw_output(result)
    if raw is None:
        return []
    run = run_record(result)
    box = run.crop_box if run is not None else None
    return [alignment_check(category, source, raw, mask, box=box, thresholds=thresholds)]


def _fill_check(
    name: str, ratio: float, bar: float, why: str, *, what: str, flaw: str, detail: str = ""
) -> Check:
    """The hole against its ring on one measure (`ratio` x the ring's); needs `ratio >= bar`.

    `why` says why the fill cannot be judged (too small, or plain surroundings where a smooth
    fill is right): then it passes with the value 1.0 and `why` as its message.
    """
    return Check(
        name=name,
        passed=bool(why) or ratio >= bar,
        value=1.0 if why else ratio,
        threshold=bar,
        stage="inpaint",
        message=why or (
            f"the filled area has {ratio:.2f}x the {what} of its surroundings "
            f"({detail}needs >= {bar:.2f}x)"
            + ("" if ratio >= bar else f": {flaw}; another method or seed may fill it better")
        ),
    )


def _at_least(name: str, value: float, threshold: float, stage: CheckStage, message: str) -> Check:
    """A check that passes when `value` reaches `threshold`."""
    return Check(
        name=name,
        passed=value >= threshold,
        value=value,
        threshold=threshold,
        stage=stage,
        message=message,
    )
