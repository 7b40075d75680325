"""The inpainters and segmenters by name: the one table every surface reads.

CLI choices, the web editor's dropdown, the HTTP API's and MCP's enums, evals and the option
validation all take their names from here, so adding a backend is one entry, not eight edits.
Plain data (no imports of the backends): reading it costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackendSpec:
    """What a backend is called, what it can do, and which edit options it reads."""

    name: str
    summary: str
    categories: tuple[str, ...]
    """Edit categories it performs (`tools.types.EditCategory` values)."""
    needs_weights: bool
    uses_options: tuple[str, ...] = ()
    """`EditOptions` fields it reads; the others do not change its result."""


ALL_CATEGORIES = ("addition", "removal", "local", "global", "background")

INPAINTERS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec(
            "brushnet",
            "BrushNet dual-branch diffusion on a Stable Diffusion 1.5 or SDXL base: every "
            "edit category; needs the model weights",
            ALL_CATEGORIES,
            needs_weights=True,
            uses_options=("seed", "steps", "guidance_scale", "conditioning_scale", "samples",
                          "blending", "negative_prompt"),
        ),
        BackendSpec(
            "opencv",
            "OpenCV fill from the surroundings: removals only, no weights, seconds on a CPU",
            ("removal",),
            needs_weights=False,
            uses_options=("seed",),
        ),
    )
}
INPAINTER_NAMES: tuple[str, ...] = tuple(INPAINTERS)
DEFAULT_INPAINTER = "brushnet"
WEIGHTLESS_INPAINTER = next(spec.name for spec in INPAINTERS.values() if not spec.needs_weights)
"""The inpainter that runs with no model weights: the demo's and the doctor's fallback."""

SEGMENTERS: dict[str, BackendSpec] = {
    "grounded-sam": BackendSpec(
        "grounded-sam",
        "GroundingDINO boxes refined by Segment Anything; needs the model weights",
        ("removal", "local", "background"),
        needs_weights=True,
    ),
}
SEGMENTER_NAMES: tuple[str, ...] = tuple(SEGMENTERS)


def inpainter_choices() -> str:
    """`brushnet, opencv`: the names as a sentence fragment for messages."""
    return ", ".join(INPAINTER_NAMES)


def inpainter_help() -> str:
    """`brushnet (...); opencv (...)`: each name with its summary, for CLI help and schemas."""
    return "; ".join(f"{spec.name}: {spec.summary}" for spec in INPAINTERS.values())
