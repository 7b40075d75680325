"""The edit options' defaults, bounds and descriptions as plain data: one table, cheap to read.

`tools.types.EditOptions` builds its pydantic fields from it, and the CLI builds its flags' help
and bounds from it without importing pydantic (so `brushedit --help` stays fast).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tools.registry import CONDUCTOR_NAMES, DEFAULT_INPAINTER, INPAINTERS
from tools.text import MAX_NEGATIVE_PROMPT_CHARS

SEED_MAX = 2**32 - 1
"""Largest seed: what every generator (torch, numpy, checkpoints) takes without overflow."""


@dataclass(frozen=True)
class OptionSpec:
    """One edit option: its default, its inclusive bounds (None: unbounded) and what it does.

    A default of None means "not chosen": the inpainter's own value applies (`model_default`).
    """

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


def _own(field: str) -> str:
    """`brushnet 50, flux2-klein 4, ...`: each diffusion backend's own default of `field`."""
    def shown(spec: Any) -> str:
        if field == "default_guidance" and spec.guidance in ("distilled", "none"):
            return "none"
        return f"{getattr(spec, field):g}"

    return ", ".join(f"{spec.name} {shown(spec)}" for spec in INPAINTERS.values()
                     if spec.needs_weights)


OPTION_SPECS: dict[str, OptionSpec] = {
    "seed": OptionSpec(
        1234, "Random seed of the first attempt; retries add 1. Same seed, same result.",
        ge=0, le=SEED_MAX,
    ),
    "steps": OptionSpec(
        None, "Diffusion denoising steps; unset, each inpainter uses its own "
        f"({_own('default_steps')}).", ge=1, le=200,
    ),
    "guidance_scale": OptionSpec(
        None, "Guidance: how strongly the result follows the prompt; unset, each inpainter uses "
        f"its own ({_own('default_guidance')}).", ge=0.0, le=30.0,
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


MODEL_DEFAULT_OPTIONS: tuple[str, ...] = tuple(
    name for name, spec in OPTION_SPECS.items() if spec.default is None
)
"""Options whose default is the inpainter's own (steps, guidance_scale): unset, each backend
uses its `BackendSpec.default_steps` / `default_guidance` (FLUX.2 klein 4 steps, BrushNet 50)."""


def model_default(name: str, inpainter: str) -> Any:
    """What `inpainter` uses for option `name` when it is not chosen (`steps` of `flux2-klein`
    is 4), or the option's own default for options that have one."""
    spec = INPAINTERS[inpainter]
    return {"steps": spec.default_steps, "guidance_scale": spec.default_guidance}.get(
        name, OPTION_SPECS[name].default)


def option_bounds(name: str) -> tuple[float | None, float | None]:
    """The (minimum, maximum) of an edit option, None where it is unbounded."""
    spec = OPTION_SPECS[name]
    return spec.ge, spec.le
