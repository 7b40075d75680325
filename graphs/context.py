"""What a graph run uses besides its state: models, stores and knobs (LangGraph's run context).

The graph is compiled with `context_schema=Context`; every node receives it as
`runtime.context`. Embedded callers (the session facade, hence the CLI, HTTP API, MCP server,
web UI, LangChain tool and evals) pass their own bundle: `graph.stream(..., context=components)`.

Schema choice: LangGraph's server turns `context_schema` into JSON (the assistant's `schemas`
endpoint) and builds the run's context as `Context(**request_context)` from the keys that schema
lists. Model and store handles cannot be JSON, so they are typed `SkipJsonSchema[...]` and stay
out of it: the JSON-visible part is only the knobs (`settings`: planner, max_attempts,
inpainter, ...). A server run therefore arrives with no handles, and `resolve_context` lends it
the process's default bundle (built lazily from `Settings` on first use), with the run's knobs.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from graphs.artifacts import ArtifactStore
from graphs.claims import SessionClaims
from graphs.traces import TraceStore
from tools.errors import ConfigError, InvalidRequestError

PlannerMode = Literal["auto", "vlm", "rules"]
EventSink = Callable[[dict[str, Any]], None]


@dataclass(kw_only=True)
class GraphSettings:
    """Knobs of the edit loop itself (not of any model); the defaults of a turn's options."""

    max_attempts: int = field(default=3, metadata={"description": "Verifier attempts per edit."})
    planner: PlannerMode = field(
        default="auto",
        metadata={"description": "auto: VLM, falling back to rules when it fails; vlm; rules."},
    )
    inpainter: str = field(default="brushnet", metadata={"description": "Default inpainter."})
    mask_policy: SkipJsonSchema[Any] = field(
        default=None, metadata={"description": "tools.masks.MaskPolicy; None = its defaults."}
    )
    max_image_side: int = field(
        default=1024, metadata={"description": "Sources above this are downscaled on import."}
    )
    dilation_step_px: int = field(
        default=12, metadata={"description": "Extra mask dilation per mask retry."}
    )
    guidance_step: float = field(
        default=1.5, metadata={"description": "Guidance scale added per inpaint retry."}
    )
    conditioning_step: float = field(
        default=0.2, metadata={"description": "BrushNet conditioning scale added per retry."}
    )

    def __post_init__(self) -> None:
        from tools.registry import INPAINTER_NAMES

        for name, (low, high) in _KNOB_RANGES.items():
            _check_number(name, getattr(self, name), low, high,
                          whole=isinstance(GraphSettings.__dataclass_fields__[name].default, int))
        if self.planner not in ("auto", "vlm", "rules"):
            raise ConfigError(f"`planner` must be auto, vlm or rules, got {_shown(self.planner)}")
        if self.inpainter not in INPAINTER_NAMES:
            raise ConfigError(f"`inpainter` must be {' or '.join(INPAINTER_NAMES)}, "
                              f"got {_shown(self.inpainter)}")

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> GraphSettings:
        """Knobs a server client sent as JSON, or a `ConfigError` naming the unknown ones."""
        if not isinstance(value, dict):
            raise ConfigError(f"the context's `settings` must be an object of knobs (planner, "
                              f"max_attempts, ...), got {_shown(value)}")
        known = {f.name for f in fields(cls)} - {"mask_policy"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ConfigError(
                f"unknown context settings {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**value)


_KNOB_RANGES: dict[str, tuple[float, float]] = {
    "max_attempts": (1, 10), "max_image_side": (64, 4096), "dilation_step_px": (0, 256),
    "guidance_step": (0.0, 20.0), "conditioning_step": (0.0, 2.0),
}
"""The numeric knobs' bounds (`max_image_side` as `Settings` has it: smaller breaks the checks)."""


def _check_number(name: str, value: Any, low: float, high: float, *, whole: bool) -> None:
    """Refuse a knob of the wrong type or out of range in one sentence (`ConfigError`)."""
    kind = "a whole number" if whole else "a number"
    ok_type = isinstance(value, int) if whole else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not low <= value <= high:  # NaN fails too
        raise ConfigError(f"`{name}` must be {kind} from {low:g} to {high:g}, got {_shown(value)}")


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
    """Everything the nodes use: models, stores and knobs, injected per run.

    Attributes:
        store: content-addressed images and masks (`ArtifactStore`).
        traces: the audit log, also holding the session turn table (`TraceStore`).
        vlm: an `agents.vlm.VisionLanguageModel`, or None to plan with the rule parser.
        segmenter: a `tools.segment.Segmenter` (or `LazySegmenter`), or None when no weights.
        inpainters: name -> an `Inpainter`, or a zero-argument factory called on first use.
        settings: the loop's knobs (the only part a LangGraph-server client can send).
        checkpointer: a LangGraph saver for `graph()`; None keeps sessions in memory only.
    """

    __pydantic_config__ = ConfigDict(arbitrary_types_allowed=True)

    store: SkipJsonSchema[ArtifactStore | None] = None
    traces: SkipJsonSchema[TraceStore | None] = None
    vlm: Handle = None
    segmenter: Handle = None
    inpainters: SkipJsonSchema[dict[str, Any]] = field(default_factory=dict)
    settings: Annotated[
        GraphSettings, Field(description="The edit loop's knobs (planner, max_attempts, ...).")
    ] = field(default_factory=GraphSettings)
    checkpointer: Handle = None
    vlm_probe_ttl_s: SkipJsonSchema[float] = 30.0
    # Caches shared by `with_settings` copies (the same models, the same probe, one graph).
    _built: SkipJsonSchema[dict[str, Any]] = field(default_factory=dict, init=False, repr=False)
    _lock: Handle = field(default_factory=threading.Lock, init=False, repr=False)
    _probe: SkipJsonSchema[dict[str, Any]] = field(default_factory=dict, init=False, repr=False)
    claims: Handle = field(default_factory=SessionClaims, init=False, repr=False)
    """The sessions with a turn running in this process (`graphs.claims`)."""

    def __post_init__(self) -> None:
        if not isinstance(self.settings, GraphSettings):  # a server client's JSON context
            self.settings = GraphSettings.from_json(self.settings)

    @property
    def ready(self) -> bool:
        """True when the bundle has its stores (a server run's JSON context has none)."""
        return self.store is not None and self.traces is not None

    def with_settings(self, settings: GraphSettings) -> Context:
        """The same models, stores and caches with other knobs (one server run's context)."""
        other = copy.copy(self)
        other.settings = settings
        return other

    def vlm_status(self) -> Any:
        """The VLM server's `check()`, cached for `vlm_probe_ttl_s` (None when it has none).

        With planner `auto`, a server that is down or lacks the model is skipped at once on
        every run inside the window, instead of each run paying the client's retries.
        """
        check = getattr(self.vlm, "check", None)
        if check is None:
            return None
        now = time.monotonic()
        probe = self._probe.get("last")
        if probe is not None and now - probe[0] < self.vlm_probe_ttl_s:
            return probe[1]
        status = check()
        self._probe["last"] = (now, status)
        return status

    def inpainter(self, name: str, on_event: EventSink | None = None) -> Any:
        """The inpainter called `name`, constructing it on first use (and saying so)."""
        if name not in self.inpainters:
            known = ", ".join(sorted(self.inpainters)) or "none"
            raise InvalidRequestError(f"unknown inpainter `{name}`; available: {known}")
        with self._lock:
            if name in self._built:
                return self._built[name]
            entry = self.inpainters[name]
            if not callable(entry) or hasattr(entry, "inpaint"):
                self._built[name] = entry
                return entry
            if on_event:
                on_event({"type": "load", "component": f"inpainter:{name}", "status": "start"})
            built = entry()
            if on_event:
                on_event({"type": "load", "component": f"inpainter:{name}", "status": "end"})
            self._built[name] = built
            return built

    def graph(self) -> Any:
        """The editing graph compiled with this bundle's checkpointer (built once).

        Run it with `context=` this bundle: `graph.stream(payload, config, context=self)`.
        """
        with self._lock:
            if "graph" not in self._built:
                from graphs.graph import build_graph

                saver = self.checkpointer
                if saver is None:
                    from langgraph.checkpoint.memory import InMemorySaver

                    saver = self.checkpointer = InMemorySaver()
                self._built["graph"] = build_graph(checkpointer=saver)
            return self._built["graph"]

    def close(self) -> None:
        """Close the trace store and a SQLite checkpointer's connection."""
        if self.traces is not None:
            self.traces.close()
        conn = getattr(self.checkpointer, "conn", None)
        if conn is not None and hasattr(conn, "close"):
            conn.close()


class DefaultContext:
    """The bundle a run without a Python context uses, built from `Settings` on first use.

    One per process (the LangGraph server's): importing `graphs.app` builds nothing, the first
    run or artifact request does. Sessions are the server's own, so no checkpointer opens.
    """

    def __init__(self) -> None:
        self._built: Context | None = None
        self._lock = threading.Lock()

    def get(self) -> Context:
        with self._lock:
            if self._built is None:
                from graphs.components import build_components
                from graphs.settings import Settings

                self._built = build_components(Settings(), persist=False)
            return self._built


DEFAULT = DefaultContext()
"""The server's lazily built bundle (see `resolve_context`)."""


def resolve_context(context: Context | dict[str, Any] | None) -> Context:
    """The context a node runs with: the caller's bundle, or the default one with its knobs.

    A JSON context whose knobs are all `GraphSettings`' defaults (or none) leaves the default
    bundle's own knobs, those `Settings` gave it (`BRUSHEDIT_MAX_ATTEMPTS`, ...).
    """
    if isinstance(context, dict):
        context = Context(**context)
    if context is not None and context.ready:
        return context
    default = DEFAULT.get()
    if context is None or context.settings == GraphSettings():
        return default
    return default.with_settings(context.settings)
