"""Run a suite through the real system: every (item, variant, planner) is one edit session.

The unit of work is `evaluate_variant(item, variant, planner, config) -> dict`: it builds its
own components (fresh in-memory checkpointer, new session id), so the same plain function runs
in this process, in a local worker process or in a Ray Data actor (`graphs.workers`, the pool
the batch engine uses too). The parent process is the
only writer of `DIR/results.jsonl`: one line per finished key, flushed at once and never
rewritten, which is what makes a killed run resumable.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from evals.perturb import CANONICAL, Variant, make_variants, resolve_families
from evals.suite import SuiteItem, load_suite
from graphs.run_folder import (
    CONFIG,
    RESULTS,
    ResultLog,
    check_or_store_config,
    check_run_folder,
    load_json_object,
    read_results,
)
from graphs.workers import died_message, map_workers, worker_factory
from tools.errors import BrushEditError, ConfigError
from tools.types import SEED_MAX, InpainterName

logger = logging.getLogger(__name__)

PlannerName = Literal["rules", "vlm"]
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
    steps: int = Field(default=20, ge=1, le=200, description="Diffusion steps (brushnet only).")
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
    """None when the configured VLM's server (Ollama, or the OpenAI-compatible one at
    `BRUSHEDIT_VLM_URL`) answers and has the model; else what is wrong."""
    from agents.errors import server_name
    from graphs import Settings, build_vlm

    settings = Settings()
    vlm = build_vlm(settings, timeout=min(settings.ollama_timeout, 10.0))
    try:
        status = vlm.check()
    except Exception as exc:  # any failure to ask is the same answer: not usable
        where = getattr(vlm, "url", None) or getattr(vlm, "host", "")
        return (f"cannot ask the {server_name(vlm.server)} at {where} "
                f"({type(exc).__name__}: {exc})")
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


class VariantWorker:
    """A worker of the shared pool (`graphs.workers`): `evaluate_variant` for each task it gets.

    Each task still builds its own components (a fresh session), so a row never depends on which
    worker, process or Ray actor ran it.
    """

    def __init__(self, config: EvalConfig) -> None:
        self.config = config

    def __call__(self, task: Task) -> dict[str, Any]:
        return evaluate_variant(task.item, task.variant, task.planner, self.config)


def _died_row(task: Task, deaths: int) -> dict[str, Any]:
    """The row of a task whose worker died every time it ran it (`--retry-errors` redoes it)."""
    return skipped_row(task, "WorkerDiedError", died_message(deaths))


def _execute(
    todo: list[Task], config: EvalConfig, out: Path, options: RunOptions
) -> Iterator[dict[str, Any]]:
    """The tasks on the shared worker pool: this process, `--workers N` local processes, or a
    Ray Data pipeline of `--workers` actors (`--ray`)."""
    if not todo:
        return
    yield from map_workers(worker_factory(VariantWorker, config), todo,
                           workers=options.workers, ray=options.ray, on_death=_died_row)


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
    steps: int = 20,
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
    "CONFIG",
    "RESULTS",
    "EvalConfig",
    "ResultLog",
    "RunOptions",
    "Task",
    "build_tasks",
    "check_or_store_config",
    "check_run_folder",
    "evaluate_variant",
    "load_json_object",
    "make_config",
    "read_results",
    "result_key",
    "run_eval",
]
