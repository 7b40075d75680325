"""One exception hierarchy whose messages are written for the person at the keyboard.

Every error a user can cause or fix (a bad file, a missing model, an unreachable server) is a
`BrushEditError`; the CLI prints its message on one line and exits 2. Anything else is a bug.
Messages name no surface's controls: the facts a fix needs (the field at fault, what was looked
for, the inpainter that would do) are typed attributes, and each surface (CLI flags, HTTP form
fields, MCP tool arguments, the web editor's controls) words its own hint from them.
"""

from __future__ import annotations


class BrushEditError(RuntimeError):
    """Base class of every expected, user-facing failure.

    A `RuntimeError`, so that servers which pass on only the messages of built-in exception
    types (the LangGraph server shows others as "An internal error occurred") show ours.
    """

    def __reduce__(self) -> tuple:
        # Subclasses take their facts as fields, so the default (calling the class with
        # `args`) cannot rebuild them in another process (a Ray worker's error, a pickled trace).
        return _rebuild, (type(self), self.args, dict(self.__dict__))


def _rebuild(cls: type[BrushEditError], args: tuple, state: dict) -> BrushEditError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class InvalidImageError(BrushEditError, ValueError):
    """The image (or mask) file cannot be used: missing, empty, truncated, not an image, too big."""


class InvalidMaskError(BrushEditError, ValueError):
    """A mask has the wrong shape, type or values."""


class InvalidRequestError(BrushEditError, ValueError):
    """An edit request's parameters are out of range or contradict each other.

    Attributes:
        field: the request field at fault (`instruction`, `caption`, `options.seed`...), or None.
        problem: what is wrong with it, said after its name (`has 3,000 characters; ...`), or
            None when the message is not of that shape.
    """

    def __init__(self, message: str | None = None, *, field: str | None = None,
                 problem: str | None = None) -> None:
        self.field = field
        self.problem = problem
        super().__init__(message if message is not None else f"`{field}` {problem}")


class MaskNeededError(InvalidRequestError):
    """The edit needs a mask from the caller: nothing could find the area to edit.

    Each surface says how to give one in its own terms (the CLI's `--mask`, the API's `mask`).

    Attributes:
        looked_for: what was looked for (“the dog”, or the area of a removal edit), or None.
        segmenter_missing: no segmentation model could look (none is set up, or it failed to
            load): the server's setup is at fault (HTTP 503), and a mask is the way around it.
        load_error: why loading the segmentation model failed, or None.
        summary: the fact without any fix (each surface adds how to give a mask there).
    """

    def __init__(self, message: str, *, looked_for: str | None = None,
                 segmenter_missing: bool = False, load_error: str | None = None,
                 summary: str | None = None) -> None:
        self.looked_for = looked_for
        self.segmenter_missing = segmenter_missing
        self.load_error = load_error
        self.summary = summary or message
        super().__init__(message, field="mask")

    @classmethod
    def no_segmenter(cls, looked_for: str, load_error: str | None = None) -> MaskNeededError:
        """No segmentation model is available to look for `looked_for`."""
        failed = f" (loading failed: {load_error})" if load_error else ""
        summary = f"no segmentation model is available to find {looked_for}{failed}"
        return cls(
            f"no segmentation model is available to find {looked_for}: give a mask of the area "
            f"to edit, or install the GroundingDINO and SAM weights (`brushedit doctor` says "
            f"how){failed}",
            looked_for=looked_for, segmenter_missing=True, load_error=load_error, summary=summary,
        )


class PlacementNeededError(MaskNeededError):
    """An addition has nowhere to go: the vision model cannot point at places in a picture, and
    the instruction names no thing that was found to put the new object by.

    A family without grounding (Gemma, Llama 3.2 Vision, moondream) is never asked for a box and
    its additions never go to a made-up place; each surface says how to give the place in its own
    terms (a mask of where the object goes), or to name a thing to put it by.

    Attributes:
        model: the vision model's name; family: its family as people write it ("Gemma 3").
        anchor: the thing the instruction named to put the object by, when it was not found.
        why: why the anchor was not found ("the detector found nothing"), or None.
    """

    EXAMPLE = "\u201cadd a hat on the man\u201d"

    def __init__(self, model: str, family: str, *, anchor: str | None = None,
                 why: str | None = None) -> None:
        self.model, self.family, self.anchor, self.why = model, family, anchor, why
        summary = f"{model} ({family}) cannot point at places in a picture"
        if anchor is None:
            summary += ", so it cannot say where to add the new object"
        else:
            summary += f", and \u201c{anchor}\u201d, the thing to put the new object by, was " \
                       f"not found ({why or 'nothing detected'})"
        super().__init__(
            f"{summary}; give a mask of where the new object goes, or name a thing in the "
            f"picture to put it by, as in {self.EXAMPLE}",
            looked_for=anchor, summary=summary,
        )


class ModelLoadError(BrushEditError):
    """Model weights are missing or do not fit the class they are loaded into.

    Attributes:
        inpainter: the inpainter whose weights are at fault (its registry name), or None.
        segmenter: True when the segmentation model's weights are at fault.
        summary: the first sentence (what cannot load), without the how-to-fix that follows.
    """

    def __init__(self, message: str, *, inpainter: str | None = None, segmenter: bool = False,
                 summary: str | None = None) -> None:
        self.inpainter = inpainter
        self.segmenter = segmenter
        self.summary = summary or message
        super().__init__(message)


class UnsupportedEditError(BrushEditError):
    """The chosen backend cannot perform this kind of edit.

    Attributes:
        inpainter: the backend that refused.
        category: the edit category it cannot do.
        reason: why, without what to use instead.
        alternatives: the registry's inpainters that can do `category`.
        supported: the categories the refusing backend can do.
    """

    def __init__(self, reason: str, *, inpainter: str | None = None,
                 category: str | None = None, supported: tuple[str, ...] = ()) -> None:
        from tools.registry import INPAINTERS

        self.reason = reason.rstrip(". ")
        self.inpainter = inpainter
        self.category = category
        self.supported = tuple(supported)
        self.alternatives = tuple(name for name, spec in INPAINTERS.items()
                                  if category in spec.categories and name != inpainter)
        instead = (f"; use {' or '.join(f'the `{name}` inpainter' for name in self.alternatives)}"
                   if self.alternatives else "")
        super().__init__(f"{self.reason}{instead}.")


class EditCancelledError(BrushEditError):
    """The caller stopped an edit while it ran (`cancel` answered True after a step).

    `inpainter`, `step` and `total` say where diffusion stopped; they are None when the edit
    stopped between two steps of the graph (`node` names the last one that ran).
    """

    def __init__(self, message: str, *, inpainter: str | None = None, step: int | None = None,
                 total: int | None = None, node: str | None = None) -> None:
        super().__init__(message)
        self.inpainter, self.step, self.total, self.node = inpainter, step, total, node


class ConductorLoadError(ModelLoadError):
    """A diffusers conductor cannot load from what it was given (`model`): a folder, file or
    Hub id that is not a checkpoint it can use."""

    def __init__(self, message: str, *, conductor: str, model: str,
                 summary: str | None = None) -> None:
        super().__init__(message, inpainter=conductor, summary=summary)
        self.conductor, self.model = conductor, model


class MissingWeightsError(ConductorLoadError):
    """A conductor's weights are not on this machine (and may not be downloaded now).

    `fix_command` fetches them (`hf download <repo> --local-dir <folder>`); `env_var` is the
    setting that names them; `gated` says the Hub asks for a licence to be accepted first;
    `summary` is what is missing, without the fix (each surface words the fix).
    """

    def __init__(
        self,
        message: str,
        *,
        conductor: str,
        model: str,
        repo: str,
        fix_command: str,
        env_var: str,
        gated: bool = False,
        summary: str | None = None,
    ) -> None:
        super().__init__(message, conductor=conductor, model=model, summary=summary)
        self.repo, self.fix_command, self.env_var, self.gated = repo, fix_command, env_var, gated


class WrongPipelineError(ConductorLoadError):
    """A checkpoint of another pipeline was named for a conductor (a FLUX.1 Fill folder given to
    the Kontext conductor): `expected` and `found` are diffusers pipeline class names, and
    `suggested` the conductor that does load it, if any."""

    def __init__(
        self,
        message: str,
        *,
        conductor: str,
        model: str,
        expected: str,
        found: str,
        suggested: str | None = None,
    ) -> None:
        super().__init__(message, conductor=conductor, model=model)
        self.expected, self.found, self.suggested = expected, found, suggested


class ConfigError(BrushEditError):
    """A setting has a value that cannot work."""


class ImageTooLargeError(InvalidImageError):
    """An image (or mask) has more pixels than this process decodes, known from its header.

    Raised before a pixel is decoded. `width`/`height` are None when only the pixel count is
    known (Pillow's own decompression-bomb guard fired first).
    """

    def __init__(
        self, name: str, max_pixels: int, *, width: int | None = None,
        height: int | None = None, pixels: int | None = None,
    ) -> None:
        self.name = name
        self.width = width
        self.height = height
        self.pixels = pixels if pixels is not None else (
            width * height if width is not None and height is not None else None)
        self.max_pixels = max_pixels
        if width is not None and height is not None:
            size = f"is {width}x{height} ({self.pixels:,} pixels),"
        elif self.pixels is not None:
            size = f"has {self.pixels:,} pixels,"
        else:
            size = "is too large to open safely,"
        super().__init__(f"{name} {size} over the limit of {max_pixels:,} pixels")


class ImageTooSmallError(InvalidImageError):
    """An image is too small (or too thin) for the steps after loading: a side under `min_side`.

    `working` is set when the image itself is large enough but its short side would fall under
    `min_side` once downscaled to the working size (`max_side` on the long side): an extreme
    aspect ratio such as 10000x100.
    """

    def __init__(
        self, name: str, width: int, height: int, min_side: int, *,
        working: tuple[int, int] | None = None, max_side: int | None = None,
    ) -> None:
        self.name = name
        self.width = width
        self.height = height
        self.min_side = min_side
        self.working = working
        self.max_side = max_side
        if working is None:
            text = (f"{name} is {width}x{height}; both sides must be at least {min_side} px")
        else:
            text = (
                f"{name} is {width}x{height}, too thin to edit: at the working size ({max_side} "
                f"px on the long side) it would be {working[0]}x{working[1]}, and both sides "
                f"must be at least {min_side} px; crop it to an aspect ratio of at most "
                f"{max_side // min_side}:1"
            )
        super().__init__(text)


class InvalidTextError(InvalidRequestError):
    """Free text (instruction, caption, negative prompt) that cannot be stored as it would show.

    `field` names the request field; `reason` is a short code (`control`, `bidi`, `utf8`,
    `too_long`); `character` is the offending character as `U+XXXX` (None for whole-text
    problems) and `position` its index (a byte offset for invalid UTF-8).
    """

    def __init__(
        self, message: str, *, field: str, reason: str, character: str | None = None,
        position: int | None = None,
    ) -> None:
        self.reason = reason
        self.character = character
        self.position = position
        super().__init__(message, field=field)


class StorageFullError(BrushEditError):
    """The disk holding the data folder (images, sessions) is full, so a write failed.

    Nothing half-written is kept (writes go through a temporary file and a rename). The
    server's state, not the request's fault: HTTP 503. `what` names what could not be written
    ("an image", "the session log").
    """

    def __init__(self, what: str = "the edit") -> None:
        self.what = what
        super().__init__(
            f"no space is left on the disk that holds the data folder, so {what} could not be "
            "stored (nothing half-written was kept); free some space and retry"
        )


class InternalError(RuntimeError):
    """A bug, as every surface reports it: the same sentence everywhere, the details (the
    exception's type, text and traceback) only in the log.

    Not a `BrushEditError`: surfaces answer it as their own failure (HTTP 500), never as the
    request's fault. A `RuntimeError`, so the LangGraph server passes its sentence on.
    """

    MESSAGE = "the server failed unexpectedly; its log has the details"

    def __init__(self, message: str = MESSAGE) -> None:
        super().__init__(message)
