"""Each surface words the fix of a typed error in its own terms, from the error's fields.

The engine's messages name no surface's controls; an error carries the facts a fix needs (the
inpainters that can do the edit, that a mask is needed, the request field at fault). A surface
describes its controls once, as a `Wording` (the CLI's flags, the HTTP API's form fields, MCP's
and the LangChain tool's arguments, the web editor's controls), and `say` puts the sentence
together. Only `tools.errors` is imported, so the CLI's error path stays light.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tools.errors import (
    InvalidRequestError,
    MaskNeededError,
    MissingWeightsError,
    PlacementNeededError,
    UnsupportedEditError,
    WrongPipelineError,
)

if TYPE_CHECKING:
    from pydantic import ValidationError


@dataclass(frozen=True)
class Wording:
    """How one surface names the controls that fix an error.

    Attributes:
        inpainter: how to choose an inpainter, with `{name}` (`` `--inpainter {name}` ``).
        mask: how to give a mask, as an instruction ("send a `mask` file with the edit").
        installer: who installs missing model weights, as a subject with its verb.
        field: how a request field is called here (`options.seed` -> "Seed"), or None to keep
            the engine's backticked name.
        weights: how a conductor's missing weights get here, with `{command}` (the `hf download`
            command), `{env}` (the setting naming them) and `{licence}` (" after accepting its
            licence on the Hub", or nothing).
    """

    inpainter: str
    mask: str
    installer: str = "whoever runs this server installs"
    field: Callable[[str], str] | None = None
    weights: str = ("whoever runs this server fetches them{licence} with `{command}` and sets "
                    "{env} to that folder")


def say(exc: BaseException, wording: Wording) -> str:
    """`exc`'s sentence, on one line, with the fix in `wording`'s terms."""
    if isinstance(exc, UnsupportedEditError) and exc.alternatives:
        choices = " or ".join(wording.inpainter.format(name=name) for name in exc.alternatives)
        return f"{exc.reason}; use {choices}."
    if isinstance(exc, PlacementNeededError):
        return (f"{exc.summary}; {wording.mask} where it should go (white = the new object), "
                f"or name a thing in the picture to put it by, as in {exc.EXAMPLE}")
    if isinstance(exc, MaskNeededError) and exc.segmenter_missing:
        return (f"{exc.summary}: {wording.mask} (white = edit), or {wording.installer} the "
                "GroundingDINO and SAM weights (`brushedit doctor` says how)")
    if isinstance(exc, MissingWeightsError):
        licence = " after accepting its licence on the Hub" if exc.gated else ""
        fix = wording.weights.format(command=exc.fix_command, env=exc.env_var, licence=licence)
        return f"{' '.join(exc.summary.split()).rstrip('.')}; {fix}."
    message = " ".join(str(exc).split())
    if isinstance(exc, WrongPipelineError) and exc.suggested:
        return f"{message.rstrip('.')}; {wording.inpainter.format(name=exc.suggested)} loads it."
    if isinstance(exc, MaskNeededError):
        return f"{message} ({wording.mask}, white = edit)"
    if (isinstance(exc, InvalidRequestError) and wording.field is not None and exc.field
            and exc.problem):
        name = wording.field(exc.field)
        return f"{name[:1].upper()}{name[1:]} {' '.join(exc.problem.split())}"
    return message


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validation_sentences(exc: ValidationError) -> str:
    """Pydantic's errors as sentences naming each parameter (`options.steps must be ...`), each
    quoting at most 60 characters of what was sent (MCP's and the LangChain tool's arguments)."""
    from tools.types import EditOptions

    option_names = ", ".join(EditOptions.model_fields)
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if not str(p).startswith(("function-", "json-"))]
        name = ".".join(loc) or "arguments"
        ctx = err.get("ctx") or {}
        kind = err.get("type", "")
        got = f", got {_shown(err['input'])}" if "input" in err and kind != "missing" else ""
        if kind == "missing":
            text = f"`{name}` is required"
        elif kind == "extra_forbidden":
            known = f"; the options are {option_names}" if loc[:1] == ["options"] else ""
            text = f"`{name}` is not a parameter of this tool{known}"
        elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            words = {"greater_than_equal": "at least", "greater_than": "greater than",
                     "less_than_equal": "at most", "less_than": "less than"}[kind]
            bound = next(iter(ctx.values())) if ctx else "?"
            text = f"`{name}` must be {words} {bound}{got}"
        elif kind == "finite_number":
            text = f"`{name}` must be a finite number{got}"
        elif kind.startswith("int_"):
            text = f"`{name}` must be a whole number{got}"
        elif kind.startswith("float_"):
            text = f"`{name}` must be a number{got}"
        elif kind.startswith("bool_"):
            text = f"`{name}` must be true or false{got}"
        elif kind.startswith("string_"):
            text = f"`{name}` must be text{got}"
        elif kind == "literal_error":
            text = f"`{name}` must be {ctx.get('expected', 'one of the allowed values')}{got}"
        elif kind in ("model_type", "dict_type", "model_attributes_type"):
            text = f"`{name}` must be a JSON object{got}"
        else:
            msg = str(err.get("msg", "is invalid"))
            text = f"`{name}`: {msg[:1].lower() + msg[1:]}"
        parts.append(text)
    return "; ".join(parts) + "."
