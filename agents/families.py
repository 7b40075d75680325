"""Vision model families: how each one gives boxes, whether it thinks, and how to ask it.

Models answer "where" in different coordinates, and reading one family's box by another's rule
puts an added object in the wrong place with no warning. So the family is found first, from the
model's name and, on Ollama, from `/api/show` (`details.family`, the architecture, and the
`capabilities` list that says `vision` and `thinking`), and its box is converted by its rule:

| family          | boxes                                                     | grounding | thinks   |
|-----------------|-----------------------------------------------------------|-----------|----------|
| Qwen2.5-VL      | pixels of its processor-resized input (multiples of 28)   | strong    | never    |
| Qwen2-VL        | 0-1000 grid                                               | fair      | never    |
| Qwen3-VL        | 0-1000 grid (QwenLM/Qwen3-VL #1486)                       | strong    | variant  |
| Qwen3.5 and on  | 0-1000 grid                                               | strong    | always   |
| MiniCPM-V       | `<box>x1 y1 x2 y2</box>` on 0-1000 (OpenBMB/MiniCPM-V #982)| fair      | variant  |
| LLaVA           | 0-1 floats of the image padded to a square (LLaVA #606)   | fair      | never    |
| Gemma 3 / 4     | none: not trained to point; never asked for a box         | none      | 3: never, 4: variant |
| Llama 3.2 Vision| none                                                      | none      | never    |
| moondream       | none through a chat API                                   | none      | never    |
| anything else   | today's checked heuristics (`agents.box.infer_units`)     | unknown   | as the server says |

"variant": Instruct and Thinking builds share a name stem; the server's capabilities or the tag
("-thinking", "-instruct") decide. The match says where it came from (`FamilyMatch.source`) and
whether the heuristics stand in for a known rule (`FamilyMatch.heuristic`), for the trace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class BoxConvention(StrEnum):
    """How a family writes a box."""

    RESIZED_PIXELS = "resized_pixels"
    """Absolute pixels of the picture after the model's processor resized it (Qwen2.5-VL)."""
    GRID_1000 = "grid_1000"
    """[x1, y1, x2, y2] on a 0-1000 grid over the picture's width and height (Qwen2-VL, Qwen3-VL)."""
    BOX_TAG_1000 = "box_tag_1000"
    """`<box>x1 y1 x2 y2</box>` on 0-1000 (MiniCPM-V)."""
    PADDED_SQUARE_1 = "padded_square_1"
    """0-1 floats of the picture padded to a square, centred (LLaVA-1.5)."""
    NONE = "none"
    """No grounding: the family is not asked for boxes."""
    HEURISTIC = "heuristic"
    """Unknown family: the model says its units and `agents.box.infer_units` checks them."""


DEFAULT_OLLAMA_MODEL = "qwen3-vl:8b-instruct"
"""The model asked when none is configured: the best-grounding vision model a user can pull
today at the usual 8 GB of GPU memory (6.1 GB). Qwen3-VL points more precisely than Qwen2.5-VL
("stronger 2D grounding", its model card) and answers on a 0-1000 grid of the picture, so no
guess about how the server resized the picture enters its boxes. The `-instruct` build does not
think: the plain `qwen3-vl:8b` tag is the Thinking build, which on Ollama puts its JSON in the
thinking text (ollama #12831) and takes longer. Needs Ollama 0.12.7 or later."""

Thinking = Literal["never", "variant", "always"]
Grounding = Literal["strong", "fair", "none", "unknown"]


class ModelFamily(BaseModel):
    """One family's rules: its box convention, thinking, picture limits and box prompt."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Stable id, used in traces: `qwen2.5-vl`.")
    label: str = Field(description="How people write it: `Qwen2.5-VL`.")
    box: BoxConvention
    grounding: Grounding = Field(description="How far its boxes can be trusted; `none`: not at all.")
    thinking: Thinking = "never"
    grid: int = Field(
        default=1, ge=1,
        description="Sides of the sent picture are multiples of this (for pixel answers; "
        "relative ones need no grid).",
    )
    max_side: int = Field(default=1024, ge=28, description="Longest side of a picture sent for a box.")
    min_pixels: int | None = Field(default=None, description="The processor's pixel floor.")
    max_pixels: int | None = Field(default=None, description="The processor's pixel budget.")
    box_prompt: str | None = Field(default=None, description="Prompt files `<this>_user.txt`.")
    names: tuple[str, ...] = Field(default=(), description="Regexes on the lowercased model name.")
    ollama: tuple[str, ...] = Field(default=(), description="Ollama `details.family` values.")
    note: str = ""

    @property
    def boxes_trusted(self) -> bool:
        """False for families that cannot point at places at all: they are never asked."""
        return self.box is not BoxConvention.NONE


def _family(**fields: Any) -> ModelFamily:
    return ModelFamily(**fields)


QWEN25_VL = _family(
    name="qwen2.5-vl", label="Qwen2.5-VL", box=BoxConvention.RESIZED_PIXELS, grounding="strong",
    grid=28, max_side=1008, min_pixels=56 * 56, max_pixels=1280 * 28 * 28, box_prompt="box_pixels",
    names=(r"qwen2\.?5[-_ ]?vl",), ollama=("qwen25vl",),
    note="absolute pixels of its processor-resized input: sides in multiples of 28, at most "
         "1280*28*28 pixels on Ollama; the picture is sent already at that size",
)
QWEN2_VL = _family(
    name="qwen2-vl", label="Qwen2-VL", box=BoxConvention.GRID_1000, grounding="fair",
    box_prompt="box_grid", names=(r"qwen2[-_ ]?vl", r"\bqvq"), ollama=("qwen2vl",),
    note="0-1000 grid, written (x1,y1),(x2,y2) between box tokens when not asked for JSON",
)
QWEN3_VL = _family(
    name="qwen3-vl", label="Qwen3-VL", box=BoxConvention.GRID_1000, grounding="strong",
    thinking="variant", box_prompt="box_grid", names=(r"qwen3[-_ ]?vl",),
    ollama=("qwen3vl", "qwen3vlmoe"),
    note="0-1000 grid whatever the picture's size (QwenLM/Qwen3-VL #1486); drifts on very wide "
         "or tall pictures; Thinking builds may put the JSON in the thinking text",
)
QWEN35 = _family(
    name="qwen3.5", label="Qwen3.5 (and later Qwen)", box=BoxConvention.GRID_1000,
    grounding="strong", thinking="always", box_prompt="box_grid",
    names=(r"qwen3\.[5-9]", r"qwen[4-9](?:\.\d)?(?!\d)"), ollama=("qwen35", "qwen35moe"),
    note="natively multimodal Qwen after Qwen3-VL: 0-1000 grid; thinks unless told not to, "
         "and with thinking off some servers ignore the answer format (ollama #14645)",
)
MINICPM_V = _family(
    name="minicpm-v", label="MiniCPM-V", box=BoxConvention.BOX_TAG_1000, grounding="fair",
    thinking="variant", max_side=1344, box_prompt="box_tag",
    names=(r"minicpm[-_ ]?[vo]",), ollama=("minicpmv",),
    note="<box>x1 y1 x2 y2</box> on 0-1000 (OpenBMB/MiniCPM-V #982); on Ollama its "
         "details.family is the language model's, so the name decides",
)
LLAVA = _family(
    name="llava", label="LLaVA", box=BoxConvention.PADDED_SQUARE_1, grounding="fair",
    max_side=672, box_prompt="box_padded", names=(r"llava",), ollama=("llava",),
    note="0-1 floats of the image padded to a square (haotian-liu/LLaVA #606); the picture is "
         "sent already padded, so the rule holds whatever the server does",
)
GEMMA3 = _family(
    name="gemma3", label="Gemma 3", box=BoxConvention.NONE, grounding="none", max_side=896,
    names=(r"gemma[-_ ]?3",), ollama=("gemma3", "gemma3n"),
    note="no grounding: its boxes are made up, so it is never asked for one",
)
GEMMA4 = _family(
    name="gemma4", label="Gemma 4", box=BoxConvention.NONE, grounding="none",
    thinking="variant", max_side=896, names=(r"gemma[-_ ]?4",), ollama=("gemma4",),
    note="not documented to give boxes; thinks, and ignores the answer format with thinking off "
         "on older Ollama (ollama #15260)",
)
LLAMA32_VISION = _family(
    name="llama3.2-vision", label="Llama 3.2 Vision", box=BoxConvention.NONE, grounding="none",
    max_side=1120, names=(r"llama[-_ ]?3\.2[-_ ]?(?:\d+b[-_ ]?)?vision", r"mllama"),
    ollama=("mllama",), note="describes pictures well but was not trained to give boxes",
)
MOONDREAM = _family(
    name="moondream", label="moondream", box=BoxConvention.NONE, grounding="none", max_side=756,
    names=(r"moondream",), ollama=("moondream",),
    note="its detect skill is not reachable through a chat API; chat answers are not boxes",
)
UNKNOWN = _family(
    name="unknown", label="unknown family", box=BoxConvention.HEURISTIC, grounding="unknown",
    grid=28, max_side=1008, box_prompt="box",
    note="no known rule: the model says its units and layout, and the heuristics check them",
)

FAMILIES: tuple[ModelFamily, ...] = (
    QWEN25_VL, QWEN2_VL, QWEN3_VL, QWEN35, MINICPM_V, LLAVA, GEMMA3, GEMMA4, LLAMA32_VISION,
    MOONDREAM,
)
"""Known families, in matching order (Qwen2.5-VL before Qwen2-VL)."""


def family_named(name: str) -> ModelFamily:
    """The family whose `name` (or label) this is; `ValueError` listing the known ones."""
    wanted = name.strip().lower()
    for family in (*FAMILIES, UNKNOWN):
        if wanted in (family.name, family.label.lower()):
            return family
    known = ", ".join(f.name for f in FAMILIES)
    raise ValueError(f"unknown model family {name!r}; known families: {known}")


class ModelCard(BaseModel):
    """What a server says about a model: Ollama's `/api/show` details and capabilities."""

    model_config = ConfigDict(frozen=True)

    family: str | None = None
    families: tuple[str, ...] = ()
    architecture: str | None = None
    capabilities: tuple[str, ...] = ()
    lists_thinking: bool = Field(
        default=False, description="The capabilities would say `thinking` if the model thought."
    )

    @classmethod
    def from_ollama_show(cls, data: Mapping[str, Any]) -> ModelCard:
        """Read a `/api/show` body through the `ollama` client's public `ShowResponse` type."""
        from ollama import ShowResponse
        from pydantic import ValidationError

        try:
            shown = ShowResponse.model_validate({"model_info": None, **data})
        except ValidationError:
            return cls()
        details = shown.details
        info = shown.modelinfo or {}
        architecture = info.get("general.architecture")
        return cls(
            family=(details.family if details else None) or None,
            families=tuple(details.families or ()) if details else (),
            architecture=architecture if isinstance(architecture, str) else None,
            capabilities=tuple(str(c) for c in shown.capabilities or ()),
            lists_thinking=bool(shown.capabilities),
        )


Source = Literal["override", "server", "name", "fallback"]


class FamilyMatch(BaseModel):
    """The family found for one model, how it was found, and whether the model thinks."""

    model_config = ConfigDict(frozen=True)

    family: ModelFamily
    model: str
    source: Source = Field(description="`server`: Ollama's show said; `fallback`: nothing matched.")
    evidence: str = Field(description="What matched, in words: `details.family 'qwen3vl'`.")
    thinks: bool = False
    capabilities: tuple[str, ...] = ()

    @property
    def heuristic(self) -> bool:
        """True when no known rule applies and `infer_units`' heuristics read the boxes."""
        return self.family.box is BoxConvention.HEURISTIC

    def trace(self) -> dict[str, Any]:
        """The facts a trace keeps: family, rule, where it came from, heuristics or not."""
        return {
            "family": self.family.name,
            "label": self.family.label,
            "box_convention": self.family.box.value,
            "grounding": self.family.grounding,
            "thinks": self.thinks,
            "source": self.source,
            "evidence": self.evidence,
            "heuristic": self.heuristic,
        }


def match_name(model: str) -> ModelFamily | None:
    """The family a model name (Ollama tag, Hub id, GGUF file) belongs to, if any."""
    lowered = bare_model_name(model).lower()
    for family in FAMILIES:
        if any(re.search(pattern, lowered) for pattern in family.names):
            return family
    return None


def match_card(card: ModelCard) -> tuple[ModelFamily, str] | None:
    """The family a server's own description names, with the evidence, if any."""
    for field, value in (("details.family", card.family), ("architecture", card.architecture),
                         *(("details.families", v) for v in card.families)):
        if not value:
            continue
        for family in FAMILIES:
            if value.lower() in family.ollama:
                return family, f"{field} {value!r}"
    return None


def resolve_family(model: str, card: ModelCard | None = None,
                   override: str | None = None) -> FamilyMatch:
    """The family of `model`: an explicit `override`, else the server's card, else the name,
    else `UNKNOWN` (today's heuristics), saying which."""
    card = card or ModelCard()
    if override:
        family, source, evidence = family_named(override), "override", f"set to {override!r}"
    elif (found := match_card(card)) is not None:
        family, source, evidence = found[0], "server", found[1]
    elif (named := match_name(model)) is not None:
        family, source, evidence = named, "name", f"model name {model!r}"
    else:
        family, source, evidence = UNKNOWN, "fallback", f"nothing known matches {model!r}"
    return FamilyMatch(family=family, model=model, source=source, evidence=evidence,
                       thinks=thinks(family, model, card),
                       capabilities=card.capabilities)


def thinks(family: ModelFamily, model: str, card: ModelCard | None = None) -> bool:
    """Whether the model thinks: the server's capabilities, else the tag, else the family."""
    if card is not None and card.lists_thinking:
        return "thinking" in card.capabilities
    lowered = model.lower()
    if re.search(r"no[-_]?think|instruct", lowered):
        return False
    if "think" in lowered:
        return True
    return family.thinking == "always"


def bare_model_name(model_id: str) -> str:
    """`ollama:qwen3-vl:8b` -> `qwen3-vl:8b`: the name without this package's client prefix."""
    for prefix in ("ollama:", "openai:", "langchain:"):
        if model_id.startswith(prefix):
            return model_id[len(prefix):]
    return model_id


def family_of(vlm: Any) -> FamilyMatch:
    """The family of any `VisionLanguageModel`: its own `family` when it has one, else by name."""
    found = getattr(vlm, "family", None)
    if isinstance(found, FamilyMatch):
        return found
    return resolve_family(bare_model_name(str(getattr(vlm, "model_id", ""))))
