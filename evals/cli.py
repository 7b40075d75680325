"""`brushedit eval ...` (also `python -m evals ...`): run a suite, then report on it.

Plugged into the `brushedit` command through the `brushedit.commands` entry point. Importing
this module stays cheap (no torch, no LangGraph): the work is imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from graphs.cli import BrushEditGroup

app = typer.Typer(
    cls=BrushEditGroup,
    name="eval",
    help="Measure how robust editing is to rephrased instructions, and how well it keeps the "
    "background.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

PlannerChoice = Literal["rules", "vlm", "both"]
InpainterChoice = Literal["opencv", "brushnet"]
MaskChoice = Literal["expected", "segment"]


@app.command()
def run(
    suite: Annotated[Path, typer.Argument(help="Suite file (JSONL).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (created; resumable).")],
    perturb: Annotated[
        str, typer.Option(help="Comma list of perturbation families, or `all`.")
    ] = "all",
    variants: Annotated[int, typer.Option(min=0, help="Variants per family and item.")] = 3,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the perturbations and the edit.")] = 0,
    planner: Annotated[
        PlannerChoice, typer.Option(help="Who plans: the rule parser, the VLM, or both.")
    ] = "rules",
    inpainter: Annotated[InpainterChoice, typer.Option(help="Inpainting backend.")] = "opencv",
    mask_source: Annotated[
        MaskChoice,
        typer.Option(
            help="expected: give the suite's mask to the system; segment: let it find one."
        ),
    ] = "expected",
    max_attempts: Annotated[int, typer.Option(min=1, max=10, help="Verifier attempts.")] = 1,
    steps: Annotated[int, typer.Option(min=1, max=200, help="Diffusion steps (brushnet).")] = 20,
    workers: Annotated[int, typer.Option(min=1, help="Local worker processes.")] = 1,
    ray: Annotated[
        str | None,
        typer.Option(
            help="Run on a Ray cluster at this address (`auto`, `ray://...`; `local` "
            "starts one with --workers CPUs)."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N items.")] = None,
    force_new: Annotated[
        bool, typer.Option("--force-new", help="Set an earlier run in --out aside and restart.")
    ] = False,
    retry_errors: Annotated[
        bool, typer.Option("--retry-errors", help="Redo rows that ended in an error.")
    ] = False,
    report: Annotated[bool, typer.Option(help="Write the report when done.")] = True,
) -> None:
    """Run (or resume) an eval: every item x variant x planner is one edit session."""
    from evals.perturb import resolve_families
    from evals.runner import RunOptions, make_config

    try:
        families = resolve_families(perturb)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--perturb") from None
    config = make_config(
        suite,
        families=families,
        variants=variants,
        seed=seed,
        planner=planner,
        inpainter=inpainter,
        mask_source=mask_source,
        max_attempts=max_attempts,
        steps=steps,
    )
    options = RunOptions(
        out=str(out),
        workers=workers,
        ray=ray,
        limit=limit,
        force_new=force_new,
        retry_errors=retry_errors,
    )
    counts = _with_progress(config, options)
    typer.echo(
        f"{counts['ran']} rows written, {counts['skipped']} already done, "
        f"{counts['tasks']} in the run -> {counts['out']}"
    )
    if report:
        _report(Path(counts["out"]))


@app.command("report")
def report_command(
    out: Annotated[Path, typer.Argument(help="Run folder written by `eval run`.")],
) -> None:
    """(Re)write summary.json, items.jsonl and report.html for a run folder."""
    _report(out)


def _report(out: Path) -> None:
    from evals.report import write_report

    paths = write_report(out)
    summary = _load_json(paths["summary"])
    for note in summary["notes"]:
        typer.secho(note, fg=typer.colors.YELLOW, err=True)
    for planner, per in summary["robustness"].items():
        cells = ", ".join(f"{f} {_pct(v)}" for f, v in per.items())
        overall = summary["overall"][planner]
        typer.echo(
            f"{planner}: robustness {_pct(overall['robustness'])} ({cells}); "
            f"bg PSNR {_num(overall['bg_psnr'])}, SSIM {_num(overall['bg_ssim'], 4)}"
        )
    typer.echo(f"report: {paths['html']}")


def _with_progress(config: Any, options: Any) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from evals.runner import run_eval

    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress("{task.description}", *columns, transient=True) as progress:
        bar = progress.add_task("evaluating", total=None)

        def on_start(total: int, skipped: int) -> None:
            progress.update(bar, total=total, completed=skipped)

        def on_row(row: dict[str, Any]) -> None:
            progress.advance(bar)

        return run_eval(config, options, on_row=on_row, on_start=on_start)


def _load_json(path: Path) -> dict:
    import json

    return json.loads(path.read_text())


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def main() -> None:
    """`python -m evals`: the same commands as `brushedit eval`."""
    app(prog_name="python -m evals")
