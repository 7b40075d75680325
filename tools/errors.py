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
    """The chosen backend cannot perform this kind of edit."""


class ConfigError(BrushEditError):
    """A setting has a value that cannot work."""
