"""Where parallel work runs: this process, spawned local processes, Ray tasks, or a Ray Data
pipeline of actors.

Shared by the batch engine (`graphs.batch`) and the evals (`evals.runner`, `evals.bench`). The
caller stays the only writer of results: every function here hands results back as they finish
and writes nothing. A *worker* is a callable built once per process or actor (it holds loaded
models) and called once per item; a worker that dies (killed, out of memory) costs the items it
was running a retry, never a lost or doubled result.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import signal
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from tools.errors import BrushEditError, ConfigError

logger = logging.getLogger(__name__)

MAX_WORKER_DEATHS = 3
"""Times an item may be running in a worker that dies before it counts as failed."""

WorkerFactory = Callable[[], Callable[[Any], Any]]
"""Builds one worker (`worker(item) -> result`, optionally `worker.close()`): picklable, e.g.
`functools.partial(SomeWorkerClass, config)`."""


class WorkerDiedError(BrushEditError):
    """The worker process running an item died (killed, or out of memory) too many times."""


def died_message(deaths: int) -> str:
    """The sentence for an item whose worker died `deaths` times."""
    times = "once" if deaths == 1 else f"{deaths} times"
    return (f"the worker running it died {times} (killed, or out of memory); run again to retry "
            "it, or give the workers more memory")


# -- one entry point ------------------------------------------------------------------------------


def map_workers(
    make_worker: WorkerFactory,
    items: Iterable[Any],
    *,
    workers: int | None = None,
    ray: str | None = None,
    gpus_per_worker: float = 0.0,
    on_death: Callable[[Any, int], Any] | None = None,
) -> Iterator[Any]:
    """`worker(item)` for every item, results as they finish (in no fixed order).

    Args:
        make_worker: builds a worker; called once in this process (`workers == 1`), once per
            local process, or once per Ray actor.
        workers: local processes (1 when None), or Ray actors with `ray` (when None, one per
            CPU of the cluster, or per `gpus_per_worker` GPUs).
        ray: a Ray address (`local` starts a cluster of this machine's CPUs): the items go
            through a Ray Data pipeline of `workers` actors.
        gpus_per_worker: GPUs each Ray actor holds (Ray places them).
        on_death: `(item, deaths) -> result` for an item whose worker died `MAX_WORKER_DEATHS`
            times; raises `WorkerDiedError` when None.
    """
    if ray:
        with ray_session(ray) as connected:
            yield from ray_data_map(make_worker, items,
                                    workers=workers or _cluster_workers(connected, gpus_per_worker),
                                    gpus_per_worker=gpus_per_worker)
        return
    workers = workers or 1
    if gpus_per_worker:
        raise ConfigError("GPUs are given to workers by Ray: add `--ray local` (this machine) or "
                          "`--ray ADDRESS` to use --gpus-per-worker")
    if workers > 1:
        yield from in_processes(_call_worker, [(item,) for item in items], workers,
                                initializer=_start_worker, initargs=(make_worker,),
                                on_death=(lambda args, n: on_death(args[0], n)) if on_death
                                else None)
        return
    worker = make_worker()
    try:
        for item in items:
            yield worker(item)
    finally:
        _close(worker)


def _cluster_workers(ray: Any, gpus_per_worker: float) -> int:
    """Actors the connected cluster holds at once: one per CPU, or per `gpus_per_worker` GPUs."""
    resources = ray.cluster_resources()
    if gpus_per_worker:
        count = int(resources.get("GPU", 0) // gpus_per_worker)
        if count < 1:
            raise ConfigError(f"the Ray cluster has {resources.get('GPU', 0):g} GPUs, fewer than "
                              f"--gpus-per-worker {gpus_per_worker:g}")
        return count
    return max(1, int(resources.get("CPU", 1)))


def _close(worker: Any) -> None:
    close = getattr(worker, "close", None)
    if callable(close):
        close()


# -- local processes --------------------------------------------------------------------------------

_PROCESS_WORKER: dict[str, Any] = {}
"""The worker of a pool process (set by `_start_worker`; empty in the parent)."""


def _start_worker(make_worker: WorkerFactory) -> None:
    _PROCESS_WORKER["worker"] = make_worker()


def _call_worker(item: Any) -> Any:
    return _PROCESS_WORKER["worker"](item)


def _ignore_sigint(initializer: Callable[..., None] | None, *initargs: Any) -> None:
    """Leave Ctrl-C to the parent (the terminal sends it to every process of the group)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


def in_processes(
    fn: Callable[..., Any],
    calls: Iterable[tuple[Any, ...]],
    workers: int,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    on_death: Callable[[tuple[Any, ...], int], Any] | None = None,
    max_deaths: int = MAX_WORKER_DEATHS,
) -> Iterator[Any]:
    """`fn(*args)` for every `args` in `calls` on `workers` processes, results as they finish.

    Processes are spawned (no inherited threads or open SQLite handles) and ignore Ctrl-C, which
    is the parent's to handle. At most `workers` calls are in flight, so when a worker dies
    (killed, out of memory: the pool breaks) the calls it may have been running are known: they
    run again in a new pool, up to `max_deaths` times each, then `on_death(args, deaths)` gives
    their result (or `WorkerDiedError` is raised). When the caller stops reading (an error, Ctrl-C,
    `close()`), calls not started are dropped and the workers are stopped at once.
    """
    queue = deque(enumerate(calls))
    deaths: dict[int, int] = {}
    while queue:
        survived = yield from _one_pool(fn, queue, workers, initializer, initargs, deaths)
        if survived:
            return
        for index, args in [entry for entry in queue if deaths.get(entry[0], 0) >= max_deaths]:
            queue.remove((index, args))
            if on_death is None:
                raise WorkerDiedError(died_message(deaths[index]))
            yield on_death(args, deaths[index])
        logger.warning("a worker process died; %d call(s) left, on new workers", len(queue))


def _one_pool(
    fn: Callable[..., Any],
    queue: deque[tuple[int, tuple[Any, ...]]],
    workers: int,
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
    deaths: dict[int, int],
) -> Iterator[Any]:
    """Run calls from `queue` until it is empty (returns True) or the pool breaks (False: the
    calls that were in flight are back at the front of `queue`, their `deaths` counted)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_ignore_sigint, initargs=(initializer, *initargs))
    running: dict[Any, tuple[int, tuple[Any, ...]]] = {}
    broken = False
    try:
        while queue or running:
            while queue and not broken and len(running) < workers:
                index, args = queue.popleft()
                try:
                    running[pool.submit(fn, *args)] = (index, args)
                except BrokenProcessPool:  # broke since the last look: this call never ran
                    queue.appendleft((index, args))
                    broken = True
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                index, args = running.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    broken = True
                    deaths[index] = deaths.get(index, 0) + 1
                    queue.appendleft((index, args))
                    continue
                yield result
            if broken and not running:
                return False
        return True
    finally:
        if running or queue:  # stopped early: nothing more is wanted from these workers
            for child in set(multiprocessing.active_children()) - before:
                child.kill()
        pool.shutdown(wait=True, cancel_futures=True)


# -- Ray ----------------------------------------------------------------------------------------------


@contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[Any]:
    """The `ray` module, connected to `address` (`local`: a new cluster on this machine, of
    `num_cpus` CPUs, all of them when None).

    A cluster started here is shut down on leaving; one already connected is left alone.
    """
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "--ray needs Ray, which is not installed; run `pip install 'brushedit-agents[ray]'` "
            "(or `pip install 'ray[data,serve]'`), or use --workers N for local processes"
        ) from exc
    started_here = False
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        started_here = True
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()


ROWS_PER_BLOCK_LIMIT = 20_000
"""Blocks of the Ray Data input: one item each (each result streams back as soon as it is done,
and a dead actor costs one item), up to this many blocks."""


class RayWorker:
    """The callable class a Ray Data actor runs: one worker, built once, per actor.

    Items travel pickled in a `payload` column (any Python value, one schema for every item) and
    results come back pickled in `result`.
    """

    def __init__(self, make_worker: WorkerFactory) -> None:
        self.worker = make_worker()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        results = [pickle.dumps(self.worker(pickle.loads(payload)))
                   for payload in batch["payload"]]
        return {"result": np.array(results, dtype=object)}

    def __del__(self) -> None:
        with suppress(Exception):
            _close(self.worker)


def ray_data_map(
    make_worker: WorkerFactory,
    items: Iterable[Any],
    *,
    workers: int,
    gpus_per_worker: float = 0.0,
    cpus_per_worker: float = 1.0,
    max_deaths: int = MAX_WORKER_DEATHS,
) -> Iterator[Any]:
    """`worker(item)` for every item through a Ray Data pipeline on the connected cluster.

    `map_batches` with `RayWorker` on a pool of `workers` actors (models load once per actor),
    one item per batch, results streamed to this process with `iter_rows` as they finish. Ray
    restarts a dead actor and runs its item again, up to `max_deaths` times in all; past that
    the pipeline stops with `WorkerDiedError` (results already handed back stay handed back).
    """
    import ray.data

    payloads = [{"payload": pickle.dumps(item)} for item in items]
    if not payloads:
        return
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the caller shows its own
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # ... and its note that its own bars are off, which would sit under ours
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    dataset = ray.data.from_items(payloads,
                                  override_num_blocks=min(len(payloads), ROWS_PER_BLOCK_LIMIT))
    with warnings.catch_warnings():
        # Ray Data names `max_task_retries` only through its deprecated `**ray_remote_args`;
        # without it a row that kills every actor it lands on would be retried forever.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
        mapped = dataset.map_batches(
            RayWorker, fn_constructor_kwargs={"make_worker": make_worker}, batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker or None, max_restarts=-1, max_task_retries=max_deaths - 1,
        )
    try:
        for row in mapped.iter_rows():
            yield pickle.loads(row["result"])
    except ray.exceptions.RayError as exc:
        raise WorkerDiedError(
            f"the Ray pipeline stopped: a worker died {max_deaths} times on the same rows, or the "
            f"cluster failed ({_first_line(exc)}); what finished is kept: run again to go on"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def worker_factory(cls: type, *args: Any, **kwargs: Any) -> WorkerFactory:
    """A picklable `make_worker` that builds `cls(*args, **kwargs)`."""
    return functools.partial(cls, *args, **kwargs)


def process_memory_mb() -> float:
    """This process's resident memory in MiB (what a worker reports with each result)."""
    try:
        with open(f"/proc/{os.getpid()}/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        import resource  # no /proc (macOS): the peak, which still shows growth

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / (2**20 if os.uname().sysname == "Darwin" else 2**10), 1)
