"""One exception hierarchy whose messages are written for the person at the keyboard.

Every error a user can cause or fix (a bad file, a missing model, an unreachable server) is a
`BrushEditError`; the CLI prints its message on one line and exits 2. Anything else is a bug.
"""

from __future__ import annotations


class BrushEditError(RuntimeError):
    """Base class of every expected, user-facing failure.

    A `RuntimeError`, so that servers which pass on only the messages of built-in exception
    types (the LangGraph server shows others as "An internal error occurred") show ours.
    """


class InvalidImageError(BrushEditError, ValueError):
    """The image (or mask) file cannot be used: missing, empty, truncated, not an image, too big."""


class InvalidMaskError(BrushEditError, ValueError):
    """A mask has the wrong shape, type or values."""


class InvalidRequestError(BrushEditError, ValueError):
    """An edit request's parameters are out of range or contradict each other."""


class MaskNeededError(InvalidRequestError):
    """The edit needs a mask from the caller: nothing could find the area to edit.

    Each surface says how to give one in its own terms (the CLI's `--mask`, the API's `mask`).
    """


class ModelLoadError(BrushEditError):
    """Model weights are missing or do not fit the class they are loaded into."""


class UnsupportedEditError(BrushEditError):
    """The chosen backend cannot perform this kind of edit.

    `inpainter`, `category` and `supported` (the categories it can do) say so as data, for
    surfaces that word their own hint.
    """

    def __init__(
        self,
        message: str,
        *,
        inpainter: str | None = None,
        category: str | None = None,
        supported: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.inpainter, self.category, self.supported = inpainter, category, supported


class EditCancelledError(BrushEditError):
    """The caller stopped an edit while it ran (`cancel` answered True after a step)."""

    def __init__(self, message: str, *, inpainter: str, step: int, total: int) -> None:
        super().__init__(message)
        self.inpainter, self.step, self.total = inpainter, step, total


class ConductorLoadError(ModelLoadError):
    """A diffusers conductor cannot load from what it was given (`model`): a folder, file or
    Hub id that is not a checkpoint it can use."""

    def __init__(self, message: str, *, conductor: str, model: str) -> None:
        super().__init__(message)
        self.conductor, self.model = conductor, model


class MissingWeightsError(ConductorLoadError):
    """A conductor's weights are not on this machine (and may not be downloaded now).

    `fix_command` fetches them (`hf download <repo> --local-dir <folder>`); `env_var` is the
    setting that names them; `gated` says the Hub asks for a licence to be accepted first.
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
    ) -> None:
        super().__init__(message, conductor=conductor, model=model)
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
