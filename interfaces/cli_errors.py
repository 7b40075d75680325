"""How the command line shows an expected failure: one line on stderr, no traceback, and an exit
status that says what kind of failure it was.

The root group and every sub-command group (`eval` included) use `BrushEditGroup`; commands
that keep running after an error (`chat`, the mask review on stdin) print `cli_message`.
"""

from __future__ import annotations

import json
import logging

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from interfaces.wording import Wording, say
from tools.errors import (
    BrushEditError,
    EditCancelledError,
    InternalError,
    InvalidImageError,
    InvalidMaskError,
    InvalidRequestError,
    UnsupportedEditError,
)

INTERNAL_ERROR_EXIT = 1
"""A bug: `InternalError`'s one line, its traceback only in the log (`--verbose`)."""
USAGE_EXIT = 2
"""A command line click cannot parse: an unknown option, a missing argument, a bad value."""
REFUSED_EXIT = 3
"""The request was refused: a bad image, mask, instruction, option or output path, a session
that does not exist or is busy, an edit the chosen inpainter cannot do. Change the input."""
FAILED_EXIT = 4
"""The edit could not run or failed: models that cannot load, a bad `BRUSHEDIT_` setting or
data folder, the VLM server down (with `--planner vlm`). Fix the setup (`brushedit doctor`)."""
CANCELLED_EXIT = 130
"""Stopped with Ctrl-C (128 + SIGINT, as shells report it)."""

EXIT_CODES_HELP = (
    "Exit status: 0 done (the result is written, accepted or not); 1 an unexpected error (a "
    "bug); 2 a usage error; 3 the input was refused (image, mask, instruction, options, output "
    "path, session); 4 the edit failed (models, settings, the VLM server: see `brushedit "
    "doctor`); 130 cancelled with Ctrl-C."
)
CLI_WORDING = Wording(inpainter="`--inpainter {name}`", mask="pass a mask with `--mask MASK.png`",
                      installer="install",
                      weights="fetch them{licence} with `{command}` and set {env} to that folder")
"""The CLI's flags, for the fixes typed errors point at (`interfaces.wording`)."""

JSON_OUTPUT = "brushedit_json"
"""`ctx.meta` key a command sets with `--json`: its errors are JSON on stdout too."""


def exit_code_for(exc: BaseException) -> int:
    """The exit status of an expected failure (see `EXIT_CODES_HELP`)."""
    from graphs.claims import ConflictError

    if isinstance(exc, (EditCancelledError, KeyboardInterrupt)):
        return CANCELLED_EXIT
    if isinstance(exc, (InvalidRequestError, InvalidImageError, InvalidMaskError,
                        UnsupportedEditError, ConflictError)):
        return REFUSED_EXIT
    return FAILED_EXIT


class BrushEditGroup(TyperGroup):
    """A group that prints expected errors on one line (also as JSON on stdout after `--json`)
    and exits with their status, never a traceback; a bug is `InternalError`'s one line and
    exit 1, its traceback only in the log (`--verbose`). Typer's own exits (help, usage errors)
    pass through as they are."""

    def invoke(self, ctx):
        import click

        try:
            return super().invoke(ctx)
        except BrushEditError as exc:
            _fail(ctx, type(exc).__name__, cli_message(exc), exit_code_for(exc))
        except KeyboardInterrupt:
            typer.echo("Cancelled.", err=True)
            raise typer.Exit(CANCELLED_EXIT) from None
        except (click.exceptions.ClickException, click.exceptions.Exit,
                click.exceptions.Abort, typer.Exit, typer.Abort,
                TyperException):  # typer's own (vendored click): help, usage errors, exits
            raise
        except Exception as exc:
            log = logging.getLogger("interfaces.cli")
            if log.isEnabledFor(logging.INFO):  # --verbose: the log is the terminal
                log.error("brushedit failed unexpectedly", exc_info=exc)
            _fail(ctx, InternalError.__name__, "brushedit failed unexpectedly; run it again "
                  "with --verbose for the details", INTERNAL_ERROR_EXIT)


def _fail(ctx, kind: str, message: str, code: int) -> None:
    """Say an error on stderr (and as JSON on stdout after `--json`) and exit with `code`."""
    if ctx.meta.get(JSON_OUTPUT):
        typer.echo(json.dumps({"error": {"type": kind, "message": message}}))
    typer.echo(f"Error: {message}" if kind != InternalError.__name__ else
               f"Error: {kind}: {message}", err=True)
    raise typer.Exit(code) from None


def cli_message(exc: BrushEditError) -> str:
    """An expected error on one terminal-safe line, with the CLI flag that fixes it."""
    from interfaces.terminal import one_line

    return one_line(say(exc, CLI_WORDING))
