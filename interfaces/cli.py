"""The `brushedit` command line: the root app, `doctor`, and where every command comes from.

`edit`, `resume`, `chat` and `demo` are in `interfaces.commands`, the `trace` group in
`interfaces.trace_cli`, `ui`, `serve` and `mcp` in `interfaces.server_commands`, `batch` in `interfaces.batch_cli`. Expected
failures (`BrushEditError`) print one line and exit 2, never a traceback
(`interfaces.cli_errors`). Other packages add sub-commands through the `brushedit.commands`
entry-point group (evals adds `eval`), so nothing here imports upward. `brushedit --help` never imports torch.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import entry_points
from typing import Annotated

import typer

from interfaces import batch_cli, commands, server_commands, trace_cli
from interfaces.cli_errors import BrushEditGroup
from interfaces.vlm_options import VlmModelOpt, VlmUrlOpt

ENTRY_POINT_GROUP = "brushedit.commands"

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
    vlm_url: VlmUrlOpt = None,
    vlm_model: VlmModelOpt = None,
) -> None:
    """Check torch, the VLM's server (Ollama or OpenAI-compatible), its model and family, and
    model weights, without downloading anything."""
    from interfaces.doctor import print_report, run_checks
    from interfaces.vlm_options import settings_with

    checks = run_checks(settings_with(vlm_url, vlm_model))
    print_report(checks)
    if strict and not all(check.ok for check in checks):
        raise typer.Exit(1)


commands.register(app)
server_commands.register(app)
app.add_typer(trace_cli.app, name="trace")
app.add_typer(batch_cli.app, name="batch")


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
