"""Run the paper's benchmarks (PIE-Bench, BrushBench) through our system and measure the results.

Two phases per item, so that every model loads once:

- the edit, by a `BenchWorker` (one per process or Ray actor, holding its components: BrushNet,
  the segmenter and the VLM client load once per worker, not once per item). `--mode agent`
  runs the whole system from the instruction (plan, segment, caption, inpaint, verify and
  retry); `--mode mask` hands the benchmark's mask and target caption straight to the inpainter
  (the paper's inpainting-based editing). The worker saves the result (and in agent mode the
  first attempt's best image) under `OUT/images/`.
- the measure, in the parent process, with `Scorers` loaded once per run (CLIP, LPIPS, quality
  models): every metric against the benchmark's mask and target caption.

The parent is the only writer of `OUT/results.jsonl` (one fsynced line per item, reusing
`evals.runner`'s log, resume and config checks), so a killed run resumes where it stopped and a
changed configuration refuses to resume.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from evals.benchmarks import BenchItem, Benchmark, load_brushbench, load_pie_bench
from evals.runner import (
    RESULTS,
    ResultLog,
    check_or_store_config,
    read_results,
    record_edit,
    vlm_problem,
)
from evals.scorers import ScorerSettings
from graphs.workers import died_message, map_workers, worker_factory
from tools.errors import BrushEditError, ConfigError
from tools.types import SEED_MAX, EditCategory, InpainterName

logger = logging.getLogger(__name__)

IMAGES = "images"
DATA = "data"
BenchmarkName = Literal["pie-bench", "brushbench"]
Mode = Literal["agent", "mask"]


class BenchConfig(BaseModel):
    """What a benchmark run measures; stored in `OUT/config.json`, checked on every restart."""

    benchmark: BenchmarkName
    root: str = Field(description="Absolute path of the benchmark folder.")
    mapping_sha256: str = Field(description="Hash of mapping_file.json at the first start.")
    mode: Mode = "mask"
    types: list[str] | None = Field(default=None, description="PIE-Bench editing_type_ids.")
    masks: list[str] | None = Field(default=None, description="BrushBench mask kinds.")
    inpainter: InpainterName = "brushnet"
    planner: Literal["rules", "vlm", "auto"] = Field(default="auto", description="Agent mode.")
    max_attempts: int = Field(default=3, ge=1, le=10, description="Verifier attempts (agent).")
    seed: int = Field(default=1234, ge=0, le=SEED_MAX, description="The paper's seed.")
    steps: int = Field(default=50, ge=1, le=200, description="The paper's 50 steps.")
    guidance_scale: float = Field(default=7.5, ge=0.0, le=30.0)
    blending: bool = True
    scorers: ScorerSettings = Field(default_factory=ScorerSettings)
    out: str = Field(default="", exclude=True, description="Run folder (movable).")


class BenchOptions(BaseModel):
    """How to execute a run; free to change between restarts."""

    out: str
    workers: int = Field(default=1, ge=1, le=256)
    ray: str | None = None
    limit: int | None = Field(default=None, ge=1)
    force_new: bool = False
    retry_errors: bool = False
    device: str | None = Field(default=None, description="Scorer device; None: cuda if present.")


def load_benchmark(config: BenchConfig) -> Benchmark:
    """The benchmark a config names, with its filters applied."""
    if config.benchmark == "pie-bench":
        return load_pie_bench(config.root, config.types)
    return load_brushbench(config.root, config.masks or ("inside", "outside"))


def make_bench_config(benchmark: BenchmarkName, root: str | Path, **values: Any) -> BenchConfig:
    """A `BenchConfig` for the folder `root`, hashing its mapping file."""
    if benchmark == "pie-bench":
        loaded = load_pie_bench(root, values.get("types"))
    else:
        loaded = load_brushbench(root, values.get("masks") or ("inside", "outside"))
    return BenchConfig(
        benchmark=benchmark, root=loaded.root, mapping_sha256=loaded.mapping_sha256, **values
    )


def image_name(key: str, suffix: str = "") -> str:
    """The file an item's result goes to under `OUT/images/` ("0001|inside" -> "0001__inside")."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key.replace("|", "__"))
    return f"{safe}{suffix}.png"


def source_image(item: BenchItem) -> Any:
    """The item's source as a 512x512 RGB image (both benchmarks are evaluated at 512 px)."""
    from tools.images import load_image

    image = load_image(item.image)
    if image.size != (512, 512):
        image = image.resize((512, 512))
    return image


# -- the edit: one worker per process --------------------------------------------------------------


class BenchWorker:
    """Edits benchmark items with components built once (models load on first use)."""

    def __init__(self, config: BenchConfig) -> None:
        if not config.out:
            raise ConfigError("`config.out` is empty: set the run folder before editing")
        self.config = config
        self.out = Path(config.out)
        self._components: Any = None

    def components(self) -> Any:
        if self._components is None:
            from graphs import Settings, build_components

            agent = self.config.mode == "agent"
            self._components = build_components(
                Settings(data_dir=self.out / DATA),
                inpainter=self.config.inpainter,
                planner=self.config.planner if agent else "rules",
                segmenter=agent,
                persist=False,
                max_attempts=self.config.max_attempts,
            )
        return self._components

    def close(self) -> None:
        if self._components is not None:
            self._components.close()
            self._components = None

    def edit(self, item: BenchItem) -> dict[str, Any]:
        """Edit one item; never raises: a failure is a row with `ok: false` and the error."""
        row: dict[str, Any] = {
            "key": item.key,
            "id": item.id,
            "group": item.group,
            "editing_type_id": item.editing_type_id,
            "mask_kind": item.mask_kind,
            "image_path": item.image_path,
            "prompt": item.prompt,
            "instruction": item.instruction,
            "mode": self.config.mode,
            "ok": False,
            "pid": os.getpid(),
        }
        run = self._agent if self.config.mode == "agent" else self._mask
        return record_edit(row, lambda: run(item))

    __call__ = edit

    def _options(self) -> Any:
        from tools.types import EditOptions

        return EditOptions(
            seed=self.config.seed,
            steps=self.config.steps,
            guidance_scale=self.config.guidance_scale,
            blending=self.config.blending,
            inpainter=self.config.inpainter,
            max_attempts=self.config.max_attempts,
        )

    def _save(self, image: Any, key: str, suffix: str = "") -> str:
        folder = self.out / IMAGES
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / image_name(key, suffix)
        tmp = path.with_name(path.name + ".tmp.png")
        image.save(tmp)
        os.replace(tmp, path)
        return str(path.relative_to(self.out))

    def _mask(self, item: BenchItem) -> dict[str, Any]:
        """The paper's inpainting-based editing: benchmark mask + target caption -> inpainter."""
        source = source_image(item)
        mask = item.mask()
        from graphs.handles import load_inpainter

        inpainter = load_inpainter(self.components().inpainters, self.config.inpainter)
        category, fill = item.category, False
        if not inpainter.supports(category) and inpainter.supports(EditCategory.REMOVAL):
            # A fill-only backend (OpenCV) is run as what it is: a caption-blind fill baseline.
            category, fill = EditCategory.REMOVAL, True
        image = inpainter.inpaint(
            source, mask, item.prompt, category=category, options=self._options()
        )[0]
        return {
            "result": self._save(image, item.key),
            "category": category.value,
            "fill_baseline": fill,
        }

    def _agent(self, item: BenchItem) -> dict[str, Any]:
        """The whole system from the instruction, through the session facade."""
        from evals.runner import EditFailed, _partial_plan, _plan_fields
        from graphs import EditSession

        if not item.instruction:
            raise BrushEditError(f"item {item.id} has no editing instruction for --mode agent")
        components = self.components()
        session = EditSession.open(components, session_id=None)
        try:
            result = session.edit(source_image(item), item.instruction, options=self._options())
        except Exception as exc:
            raise EditFailed(exc, _partial_plan(session)) from exc
        store = components.store
        final = store.get_image(result.image)
        first = _first_attempt(session, result.image)
        fields = {
            **_plan_fields(result.plan),
            "system_planner": result.planner,
            "accepted": bool(result.accepted),
            "attempts": int(result.attempts),
            "reason": result.reason,
            "session_id": result.session_id,
            "system_mask": result.mask,
            "result": self._save(final, item.key),
        }
        if first is not None:
            fields["first_result"] = (
                fields["result"]
                if first == result.image
                else self._save(store.get_image(first), item.key, ".first")
            )
        return fields


def _first_attempt(session: Any, fallback: str) -> str | None:
    """The best candidate of attempt 1 (what a system without the verifier loop returns)."""
    try:
        values = session.values()
    except Exception:
        return fallback
    first = [c for c in values.get("candidates") or [] if c.get("attempt") == 1]
    if not first:
        return fallback
    return max(first, key=lambda c: c.get("score") or [])["image"]


# -- executing workers -----------------------------------------------------------------------------


def _execute(
    todo: list[BenchItem], config: BenchConfig, options: BenchOptions
) -> Iterator[dict[str, Any]]:
    """One `BenchWorker` per process or Ray actor, each holding its own loaded models."""
    if not todo:
        return
    yield from map_workers(worker_factory(BenchWorker, config), todo, workers=options.workers,
                           ray=options.ray, on_death=_died_row)


def _died_row(item: BenchItem, deaths: int) -> dict[str, Any]:
    """The row of an item whose worker process died every time it ran it."""
    return {"key": item.key, "id": item.id, "ok": False, "error_type": "WorkerDiedError",
            "error": died_message(deaths)}


# -- the run ---------------------------------------------------------------------------------------


def run_bench(
    config: BenchConfig,
    options: BenchOptions,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) a benchmark into `options.out`; returns counts.

    Scorers load once, on the first new result; rows reach `results.jsonl` already measured.
    """
    out = Path(options.out).expanduser().resolve()
    config = config.model_copy(update={"out": str(out)})
    check_or_store_config(config, out, force_new=options.force_new)
    bench = load_benchmark(config)
    items = bench.items[: options.limit] if options.limit else bench.items
    done = read_results(out / RESULTS)
    finished = {r["key"] for r in done if r.get("ok") or not options.retry_errors}
    todo = [item for item in items if item.key not in finished]
    if on_start:
        on_start(len(items), len(items) - len(todo))
    by_key = {item.key: item for item in todo}
    if todo and config.mode == "agent" and config.planner == "vlm":
        problem = vlm_problem()
        if problem:
            raise ConfigError(f"the VLM planner is not usable: {problem}")
    written = 0
    scorers: Any = None
    with ResultLog(out / RESULTS) as log:
        for row in _execute(todo, config, options):
            if row.get("ok"):
                if scorers is None:
                    from evals.scorers import Scorers

                    scorers = Scorers.load(config.scorers, device=options.device)
                _measure_row(row, by_key[row["key"]], out, scorers)
            log.write(row)
            written += 1
            if on_row:
                on_row(row)
    return {"tasks": len(items), "skipped": len(items) - len(todo), "ran": written, "out": str(out)}


def _measure_row(row: dict[str, Any], item: BenchItem, out: Path, scorers: Any) -> None:
    """Add `metrics` (and `first_metrics` in agent mode) to a finished row, in place."""
    from PIL import Image

    from evals.scorers import measure

    source = source_image(item)
    mask = item.mask()
    try:
        for field, target in (("result", "metrics"), ("first_result", "first_metrics")):
            if not row.get(field):
                continue
            if field == "first_result" and row[field] == row["result"]:
                row[target] = dict(row["metrics"])  # the first attempt was the final result
                continue
            with Image.open(out / row[field]) as image:
                result = image.convert("RGB")
            if result.size != source.size:
                result = result.resize(source.size)
            row[target] = measure(source, result, mask, item.prompt, scorers)
        row["missing"] = dict(scorers.missing)
    except Exception as exc:  # a broken result file is this row's error, not the run's
        row.update(ok=False, error_type=type(exc).__name__, error=f"measuring failed: {exc}")


__all__ = [
    "BenchConfig",
    "BenchOptions",
    "BenchWorker",
    "load_benchmark",
    "make_bench_config",
    "run_bench",
]
