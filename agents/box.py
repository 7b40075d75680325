"""Where to put a new object: a pixel box on the original picture, read by the model family's rule.

Each family writes boxes its own way (`agents.families`): Qwen2.5-VL in pixels of its resized
input, Qwen3-VL on a 0-1000 grid, MiniCPM-V in `<box>` tags, LLaVA in 0-1 floats of the picture
padded to a square. The picture is sent the way the family's rule assumes (snapped to Qwen2.5-VL's
28-pixel grid and pixel budget, padded to a square for LLaVA), the family is asked in the
wording it was trained on, and its numbers are converted by its rule, not guessed. A family that
cannot point (Gemma, Llama 3.2 Vision, moondream) is not asked: `NoGroundingError`. Only an
unknown family falls back to the checked heuristics below (`infer_units`, `infer_layout`), and
the `BoxPlacement` says so.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from agents.base import VisionLanguageModel
from agents.errors import BoxProposalError, NoGroundingError
from agents.families import BoxConvention, ModelFamily, Source, bare_model_name, family_of
from agents.imaging import pad_to_square, smart_resize, snap_to_multiple
from agents.prompting import request_block, system_prompt, user_prompt
from tools.types import Box

if TYPE_CHECKING:
    from PIL import Image

Layout = Literal["corners", "xywh"]
Coordinate = Annotated[float, Field(allow_inf_nan=False)]  # NaN or inf: re-asked, not a crash
Units = Literal["pixels", "normalized_1000", "normalized_1"]


# --- what the model answers -------------------------------------------------------------------

_NUMBER = r"(-?\d+(?:\.\d+)?)"
_BOX_TAG = re.compile(r"<box>(.*?)</box>", re.DOTALL | re.IGNORECASE)
_BRACKETS = re.compile(r"\[\s*" + r"\s*,\s*".join([_NUMBER] * 4) + r"\s*\]")
_PAIR = rf"\(\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\)"
_PAIRS = re.compile(_PAIR + r"\s*,?\s*" + _PAIR)


def four_numbers(text: str) -> list[float] | None:
    """x1, y1, x2, y2 from the forms families write outside JSON: `<box>x1 y1 x2 y2</box>`,
    `[x1, y1, x2, y2]`, `(x1,y1),(x2,y2)`; None when the text holds none of them."""
    tag = _BOX_TAG.search(text)
    if tag is not None:
        numbers = re.findall(_NUMBER, tag.group(1))
        return [float(n) for n in numbers] if len(numbers) == 4 else None
    for pattern in (_BRACKETS, _PAIRS):
        found = pattern.search(text)
        if found is not None:
            return [float(n) for n in found.groups()]
    return None


def _numbers(value: Any) -> Any:
    if isinstance(value, str):
        found = four_numbers(value)
        if found is None:
            raise ValueError("write the box as four numbers [x1, y1, x2, y2]")
        return found
    return value


def _tag(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and len(value) == 4:
        return "<box>" + " ".join(f"{float(v):g}" for v in value) + "</box>"
    if isinstance(value, str) and (found := four_numbers(value)) is not None:
        return "<box>" + " ".join(f"{v:g}" for v in found) + "</box>"
    if isinstance(value, str):
        raise ValueError("write the box as <box>x1 y1 x2 y2</box>")
    return value


class _BareAnswer(BaseModel):
    """Also takes the family's own box form when the model wrote it without any JSON object."""

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Any:
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError:
            text = json_data.decode() if isinstance(json_data, (bytes, bytearray)) else json_data
            values = four_numbers(text) if "{" not in text else None
            if values is None:
                raise
            return cls._from_numbers(values)

    @classmethod
    def _from_numbers(cls, values: list[float]) -> Any:
        raise NotImplementedError


class GroundedBox(_BareAnswer):
    """[x1, y1, x2, y2] in the family's coordinates (Qwen's `bbox_2d` form)."""

    bbox_2d: Annotated[list[Coordinate], BeforeValidator(_numbers),
                       Field(min_length=4, max_length=4)]
    label: str | None = None

    @property
    def values(self) -> list[float]:
        return list(self.bbox_2d)

    @classmethod
    def _from_numbers(cls, values: list[float]) -> GroundedBox:
        return cls(bbox_2d=values)


class TaggedBox(_BareAnswer):
    """MiniCPM-V's `<box>x1 y1 x2 y2</box>` on 0-1000, inside JSON or on its own."""

    box: Annotated[str, BeforeValidator(_tag)] = Field(
        description="<box>x1 y1 x2 y2</box>, each number between 0 and 1000"
    )
    label: str | None = None

    @property
    def values(self) -> list[float]:
        return four_numbers(self.box) or []

    @classmethod
    def _from_numbers(cls, values: list[float]) -> TaggedBox:
        return cls(box=values)  # type: ignore[arg-type]  # turned into a tag by the validator


class BoxProposal(BaseModel):
    """An unknown family's box in its own terms; converted by `to_pixel_box`."""

    bbox_2d: list[Coordinate] = Field(min_length=4, max_length=4)
    layout: Layout = "corners"
    units: Units = "pixels"
    label: str | None = None


class BoxPlacement(BaseModel):
    """Where an addition goes, and how that was read: the facts a trace keeps."""

    model_config = ConfigDict(frozen=True)

    box: Box = Field(description="Pixels of the original picture, x1/y1 exclusive.")
    model: str = Field(description="The model's name on its server.")
    family: str = Field(description="The family's name (`agents.families`).")
    convention: BoxConvention = Field(description="The rule its numbers were read by.")
    source: Source = Field(description="How the family was found (`agents.families`).")
    heuristic: bool = Field(description="True when the checked heuristics read the box.")
    answer: list[float] = Field(description="The model's four numbers, as it wrote them.")
    sent: tuple[int, int] = Field(description="(W, H) of the picture the model received.")
    raw: str = Field(description="The answer's text, as the model wrote it.")


# --- the heuristics, for families with no known rule ------------------------------------------


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
    return _clamped((x0 * fx, y0 * fy, x1 * fx, y1 * fy), original,
                    f"{proposal.bbox_2d} ({layout}, {units})")


# --- the families' rules ----------------------------------------------------------------------


def picture_for_boxes(image: Image.Image, family: ModelFamily, max_side: int) -> Image.Image:
    """The picture as the family's rule assumes it: Qwen2.5-VL's grid and pixel budget (so its
    processor leaves it alone), LLaVA's square, or just no larger than `max_side`."""
    from agents.imaging import downscale

    side = max(family.grid, min(family.max_side, max_side))
    if family.box is BoxConvention.PADDED_SQUARE_1:
        return downscale(pad_to_square(image), side)
    if family.grid == 1:
        return downscale(image, side)
    sent = snap_to_multiple(image, family.grid, side)
    fitted = smart_resize(*sent.size, family.grid, family.min_pixels, family.max_pixels)
    if fitted != sent.size:
        from PIL import Image as PILImage

        sent = image.convert("RGB").resize(fitted, PILImage.Resampling.LANCZOS)
    return sent


def family_to_pixels(values: list[float], family: ModelFamily, seen: tuple[int, int],
                     original: tuple[int, int]) -> tuple[float, float, float, float]:
    """The family's four numbers as (x0, y0, x1, y1) in pixels of the original picture.

    `seen` is the picture's size as the model received it; corners may come in either order.
    """
    x0, x1 = sorted(values[0::2])
    y0, y1 = sorted(values[1::2])
    width, height = original
    if family.box is BoxConvention.RESIZED_PIXELS:
        frame_w, frame_h = smart_resize(*seen, family.grid, family.min_pixels, family.max_pixels)
        fx, fy = width / frame_w, height / frame_h
        return x0 * fx, y0 * fy, x1 * fx, y1 * fy
    if family.box in (BoxConvention.GRID_1000, BoxConvention.BOX_TAG_1000):
        fx, fy = width / 1000.0, height / 1000.0
        return x0 * fx, y0 * fy, x1 * fx, y1 * fy
    if family.box is BoxConvention.PADDED_SQUARE_1:
        side = max(width, height)
        dx, dy = (side - width) // 2, (side - height) // 2
        return x0 * side - dx, y0 * side - dy, x1 * side - dx, y1 * side - dy
    raise ValueError(f"family {family.name!r} has no box rule ({family.box.value})")


def _clamped(corners: tuple[float, float, float, float], original: tuple[int, int],
             said: str, **fields: str | None) -> Box:
    width, height = original
    try:
        return Box.clamped(*corners, width, height)
    except ValueError as exc:
        raise BoxProposalError(
            f"the model's box {said} leaves no area inside the {width}x{height} image; draw a "
            "box or a mask instead", **fields
        ) from exc


def locate_box(vlm: VisionLanguageModel, image: Image.Image, instruction: str) -> BoxPlacement:
    """Ask where the object of an addition should go, by the model family's rule.

    Raises `NoGroundingError` (a `BoxProposalError`) for a family that cannot point, without
    asking it, and `BoxProposalError` when the answer leaves no area inside the picture.
    """
    match = family_of(vlm)
    family = match.family
    model = bare_model_name(vlm.model_id)
    if not family.boxes_trusted:
        raise NoGroundingError(model, family.name, family.label)
    sent = picture_for_boxes(image, family, getattr(vlm, "max_image_side", None) or 1024)
    schema = {BoxConvention.HEURISTIC: BoxProposal,
              BoxConvention.BOX_TAG_1000: TaggedBox}.get(family.box, GroundedBox)
    answer = vlm.ask(
        system=system_prompt("box" if match.heuristic else "box_grounded"),
        user=user_prompt(family.box_prompt or "box", width=str(sent.width),
                         height=str(sent.height), request=request_block(instruction)),
        images=[sent],
        schema=schema,
    )
    seen = answer.image_sizes[0] if answer.image_sizes else sent.size
    value: Any = answer.value
    if match.heuristic:
        numbers = [float(v) for v in value.bbox_2d]
        box = to_pixel_box(value, seen, image.size)
    else:
        numbers = value.values
        box = _clamped(family_to_pixels(numbers, family, seen, image.size), image.size,
                       f"{numbers} ({family.label}, {family.box.value})", model=model,
                       family=family.name)
    return BoxPlacement(box=box, model=model, family=family.name, convention=family.box,
                        source=match.source, heuristic=match.heuristic, answer=numbers,
                        sent=seen, raw=answer.raw)


def propose_box(vlm: VisionLanguageModel, image: Image.Image, instruction: str) -> Box:
    """Ask where the object of an addition should go; a pixel box on `image` (see `locate_box`)."""
    return locate_box(vlm, image, instruction).box
