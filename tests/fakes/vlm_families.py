"""How each vision model family answers "where", for the fake servers: they look at the picture.

A test draws a magenta rectangle where the new object belongs; the fake finds it in the picture
it received and writes that place the way the family would, from the family's own facts (written
out here from the model cards and the issues cited, not from `agents.families`):
- Qwen2.5-VL: pixels of the picture after its processor's `smart_resize` (28-pixel grid, at most
  1280*28*28 pixels on Ollama), as `{"bbox_2d": [...]}`;
- Qwen2-VL, Qwen3-VL, Qwen3.5: a 0-1000 grid over the picture, as `{"bbox_2d": [...]}`;
- MiniCPM-V: `{"box": "<box>x1 y1 x2 y2</box>"}` on 0-1000 (or the bare tag);
- LLaVA: 0-1 floats of the picture padded to a centred square;
- Gemma 3, Llama 3.2 Vision, moondream: no grounding; they would make a box up (pixels).
With no rectangle in the picture the place is the picture's middle (30-70% across, 40-80% down).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

MARKER = (255, 0, 255)
BOX_TITLES = ("GroundedBox", "TaggedBox", "BoxProposal")


@dataclass(frozen=True)
class FakeFamily:
    """A family as the fake server plays it: a typical model tag and what `/api/show` says."""

    name: str
    model: str
    details_family: str
    families: tuple[str, ...]
    capabilities: tuple[str, ...] = ("completion", "vision")


FAKE_FAMILIES = {f.name: f for f in (
    FakeFamily("qwen2.5-vl", "qwen2.5vl:7b", "qwen25vl", ("qwen25vl",)),
    FakeFamily("qwen2-vl", "qwen2-vl:7b", "qwen2vl", ("qwen2vl",)),
    FakeFamily("qwen3-vl", "qwen3-vl:8b", "qwen3vl", ("qwen3vl",),
               ("completion", "vision", "tools", "thinking")),
    FakeFamily("qwen3.5", "qwen3.5:9b", "qwen35", ("qwen35",),
               ("completion", "vision", "tools", "thinking")),
    FakeFamily("minicpm-v", "minicpm-v:8b", "qwen2", ("qwen2", "clip")),
    FakeFamily("llava", "llava:7b", "llama", ("llama", "clip")),
    FakeFamily("gemma3", "gemma3:4b", "gemma3", ("gemma3",)),
    FakeFamily("llama3.2-vision", "llama3.2-vision:11b", "mllama", ("mllama",)),
    FakeFamily("moondream", "moondream:1.8b", "phi2", ("phi2", "clip")),
    FakeFamily("unknown", "mystery-vision:2b", "mystery", ("mystery",)),
)}


def details_for(model: str) -> tuple[str, list[str]]:
    """(details.family, details.families) a real Ollama reports for a model tag."""
    for fake in FAKE_FAMILIES.values():
        if model == fake.model or model.split(":")[0] == fake.model.split(":")[0]:
            return fake.details_family, list(fake.families)
    stem = model.split(":")[0]
    return stem, [stem]


def marker_box(image: Any) -> tuple[float, float, float, float] | None:
    """The magenta rectangle's corners (x1, y1 exclusive) in pixels of `image`, or None."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    magenta = (red - green > 127) & (blue - green > 127)  # past halfway from grey to magenta
    if not magenta.any():
        return None
    ys, xs = np.nonzero(magenta)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def intended_box(image: Any) -> tuple[float, float, float, float]:
    """Where the new object goes in `image`: the marker, else the middle."""
    found = marker_box(image)
    if found is not None:
        return found
    width, height = image.size
    return width * 0.3, height * 0.4, width * 0.7, height * 0.8


def qwen_smart_resize(width: int, height: int, factor: int = 28, min_pixels: int = 56 * 56,
                      max_pixels: int = 1280 * 28 * 28) -> tuple[int, int]:
    """Qwen2.5-VL's processor resize (its `smart_resize`, written out again for the fake)."""
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return w_bar, h_bar


def answer_box(family: str, image: Any, title: str, *, bare: bool = False) -> Any:
    """The family's answer for the place in `image` (the picture as the server received it)."""
    x0, y0, x1, y1 = intended_box(image)
    width, height = image.size
    if title == "BoxProposal":  # an unknown family asked to say its units: pixels of the picture
        return {"bbox_2d": [round(x0), round(y0), round(x1), round(y1)], "layout": "corners",
                "units": "pixels", "label": "object"}
    if family == "qwen2.5-vl":
        frame_w, frame_h = qwen_smart_resize(width, height)
        sx, sy = frame_w / width, frame_h / height
        return {"bbox_2d": [round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy)],
                "label": "object"}
    if family in ("qwen2-vl", "qwen3-vl", "qwen3.5", "minicpm-v"):
        grid = [round(x0 / width * 1000), round(y0 / height * 1000), round(x1 / width * 1000),
                round(y1 / height * 1000)]
        if family != "minicpm-v":
            return {"bbox_2d": grid, "label": "object"}
        tag = "<box>{} {} {} {}</box>".format(*grid)
        return f"<ref>object</ref>{tag}" if bare else {"box": tag, "label": "object"}
    if family == "llava":
        side = max(width, height)
        dx, dy = (side - width) // 2, (side - height) // 2
        floats = [round((x0 + dx) / side, 3), round((y0 + dy) / side, 3),
                  round((x1 + dx) / side, 3), round((y1 + dy) / side, 3)]
        return str(floats) if bare else {"bbox_2d": floats, "label": "object"}
    # no grounding: a made-up box, somewhere
    return {"bbox_2d": [10, 10, 60, 60], "label": "object"}


PROSE = "The object would look best a little to the left of the centre, on the table."
