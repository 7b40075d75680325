"""`brushedit batch` and `brushedit batch report` as a script uses them: the summary on stdout
(`--json`), failures and progress on stderr, exit codes, resume, the HTML page."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from interfaces.batch_cli import BatchProgress
from interfaces.cli import app
from tests.graphs.batch_helpers import GOOD_ROWS, read_lines, write_manifest, write_slow_manifest

runner = CliRunner()
BAD = {"missing": "does not exist", "wrong-mask": "mask", "empty": "instruction is empty"}


def batch(manifest, out, *flags):
    return runner.invoke(app, ["batch", str(manifest), "--out", str(out), "--inpainter",
                               "opencv", "--planner", "rules", "--max-attempts", "1", *flags])


@pytest.mark.parametrize(("text", "sentence"), [
    ('{"image": "a.png", "instruction": "x", "sed": 3}\n', "column(s) this does not know: sed"),
    ('{"image": "a.png"}\n', "no `instruction` column"),
    ('{"id": 1, "image": "a.png", "instruction": "x"}\n'
     '{"id": "1", "image": "b.png", "instruction": "y"}\n', "both have the id '1'"),
])
def test_a_manifest_problem_refuses_the_run_in_one_sentence(tmp_path, text, sentence):
    (tmp_path / "m.jsonl").write_text(text)
    result = batch(tmp_path / "m.jsonl", tmp_path / "out")
    assert result.exit_code == 2 and sentence in result.output, result.output
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_bad_rows_fail_alone_and_a_rerun_redoes_nothing(tmp_path):
    manifest, out = write_manifest(tmp_path / "m"), tmp_path / "out"
    result = batch(manifest, out, "--json")
    assert result.exit_code == 1, result.output  # some rows failed
    summary = json.loads(result.stdout)
    assert summary == {**summary, "rows": 8, "done": GOOD_ROWS, "failed": 3, "ran": 8}
    assert "8/8 rows, 3 failed · " in result.stderr and "ETA 0s" in result.stderr  # a log's end
    lines = read_lines(out)
    assert sorted(r["id"] for r in lines) == sorted(["a", "b", "c", "d", "e", *BAD])
    for row in lines:
        if row["id"] in BAD:
            assert row["status"] == "failed" and BAD[row["id"]] in row["error"], row
            assert row["output"] is None
        else:
            assert row["status"] == "done" and row["accepted"] is not None, row
            assert row["category"] == "removal" and row["attempts"] >= 1
            assert (out / row["output"]).is_file() and row["timings"]["total_s"] > 0
            assert "inpaint_s" in row["timings"]
    assert next(r for r in lines if r["id"] == "c")["reason"]
    # each row's trace is a session of the usual trace store
    show = runner.invoke(app, ["trace", "show", lines[0]["session"]])
    assert show.exit_code == 0 and "inpaint" in show.output

    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    again = batch(manifest, out, "--json")
    assert again.exit_code == 1
    assert json.loads(again.stdout) == {**summary, "ran": 3, "skipped": GOOD_ROWS}
    assert {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()} == stamps
    assert len(read_lines(out)) == 8  # the retried failures replaced their lines: one per row


def test_a_different_configuration_is_refused_and_force_new_sets_the_old_run_aside(tmp_path):
    manifest, out = write_slow_manifest(tmp_path / "m", 2), tmp_path / "out"
    assert batch(manifest, out).exit_code == 0
    refused = batch(manifest, out, "--seed", "9")
    assert refused.exit_code == 2
    assert "different configuration (options:" in refused.output and "--force-new" in \
        refused.output
    fresh = batch(manifest, out, "--seed", "9", "--force-new")
    assert fresh.exit_code == 0, fresh.output
    aside = [p for p in out.iterdir() if p.name.startswith("previous-")]
    assert len(aside) == 1 and (aside[0] / "images").is_dir()
    assert len(read_lines(out)) == 2


def test_the_report_shows_thumbnails_and_the_failures(tmp_path):
    manifest, out = write_manifest(tmp_path / "m"), tmp_path / "out"
    batch(manifest, out)
    result = runner.invoke(app, ["batch", "report", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert page.count("<img src='thumbs/") >= 2 * GOOD_ROWS
    failures = page.split("<h2>Rows</h2>")[0]
    assert all(name in failures for name in BAD) and "does not exist" in failures
    elsewhere = runner.invoke(app, ["batch", "report", str(out), "-o",
                                    str(tmp_path / "pages" / "r.html")])
    assert elsewhere.exit_code == 0
    assert "src='../out/thumbs/" in (tmp_path / "pages" / "r.html").read_text()
    assert runner.invoke(app, ["batch", "report", str(tmp_path)]).exit_code == 2


def test_gpus_need_ray(tmp_path):
    manifest = write_slow_manifest(tmp_path / "m", 1)
    result = batch(manifest, tmp_path / "out", "--gpus-per-worker", "1")
    assert result.exit_code == 2 and "--ray local" in result.output


def test_progress_counts_rows_failures_rate_and_time_left():
    """Not a terminal (a log): a line every `every_s` seconds and one at the end; each failure
    as it happens. The rate counts this run's rows only, not those done before."""
    clock = [100.0]
    console = Console(file=io.StringIO(), force_terminal=False, width=200)
    with BatchProgress(console, every_s=50, clock=lambda: clock[0]) as view:
        view.start(10, 2)
        for seconds, status in ((30, "done"), (30, "failed"), (30, "done")):
            clock[0] += seconds
            view.row({"id": "x", "status": status, "error": "the image does not exist"})
    lines = console.file.getvalue().splitlines()
    assert lines == [
        "2 of 10 rows done before: skipped",
        "failed x: the image does not exist",
        "4/10 rows, 1 failed · 2.0 rows/min · ETA 3m00s",  # 60 s in: 2 rows, 6 left
        "5/10 rows, 1 failed · 2.0 rows/min · ETA 2m30s",  # the end of the run
    ]
