"""A session's trace as people read it: one timeline, three renderings (terminal, panel, report).

`timeline(events)` turns stored trace events into rows (step, status, timing, a one-line brief,
model calls, images, the JSON sections); the Jinja2 templates in `interfaces/templates/` lay those
rows out for `brushedit trace show` (Rich markup), the web editor's trace panel (an HTML
fragment) and the self-contained HTML report (`brushedit trace report`, the demo). Adding a
field to the trace means changing `timeline` once, not three renderers.
"""

from __future__ import annotations

import base64
import io
import json
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphs.artifacts import is_hash
from interfaces.terminal import markup, one_line

if TYPE_CHECKING:
    from collections.abc import Callable

    import jinja2

    from graphs.artifacts import ArtifactStore

THUMB_SIDE = 256
PANEL_SECTION_CHARS = 4000
"""The web panel shows this much of each JSON section (the report shows it all)."""
DECISION_CHARS = 240
"""The web panel's decision column is cut here (the sections keep everything)."""
SECTIONS = ("verdict", "outputs", "params", "inputs")
"""The JSON parts of an event, most telling first."""


def brief(event: dict[str, Any]) -> str:
    """What a step decided, in one line (`removal via rules`, `accept: ...`); '' when nothing."""
    out = event.get("outputs") or {}
    node = event.get("node")
    params = event.get("params") or {}
    briefs = {
        "classify": lambda: f"{out.get('category')} via {out.get('planner')}",
        "mask": lambda: f"{out.get('mask_source')} mask, coverage {out.get('coverage')}",
        "caption": lambda: f"caption “{out.get('caption')}”",
        "inpaint": lambda: f"{params.get('inpainter')} seed {params.get('seed')}",
        "verify": lambda: f"{out.get('decision')}"
        + (f" → {out.get('stage')}" if out.get("stage") else "") + f": {out.get('reason')}",
        "finish": lambda: f"{'accepted' if out.get('accepted') else 'best effort'}: "
        f"{str(out.get('image') or '')[:12]}",
        "identify": lambda: f"object {out.get('object')!r}",
        "review": lambda: str(out.get("decision")),
        "undo": lambda: f"undid turns {out.get('undone')}",
    }
    make = briefs.get(str(node))
    return make() if make else ""


def decision(event: dict[str, Any]) -> str:
    """What the web panel's decision column says: the brief, the failure, or the outputs."""
    error = event.get("error")
    text = f"failed: {error}" if error else brief(event) or _summary(event)
    text = re.sub(r"\b([0-9a-f]{12})[0-9a-f]{52}\b", r"\1…", " ".join(text.split()))
    return text if len(text) <= DECISION_CHARS else text[:DECISION_CHARS - 1] + "…"


def _summary(event: dict[str, Any]) -> str:
    """A step without a brief: a few of its scalar outputs, or the instruction it started on."""
    outputs = event.get("outputs")
    if isinstance(outputs, dict) and outputs:
        scalars = [f"{key}: {value}" for key, value in outputs.items()
                   if isinstance(value, (str, int, float, bool))][:3]
        if scalars:
            return " · ".join(scalars)
        if "candidates" in outputs:
            return f"{len(outputs['candidates'] or [])} candidate(s)"
    instruction = (event.get("inputs") or {}).get("instruction")
    return f"instruction: {instruction}" if instruction else ""


def images(value: Any, label: str = "") -> list[tuple[str, str]]:
    """(label, hash) pairs found anywhere in an event's `images` field (nested lists included)."""
    if isinstance(value, str):
        return [(label or "image", value)] if is_hash(value) else []
    if isinstance(value, dict):
        return [pair for key, item in value.items()
                for pair in images(item, f"{label}.{key}" if label else str(key))]
    if isinstance(value, (list, tuple)):
        return [pair for i, item in enumerate(value)
                for pair in images(item, f"{label}[{i}]" if label else f"[{i}]")]
    return []


def timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per trace event, in order, with everything a renderer shows (JSON-able)."""
    rows = []
    for index, event in enumerate(events, 1):
        duration = event.get("duration_ms")
        rows.append({
            "index": index,
            "turn": event.get("turn"),
            "attempt": event.get("attempt"),
            "node": str(event.get("node", "step")),
            "status": str(event.get("status", "")),
            "ok": event.get("status") == "ok",
            "started": event.get("started"),
            "duration_ms": float(duration) if isinstance(duration, (int, float)) else None,
            "brief": brief(event),
            "decision": decision(event),
            "error": event.get("error"),
            "calls": [dict(call) for call in event.get("calls") or []],
            "images": images(event.get("images") or {}),
            "sections": [(key, _pretty(event[key])) for key in SECTIONS
                         if event.get(key) not in (None, {}, [])],
        })
    return rows


def render_terminal(session_id: str, events: list[dict[str, Any]]) -> str:
    """`brushedit trace show`: the timeline as an indented tree in Rich markup (text escaped)."""
    return _template("trace_show.txt.j2").render(session_id=session_id, turns=_by_turn(events))


def render_panel(
    events: list[dict[str, Any]], *, thumb: Callable[[str], str | None] | None = None
) -> str:
    """The web editor's trace panel: a table, one row per step (an HTML fragment).

    A row shows the step's turn and attempt, what it decided, its time (a bar relative to the
    slowest step) and its images (inline where `thumb(hash)` gives a URL, each image once);
    it opens to the model calls and JSON sections, with only the parameters the turn's
    inpainter reads.
    """
    rows = timeline(relevant_params(events))
    slowest = max((row["duration_ms"] or 0 for row in rows), default=0) or 1
    seen: set[str] = set()
    for row in rows:
        ms = row["duration_ms"]
        row["bar"] = max(2, int(80 * ms / slowest)) if ms is not None else None
        row["failed"] = row["status"] not in ("", "ok")
        row["thumbs"] = []
        for label, digest in row["images"]:
            if digest not in seen:
                seen.add(digest)
                row["thumbs"].append((label, digest, thumb(digest) if thumb else None))
    return _template("trace_panel.html.j2").render(rows=rows,
                                                    limit=PANEL_SECTION_CHARS).strip()


def unused_options(inpainter: str | None) -> frozenset[str]:
    """`EditOptions` fields that only some inpainters read and `inpainter` does not."""
    from tools.registry import INPAINTERS

    spec = INPAINTERS.get(inpainter or "")
    if spec is None:
        return frozenset()
    backend = {o for s in INPAINTERS.values() for o in s.uses_options}
    return frozenset(backend - set(spec.uses_options))


def relevant_params(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events with the parameters (and options) their turn's inpainter does not read left out.

    An inpainter's unused knobs (opencv has no steps) would only mislead a reader.
    """
    chosen = _turn_inpainters(events)
    out = []
    for event in events:
        unused = unused_options(chosen.get(event.get("turn")))
        if not unused:
            out.append(event)
            continue
        event = dict(event)
        if isinstance(event.get("params"), dict):
            event["params"] = _without(event["params"], unused)
        inputs = event.get("inputs")
        if isinstance(inputs, dict) and isinstance(inputs.get("options"), dict):
            event["inputs"] = {**inputs, "options": _without(inputs["options"], unused)}
        out.append(event)
    return out


def _turn_inpainters(events: list[dict[str, Any]]) -> dict[Any, str]:
    chosen: dict[Any, str] = {}
    for event in events:
        params = event.get("params") or {}
        options = (event.get("inputs") or {}).get("options") or {}
        name = params.get("inpainter") if isinstance(params, dict) else None
        name = name or (options.get("inpainter") if isinstance(options, dict) else None)
        if isinstance(name, str):
            chosen[event.get("turn")] = name
    return chosen


def _without(params: dict[str, Any], unused: frozenset[str]) -> dict[str, Any]:
    """`params` less the unused names and their derived forms (`effective_steps`)."""
    return {key: value for key, value in params.items()
            if key not in unused and not any(key.endswith("_" + name) for name in unused)}


def render_report(
    session_id: str, events: list[dict[str, Any]], turns: list[dict[str, Any]],
    store: ArtifactStore,
) -> str:
    """The self-contained HTML report: turns, then each step with its images and prompts."""
    cache_: dict[str, str | None] = {}
    rows = timeline(events)
    for row in rows:
        row["thumbs"] = [(label, digest, uri) for label, digest in row["images"]
                         if (uri := _thumb(digest, store, cache_))]
    return _template("trace_report.html.j2").render(session_id=session_id, turns=turns,
                                                     rows=rows)


def write_report(
    path: str | Path, session_id: str, events: list[dict[str, Any]],
    turns: list[dict[str, Any]], store: ArtifactStore,
) -> Path:
    """Write `render_report` to `path` atomically."""
    from graphs.artifacts import write_text_atomic

    return write_text_atomic(path, render_report(session_id, events, turns, store))


def _by_turn(events: list[dict[str, Any]]) -> list[tuple[Any, list[dict[str, Any]]]]:
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in timeline(events):
        groups.setdefault(row["turn"], []).append(row)
    return list(groups.items())


@cache
def _environment(autoescape: bool) -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("interfaces", "templates"),
        autoescape=autoescape, trim_blocks=True, lstrip_blocks=True,
        finalize=lambda value: "" if value is None else value,
    )
    env.filters["markup"] = markup
    env.filters["cut"] = lambda text, limit=80: one_line(text, limit)
    env.filters["ms"] = lambda value: f"{value or 0:.0f} ms"
    return env


def _template(name: str) -> jinja2.Template:
    return _environment(name.endswith(".html.j2")).get_template(name)


def _thumb(digest: str, store: ArtifactStore, cache_: dict[str, str | None]) -> str | None:
    """A data-URI thumbnail of a stored image (PNG for masks, JPEG otherwise), or None."""
    if digest in cache_:
        return cache_[digest]
    uri = None
    if store.has(digest):
        from PIL import Image

        with Image.open(store.path(digest)) as image:
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            buffer = io.BytesIO()
            if image.mode == "L":  # masks stay crisp and tiny as PNG
                image.save(buffer, format="PNG", optimize=True)
                kind = "png"
            else:
                image.convert("RGB").save(buffer, format="JPEG", quality=82)
                kind = "jpeg"
        uri = f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode()
    cache_[digest] = uri
    return uri


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
