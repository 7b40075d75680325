"""Where to put a new object: a pixel box for additions, whatever coordinates the model used.

Models answer in pixels, 0-1000 or 0-1 normalised units, as corners or as x/y/width/height;
the schema lets the model say which, and `to_pixel_box` double-checks with simple heuristics.
qwen2.5vl answers in pixels of its own resized input (sides in multiples of 28), so the picture
is sent already snapped to that grid and answers are rescaled from it to the original size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from agents.base import VisionLanguageModel
from agents.errors import BoxProposalError
from agents.imaging import snap_to_multiple
from agents.prompting import request_block, system_prompt, user_prompt
from tools.types import Box

if TYPE_CHECKING:
    from PIL import Image

Layout = Literal["corners", "xywh"]
Units = Literal["pixels", "normalized_1000", "normalized_1"]
GRID = 28
MAX_SENT_SIDE = 1008  # 36 * 28: the largest grid size under the default 1024-pixel bound


class BoxProposal(BaseModel):
    """The model's box in its own terms; converted by `to_pixel_box`."""

    bbox_2d: list[float] = Field(min_length=4, max_length=4)
    layout: Layout = "corners"
    units: Units = "pixels"
    label: str | None = None


def infer_units(values: list[float], units: Units, seen: tuple[int, int]) -> Units:
    """Correct the claimed units when the numbers cannot be what the model says."""
    width, height = seen
    top = max(values)
    if top <= 1.0 and min(values) >= 0.0:
        return "normalized_1"  # a box within one pixel is never meant
    if units == "normalized_1":
        return "normalized_1000" if top <= 1000 else "pixels"
    if units == "pixels" and top <= 1000:
        over = values[0] > width or values[2] > width or values[1] > height or values[3] > height
        if over and max(width, height) < 1000:
            return "normalized_1000"
    return units


def infer_layout(values: list[float], layout: Layout, limits: tuple[float, float]) -> Layout:
    """Corners need x1 > x0 and y1 > y0; x/y/w/h must stay inside the picture."""
    a, b, c, d = values
    width, height = limits
    if layout == "corners" and (c <= a or d <= b):
        return "xywh"
    if layout == "xywh" and (a + c > width * 1.05 or b + d > height * 1.05) and c > a and d > b:
        return "corners"
    return layout


def to_pixel_box(
    proposal: BoxProposal, seen: tuple[int, int], original: tuple[int, int]
) -> Box:
    """Pixel `Box` on the original image from a proposal made on a `seen`-sized picture.

    Raises `BoxProposalError` when nothing is left after clamping.
    """
    values = [float(v) for v in proposal.bbox_2d]
    units = infer_units(values, proposal.units, seen)
    scale = {"pixels": seen, "normalized_1000": (1000.0, 1000.0), "normalized_1": (1.0, 1.0)}
    unit_w, unit_h = scale[units]
    layout = infer_layout(values, proposal.layout, (unit_w, unit_h))
    x0, y0, c, d = values
    x1, y1 = (x0 + c, y0 + d) if layout == "xywh" else (c, d)
    width, height = original
    fx, fy = width / unit_w, height / unit_h
    try:
        return Box.clamped(x0 * fx, y0 * fy, x1 * fx, y1 * fy, width, height)
    except ValueError as exc:
        raise BoxProposalError(
            f"the model's box {proposal.bbox_2d} ({layout}, {units}) leaves no area inside the "
            f"{width}x{height} image; draw a box or a mask instead"
        ) from exc


def propose_box(vlm: VisionLanguageModel, image: Image.Image, instruction: str) -> Box:
    """Ask where the object of an addition should go; a pixel box on `image`."""
    max_side = min(MAX_SENT_SIDE, getattr(vlm, "max_image_side", MAX_SENT_SIDE) or MAX_SENT_SIDE)
    sent = snap_to_multiple(image, GRID, max(GRID, max_side))
    answer = vlm.ask(
        system=system_prompt("box"),
        user=user_prompt(
            "box", width=str(sent.width), height=str(sent.height), request=request_block(instruction)
        ),
        images=[sent],
        schema=BoxProposal,
    )
    seen = answer.image_sizes[0] if answer.image_sizes else sent.size
    return to_pixel_box(answer.value, seen, image.size)
