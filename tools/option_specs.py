"""The edit options' defaults, bounds and descriptions as plain data: one table, cheap to read.

`tools.types.EditOptions` builds its pydantic fields from it, and the CLI builds its flags' help
and bounds from it without importing pydantic (so `brushedit --help` stays fast).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tools.registry import CONDUCTOR_NAMES, DEFAULT_INPAINTER
from tools.text import MAX_NEGATIVE_PROMPT_CHARS

SEED_MAX = 2**32 - 1
"""Largest seed: what every generator (torch, numpy, checkpoints) takes without overflow."""


@dataclass(frozen=True)
class OptionSpec:
    """One edit option: its default, its inclusive bounds (None: unbounded) and what it does."""

    default: Any
    description: str
    ge: float | None = None
    le: float | None = None
    max_length: int | None = None

    def field_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `pydantic.Field`."""
        kwargs = {"default": self.default, "description": self.description}
        for key in ("ge", "le", "max_length"):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        return kwargs


OPTION_SPECS: dict[str, OptionSpec] = {
    "seed": OptionSpec(
        1234, "Random seed of the first attempt; retries add 1. Same seed, same result.",
        ge=0, le=SEED_MAX,
    ),
    "steps": OptionSpec(50, "Diffusion denoising steps.", ge=1, le=200),
    "guidance_scale": OptionSpec(
        7.5, "Classifier-free guidance: how strongly the result follows the caption.",
        ge=0.0, le=30.0,
    ),
    "conditioning_scale": OptionSpec(
        1.0, "BrushNet conditioning scale: how strongly the unmasked image steers the fill.",
        ge=0.0, le=10.0,
    ),
    "samples": OptionSpec(1, "Candidates per attempt; the verifier picks one.", ge=1, le=8),
    "blending": OptionSpec(True, "Blend the inpainted region into the untouched source pixels."),
    "max_attempts": OptionSpec(
        3, "Verifier attempts per edit before the best is kept.", ge=1, le=10
    ),
    "inpainter": OptionSpec(
        DEFAULT_INPAINTER,
        "Inpainting backend: brushnet (diffusion, every edit), opencv (removals only, no "
        f"weights) or a diffusers conductor ({', '.join(CONDUCTOR_NAMES)}); "
        "`tools.registry.INPAINTERS` lists them.",
    ),
    "negative_prompt": OptionSpec(
        "ugly, low quality", "What the diffusion model should avoid.", max_length=MAX_NEGATIVE_PROMPT_CHARS
    ),
}


def option_bounds(name: str) -> tuple[float | None, float | None]:
    """The (minimum, maximum) of an edit option, None where it is unbounded."""
    spec = OPTION_SPECS[name]
    return spec.ge, spec.le
