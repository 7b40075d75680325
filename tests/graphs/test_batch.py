"""The batch engine on this process and on local worker processes: manifests, resume, killed
workers and Ctrl-C (the command is tested in tests/interfaces/test_batch_cli.py, the Ray runs in
test_batch_ray.py)."""

from __future__ import annotations

import csv
import functools
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from graphs.batch import BatchConfig, BatchOptions, run_batch
from graphs.manifest import read_manifest
from graphs.settings import Settings
from tests.graphs.batch_helpers import (
    GOOD_ROWS,
    REPO,
    kill_a_worker,
    output_bytes,
    read_lines,
    slow_components,
    write_manifest,
    write_slow_manifest,
)
from tools.errors import InvalidRequestError


def config(manifest, **values) -> BatchConfig:
    return BatchConfig(manifest=str(manifest), inpainter="opencv", planner="rules",
                       options={"max_attempts": 1, **values})


# -- manifests ----------------------------------------------------------------------------------


def test_jsonl_csv_and_parquet_manifests_read_the_same(tmp_path):
    jsonl = write_manifest(tmp_path / "m")
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    columns = sorted({key for row in rows for key in row})
    with (tmp_path / "m" / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)  # numbers become text, absent cells empty
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pyarrow.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
    pq.write_table(table, tmp_path / "m" / "manifest.parquet")  # absent cells are nulls
    read = {kind: read_manifest(tmp_path / "m" / f"manifest.{kind}")
            for kind in ("jsonl", "csv", "parquet")}
    assert [r.id for r in read["jsonl"]] == [r["id"] for r in rows]
    assert read["jsonl"][0].image == str(tmp_path / "m" / "pic0.png")  # relative to the manifest
    assert read["jsonl"][1].options == {"seed": 7}
    assert read["csv"][1].options == {"seed": "7"}  # checked by EditOptions when the row runs
    parquet = [r.model_dump(exclude={"index"}) for r in read["parquet"]]
    assert parquet == [r.model_dump(exclude={"index"}) for r in read["jsonl"]]


def test_unknown_manifest_formats_and_missing_files_are_refused(tmp_path):
    with pytest.raises(InvalidRequestError, match=r"name it \.jsonl, \.csv or \.parquet"):
        read_manifest(tmp_path / "m.txt")
    with pytest.raises(InvalidRequestError, match="does not exist"):
        read_manifest(tmp_path / "m.jsonl")


# -- one process --------------------------------------------------------------------------------


def test_a_changed_row_is_edited_again_and_the_others_are_kept(tmp_path):
    manifest, out = write_slow_manifest(tmp_path / "m", 3), tmp_path / "out"
    run_batch(config(manifest), BatchOptions(out=str(out)))
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[1]["seed"] = 11
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    summary = run_batch(config(manifest), BatchOptions(out=str(out)))
    assert (summary.skipped, summary.ran, summary.done) == (2, 1, 3)
    assert [r["id"] for r in read_lines(out)] == ["r0", "r1", "r2"]


# -- local worker processes ---------------------------------------------------------------------


def test_two_local_workers_match_one_process_and_a_killed_worker_costs_a_retry(tmp_path,
                                                                               monkeypatch):
    """8 rows (3 bad) on 2 worker processes, one of them killed in the middle of a row: every
    row is recorded once, with the images one process makes; the workers used the caller's
    settings (a data folder no environment variable names)."""
    manifest, markers = write_manifest(tmp_path / "m"), tmp_path / "markers"
    markers.mkdir()
    one = run_batch(config(manifest), BatchOptions(out=str(tmp_path / "one")))
    monkeypatch.setenv("BRUSHEDIT_DATA_DIR", str(tmp_path / "not-this"))
    killed: list[int] = []

    two = run_batch(config(manifest), BatchOptions(out=str(tmp_path / "two"), workers=2),
                    settings=Settings(data_dir=tmp_path / "given", _env_file=None),
                    components=functools.partial(slow_components, str(markers), 0.5),
                    on_start=kill_a_worker(markers, killed))
    assert killed and (one.done, one.failed) == (two.done, two.failed) == (GOOD_ROWS, 3)
    lines = read_lines(tmp_path / "two")
    assert sorted(r["id"] for r in lines) == sorted(r["id"] for r in read_lines(tmp_path / "one"))
    assert output_bytes(tmp_path / "one") == output_bytes(tmp_path / "two")
    pids = {r["worker"]["pid"] for r in lines}
    assert os.getpid() not in pids  # edited in the workers; the sorted ids above: none twice
    assert (tmp_path / "given" / "traces.sqlite").is_file()
    assert not (tmp_path / "not-this" / "traces.sqlite").exists()


def test_ctrl_c_keeps_what_was_recorded_and_the_same_command_finishes(tmp_path):
    manifest, out = write_slow_manifest(tmp_path / "m", 6), tmp_path / "out"
    markers = tmp_path / "markers"
    markers.mkdir()
    script = (
        "import functools, sys\n"
        "from graphs.batch import BatchConfig, BatchOptions, run_batch\n"
        "from tests.graphs.batch_helpers import slow_components\n"
        f"config = BatchConfig(manifest={str(manifest)!r}, inpainter='opencv', planner='rules',"
        " options={'max_attempts': 1})\n"
        f"summary = run_batch(config, BatchOptions(out={str(out)!r}, workers=2),"
        f" components=functools.partial(slow_components, {str(markers)!r}, 1.0))\n"
        "sys.exit(130 if summary.interrupted else 0)\n"
    )
    driver = subprocess.Popen([sys.executable, "-c", script], cwd=REPO,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ((out / "results.jsonl").is_file() and read_lines(out)):
        assert driver.poll() is None and time.monotonic() < deadline, driver.stderr.read()
        time.sleep(0.1)
    driver.send_signal(signal.SIGINT)
    assert driver.wait(timeout=60) == 130, driver.stderr.read()
    kept = read_lines(out)
    assert 1 <= len(kept) < 6 and all(r["status"] == "done" for r in kept)
    time.sleep(2)
    assert read_lines(out) == kept
    for marker in markers.glob("*.running"):  # left by the workers stopped mid-row
        with pytest.raises(ProcessLookupError):
            os.kill(int(marker.name.split("-")[0]), 0)
    summary = run_batch(config(manifest), BatchOptions(out=str(out)))
    assert (summary.skipped, summary.done) == (len(kept), 6)
    assert sorted(r["id"] for r in read_lines(out)) == [f"r{i}" for i in range(6)]


