"""Batch editing on a Ray Data pipeline: one local Ray cluster of 2 CPUs for the module.

The rows are those of test_batch.py (OpenCV fill, rule planner, explicit masks, three bad rows)
with one row on a tiny BrushNet pipeline saved to folders and loaded from settings, as a user's
checkpoint would be.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
from PIL import Image

from graphs.batch import BatchConfig, BatchOptions, run_batch
from graphs.settings import Settings
from tests.graphs.batch_helpers import (
    GOOD_ROWS,
    kill_a_worker,
    output_bytes,
    read_lines,
    repo_pythonpath,
    slow_components,
    write_manifest,
)

ray = pytest.importorskip("ray", reason="Ray is optional (pip install 'brushedit-agents[ray]')")
pytest.importorskip("ray.data", reason="Ray Data needs pyarrow (the `ray` extra)")
# every test that starts a Ray cluster runs on the same xdist worker, one cluster at a time
pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_cluster():
    """Two CPUs, no dashboard; its workers import `tests` as this process does."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": repo_pythonpath()})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def brushnet_settings(tmp_path_factory):
    """Settings whose BrushNet is a tiny random-weight SD1.5 one, saved as folders."""
    pytest.importorskip("brushedit_inpaint")
    from tests.brushedit_inpaint.tiny_parts import SD15, save_tiny_base

    root = tmp_path_factory.mktemp("tiny_sd15")
    save_tiny_base(SD15, root / "base").save_pretrained(root / "brushnet")
    return {"base_model": str(root / "base"), "brushnet": str(root / "brushnet"),
            "brushnet_subfolder": "", "device": "cpu", "dtype": "float32"}


def test_ray_data_matches_one_process_survives_a_killed_actor_and_resumes(
        ray_cluster, brushnet_settings, tmp_path):
    manifest, markers = write_manifest(tmp_path / "m", brushnet_row=True), tmp_path / "markers"
    markers.mkdir()
    settings = Settings(data_dir=tmp_path / "data", _env_file=None, **brushnet_settings)
    config = BatchConfig(manifest=str(manifest), inpainter="opencv", planner="rules",
                         options={"max_attempts": 1})
    one = run_batch(config, BatchOptions(out=str(tmp_path / "one")), settings=settings)
    killed: list[int] = []

    out = tmp_path / "ray"
    two = run_batch(config, BatchOptions(out=str(out), ray="local", workers=2),
                    settings=settings,
                    components=functools.partial(slow_components, str(markers), 0.5),
                    on_start=kill_a_worker(markers, killed))
    assert killed, "no actor was killed"
    assert (one.done, one.failed) == (two.done, two.failed) == (GOOD_ROWS, 3)
    lines = read_lines(out)
    assert sorted(r["id"] for r in lines) == sorted(r["id"] for r in read_lines(tmp_path / "one"))
    pids = {r["worker"]["pid"] for r in lines}
    # edited in the actors, each row once (the killed actor may have finished rows before its
    # kill; the row it was killed in is run again by another actor, never recorded twice)
    assert os.getpid() not in pids and len(pids) >= 2
    assert len({r["id"] for r in lines}) == len(lines)
    brushnet = next(r for r in lines if r["id"] == "e")
    assert brushnet["status"] == "done" and brushnet["inpainter"] == "brushnet", brushnet
    ours, theirs = output_bytes(tmp_path / "one"), output_bytes(out)
    assert {k: v for k, v in ours.items() if k != "e"} == \
        {k: v for k, v in theirs.items() if k != "e"}  # the OpenCV rows: the same bytes
    # BrushNet on CPU: an actor has 1 thread, this process 2, so sums round differently
    first, second = (np.asarray(Image.open(out_dir / "images" / "e.png")).astype(int)
                     for out_dir in (tmp_path / "one", out))
    assert np.abs(first - second).max() <= 3

    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    # resumed here, in this process: where a run executes is no part of it
    again = run_batch(config, BatchOptions(out=str(out)), settings=settings)
    assert (again.ran, again.skipped, again.done) == (3, GOOD_ROWS, GOOD_ROWS)  # bad rows retried
    assert {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()} == stamps
    assert len(read_lines(out)) == 8
