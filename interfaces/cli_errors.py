"""How the command line shows an expected failure: one line on stderr, exit 2, no traceback.

The root group and every sub-command group (`eval` included) use `BrushEditGroup`; commands
that keep running after an error (`chat`, the mask review on stdin) print `cli_message`.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from interfaces.wording import Wording, say
from tools.errors import BrushEditError

USER_ERROR_EXIT = 2
CLI_WORDING = Wording(inpainter="`--inpainter {name}`", mask="pass a mask with `--mask MASK.png`",
                      installer="install",
                      weights="fetch them{licence} with `{command}` and set {env} to that folder")
"""The CLI's flags, for the fixes typed errors point at (`interfaces.wording`)."""


class BrushEditGroup(TyperGroup):
    """A group that prints expected errors on one line and exits 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrushEditError as exc:
            typer.echo(f"Error: {cli_message(exc)}", err=True)
            raise typer.Exit(USER_ERROR_EXIT) from None


def cli_message(exc: BrushEditError) -> str:
    """An expected error on one terminal-safe line, with the CLI flag that fixes it."""
    from interfaces.terminal import one_line

    return one_line(say(exc, CLI_WORDING))
