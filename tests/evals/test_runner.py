"""End to end through the real session facade: rule planner, OpenCV inpainter, resume, scale."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from evals.report import write_report
from evals.runner import (
    RESULTS,
    RunOptions,
    build_tasks,
    evaluate_variant,
    make_config,
    read_results,
    run_eval,
)
from tests.evals.conftest import run_args
from tools.errors import ConfigError

FAMILIES = "typos,reorder"


def _config(suite: Path, **overrides):
    return make_config(
        suite,
        families=overrides.pop("families", FAMILIES),
        variants=overrides.pop("variants", 1),
        **overrides,
    )


def _keys(out: Path) -> list[str]:
    return [json.loads(line)["key"] for line in (out / RESULTS).read_text().splitlines()]


def test_suite_runs_end_to_end_with_rules_and_opencv(tiny_suite, tmp_path):
    out = tmp_path / "run"
    config = _config(tiny_suite)
    counts = run_eval(config, RunOptions(out=str(out)))
    assert counts == {"tasks": 9, "skipped": 0, "ran": 9, "out": str(out)}
    rows = {row["key"]: row for row in read_results(out / RESULTS)}
    spoon = rows["coffee-spoon|canonical|0|rules"]
    assert spoon["ok"] and spoon["category"] == "removal" and spoon["object"] == "spoon"
    assert spoon["accepted"] is True and spoon["attempts"] == 1
    assert spoon["metrics"]["bg_psnr"] > 30 and spoon["metrics"]["bg_ssim"] > 0.95
    assert spoon["metrics"]["change_inside"] > 0.01  # the spoon was actually painted over
    assert spoon["iou_expected"] == pytest.approx(1.0, abs=0.05)
    assert (out / "data" / "artifacts").is_dir()
    # OpenCV cannot do a local edit: the row records that, and still carries the plan
    tea = rows["coffee-tea|canonical|0|rules"]
    assert not tea["ok"] and tea["error_type"] == "UnsupportedEditError"
    assert (tea["category"], tea["object"]) == ("local", "coffee")

    paths = write_report(out)
    summary = json.loads(paths["summary"].read_text())
    assert set(summary["robustness"]["rules"]) == {"typos", "reorder"}
    assert summary["overall"]["rules"]["planned"] == 9
    assert summary["overall"]["rules"]["ok"] == 6
    assert any("UnsupportedEditError" in note for note in summary["notes"])
    items = [json.loads(line) for line in paths["items"].read_text().splitlines()]
    assert {i["item"] for i in items} == {"coffee-spoon", "astronaut-helmet", "coffee-tea"}
    page = paths["html"].read_text()
    assert "data:image/png;base64," in page and "Per perturbation family" in page


def test_evaluate_variant_is_a_plain_function(tiny_suite, tmp_path):
    config = _config(tiny_suite).model_copy(update={"out": str(tmp_path / "o")})
    task = build_tasks(config)[0]
    row = evaluate_variant(task.item, task.variant, task.planner, config)
    assert row["key"] == task.key and row["ok"] and row["latency_s"] > 0
    json.dumps(row)  # JSON-able as is


def test_limit_then_full_resumes_without_duplicates(tiny_suite, tmp_path):
    out = tmp_path / "run"
    config = _config(tiny_suite)
    first = run_eval(config, RunOptions(out=str(out), limit=1))
    assert first["ran"] == 3
    before = (out / RESULTS).read_bytes()
    second = run_eval(config, RunOptions(out=str(out)))
    assert (second["skipped"], second["ran"]) == (3, 6)
    assert (out / RESULTS).read_bytes().startswith(before)  # appended, never rewritten
    keys = _keys(out)
    assert len(keys) == len(set(keys)) == 9
    assert run_eval(config, RunOptions(out=str(out)))["ran"] == 0


def test_a_half_written_line_is_skipped_and_redone(tiny_suite, tmp_path):
    out = tmp_path / "run"
    config = _config(tiny_suite)
    run_eval(config, RunOptions(out=str(out), limit=1))
    with (out / RESULTS).open("a") as handle:
        handle.write('{"key": "astronaut-helmet|canonical|0|rules", "ok": tr')  # killed mid-write
    counts = run_eval(config, RunOptions(out=str(out)))
    assert counts["ran"] == 6
    keys = [row["key"] for row in read_results(out / RESULTS)]
    assert len(keys) == len(set(keys)) == 9


def test_a_different_config_is_refused_unless_forced(tiny_suite, tmp_path):
    out = tmp_path / "run"
    run_eval(_config(tiny_suite), RunOptions(out=str(out), limit=1))
    with pytest.raises(
        ConfigError, match=r"different configuration \(variants: 1 -> 2\).*--force-new"
    ):
        run_eval(_config(tiny_suite, variants=2), RunOptions(out=str(out), limit=1))
    counts = run_eval(
        _config(tiny_suite, variants=2), RunOptions(out=str(out), limit=1, force_new=True)
    )
    assert counts["skipped"] == 0
    assert len(list(out.glob("previous-*/results.jsonl"))) == 1


def test_two_workers_give_the_same_keys_as_serial(tiny_suite, tmp_path):
    config = _config(tiny_suite, families="casing")
    run_eval(config, RunOptions(out=str(tmp_path / "serial"), limit=2))
    run_eval(config, RunOptions(out=str(tmp_path / "pool"), workers=2, limit=2))
    serial, pool = (
        read_results(tmp_path / "serial" / RESULTS),
        read_results(tmp_path / "pool" / RESULTS),
    )
    assert sorted(r["key"] for r in serial) == sorted(r["key"] for r in pool)
    failed = [(r.get("error_type"), r.get("error"), r.get("traceback")) for r in pool
              if "category" not in r]
    assert not failed, failed
    assert len({r["pid"] for r in pool}) >= 1 and all(r["pid"] != os.getpid() for r in pool)
    plans = {r["key"]: (r["category"], r["object"], r.get("image")) for r in serial}
    assert plans == {r["key"]: (r["category"], r["object"], r.get("image")) for r in pool}


@pytest.mark.slow  # starting a local Ray instance takes 20-40 s on two cores
@pytest.mark.xdist_group("ray")  # one Ray cluster at a time under xdist
def test_ray_local_cluster(tiny_suite, tmp_path):
    pytest.importorskip("ray", reason="Ray is optional (pip install 'brushedit-agents[ray]')")
    config = _config(tiny_suite, families="casing")
    counts = run_eval(
        config, RunOptions(out=str(tmp_path / "ray"), ray="local", workers=2, limit=2)
    )
    assert counts["ran"] == 4
    rows = read_results(tmp_path / "ray" / RESULTS)
    assert all(row["ok"] for row in rows), [(r.get("error"), r.get("traceback")) for r in rows]


def test_ray_missing_gives_a_clear_error(tiny_suite, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"--ray needs Ray.*pip install"):
        run_eval(_config(tiny_suite), RunOptions(out=str(tmp_path / "r"), ray="auto", limit=1))


def test_unreachable_vlm_is_recorded_not_a_crash(tiny_suite, tmp_path):
    out = tmp_path / "run"
    config = _config(tiny_suite, families="casing", planner="both")
    counts = run_eval(config, RunOptions(out=str(out), limit=1))
    assert counts["ran"] == 4
    rows = read_results(out / RESULTS)
    vlm = [r for r in rows if r["planner"] == "vlm"]
    assert len(vlm) == 2 and all(r["error_type"] == "VLMUnavailableError" for r in vlm)
    assert all(r["ok"] for r in rows if r["planner"] == "rules")
    summary = json.loads(write_report(out)["summary"].read_text())
    assert any("vlm planner could not reach its model" in n for n in summary["notes"])
    assert summary["overall"]["vlm"]["robustness"] is None


def test_vlm_and_rules_side_by_side_with_the_fake_ollama(
    tiny_suite, tmp_path, fake_ollama, monkeypatch
):
    monkeypatch.setenv("OLLAMA_HOST", fake_ollama.url)
    monkeypatch.setenv("BRUSHEDIT_OLLAMA_MODEL", fake_ollama.models[0])
    out = tmp_path / "run"
    config = _config(tiny_suite, families="casing", planner="both")
    run_eval(config, RunOptions(out=str(out), limit=1))
    rows = {(r["planner"], r["family"]): r for r in read_results(out / RESULTS)}
    assert rows[("vlm", "canonical")]["plan_source"] == "vlm", rows[("vlm", "canonical")]
    assert rows[("vlm", "canonical")]["category"] == "removal"
    summary = json.loads(write_report(out)["summary"].read_text())
    assert set(summary["overall"]) == {"rules", "vlm"}


def test_killed_subprocess_resumes_without_duplicates(tiny_suite, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "evals", *run_args(tiny_suite, out, "--no-report")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results = out / RESULTS
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if results.is_file() and len(results.read_text().splitlines()) >= 2:
            break
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(read_results(results))
    assert 2 <= done < 6, "the run finished before it could be killed"
    finished = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert finished.returncode == 0, finished.stderr
    assert f"{done} already done" in finished.stdout
    keys = [row["key"] for row in read_results(results)]
    assert len(keys) == 6 and len(set(keys)) == 6
    raw = Counter(
        json.loads(line)["key"]
        for line in results.read_text().splitlines()
        if line.strip().endswith("}")
    )
    assert max(raw.values()) == 1
