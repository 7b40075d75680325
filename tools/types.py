"""The edit vocabulary shared by every layer: categories, boxes, plans, requests and results.

Plain pydantic models with JSON-safe fields only (no arrays, no PIL images), so they can live in
LangGraph state, traces and HTTP bodies unchanged.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tools.option_specs import OPTION_SPECS, SEED_MAX, option_bounds  # noqa: F401 - re-exported
from tools.registry import INPAINTER_NAMES
from tools.text import MAX_INSTRUCTION_CHARS


class EditCategory(StrEnum):
    """What kind of edit an instruction asks for (BrushEdit's five categories)."""

    ADDITION = "addition"
    REMOVAL = "removal"
    LOCAL = "local"
    GLOBAL = "global"
    BACKGROUND = "background"

    @classmethod
    def parse(cls, value: str) -> EditCategory:
        """Accept the reference's spelling (`remove`) and any casing."""
        text = str(value).strip().lower()
        aliases = {"remove": "removal", "add": "addition", "bg": "background"}
        return cls(aliases.get(text, text))


class Box(BaseModel):
    """An axis-aligned box in pixel coordinates, `x1`/`y1` exclusive."""

    model_config = ConfigDict(frozen=True)

    x0: int = Field(ge=0)
    y0: int = Field(ge=0)
    x1: int = Field(gt=0)
    y1: int = Field(gt=0)

    @model_validator(mode="after")
    def _non_empty(self) -> Box:
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError(
                f"box ({self.x0}, {self.y0}, {self.x1}, {self.y1}) is empty: "
                "x1 must exceed x0 and y1 must exceed y0"
            )
        return self

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def area(self) -> int:
        return self.width * self.height

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)

    @classmethod
    def clamped(cls, x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> Box:
        """Round and clamp to a `width` x `height` image; raises ValueError if nothing is left."""
        cx0 = min(max(int(round(x0)), 0), width)
        cy0 = min(max(int(round(y0)), 0), height)
        cx1 = min(max(int(round(x1)), 0), width)
        cy1 = min(max(int(round(y1)), 0), height)
        return cls(x0=cx0, y0=cy0, x1=cx1, y1=cy1)


PlanSource = Literal["vlm", "rules", "user"]


class EditPlan(BaseModel):
    """What to edit and how: the agents' answer to an instruction."""

    instruction: str
    category: EditCategory
    object: str | None = Field(
        default=None, description="Noun phrase to segment (for background: the subject to keep)."
    )
    target_caption: str | None = Field(
        default=None, description="What the edited region shows afterwards; the diffusion prompt."
    )
    box: Box | None = Field(default=None, description="Where to add an object (additions only).")
    negative_prompt: str | None = Field(
        default=None,
        description="What the inpainter must not paint, joined with the user's negative prompt: "
        "for a removal, the removed object (so the model does not paint it back).",
    )
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    rationale: str | None = None
    source: PlanSource = "rules"


InpainterName = Literal[INPAINTER_NAMES]  # type: ignore[valid-type] - the registry's names



class EditOptions(BaseModel):
    """Knobs a user may turn for one edit; defaults follow the paper.

    The defaults, bounds and descriptions come from `tools.option_specs.OPTION_SPECS`, the single
    source of truth: the CLI's flags, the HTTP API's and MCP's schemas and the web editor's
    sliders are derived from these fields. `steps` and `guidance_scale` default to None, "not
    chosen": each inpainter then runs its own (`resolved`), since BrushNet's 50 steps would be
    wrong for FLUX.2 klein (4) and its 7.5 for FLUX.1 Fill (30); given, they are bounded.
    """

    model_config = ConfigDict(allow_inf_nan=False)

    seed: int = Field(**OPTION_SPECS["seed"].field_kwargs())
    steps: int | None = Field(**OPTION_SPECS["steps"].field_kwargs())
    guidance_scale: float | None = Field(**OPTION_SPECS["guidance_scale"].field_kwargs())
    conditioning_scale: float = Field(**OPTION_SPECS["conditioning_scale"].field_kwargs())
    samples: int = Field(**OPTION_SPECS["samples"].field_kwargs())
    blending: bool = Field(**OPTION_SPECS["blending"].field_kwargs())
    max_attempts: int = Field(**OPTION_SPECS["max_attempts"].field_kwargs())
    inpainter: InpainterName = Field(**OPTION_SPECS["inpainter"].field_kwargs())
    negative_prompt: str = Field(**OPTION_SPECS["negative_prompt"].field_kwargs())

    def resolved(self, inpainter: str | None = None) -> EditOptions:
        """These options with what is not chosen (`steps`, `guidance_scale` None) set to
        `inpainter`'s own defaults (this edit's inpainter when None): BrushNet's 50 steps and
        7.5, FLUX.2 klein's 4 steps, FLUX.1 Fill's guidance 30 (`tools.option_specs.
        model_default`)."""
        from tools.option_specs import MODEL_DEFAULT_OPTIONS, model_default

        name = inpainter or self.inpainter
        unset = {option: model_default(option, name) for option in MODEL_DEFAULT_OPTIONS
                 if getattr(self, option) is None}
        return self.model_copy(update=unset) if unset else self


def field_bounds(info: Any) -> dict[str, Any]:
    """The `ge`/`gt`/`le`/`lt` constraints of a pydantic field, as a dict (absent ones left out)."""
    bounds: dict[str, Any] = {}
    for item in info.metadata:
        for key in ("ge", "gt", "le", "lt"):
            if getattr(item, key, None) is not None:
                bounds[key] = getattr(item, key)
    return bounds


class OptionsPatchBase(BaseModel):
    """Base of `options_patch_model`: absent fields keep the defaults they are merged into."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    def values(self) -> dict[str, Any]:
        """The fields the caller set."""
        return self.model_dump(exclude_none=True)


def options_patch_model(
    describe: Any = None, name: str = "EditOptionsPatch"
) -> type[OptionsPatchBase]:
    """`EditOptions` with every field optional: the same types, bounds and descriptions.

    Derived, never copied, so a bound or description added to `EditOptions` reaches every
    schema built from it (API bodies, MCP tools, the LangChain tool) unchanged. `describe`
    (`(name, FieldInfo) -> str`) lets a surface word the descriptions its own way.
    """
    from pydantic import create_model

    fields: dict[str, Any] = {}
    for field, info in EditOptions.model_fields.items():
        typed = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        text = describe(field, info) if describe else info.description
        fields[field] = (typed | None, Field(default=None, description=text))
    return create_model(  # type: ignore[call-overload,no-any-return]
        name,
        __base__=OptionsPatchBase,
        __doc__="Options to change for this edit; absent ones keep the defaults.",
        **fields,
    )


class EditRequest(BaseModel):
    """One edit asked of the system: an image, an instruction, optionally a mask."""

    image: str = Field(description="Path or content hash of the source image.")
    instruction: str = Field(min_length=1, max_length=MAX_INSTRUCTION_CHARS)
    mask: str | None = Field(default=None, description="Path or hash of a user mask (white = edit).")
    options: EditOptions = Field(default_factory=EditOptions)


class EditResult(BaseModel):
    """What an edit produced and how it got there."""

    image: str = Field(description="Content hash of the chosen result.")
    source_image: str = Field(description="Content hash of the image that was edited.")
    image_url: str | None = Field(
        default=None,
        description="Where the HTTP API and the LangGraph server serve the result "
        "(`/artifacts/<hash>`, relative to the server).",
    )
    instruction: str
    plan: EditPlan
    mask: str | None = None
    caption: str | None = None
    accepted: bool
    attempts: int = Field(ge=0)
    reason: str = ""
    planner: PlanSource = "rules"
    inpainter: InpainterName = "brushnet"
    candidates: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    session_id: str | None = None
    turn: int | None = None


def join_prompts(*parts: str | None) -> str:
    """Comma-separated prompt terms from `parts`, in order, each term once (case-insensitive).

    A removal's negative prompt is the removed object followed by the user's negative prompt:
    `join_prompts("spoon", "ugly, low quality")` is `"spoon, ugly, low quality"`.
    """
    seen: set[str] = set()
    terms: list[str] = []
    for part in parts:
        for term in (part or "").split(","):
            term = " ".join(term.split())
            if term and term.lower() not in seen:
                seen.add(term.lower())
                terms.append(term)
    return ", ".join(terms)


def resolve_dtype(dtype: Any) -> Any:
    """A `torch.dtype` from one or its name (`'float16'`, `'torch.bfloat16'`); None stays None.

    torch is imported only when a dtype is given, so importing this module stays cheap.
    """
    if dtype is None:
        return None
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"`dtype` must be a torch dtype such as 'float16', got {dtype!r}")
    return resolved
