"""Batch throughput: rows per minute for 1, 2, ... workers on one manifest, as a ratio to one
worker, for local processes and for Ray Data, in one run; Ray's per-row overhead over local
processes; each worker's memory over a long run (flat: no growth per row).

The OpenCV path (the removal fill, the rule planner, explicit masks): no weights, so the number
is the engine's own scaling, not a model's. Every run goes through `graphs.batch.run_batch`, what
`brushedit batch` calls, into a scratch folder (its traces in a scratch data folder too).

    python benchmarks/batch_throughput.py                       # 1 and 2 workers (all CPUs)
    python benchmarks/batch_throughput.py --rows 120 --workers 1,2,4 --memory-rows 200
    python benchmarks/batch_throughput.py --json out.json        # the table's numbers as JSON

Two rates per run: `wall` (first call to last row, pool and actors starting included) and
`steady` (first row recorded to last: what a long batch sees). Ratios and the Ray overhead use
the steady rate. The load average is printed with the table: on a shared machine other work
takes cores from the workers, so compare runs only on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def write_manifest(folder: Path, rows: int, side: int, hole: int) -> Path:
    """`rows` removals, each of its own textured picture with a dark square and its mask."""
    folder.mkdir(parents=True, exist_ok=True)
    start, lines = (side - hole) // 2, []
    mask = np.zeros((side, side), np.uint8)
    mask[start - 2:start + hole + 2, start - 2:start + hole + 2] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    y, x = np.mgrid[0:side, 0:side]
    for index in range(rows):
        noise = np.random.default_rng(index).integers(-8, 9, (side, side, 3))
        image = np.stack([x * 255 // side, y * 255 // side, (x + y) * 127 // side], -1) + noise
        image[start:start + hole, start:start + hole] = 20
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"{index}.png")
        lines.append(json.dumps({"id": f"r{index}", "image": f"{index}.png", "mask": "mask.png",
                                 "instruction": "remove the dark square"}))
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def timed_run(manifest: Path, out: Path, settings: Any, **where: Any) -> dict[str, Any]:
    """One batch run; rows per minute (wall and steady) and its records."""
    from graphs.batch import BatchConfig, BatchOptions, run_batch

    config = BatchConfig(manifest=str(manifest), inpainter="opencv", planner="rules",
                         options={"max_attempts": 1})
    stamps: list[float] = []
    started = time.perf_counter()
    summary = run_batch(config, BatchOptions(out=str(out), **where), settings=settings,
                        on_row=lambda _: stamps.append(time.perf_counter()))
    assert summary.failed == 0 and summary.done == summary.rows, summary
    wall = stamps[-1] - started
    steady = (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {"rows": len(stamps), "wall_rpm": 60 * len(stamps) / wall, "steady_rpm": 60 / steady,
            "row_s": statistics.median(r["timings"]["total_s"] for r in records),
            "load": os.getloadavg()[0], "records": records}


def memory_growth(records: list[dict[str, Any]], warmup: int = 10) -> dict[str, Any]:
    """Per worker: memory after its warm-up rows and at its last row, and the growth per row
    (least-squares slope over the rows after the warm-up), in KiB."""
    by_worker: dict[int, list[float]] = {}
    for record in records:  # in the order they finished
        by_worker.setdefault(record["worker"]["pid"], []).append(record["worker"]["rss_mb"])
    workers = {}
    for pid, series in by_worker.items():
        tail = series[warmup:] if len(series) > warmup + 2 else series
        slope = np.polyfit(np.arange(len(tail)), np.asarray(tail), 1)[0] if len(tail) > 1 else 0.0
        workers[pid] = {"rows": len(series), "warmup": len(series) - len(tail),
                        "first_mb": tail[0], "last_mb": series[-1],
                        "kib_per_row": round(float(slope) * 1024, 1)}
    return workers


def measure(scratch: Path, counts: list[int], args: Any) -> tuple[dict, dict]:
    """The throughput runs (processes, then Ray) and the memory run, in `scratch`."""
    from graphs.settings import Settings

    settings = Settings(data_dir=scratch / "data", _env_file=None)
    manifest = write_manifest(scratch / "manifest", max(args.rows, args.memory_rows), args.side,
                              args.hole)
    rows = manifest.read_text().splitlines()
    throughput = scratch / "manifest" / "throughput.jsonl"
    throughput.write_text("\n".join(rows[:args.rows]) + "\n")
    results: dict[str, dict[int, dict[str, Any]]] = {"processes": {}, "ray": {}}
    for workers in counts:
        results["processes"][workers] = timed_run(throughput, scratch / f"p{workers}", settings,
                                                  workers=workers)
    if not args.no_ray:
        import ray

        ray.init(num_cpus=max(counts), include_dashboard=False, log_to_driver=False)
        try:
            for workers in counts:
                results["ray"][workers] = timed_run(throughput, scratch / f"r{workers}", settings,
                                                    ray="local", workers=workers)
        finally:
            ray.shutdown()
    memory = {}
    if args.memory_rows:
        memory = memory_growth(timed_run(manifest, scratch / "memory", settings,
                                         workers=2)["records"])
    return results, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=60, help="rows per throughput run")
    parser.add_argument("--workers", default=None,
                        help="comma list of worker counts (default 1,2,...,CPUs)")
    parser.add_argument("--side", type=int, default=128, help="picture side in pixels")
    parser.add_argument("--hole", type=int, default=24, help="removed square's side in pixels")
    parser.add_argument("--memory-rows", type=int, default=200,
                        help="rows of the memory run (2 local workers; 0 skips it)")
    parser.add_argument("--no-ray", action="store_true", help="local processes only")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    cpus = os.cpu_count() or 1
    counts = [int(n) for n in args.workers.split(",")] if args.workers else \
        sorted({1, 2, *range(2, cpus + 1, 2)})
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as scratch:
        load_before = os.getloadavg()
        results, memory = measure(Path(scratch), counts, args)
        load_after = os.getloadavg()
    report(results, memory, load_before, load_after, args, cpus)
    if args.json:
        for runs in results.values():
            for run in runs.values():
                run.pop("records")
        args.json.write_text(json.dumps({"results": results, "memory": memory,
                                         "load_before": load_before, "load_after": load_after,
                                         "cpus": cpus, "args": vars(args)}, default=str,
                                        indent=2))


def report(results: dict[str, dict[int, dict[str, Any]]], memory: dict[int, dict[str, Any]],
           load_before: tuple, load_after: tuple, args: Any, cpus: int) -> None:
    print(f"\n{args.rows} rows of {args.side} px, a {args.hole} px removal each (OpenCV, rules); "
          f"{cpus} CPUs; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print("\nRatios: steady rows/min against 1 worker of the same kind in this run (1 local "
          "process; 1 Ray actor for the Ray rows).")
    print("\n| where | workers | wall rows/min | steady rows/min | vs 1 worker | median s/row | "
          "load (1 min) |")
    print("|---|---|---|---|---|---|---|")
    for mode, runs in results.items():
        if not runs:
            continue
        one = runs[min(runs)]["steady_rpm"]
        for workers, run in sorted(runs.items()):
            print(f"| {mode} | {workers} | {run['wall_rpm']:.1f} | {run['steady_rpm']:.1f} | "
                  f"{run['steady_rpm'] / one:.2f}x | {run['row_s']:.3f} | {run['load']:.2f} |")
    if results["ray"]:
        print("\nRay's per-row overhead against local processes of the same count (steady "
              "time per row):")
        for workers in sorted(results["ray"]):
            local = 60 / results["processes"][workers]["steady_rpm"]
            on_ray = 60 / results["ray"][workers]["steady_rpm"]
            print(f"  {workers} worker(s): {1000 * (on_ray - local):+.0f} ms per row, "
                  f"{100 * (on_ray - local) / local:+.1f}%")
    if memory:
        print(f"\nMemory per worker over {args.memory_rows} rows (2 local workers):")
        for pid, worker in memory.items():
            print(f"  pid {pid}: {worker['rows']} rows ({worker['warmup']} warm-up rows left "
                  f"out), {worker['first_mb']:.0f} MiB -> {worker['last_mb']:.0f} MiB, "
                  f"{worker['kib_per_row']:+.1f} KiB per row")


if __name__ == "__main__":
    main()
