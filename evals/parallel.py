"""Where the work of a run goes: spawned local processes or a Ray cluster.

Shared by `evals.runner` (suite runs) and `evals.bench` (benchmarks); the parent process stays
the only writer of the results, so both only hand results back as they finish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tools.errors import ConfigError


def in_processes(
    fn: Callable[..., Any],
    calls: Iterable[tuple[Any, ...]],
    workers: int,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[Any]:
    """`fn(*args)` for every `args` in `calls` on `workers` processes, results as they finish.

    Processes are spawned (no inherited threads or open SQLite handles); calls not started yet
    are cancelled when the caller stops reading.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=initializer, initargs=initargs
    ) as pool:
        futures = [pool.submit(fn, *args) for args in calls]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


@contextmanager
def ray_session(address: str | None, workers: int) -> Iterator[Any]:
    """The `ray` module, connected to `address` (`local`: a new cluster of `workers` CPUs).

    A cluster started here is shut down on leaving; one already connected is left alone.
    """
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "--ray needs Ray, which is not installed; run `pip install 'brushedit-agents[ray]'` "
            "(or `pip install ray`), or use --workers N for local processes"
        ) from exc
    started_here = False
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        started_here = True
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()
