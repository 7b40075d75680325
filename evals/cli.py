"""`brushedit eval ...` (also `python -m evals ...`): run a suite, then report on it.

Plugged into the `brushedit` command through the `brushedit.commands` entry point. Importing
this module stays cheap (no torch, no LangGraph): the work is imported inside the commands.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from interfaces.cli_errors import BrushEditGroup
from interfaces.commands import edit_option
from interfaces.vlm_options import VlmModelOpt, VlmUrlOpt, export_to_environment
from tools.registry import DEFAULT_INPAINTER, INPAINTER_NAMES, WEIGHTLESS_INPAINTER

_MAX_VARIANTS = 100
"""`EvalConfig.variants`' maximum (a test keeps them equal; the runner's models stay unimported)."""
_MAX_WORKERS = 256
"""`RunOptions.workers`' and `BenchOptions.workers`' maximum."""

_GROUP: dict[str, Any] = dict(
    cls=BrushEditGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
"""What the eval groups share with the root `brushedit` group: one-line errors, help when bare."""

app = typer.Typer(
    name="eval",
    help="Measure how robust editing is to rephrased instructions, and how well it keeps the "
    "background.",
    **_GROUP,
)

PlannerChoice = Literal["rules", "vlm", "both"]
InpainterChoice = Literal[INPAINTER_NAMES]  # type: ignore[valid-type] - the registry's names
MaskChoice = Literal["expected", "segment"]

OutOption = Annotated[Path, typer.Option("--out", "-o", help="Run folder (created; resumable).")]
InpainterOption = Annotated[InpainterChoice, typer.Option(help="Inpainting backend.")]
WorkersOption = Annotated[
    int, typer.Option(min=1, max=_MAX_WORKERS, help="Local worker processes.")
]
LimitOption = Annotated[int | None, typer.Option(min=1, help="Only the first N items.")]
ForceOption = Annotated[
    bool, typer.Option("--force-new", help="Set an earlier run in --out aside and restart.")
]


def _option_groups(command: Callable[..., None]) -> Callable[..., None]:
    """Let each dataclass-typed parameter of `command` stand for its fields as CLI options.

    Typer reads one option per parameter. Options that commands share, or that one command
    hands on together, are declared once as a dataclass whose fields carry the `typer.Option`s;
    the fields take the parameter's place in the signature (so in `--help`), and `command`
    receives them as one instance.
    """
    hints = typing.get_type_hints(command, include_extras=True)
    groups = {name: hint for name, hint in hints.items() if dataclasses.is_dataclass(hint)}
    params: list[inspect.Parameter] = []
    for name, param in inspect.signature(command).parameters.items():
        if name not in groups:
            params.append(param.replace(kind=param.KEYWORD_ONLY, annotation=hints[name]))
            continue
        fields = typing.get_type_hints(groups[name], include_extras=True)
        params += [
            inspect.Parameter(
                field.name,
                param.KEYWORD_ONLY,
                annotation=fields[field.name],
                default=param.empty if field.default is dataclasses.MISSING else field.default,
            )
            for field in dataclasses.fields(groups[name])
        ]

    @functools.wraps(command)
    def grouped(**values: Any) -> None:
        for name, group in groups.items():
            names = [field.name for field in dataclasses.fields(group)]
            values[name] = group(**{field: values.pop(field) for field in names})
        command(**values)

    grouped.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    grouped.__annotations__ = {param.name: param.annotation for param in params}
    return grouped


@dataclass(frozen=True)
class _RunMeasures:
    """What `eval run` measures: `make_config`'s values, the run's identity."""

    variants: Annotated[
        int, typer.Option(min=0, max=_MAX_VARIANTS, help="Variants per family and item.")
    ] = 3
    seed: Annotated[
        int, edit_option("--seed", "seed", "Seed of the perturbations and the edit.")] = 0
    planner: Annotated[
        PlannerChoice, typer.Option(help="Who plans: the rule parser, the VLM, or both.")
    ] = "rules"
    inpainter: InpainterOption = WEIGHTLESS_INPAINTER
    mask_source: Annotated[
        MaskChoice,
        typer.Option(
            help="expected: give the suite's mask to the system; segment: let it find one."
        ),
    ] = "expected"
    max_attempts: Annotated[
        int, edit_option("--max-attempts", "max_attempts", "Verifier attempts.")] = 1
    steps: Annotated[int, edit_option("--steps", "steps", "Diffusion steps (brushnet).")] = 20


@dataclass(frozen=True)
class _RunExecution:
    """How `eval run` executes: `RunOptions` besides `out`, free to change on a resume."""

    workers: WorkersOption = 1
    ray: Annotated[
        str | None,
        typer.Option(
            help="Run on the Ray cluster at this address (`auto`, `ray://...`; `local` "
            "starts one on this machine) as a Ray Data pipeline of --workers actors."
        ),
    ] = None
    limit: LimitOption = None
    force_new: ForceOption = False
    retry_errors: Annotated[
        bool, typer.Option("--retry-errors", help="Redo rows that ended in an error.")
    ] = False


@app.command()
@_option_groups
def run(
    suite: Annotated[Path, typer.Argument(help="Suite file (JSONL).", show_default=False)],
    out: OutOption,
    perturb: Annotated[
        str, typer.Option(help="Comma list of perturbation families, or `all`.")
    ] = "all",
    *,
    measures: _RunMeasures,
    execution: _RunExecution,
    report: Annotated[bool, typer.Option(help="Write the report when done.")] = True,
    vlm_url: VlmUrlOpt = None,
    vlm_model: VlmModelOpt = None,
) -> None:
    """Run (or resume) an eval: every item x variant x planner is one edit session."""
    from evals.perturb import resolve_families
    from evals.runner import RunOptions, make_config, run_eval

    export_to_environment(vlm_url, vlm_model)  # the workers build their VLM from it
    try:
        families = resolve_families(perturb)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--perturb") from None
    config = make_config(suite, families=families, **asdict(measures))
    options = RunOptions(out=str(out), **asdict(execution))
    counts = _with_progress("evaluating", run_eval, config, options)
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


def _with_progress(description: str, run: Callable[..., dict], config: Any, options: Any) -> dict:
    """`run(config, options)` (`run_eval` or `run_bench`) under a progress bar; its counts."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress("{task.description}", *columns, transient=True) as progress:
        bar = progress.add_task(description, total=None)
        return run(
            config,
            options,
            on_row=lambda row: progress.advance(bar),
            on_start=lambda total, skipped: progress.update(bar, total=total, completed=skipped),
        )


# -- benchmarks ---------------------------------------------------------------------------------

bench_app = typer.Typer(
    name="bench",
    help="Reproduce the paper's tables: PIE-Bench and BrushBench with the paper's metrics.",
    **_GROUP,
)
app.add_typer(bench_app, name="bench")

ModeChoice = Literal["agent", "mask"]
BenchPlanner = Literal["rules", "vlm", "auto"]


@dataclass(frozen=True)
class _BenchEdit:
    """The edit values every benchmark takes (the paper's by default); part of its config."""

    seed: Annotated[
        int, edit_option("--seed", "seed", "Seed of every edit (the paper: 1234).")] = 1234
    steps: Annotated[int, edit_option("--steps", "steps", "Diffusion steps (paper: 50).")] = 50
    guidance_scale: Annotated[
        float, edit_option("--guidance-scale", "guidance_scale", "Guidance scale (paper: 7.5).")
    ] = 7.5


@dataclass(frozen=True)
class _Scoring:
    """Which models measure a benchmark run: its `ScorerSettings`."""

    clip_model: Annotated[
        str, typer.Option(help="CLIP model for text alignment: Hub id (cached) or local folder.")
    ] = "openai/clip-vit-large-patch14"
    aesthetic_head: Annotated[
        Path | None,
        typer.Option(
            help="LAION aesthetic head (sa_0_4_vit_l_14_linear.pth) for the aesthetic score."
        ),
    ] = None
    allow_download: Annotated[
        bool, typer.Option("--allow-download", help="Let scorers download missing weights.")
    ] = False

    def settings(self) -> Any:
        """The `ScorerSettings`, a local CLIP folder and the head as absolute paths."""
        from evals.scorers import ScorerSettings

        clip = Path(self.clip_model)
        return ScorerSettings(
            clip_model=str(clip.resolve()) if clip.is_dir() else self.clip_model,
            aesthetic_head=str(self.aesthetic_head.resolve()) if self.aesthetic_head else None,
            allow_download=self.allow_download,
        )


@dataclass(frozen=True)
class _BenchExecution:
    """How a benchmark run executes: `BenchOptions` besides `out`, free to change on a resume."""

    limit: LimitOption = None
    workers: WorkersOption = 1
    ray: Annotated[
        str | None,
        typer.Option(
            help="Ray address (`auto`, `ray://...`; `local` starts one on this machine): "
            "--workers actors, each holding its models."
        ),
    ] = None
    device: Annotated[
        str | None, typer.Option(help="Device of the scorers (default: cuda when present).")
    ] = None
    force_new: ForceOption = False
    retry_errors: Annotated[
        bool, typer.Option("--retry-errors", help="Redo items that ended in an error.")
    ] = False


@bench_app.command("pie-bench")
@_option_groups
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
    *,
    edit: _BenchEdit,
    scoring: _Scoring,
    execution: _BenchExecution,
    vlm_url: VlmUrlOpt = None,
    vlm_model: VlmModelOpt = None,
) -> None:
    """Run PIE-Bench (700 images, 10 editing types) and write the paper's metrics."""
    export_to_environment(vlm_url, vlm_model)  # agent mode's planner reads it
    type_ids = [t.strip() for t in types.split(",") if t.strip()] if types else None
    _bench(
        "pie-bench", folder, out, edit, scoring, execution, mode=mode, types=type_ids,
        inpainter=inpainter, planner=planner, max_attempts=max_attempts,
    )  # fmt: skip


@bench_app.command("brushbench")
@_option_groups
def bench_brushbench(
    folder: Annotated[Path, typer.Argument(help="BrushBench folder (mapping_file.json, images).")],
    out: OutOption,
    masks: Annotated[
        str, typer.Option(help="Which masks: inside, outside or both (comma list).")
    ] = "inside,outside",
    inpainter: InpainterOption = DEFAULT_INPAINTER,
    *,
    edit: _BenchEdit,
    scoring: _Scoring,
    execution: _BenchExecution,
) -> None:
    """Run BrushBench (inside and outside inpainting with a caption) with the paper's metrics."""
    kinds = [k.strip() for k in masks.split(",") if k.strip()]
    if not kinds or any(k not in ("inside", "outside") for k in kinds):
        raise typer.BadParameter("use inside, outside or inside,outside", param_hint="--masks")
    _bench(
        "brushbench", folder, out, edit, scoring, execution, mode="mask", masks=kinds,
        inpainter=inpainter,
    )  # fmt: skip


@bench_app.command("report")
def bench_report(
    out: Annotated[Path, typer.Argument(help="Run folder written by `eval bench`.")],
) -> None:
    """(Re)write summary.json, items.jsonl and report.html for a benchmark run folder."""
    _bench_report(out)


def _bench(
    benchmark: str,
    folder: Path,
    out: Path,
    edit: _BenchEdit,
    scoring: _Scoring,
    execution: _BenchExecution,
    **values: Any,
) -> None:
    """Run one benchmark into `out` with its own `values`, then write its report."""
    from evals.bench import BenchOptions, make_bench_config, run_bench

    config = make_bench_config(
        benchmark, folder, **asdict(edit), scorers=scoring.settings(), **values  # type: ignore[arg-type]
    )
    options = BenchOptions(out=str(out), **asdict(execution))
    counts = _with_progress(f"{benchmark} ({config.mode})", run_bench, config, options)
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
