"""How the command line shows an expected failure: one line on stderr, exit 2, no traceback.

The root group and every sub-command group (`eval` included) use `BrushEditGroup`; commands
that keep running after an error (`chat`, the mask review on stdin) print `cli_message`.
"""

from __future__ import annotations

import logging

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from interfaces.wording import Wording, say
from tools.errors import BrushEditError, InternalError

USER_ERROR_EXIT = 2
INTERNAL_ERROR_EXIT = 1
CLI_WORDING = Wording(inpainter="`--inpainter {name}`", mask="pass a mask with `--mask MASK.png`",
                      installer="install")
"""The CLI's flags, for the fixes typed errors point at (`interfaces.wording`)."""


class BrushEditGroup(TyperGroup):
    """A group that prints expected errors on one line and exits 2, never a traceback; a bug
    is `InternalError`'s one line and exit 1, its traceback only in the log (`--verbose`)."""

    def invoke(self, ctx):
        import click

        try:
            return super().invoke(ctx)
        except BrushEditError as exc:
            typer.echo(f"Error: {cli_message(exc)}", err=True)
            raise typer.Exit(USER_ERROR_EXIT) from None
        except (click.exceptions.ClickException, click.exceptions.Exit,
                click.exceptions.Abort, typer.Exit, typer.Abort,
                TyperException):  # typer's own (vendored click): help, usage errors, exits
            raise
        except Exception as exc:
            log = logging.getLogger("interfaces.cli")
            if log.isEnabledFor(logging.INFO):  # --verbose: the log is the terminal
                log.error("brushedit failed unexpectedly", exc_info=exc)
            typer.echo(f"Error: {InternalError.__name__}: brushedit failed unexpectedly; run "
                       "it again with --verbose for the details", err=True)
            raise typer.Exit(INTERNAL_ERROR_EXIT) from None


def cli_message(exc: BrushEditError) -> str:
    """An expected error on one terminal-safe line, with the CLI flag that fixes it."""
    from interfaces.terminal import one_line

    return one_line(say(exc, CLI_WORDING))
