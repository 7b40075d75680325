"""Each surface words the fix of a typed error in its own terms, from the error's fields.

The engine's messages name no surface's controls; an error carries the facts a fix needs (the
inpainters that can do the edit, that a mask is needed, the request field at fault). A surface
describes its controls once, as a `Wording` (the CLI's flags, the HTTP API's form fields, MCP's
and the LangChain tool's arguments, the web editor's controls), and `say` puts the sentence
together. Only `tools.errors` is imported, so the CLI's error path stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tools.errors import (
    InvalidRequestError,
    MaskNeededError,
    PlacementNeededError,
    UnsupportedEditError,
)


@dataclass(frozen=True)
class Wording:
    """How one surface names the controls that fix an error.

    Attributes:
        inpainter: how to choose an inpainter, with `{name}` (`` `--inpainter {name}` ``).
        mask: how to give a mask, as an instruction ("send a `mask` file with the edit").
        installer: who installs missing model weights, as a subject with its verb.
        field: how a request field is called here (`options.seed` -> "Seed"), or None to keep
            the engine's backticked name.
    """

    inpainter: str
    mask: str
    installer: str = "whoever runs this server installs"
    field: Callable[[str], str] | None = None


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
    message = " ".join(str(exc).split())
    if isinstance(exc, MaskNeededError):
        return f"{message} ({wording.mask}, white = edit)"
    if (isinstance(exc, InvalidRequestError) and wording.field is not None and exc.field
            and exc.problem):
        name = wording.field(exc.field)
        return f"{name[:1].upper()}{name[1:]} {' '.join(exc.problem.split())}"
    return message
