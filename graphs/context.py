"""What a graph run reads besides its state: the loop's knobs and the handles of its models and
stores (LangGraph's run context). Plain data: nothing here builds, caches or compiles.

The graph is compiled with `context_schema=Context`; every node receives it as
`runtime.context`. Embedded callers (the session facade, hence every interface, and the evals)
pass their own: `graph.stream(..., context=context)`, built by `graphs.components`.

Schema choice: LangGraph's server turns `context_schema` into JSON (the assistant's `schemas`
endpoint) and builds the run's context as `Context(**request_context)` from the keys that schema
lists. Model and store handles cannot be JSON, so they are typed `SkipJsonSchema[...]` and stay
out of it: the JSON-visible part is only the knobs (`settings`). A server run therefore arrives
with no handles, and `graphs.components.run_context` lends it the process's server bundle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema

from graphs.handles import VLMProbe
from graphs.input_access import InputAccess
from tools.errors import ConfigError
from tools.types import InpainterName, field_bounds

PlannerMode = Literal["auto", "vlm", "rules"]


class GraphSettings(BaseModel):
    """Knobs of the edit loop itself (not of any model); the defaults of a turn's options.

    Built from a server client's JSON too, so the types are strict (no `"3"` for 3, no `true`
    for 1) and a bad knob is a `ConfigError` sentence naming it, its kind and its bounds.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False,
                              arbitrary_types_allowed=True)

    max_attempts: int = Field(default=3, ge=1, le=10, description="Verifier attempts per edit.")
    planner: PlannerMode = Field(
        default="auto", description="auto: VLM, falling back to rules when it fails; vlm; rules."
    )
    inpainter: InpainterName = Field(default="brushnet", description="Default inpainter.")
    mask_policy: SkipJsonSchema[Any] = Field(
        default=None, description="tools.masks.MaskPolicy; None = its defaults."
    )
    max_image_side: int = Field(
        default=1024, ge=64, le=4096,
        description="Sources above this are downscaled on import (smaller breaks the checks).",
    )
    dilation_step_px: int = Field(
        default=12, ge=0, le=256, description="Extra mask dilation per mask retry."
    )
    guidance_step: float = Field(
        default=1.5, ge=0.0, le=20.0, description="Guidance scale added per inpaint retry."
    )
    conditioning_step: float = Field(
        default=0.2, ge=0.0, le=2.0, description="BrushNet conditioning scale added per retry."
    )

    def __init__(self, **knobs: Any) -> None:
        try:
            super().__init__(**knobs)
        except ValidationError as exc:
            raise ConfigError(_knob_sentence(exc)) from None

    @classmethod
    def from_json(cls, value: Any) -> GraphSettings:
        """Knobs a server client sent as JSON, or a `ConfigError` saying what is wrong."""
        if not isinstance(value, dict):
            raise ConfigError(f"the context's `settings` must be an object of knobs (planner, "
                              f"max_attempts, ...), got {_shown(value)}")
        return cls(**value)


def _knob_sentence(exc: ValidationError) -> str:
    """The first problem of a knob, in one sentence, from the field's own type and bounds."""
    fields = GraphSettings.model_fields
    unknown = sorted(str(e["loc"][0])[:40] for e in exc.errors() if e["type"] == "extra_forbidden")
    if unknown:
        known = sorted(set(fields) - {"mask_policy"})
        return f"unknown context settings {', '.join(unknown)}; known: {', '.join(known)}"
    error = exc.errors()[0]
    name = str(error["loc"][0])
    info = fields[name]
    got = _shown(error.get("input"))
    choices = getattr(info.annotation, "__args__", ())
    if choices and all(isinstance(c, str) for c in choices):
        listed = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
        return f"`{name}` must be {listed}, got {got}"
    bounds = field_bounds(info)
    kind = "a whole number" if info.annotation is int else "a number"
    return f"`{name}` must be {kind} from {bounds['ge']:g} to {bounds['le']:g}, got {got}"


def _shown(value: Any) -> str:
    """A wrong knob as a message shows it: short, and its type when it is not text."""
    if isinstance(value, str):
        return repr(value[:40])
    if isinstance(value, (bool, int, float)) or value is None:
        text = repr(value)
        return text if len(text) <= 40 else text[:20] + "…"
    return {dict: "an object", list: "a list"}.get(type(value), f"a {type(value).__name__}")


Handle = SkipJsonSchema[Any]
"""A model or store handle: part of the context, never of its JSON schema."""


@dataclass(kw_only=True)
class Context:
    """Everything the nodes read besides the state: handles and knobs, given per run.

    Attributes:
        store: content-addressed images and masks (`graphs.artifacts.ArtifactStore`).
        traces: the audit log, also holding the session turn table (`graphs.traces.TraceStore`).
        vlm: an `agents.vlm.VisionLanguageModel`, or None to plan with the rule parser.
        vlm_probe: remembers the VLM server's last `check()` for a while (`graphs.handles`).
        segmenter: a `tools.segment.Segmenter` (or a `graphs.handles.LazyModel` of one), or None
            when there are no weights.
        inpainters: name -> an `Inpainter`, or a `LazyModel` that builds one on first use.
        settings: the loop's knobs (the only part a LangGraph-server client can send).
        checkpointer: a LangGraph saver for the session's graph; None keeps each session's
            checkpoints in memory.
        inputs: which local files and URLs image references may reach
            (`graphs.input_access.InputAccess`; by default any path and no private URL).
        claims: where "a turn runs in this session" is recorded for every process
            (`graphs.claims.SessionClaims`); None: the checkpointer's database when it has
            one (so every process on those sessions sees the claim), else the trace log's.
        slots: the bound on edits running at once in this process (`graphs.admission`), or
            None for no bound.
    """

    __pydantic_config__ = ConfigDict(arbitrary_types_allowed=True)

    store: Handle = None
    traces: Handle = None
    vlm: Handle = None
    vlm_probe: Handle = field(default_factory=VLMProbe)
    segmenter: Handle = None
    inpainters: SkipJsonSchema[dict[str, Any]] = field(default_factory=dict)
    settings: Annotated[
        GraphSettings, Field(description="The edit loop's knobs (planner, max_attempts, ...).")
    ] = field(default_factory=GraphSettings)
    checkpointer: Handle = None
    inputs: Handle = field(default_factory=InputAccess)
    claims: Handle = None
    slots: Handle = None

    def __post_init__(self) -> None:
        if not isinstance(self.settings, GraphSettings):  # a server client's JSON context
            self.settings = GraphSettings.from_json(self.settings)

    def session_claims(self) -> Any:
        """The claims every turn takes (`claims`, opened in the checkpointer's database on
        first use when unset): one table for every process, whoever built its context."""
        if self.claims is None and getattr(self.checkpointer, "conn", None) is not None:
            from graphs.claims import SessionClaims

            self.claims = SessionClaims.for_checkpointer(self.checkpointer)
        return self.claims if self.claims is not None else self.traces.claims

    def close(self) -> None:
        """Close the trace store and a SQLite or Postgres checkpointer's connection."""
        if self.claims is not None:
            self.claims.close()
        if self.traces is not None:
            self.traces.close()
        conn = getattr(self.checkpointer, "conn", None)
        if conn is not None and hasattr(conn, "close"):
            conn.close()
