"""`brushedit batch MANIFEST --out DIR` (edit every row of a manifest) and `brushedit batch
report DIR` (an HTML page of a run's results).

The engine is `graphs.batch`; this module reads the flags, shows progress on stderr and puts the
summary on stdout (`--json`: one JSON object). Exit status, as every command's
(`interfaces.cli_errors`): 0 when every row is done; 2 a usage error; 3 when the run was refused
(a bad manifest or option, another run's folder); 4 when some rows failed or it stopped before
every row ran (the Ray pipeline failed; the summary says which and how many); 130 after Ctrl-C. Runs resume: the same command again skips the rows already done.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from interfaces.cli_errors import CANCELLED_EXIT, FAILED_EXIT, BrushEditGroup, cli_message
from interfaces.commands import (
    INPAINTERS,
    PLANNERS,
    ConditioningOpt,
    GuidanceOpt,
    InpainterOpt,
    MaxAttemptsOpt,
    PlannerOpt,
    SamplesOpt,
    SeedOpt,
    StepsOpt,
    _choice,
)
from interfaces.terminal import markup, one_line, plain
from tools.registry import DEFAULT_INPAINTER

EXIT_ROWS_FAILED = FAILED_EXIT
EXIT_INCOMPLETE = FAILED_EXIT
EXIT_INTERRUPTED = CANCELLED_EXIT


class BatchGroup(BrushEditGroup):
    """`brushedit batch MANIFEST ...` runs `batch run MANIFEST ...`; `batch report DIR` reports.

    A first argument that names no sub-command is the manifest (a manifest called `report` is
    `brushedit batch run report`).
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=BatchGroup,
    help="Edit every row of a manifest (JSONL, CSV or Parquet) on local processes or Ray: "
    "`brushedit batch MANIFEST --out DIR`; `brushedit batch report DIR` for an HTML page.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command("run")
def run(
    manifest: Annotated[Path, typer.Argument(
        help="JSONL, CSV or Parquet: columns image, instruction, and optionally mask, caption, "
        "id and any edit option (seed, steps, inpainter...), which override the flags.",
        show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: results.jsonl, images/ "
                                      "(created; run again to resume).", show_default=False)],
    inpainter: InpainterOpt = DEFAULT_INPAINTER,
    planner: PlannerOpt = "auto",
    max_attempts: MaxAttemptsOpt = None,
    seed: SeedOpt = None,
    steps: StepsOpt = None,
    samples: SamplesOpt = None,
    guidance: GuidanceOpt = None,
    conditioning: ConditioningOpt = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, max=1024, help="Local worker processes (default 1), or with --ray "
        "the Ray actors (default: one per CPU of the cluster, or per --gpus-per-worker GPUs).",
        show_default=False)] = None,
    ray: Annotated[str | None, typer.Option(
        "--ray", help="Run on Ray Data: `local` starts a cluster of this machine's CPUs; an "
        "address (`auto`, `ray://host:10001`) joins a running one.")] = None,
    gpus_per_worker: Annotated[float, typer.Option(
        "--gpus-per-worker", min=0, max=64, help="GPUs each Ray actor holds (needs --ray).")] = 0,
    force_new: Annotated[bool, typer.Option(
        "--force-new", help="Move an earlier run in --out to previous-<time>/ and start "
        "again.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the summary as one JSON object on stdout.")] = False,
) -> None:
    """Edit every row of MANIFEST; results in DIR/results.jsonl, images in DIR/images/."""
    _choice(inpainter, INPAINTERS, "--inpainter")
    _choice(planner, PLANNERS, "--planner")
    from graphs.batch import BatchConfig, BatchOptions, run_batch
    from graphs.requests import check_options
    from graphs.settings import load_settings
    from graphs.workers import WorkerDiedError

    given = {"seed": seed, "steps": steps, "samples": samples, "guidance_scale": guidance,
             "conditioning_scale": conditioning, "max_attempts": max_attempts}
    flags = {name: value for name, value in given.items() if value is not None}
    check_options(flags)
    config = BatchConfig(manifest=str(manifest.expanduser().resolve()), inpainter=inpainter,
                         planner=planner, options=flags)
    options = BatchOptions(out=str(out), workers=workers, ray=ray,
                           gpus_per_worker=gpus_per_worker, force_new=force_new)
    view = BatchProgress(_stderr())
    try:
        with view:
            summary = run_batch(config, options, settings=load_settings(),
                                on_start=view.start, on_row=view.row)
    except WorkerDiedError as exc:
        typer.echo(f"Error: {cli_message(exc)}", err=True)
        raise typer.Exit(EXIT_INCOMPLETE) from None
    except KeyboardInterrupt:  # before the first row: nothing was recorded
        typer.echo("interrupted before any row ran", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    _print_summary(summary, as_json)
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.failed:
        raise typer.Exit(EXIT_ROWS_FAILED)


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _print_summary(summary: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary.model_dump(mode="json"), sort_keys=True))
        return
    skipped = f" ({summary.skipped} done before)" if summary.skipped else ""
    stopped = "; interrupted: run the same command to go on" if summary.interrupted else ""
    typer.echo(f"{summary.rows} rows: {summary.done} done, {summary.failed} failed{skipped}"
               f"{stopped}; results in {plain(summary.results)}")


class BatchProgress:
    """Rows done and failed, rows per minute and the time left, on stderr.

    A terminal gets a live bar; anything else (a log file, CI) a line every `every_s` seconds
    and one at the end. Each failure is one line as it happens.
    """

    def __init__(self, console: Any, every_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = console
        self.every_s, self.clock = every_s, clock
        self.progress = Progress(TextColumn("batch"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[line]}"), console=console,
                                 transient=False, disable=not console.is_terminal)
        self.task: Any = None
        self.total = self.skipped = self.done = self.failed = 0
        self.started = self.last_line = self.clock()

    def __enter__(self) -> BatchProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
        if not self.console.is_terminal and self.task is not None:  # a log's last word
            self.console.print(self.count_line(), markup=False)

    def start(self, total: int, skipped: int) -> None:
        self.total, self.skipped = total, skipped
        self.started = self.last_line = self.clock()
        self.task = self.progress.add_task("batch", total=total, completed=skipped,
                                           line=self.line())
        if skipped:
            self.console.print(f"{skipped} of {total} rows done before: skipped", markup=False)

    def row(self, record: dict[str, Any]) -> None:
        if record.get("status") == "done":
            self.done += 1
        else:
            self.failed += 1
            self.console.print(f"[red]failed[/] {markup(one_line(record['id'], 80))}: "
                               f"{markup(one_line(record.get('error'), 400))}")
        self.progress.update(self.task, advance=1, line=self.line())
        now = self.clock()
        if not self.console.is_terminal and now - self.last_line >= self.every_s:
            self.last_line = now
            self.console.print(self.count_line(), markup=False)

    def count_line(self) -> str:
        """Rows handled of all, failures, rate and time left: what a log gets."""
        return f"{self.skipped + self.done + self.failed}/{self.total} rows, {self.line()}"

    def line(self) -> str:
        ran = self.done + self.failed
        elapsed = max(self.clock() - self.started, 1e-6)
        rate = ran / elapsed * 60
        left = self.total - self.skipped - ran
        eta = _duration(left / rate * 60) if rate and left else ("0s" if not left else "?")
        return f"{self.failed} failed · {rate:.1f} rows/min · ETA {eta}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


@app.command("report")
def report(
    folder: Annotated[Path, typer.Argument(help="A run folder (`brushedit batch --out`).",
                                           show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="HTML file to write (default DIR/report.html).",
        show_default=False)] = None,
) -> None:
    """Write an HTML page of a batch run: before/after thumbnails, the failures first."""
    from interfaces.batch_report import write_batch_report

    path = write_batch_report(folder, output)
    typer.echo(str(path))
