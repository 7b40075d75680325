"""Run a suite through the real system: every (item, variant, planner) is one edit session.

The unit of work is `evaluate_variant(item, variant, planner, config) -> dict`: it builds its
own components (fresh in-memory checkpointer, new session id), so the same plain function runs
in this process, in a `ProcessPoolExecutor` worker or as a Ray task. The parent process is the
only writer of `DIR/results.jsonl`: one line per finished key, flushed at once and never
rewritten, which is what makes a killed run resumable.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from evals.parallel import in_processes, ray_session
from evals.perturb import CANONICAL, Variant, make_variants, resolve_families
from evals.suite import SuiteItem, load_suite
from tools.errors import BrushEditError, ConfigError
from tools.types import SEED_MAX, InpainterName

logger = logging.getLogger(__name__)

PlannerName = Literal["rules", "vlm"]
RESULTS = "results.jsonl"
CONFIG = "config.json"
DATA = "data"


class EvalConfig(BaseModel):
    """What a run measures; stored in `DIR/config.json` and checked again on every restart.

    Execution knobs (`--workers`, `--ray`, `--limit`) are not part of it: a run may be resumed
    with more workers or a larger limit and still be the same run.
    """

    suite: str = Field(description="Absolute path of the suite file.")
    suite_sha256: str = Field(description="Content hash of the suite file at the first start.")
    families: list[str] = Field(description="Perturbation families, in order.")
    variants: int = Field(default=3, ge=0, le=100, description="Variants per family and item.")
    seed: int = Field(default=0, ge=0, le=SEED_MAX)
    planners: list[PlannerName] = Field(default_factory=lambda: ["rules"], min_length=1)
    inpainter: InpainterName = "opencv"
    mask_source: Literal["expected", "segment"] = Field(
        default="expected",
        description="expected: hand the suite's mask to the session as a user mask (no "
        "segmentation weights needed); segment: let the system find the mask.",
    )
    max_attempts: int = Field(default=1, ge=1, le=10, description="Verifier attempts per edit.")
    steps: int | None = Field(
        default=None, ge=1, le=200,
        description="Diffusion steps; None: the inpainter's own (brushnet 50, flux2-klein 4).",
    )
    out: str = Field(
        default="", exclude=True, description="Run folder (not part of the identity: movable)."
    )

    @field_validator("families")
    @classmethod
    def _families(cls, value: list[str]) -> list[str]:
        return resolve_families(value)


class RunOptions(BaseModel):
    """How to execute a run; free to change between restarts."""

    out: str
    workers: int = Field(default=1, ge=1, le=256)
    ray: str | None = Field(default=None, description="Ray address, or `local` to start one.")
    limit: int | None = Field(default=None, ge=1, description="Only the first N suite items.")
    force_new: bool = False
    retry_errors: bool = False


class Task(BaseModel):
    """One unit of work, small enough to pickle to a worker."""

    item: SuiteItem
    variant: Variant
    planner: PlannerName

    @property
    def key(self) -> str:
        return result_key(self.item.id, self.variant.family, self.variant.index, self.planner)


def result_key(item: str, family: str, index: int, planner: str) -> str:
    """The identity of a result line; a key present in `results.jsonl` is never redone."""
    return f"{item}|{family}|{index}|{planner}"


# -- the unit of work -----------------------------------------------------------------------------


def evaluate_variant(
    item: SuiteItem, variant: Variant, planner: PlannerName, config: EvalConfig
) -> dict[str, Any]:
    """Edit `item.image` with `variant.text` through a fresh session; never raises.

    Returns a JSON-able row: the plan the system made, mask and result hashes, background
    fidelity against the expected mask, acceptance, attempts and latency, or `ok: false` with
    the error when the system failed (an unreachable VLM is such a row, not a crash).
    """
    row: dict[str, Any] = {
        "key": result_key(item.id, variant.family, variant.index, planner),
        "item": item.id,
        "family": variant.family,
        "index": variant.index,
        "planner": planner,
        "text": variant.text,
        "expected_category": item.category.value if item.category else None,
        "expected_object": item.object,
        "source_path": item.image,
        "expected_mask_path": item.mask,
        "ok": False,
        "pid": os.getpid(),
    }
    return record_edit(row, lambda: _edit(item, variant, planner, config))


def record_edit(row: dict[str, Any], edit: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`row` with the fields `edit()` returns and `ok: true`, or `ok: false` and the error.

    Never raises: a failed edit is a measurement, and an `EditFailed` still gives the row the
    plan it had reached. Latency and finish time are added either way.
    """
    started = time.perf_counter()
    try:
        row.update(edit())
        row["ok"] = True
    except Exception as exc:  # a failed edit is a measurement, recorded as such
        if isinstance(exc, EditFailed):
            row.update(exc.fields)
            exc = exc.cause
        row["error_type"] = type(exc).__name__
        row["error"] = " ".join(str(exc).split())[:500] or type(exc).__name__
        if not isinstance(exc, BrushEditError):
            row["traceback"] = "".join(traceback.format_exception(exc, limit=6))[-2000:]
    row["latency_s"] = round(time.perf_counter() - started, 4)
    row["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    return row


def _edit(
    item: SuiteItem, variant: Variant, planner: PlannerName, config: EvalConfig
) -> dict[str, Any]:
    """The edit itself, through the graphs session facade (what users run)."""
    import numpy as np

    from evals.metrics import background_metrics, mask_iou
    from graphs import EditSession, Settings, build_components
    from tools.images import load_image, load_mask
    from tools.types import EditOptions

    if not config.out:
        raise ConfigError("`config.out` is empty: set the run folder before evaluating")
    settings = Settings(data_dir=Path(config.out) / DATA)
    components = build_components(
        settings,
        inpainter=config.inpainter,
        planner=planner,
        segmenter=config.mask_source == "segment",
        persist=False,
        max_attempts=config.max_attempts,
    )
    user_mask = item.mask if config.mask_source == "expected" else None
    options = EditOptions(
        seed=config.seed,
        steps=config.steps,
        inpainter=config.inpainter,
        max_attempts=config.max_attempts,
    )
    try:
        session = EditSession.open(components, session_id=None)
        try:
            result = session.edit(item.image, variant.text, mask=user_mask, options=options)
        except Exception as exc:
            raise EditFailed(exc, _partial_plan(session)) from exc
        store = components.store
        result_image = store.get_image(result.image)
        system_mask = store.get_mask(result.mask) if result.mask else None
    finally:
        components.close()

    source = load_image(item.image)
    if source.size != result_image.size:
        source = source.resize(result_image.size)
    expected = load_mask(item.mask, size=result_image.size, resize=True) if item.mask else None
    fidelity_mask = expected if expected is not None else system_mask
    metrics: dict[str, float] = {}
    if fidelity_mask is not None:
        metrics.update(
            background_metrics(np.asarray(source), np.asarray(result_image), fidelity_mask)
        )
    return {
        **_plan_fields(result.plan),
        "system_planner": result.planner,
        "accepted": bool(result.accepted),
        "attempts": int(result.attempts),
        "reason": result.reason,
        "image": result.image,
        "mask": result.mask,
        "session_id": result.session_id,
        "metrics": metrics,
        "system_metrics": dict(result.metrics),
        "fidelity_mask": "expected" if expected is not None else "system",
        "iou_expected": mask_iou(system_mask, expected)
        if system_mask is not None and expected is not None
        else None,
    }


class EditFailed(Exception):
    """An edit that failed after planning: carries the plan fields so the row keeps them."""

    def __init__(self, cause: BaseException, fields: dict[str, Any]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.fields = fields


def _partial_plan(session: Any) -> dict[str, Any]:
    """The plan (and mask) a failed turn had reached, read from its checkpointed graph state.

    The OpenCV inpainter refuses local edits after the plan is made; robustness of the plan is
    still measurable then.
    """
    from tools.types import EditPlan

    try:
        values = session.values()
        plan = EditPlan.model_validate(values["plan"]) if values.get("plan") else None
    except Exception:  # no state at all (it failed before planning): nothing to keep
        return {}
    if plan is None:
        return {}
    return {
        **_plan_fields(plan),
        "system_planner": values.get("planner"),
        "mask": values.get("mask"),
        "session_id": session.id,
    }


def _plan_fields(plan: Any) -> dict[str, Any]:
    """The row fields that describe the plan the system made (an `EditPlan`)."""
    return {
        "category": plan.category.value,
        "object": plan_object(plan),
        "plan_object": plan.object,
        "target_caption": plan.target_caption,
        "plan_source": plan.source,
    }


def plan_object(plan: Any) -> str | None:
    """What a plan is about: its object, or for an addition the thing added (its caption).

    The rule parser leaves `object` empty for additions (nothing to segment) and names the new
    thing in `target_caption`; comparing that keeps "add a cookie" and "put a cookie" equal.
    """
    if plan.object:
        return plan.object
    category = getattr(plan.category, "value", plan.category)
    if category == "addition":
        return plan.target_caption
    return None


# -- the run ------------------------------------------------------------------------------------


def build_tasks(config: EvalConfig, limit: int | None = None) -> list[Task]:
    """Every (item, variant, planner) of the run, in a stable order."""
    suite = load_suite(config.suite)
    items = suite.items[:limit] if limit else suite.items
    tasks = []
    for item in items:
        for variant in make_variants(
            item.id, item.instruction, config.families, config.variants, config.seed
        ):
            for planner in config.planners:
                tasks.append(Task(item=item, variant=variant, planner=planner))
    return tasks


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """All complete rows of a results file, the last row per key winning.

    A line cut short by a kill is skipped (and logged); everything else must parse.
    """
    path = Path(path)
    if not path.is_file():
        return []
    rows: dict[str, dict[str, Any]] = {}
    broken = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                broken += 1
                continue
            if isinstance(row, dict) and "key" in row:
                rows[row["key"]] = row
    if broken:
        logger.warning("%s: skipped %d incomplete line(s) (an interrupted write)", path, broken)
    return list(rows.values())


class ResultLog:
    """Append-only JSONL writer: one line per row, flushed and synced before returning."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8")
        if self.path.stat().st_size and not _ends_with_newline(self.path):
            self._handle.write("\n")  # isolate a half-written line left by a kill
            self._handle.flush()

    def write(self, row: dict[str, Any]) -> None:
        self._handle.write(json.dumps(row, sort_keys=True, default=str) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ResultLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


MAX_CONFIG_BYTES = 16 * 1024 * 1024


def load_json_object(path: Path) -> dict[str, Any]:
    """A run folder's JSON file (config, summary) as a dict, or one `ConfigError` sentence."""
    from tools.images import read_user_file

    try:
        raw = read_user_file(path, max_bytes=MAX_CONFIG_BYTES, what="a JSON file")
        value = json.loads(raw.decode("utf-8"))
    except BrushEditError as exc:
        raise ConfigError(str(exc)) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path} is damaged: it is not JSON ({exc}); restore it or set the "
                          "folder aside") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path} is damaged: it holds a JSON {type(value).__name__}, not an "
                          "object; restore it or set the folder aside")
    return value


def check_run_folder(out: Path) -> None:
    """Refuse a run folder that is a file, or that sits in BrushEdit's data folder."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a run folder; give a folder path")
    from graphs.artifacts import check_output_folder
    from graphs.settings import load_settings

    try:
        check_output_folder(out, data_dir=load_settings().data_dir)
    except BrushEditError as exc:
        raise ConfigError(str(exc)) from None


def check_or_store_config(config: EvalConfig, out: Path, *, force_new: bool = False) -> None:
    """Write `config.json` on the first start; refuse a restart that measures something else.

    With `force_new`, an earlier run in `out` is moved to `out/previous-<time>/` first.
    """
    path = out / CONFIG
    check_run_folder(out)
    if path.is_file():
        stored = load_json_object(path)
        current = config.model_dump(mode="json")
        if stored != current:
            if not force_new:
                diffs = [
                    f"{name}: {stored.get(name)!r} -> {current.get(name)!r}"
                    for name in sorted(set(stored) | set(current))
                    if stored.get(name) != current.get(name)
                ]
                raise ConfigError(
                    f"{out} holds a run with a different configuration ({'; '.join(diffs)}). "
                    "Resume it with the same options, pick another --out, or pass --force-new "
                    "to set the old run aside and start again"
                )
            _set_aside(out)
        elif force_new:
            _set_aside(out)
    out.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)


def _set_aside(out: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = out / f"previous-{stamp}"
    target.mkdir()
    for name in (CONFIG, RESULTS, "summary.json", "items.jsonl", "report.html"):
        if (out / name).exists():
            os.replace(out / name, target / name)
    return target


def pending_tasks(
    tasks: list[Task], done: Iterable[dict[str, Any]], retry_errors: bool
) -> list[Task]:
    """The tasks whose key has no row yet (or only an error row, with `retry_errors`)."""
    finished = {row["key"] for row in done if row.get("ok") or not retry_errors}
    return [task for task in tasks if task.key not in finished]


ProgressFn = Callable[[dict[str, Any]], None]


def run_eval(
    config: EvalConfig,
    options: RunOptions,
    on_row: ProgressFn | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) an eval into `options.out`; returns counts.

    `on_start(total, already_done)` is called once the work is known; each new row is passed
    to `on_row` after it is on disk.
    """
    out = Path(options.out).expanduser().resolve()
    config = config.model_copy(update={"out": str(out)})
    check_or_store_config(config, out, force_new=options.force_new)
    tasks = build_tasks(config, options.limit)
    done = read_results(out / RESULTS)
    todo = pending_tasks(tasks, done, options.retry_errors)
    logger.info(
        "%d tasks, %d already done, %d to run", len(tasks), len(tasks) - len(todo), len(todo)
    )
    if on_start:
        on_start(len(tasks), len(tasks) - len(todo))
    written = 0
    unreachable = vlm_problem() if any(t.planner == "vlm" for t in todo) else None
    with ResultLog(out / RESULTS) as log:
        if unreachable:
            # One probe instead of a connection timeout per row; --retry-errors redoes them.
            logger.warning("VLM planner unavailable: %s", unreachable)
            for task in [t for t in todo if t.planner == "vlm"]:
                row = skipped_row(task, "VLMUnavailableError", unreachable)
                log.write(row)
                written += 1
                if on_row:
                    on_row(row)
            todo = [t for t in todo if t.planner != "vlm"]
        for row in _execute(todo, config, out, options):
            log.write(row)
            written += 1
            if on_row:
                on_row(row)
    return {"tasks": len(tasks), "skipped": len(tasks) - len(todo), "ran": written, "out": str(out)}


def vlm_problem() -> str | None:
    """None when the configured Ollama server answers and has the model; else what is wrong."""
    from agents.vlm import OllamaVLM
    from graphs import Settings

    settings = Settings()
    vlm = OllamaVLM(
        model=settings.ollama_model,
        host=settings.ollama_host,
        timeout=min(settings.ollama_timeout, 10.0),
    )
    try:
        status = vlm.check()
    except Exception as exc:  # any failure to ask is the same answer: not usable
        return f"cannot ask the Ollama server at {vlm.host} ({type(exc).__name__}: {exc})"
    if status.ok:
        return None
    return "; ".join(part for part in (status.error, status.fix) if part) or "VLM not usable"


def skipped_row(task: Task, error_type: str, error: str) -> dict[str, Any]:
    """A result row for a task that was not attempted because a precondition failed."""
    return {
        "key": task.key,
        "item": task.item.id,
        "family": task.variant.family,
        "index": task.variant.index,
        "planner": task.planner,
        "text": task.variant.text,
        "expected_category": task.item.category.value if task.item.category else None,
        "expected_object": task.item.object,
        "source_path": task.item.image,
        "expected_mask_path": task.item.mask,
        "ok": False,
        "error_type": error_type,
        "error": error,
        "latency_s": None,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _execute(
    todo: list[Task], config: EvalConfig, out: Path, options: RunOptions
) -> Iterator[dict[str, Any]]:
    if not todo:
        return
    if options.ray:
        yield from _execute_ray(todo, config, out, options)
    elif options.workers > 1:
        yield from _execute_processes(todo, config, out, options.workers)
    else:
        for task in todo:
            yield evaluate_variant(task.item, task.variant, task.planner, config)


def _execute_processes(
    todo: list[Task], config: EvalConfig, out: Path, workers: int
) -> Iterator[dict[str, Any]]:
    """Local worker processes, one fresh session per task."""
    calls = [(t.item, t.variant, t.planner, config) for t in todo]
    yield from in_processes(evaluate_variant, calls, workers)


def _execute_ray(
    todo: list[Task], config: EvalConfig, out: Path, options: RunOptions
) -> Iterator[dict[str, Any]]:
    """Ray tasks on an existing cluster (`--ray ADDRESS`) or a local one (`--ray local`)."""
    with ray_session(options.ray, options.workers) as ray:
        remote = ray.remote(num_cpus=1, max_retries=1)(evaluate_variant)
        pending = [remote.remote(t.item, t.variant, t.planner, config) for t in todo]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                yield ray.get(ref)


def make_config(
    suite: str | Path,
    *,
    families: str | Iterable[str] | None = None,
    variants: int = 3,
    seed: int = 0,
    planner: str = "rules",
    inpainter: str = "opencv",
    mask_source: str = "expected",
    max_attempts: int = 1,
    steps: int | None = None,
) -> EvalConfig:
    """An `EvalConfig` from CLI-style values (`planner` may be `both`)."""
    loaded = load_suite(suite)
    planners = ["rules", "vlm"] if planner == "both" else [planner]
    return EvalConfig(
        suite=loaded.path,
        suite_sha256=loaded.sha256,
        families=resolve_families(families),
        variants=variants,
        seed=seed,
        planners=planners,
        inpainter=inpainter,
        mask_source=mask_source,
        max_attempts=max_attempts,
        steps=steps,
    )


__all__ = [
    "CANONICAL",
    "EvalConfig",
    "ResultLog",
    "RunOptions",
    "Task",
    "build_tasks",
    "evaluate_variant",
    "make_config",
    "read_results",
    "result_key",
    "run_eval",
]
