"""The BrushEdit paper's published numbers and the units its tables use.

Source: ../shared/reference/brushedit.md section 4 (BrushEdit, arXiv 2412.10316). Values are
stored in the paper's units; `Unit.scale` turns one of our raw values (PSNR in dB, LPIPS, MSE and
SSIM on the 0..1 scale, CLIP as CLIPScore = 100 * cosine) into those units.
"""

from __future__ import annotations

from pydantic import BaseModel


class Unit(BaseModel):
    """How a table column is written: our raw value times `scale`, with `higher_is_better`."""

    metric: str
    label: str
    scale: float
    higher_is_better: bool


class PaperRow(BaseModel):
    """One method's numbers in one benchmark table, in that table's units."""

    method: str
    values: dict[str, float]
    note: str = ""


class PaperTable(BaseModel):
    benchmark: str
    units: list[Unit]
    rows: list[PaperRow]
    note: str = ""


UNITS = {
    unit.metric: unit
    for unit in (
        Unit(metric="psnr_unedited", label="PSNR (dB)", scale=1.0, higher_is_better=True),
        Unit(metric="lpips_unedited", label="LPIPS ×10³", scale=1e3, higher_is_better=False),
        Unit(metric="mse_unedited", label="MSE ×10⁴", scale=1e4, higher_is_better=False),
        Unit(metric="ssim_unedited", label="SSIM ×10²", scale=1e2, higher_is_better=True),
        Unit(metric="clip_edited", label="CLIP (edited)", scale=1.0, higher_is_better=True),
        Unit(metric="clip_whole", label="CLIP (whole)", scale=1.0, higher_is_better=True),
        Unit(metric="image_reward", label="ImageReward ×10", scale=10.0, higher_is_better=True),
        Unit(metric="hps_v21", label="HPS v2.1 ×10²", scale=1e2, higher_is_better=True),
        Unit(metric="aesthetic", label="Aesthetic", scale=1.0, higher_is_better=True),
    )
}
"""Each metric's column, written once; a table picks its columns (BrushBench rescales MSE)."""


def _units(*metrics: str, **rescaled: Unit) -> list[Unit]:
    """The columns of a table, in order; `rescaled` replaces a metric's usual unit."""
    return [rescaled.get(metric, UNITS[metric]) for metric in metrics]


PIE_BENCH = PaperTable(
    benchmark="pie-bench",
    units=_units(
        "psnr_unedited", "lpips_unedited", "mse_unedited", "ssim_unedited", "clip_edited",
        "clip_whole",
    ),
    rows=[
        PaperRow(
            method="BrushEdit (paper)",
            values={
                "psnr_unedited": 32.16,
                "lpips_unedited": 17.22,
                "mse_unedited": 8.43,
                "ssim_unedited": 97.08,
                "clip_edited": 22.44,
            },
        ),
        PaperRow(
            method="PnP inversion + P2P (paper, best inversion baseline)",
            values={
                "psnr_unedited": 27.22,
                "lpips_unedited": 54.55,
                "mse_unedited": 32.86,
                "ssim_unedited": 84.76,
                "clip_edited": 22.10,
            },
        ),
    ],
    note=(
        "The paper's table has one CLIP column; we compare it with the edited-region CLIP "
        "similarity (the baseline's 22.10 is what PIE-Bench's own table lists as its 'edited' "
        "CLIP), and show the whole-image CLIP without a paper value."
    ),
)

BRUSHBENCH = PaperTable(
    benchmark="brushbench",
    units=_units(
        "image_reward", "hps_v21", "aesthetic", "psnr_unedited", "lpips_unedited",
        "mse_unedited", "clip_whole",
        mse_unedited=Unit(
            metric="mse_unedited", label="MSE ×10³", scale=1e3, higher_is_better=False
        ),
    ),
    rows=[],
    note=(
        "Our reference records no BrushBench numbers of the paper, so none are shown; the "
        "columns use the BrushNet paper's units. The paper's EditBench numbers (BrushEdit*: "
        "PSNR 32.97, MSE ×10³ 0.70, LPIPS ×10³ 7.24, SSIM ×10² 98.60, CLIP 29.62) belong to "
        "another benchmark and are not compared."
    ),
)

TABLES = {table.benchmark: table for table in (PIE_BENCH, BRUSHBENCH)}
