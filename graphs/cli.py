"""The `brushedit` command line.

Expected failures (`BrushEditError`) print one line and exit 2, never a traceback. Other
packages add sub-commands through the `brushedit.commands` entry-point group (evals adds
`eval`), so nothing here imports upward. `brushedit --help` never imports torch.
"""

from __future__ import annotations

import logging
import os
import re
from importlib.metadata import entry_points
from typing import Annotated

import typer
from typer.core import TyperGroup

from tools.errors import BrushEditError, MaskNeededError

ENTRY_POINT_GROUP = "brushedit.commands"


USER_ERROR_EXIT = 2
_CLI_INPAINTER = re.compile(r"\(the `([a-z]+)` inpainter\)")
"""How a core message names an inpainter, said as the CLI flag that picks it."""


class BrushEditGroup(TyperGroup):
    """Root group that prints expected errors on one line and exits 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrushEditError as exc:
            typer.echo(f"Error: {cli_message(exc)}", err=True)
            raise typer.Exit(USER_ERROR_EXIT) from None


def cli_message(exc: BrushEditError) -> str:
    """An expected error on one terminal-safe line, with the CLI flag that fixes it."""
    from graphs.terminal import one_line

    message = one_line(exc)
    if isinstance(exc, MaskNeededError):
        message += " (pass one with `--mask MASK.png`, white = edit)"
    return _CLI_INPAINTER.sub(r"(`--inpainter \1`)", message)


app = typer.Typer(
    cls=BrushEditGroup,
    name="brushedit",
    help="Instruction-guided image editing with VLM agents, segmentation and BrushNet.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:  # library notices (e.g. "requires torchvision; falling back") are not for users
        for variable in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):
            os.environ.setdefault(variable, "error")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


@app.command()
def doctor(
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when anything is missing.")
    ] = False,
) -> None:
    """Check torch, the Ollama server and model weights, without downloading anything."""
    from graphs.doctor import print_report, run_checks
    from graphs.settings import load_settings

    checks = run_checks(load_settings())
    print_report(checks)
    if strict and not all(check.ok for check in checks):
        raise typer.Exit(1)


from graphs.commands import register as _register_commands  # noqa: E402 - after `app` exists
from graphs.interfaces.cli import register as _register_interfaces  # noqa: E402

_register_commands(app)
_register_interfaces(app)


def _load_plugins(root: typer.Typer) -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            command = ep.load()
        except Exception as exc:
            logging.getLogger(__name__).warning("plugin %s failed to load: %s", ep.name, exc)
            continue
        if isinstance(command, typer.Typer):
            root.add_typer(command, name=ep.name)
        elif callable(command):
            root.command(name=ep.name)(command)


def main() -> None:
    """Console-script entry point."""
    _load_plugins(app)
    app()


if __name__ == "__main__":
    main()
