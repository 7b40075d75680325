"""`brushedit eval ...` (also `python -m evals ...`): run a suite, then report on it.

Plugged into the `brushedit` command through the `brushedit.commands` entry point. Importing
this module stays cheap (no torch, no LangGraph): the work is imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from graphs.cli import BrushEditGroup
from graphs.commands import edit_option
from tools.registry import DEFAULT_INPAINTER, INPAINTER_NAMES, WEIGHTLESS_INPAINTER

_MAX_VARIANTS = 100
"""`EvalConfig.variants`' maximum (a test keeps them equal; the runner's models stay unimported)."""
_MAX_WORKERS = 256
"""`RunOptions.workers`' and `BenchOptions.workers`' maximum."""

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
InpainterChoice = Literal[INPAINTER_NAMES]  # type: ignore[valid-type] - the registry's names
MaskChoice = Literal["expected", "segment"]


@app.command()
def run(
    suite: Annotated[Path, typer.Argument(help="Suite file (JSONL).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (created; resumable).")],
    perturb: Annotated[
        str, typer.Option(help="Comma list of perturbation families, or `all`.")
    ] = "all",
    variants: Annotated[int, typer.Option(min=0, max=_MAX_VARIANTS, help="Variants per family and item.")] = 3,
    seed: Annotated[
        int, edit_option("--seed", "seed", "Seed of the perturbations and the edit.")] = 0,
    planner: Annotated[
        PlannerChoice, typer.Option(help="Who plans: the rule parser, the VLM, or both.")
    ] = "rules",
    inpainter: Annotated[InpainterChoice, typer.Option(help="Inpainting backend.")] = WEIGHTLESS_INPAINTER,
    mask_source: Annotated[
        MaskChoice,
        typer.Option(
            help="expected: give the suite's mask to the system; segment: let it find one."
        ),
    ] = "expected",
    max_attempts: Annotated[
        int, edit_option("--max-attempts", "max_attempts", "Verifier attempts.")] = 1,
    steps: Annotated[int, edit_option("--steps", "steps", "Diffusion steps (brushnet).")] = 20,
    workers: Annotated[
        int, typer.Option(min=1, max=_MAX_WORKERS, help="Local worker processes.")
    ] = 1,
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
    config = out / "config.json"
    if config.is_file() and "benchmark" in _load_json(config):
        _bench_report(out)  # a folder written by `eval bench`
        return
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


# -- benchmarks ---------------------------------------------------------------------------------

bench_app = typer.Typer(
    cls=BrushEditGroup,
    name="bench",
    help="Reproduce the paper's tables: PIE-Bench and BrushBench with the paper's metrics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(bench_app, name="bench")

ModeChoice = Literal["agent", "mask"]
BenchPlanner = Literal["rules", "vlm", "auto"]

OutOption = Annotated[Path, typer.Option("--out", "-o", help="Run folder (created; resumable).")]
InpainterOption = Annotated[InpainterChoice, typer.Option(help="Inpainting backend.")]
LimitOption = Annotated[int | None, typer.Option(min=1, help="Only the first N items.")]
WorkersOption = Annotated[
    int, typer.Option(min=1, max=_MAX_WORKERS, help="Local worker processes.")
]
RayOption = Annotated[
    str | None,
    typer.Option(help="Ray address (`auto`, `ray://...`); `local` starts one with --workers CPUs."),
]
SeedOption = Annotated[int, edit_option("--seed", "seed", "Seed of every edit (the paper: 1234).")]
StepsOption = Annotated[int, edit_option("--steps", "steps", "Diffusion steps (paper: 50).")]
GuidanceOption = Annotated[
    float, edit_option("--guidance-scale", "guidance_scale", "Guidance scale (paper: 7.5).")]
ClipOption = Annotated[
    str, typer.Option(help="CLIP model for text alignment: Hub id (cached) or local folder.")
]
AestheticOption = Annotated[
    Path | None,
    typer.Option(help="LAION aesthetic head (sa_0_4_vit_l_14_linear.pth) for the aesthetic score."),
]
DownloadOption = Annotated[
    bool, typer.Option("--allow-download", help="Let scorers download missing weights.")
]
DeviceOption = Annotated[
    str | None, typer.Option(help="Device of the scorers (default: cuda when present).")
]
ForceOption = Annotated[
    bool, typer.Option("--force-new", help="Set an earlier run in --out aside and restart.")
]
RetryOption = Annotated[
    bool, typer.Option("--retry-errors", help="Redo items that ended in an error.")
]


@bench_app.command("pie-bench")
def bench_pie(
    folder: Annotated[
        Path, typer.Argument(help="PIE-Bench folder (mapping_file.json, annotation_images/).")
    ],
    out: OutOption,
    mode: Annotated[
        ModeChoice,
        typer.Option(
            help="agent: the whole system from editing_instruction; mask: the benchmark mask "
            "and editing_prompt straight to the inpainter."
        ),
    ] = "mask",
    types: Annotated[
        str | None, typer.Option(help="Comma list of editing_type_ids (0..9); default all.")
    ] = None,
    inpainter: InpainterOption = DEFAULT_INPAINTER,
    planner: Annotated[BenchPlanner, typer.Option(help="Agent mode: who plans.")] = "auto",
    max_attempts: Annotated[
        int, edit_option("--max-attempts", "max_attempts", "Agent mode: verifier attempts.")
    ] = 3,
    seed: SeedOption = 1234,
    steps: StepsOption = 50,
    guidance_scale: GuidanceOption = 7.5,
    clip_model: ClipOption = "openai/clip-vit-large-patch14",
    aesthetic_head: AestheticOption = None,
    allow_download: DownloadOption = False,
    limit: LimitOption = None,
    workers: WorkersOption = 1,
    ray: RayOption = None,
    device: DeviceOption = None,
    force_new: ForceOption = False,
    retry_errors: RetryOption = False,
) -> None:
    """Run PIE-Bench (700 images, 10 editing types) and write the paper's metrics."""
    type_ids = [t.strip() for t in types.split(",") if t.strip()] if types else None
    _bench(
        "pie-bench", folder, out, limit=limit, workers=workers, ray=ray, device=device,
        force_new=force_new, retry_errors=retry_errors, mode=mode, types=type_ids,
        inpainter=inpainter, planner=planner, max_attempts=max_attempts, seed=seed,
        steps=steps, guidance_scale=guidance_scale,
        scorers=_scorers(clip_model, aesthetic_head, allow_download),
    )  # fmt: skip


@bench_app.command("brushbench")
def bench_brushbench(
    folder: Annotated[Path, typer.Argument(help="BrushBench folder (mapping_file.json, images).")],
    out: OutOption,
    masks: Annotated[
        str, typer.Option(help="Which masks: inside, outside or both (comma list).")
    ] = "inside,outside",
    inpainter: InpainterOption = DEFAULT_INPAINTER,
    seed: SeedOption = 1234,
    steps: StepsOption = 50,
    guidance_scale: GuidanceOption = 7.5,
    clip_model: ClipOption = "openai/clip-vit-large-patch14",
    aesthetic_head: AestheticOption = None,
    allow_download: DownloadOption = False,
    limit: LimitOption = None,
    workers: WorkersOption = 1,
    ray: RayOption = None,
    device: DeviceOption = None,
    force_new: ForceOption = False,
    retry_errors: RetryOption = False,
) -> None:
    """Run BrushBench (inside and outside inpainting with a caption) with the paper's metrics."""
    kinds = [k.strip() for k in masks.split(",") if k.strip()]
    if not kinds or any(k not in ("inside", "outside") for k in kinds):
        raise typer.BadParameter("use inside, outside or inside,outside", param_hint="--masks")
    _bench(
        "brushbench", folder, out, limit=limit, workers=workers, ray=ray, device=device,
        force_new=force_new, retry_errors=retry_errors, mode="mask", masks=kinds,
        inpainter=inpainter, seed=seed, steps=steps, guidance_scale=guidance_scale,
        scorers=_scorers(clip_model, aesthetic_head, allow_download),
    )  # fmt: skip


@bench_app.command("report")
def bench_report(
    out: Annotated[Path, typer.Argument(help="Run folder written by `eval bench`.")],
) -> None:
    """(Re)write summary.json, items.jsonl and report.html for a benchmark run folder."""
    _bench_report(out)


def _scorers(clip_model: str, aesthetic_head: Path | None, allow_download: bool) -> Any:
    from evals.scorers import ScorerSettings

    return ScorerSettings(
        clip_model=str(Path(clip_model).resolve()) if Path(clip_model).is_dir() else clip_model,
        aesthetic_head=str(aesthetic_head.resolve()) if aesthetic_head else None,
        allow_download=allow_download,
    )


def _bench(
    benchmark: str,
    folder: Path,
    out: Path,
    *,
    limit: int | None,
    workers: int,
    ray: str | None,
    device: str | None,
    force_new: bool,
    retry_errors: bool,
    **values: Any,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from evals.bench import BenchOptions, make_bench_config, run_bench

    config = make_bench_config(benchmark, folder, **values)  # type: ignore[arg-type]
    options = BenchOptions(
        out=str(out), workers=workers, ray=ray, limit=limit, force_new=force_new,
        retry_errors=retry_errors, device=device,
    )  # fmt: skip
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress("{task.description}", *columns, transient=True) as progress:
        bar = progress.add_task(f"{benchmark} ({config.mode})", total=None)
        counts = run_bench(
            config,
            options,
            on_row=lambda row: progress.advance(bar),
            on_start=lambda total, skipped: progress.update(bar, total=total, completed=skipped),
        )
    typer.echo(
        f"{counts['ran']} items edited, {counts['skipped']} already done, "
        f"{counts['tasks']} in the run -> {counts['out']}"
    )
    _bench_report(Path(counts["out"]))


def _bench_report(out: Path) -> None:
    from evals.bench_report import write_bench_report

    paths = write_bench_report(out)
    summary = _load_json(paths["summary"])
    for note in summary["notes"]:
        typer.secho(note, fg=typer.colors.YELLOW, err=True)
    for name, reason in sorted(summary["missing"].items()):
        typer.secho(f"{name}: not measured ({reason})", fg=typer.colors.YELLOW, err=True)
    m = summary["metrics"]
    typer.echo(
        f"n={summary['n']}: PSNR {_num(m['psnr_unedited'])} dB, MSE {_num(m['mse_unedited'], 5)}, "
        f"SSIM {_num(m['ssim_unedited'], 4)}, LPIPS {_num(m['lpips_unedited'], 4)}, "
        f"CLIP whole {_num(m['clip_whole'])}, edited {_num(m['clip_edited'])} (unedited region; "
        "CLIP as 100 x cosine)"
    )
    if "agent" in summary:
        agent = summary["agent"]
        typer.echo(
            f"agent: accepted {_pct(agent['accepted'])}, mean attempts "
            f"{_num(agent['attempts_mean'])}, retried {_pct(agent['retried'])}"
        )
    typer.echo(f"report: {paths['html']}")


def _load_json(path: Path) -> dict:
    from evals.runner import load_json_object

    return load_json_object(path)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def main() -> None:
    """`python -m evals`: the same commands as `brushedit eval`."""
    app(prog_name="python -m evals")
