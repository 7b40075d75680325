"""`brushedit eval` / `python -m evals`: commands, options and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from evals.cli import app
from interfaces.cli_errors import REFUSED_EXIT
from tests.evals.conftest import run_args

runner = CliRunner()


def test_run_then_report(tiny_suite, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, run_args(tiny_suite, out, "--limit", "1", "--seed", "3"))
    assert result.exit_code == 0, result.output
    assert "2 rows written, 0 already done, 2 in the run" in result.output
    assert "rules: robustness" in result.output and "casing" in result.output
    assert (out / "report.html").is_file()
    config = json.loads((out / "config.json").read_text())
    assert (config["families"], config["variants"], config["seed"]) == (["casing"], 1, 3)

    again = runner.invoke(app, ["report", str(out)])
    assert again.exit_code == 0, again.output
    assert "report:" in again.output


def test_unknown_family_is_a_bad_parameter(tiny_suite, tmp_path):
    result = runner.invoke(
        app, ["run", str(tiny_suite), "--out", str(tmp_path / "o"), "--perturb", "typos,shouting"]
    )
    assert result.exit_code == 2
    assert "unknown perturbation family 'shouting'" in result.output


def test_expected_errors_are_one_line_without_traceback(tmp_path):
    result = runner.invoke(
        app, ["run", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == REFUSED_EXIT
    assert "does not exist" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == REFUSED_EXIT
    assert "is not an eval run folder" in result.output


def test_changed_config_is_refused_with_a_hint(tiny_suite, tmp_path):
    out = tmp_path / "o"
    base = run_args(tiny_suite, out, "--limit", "1", "--no-report")
    assert runner.invoke(app, base).exit_code == 0
    result = runner.invoke(app, [*base[:-1], "--seed", "9"])
    assert result.exit_code == REFUSED_EXIT
    assert "seed: 0 -> 9" in result.output and "--force-new" in result.output


def test_python_dash_m_evals_and_the_brushedit_plugin():
    for command in (
        [sys.executable, "-m", "evals", "--help"],
        [sys.executable, "-m", "interfaces.cli", "eval", "--help"],
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "run" in done.stdout and "report" in done.stdout


def test_importing_the_cli_is_cheap():
    code = "import sys, evals.cli; print(any(m in sys.modules for m in ('torch', 'langgraph')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_run_takes_a_conductor(tiny_suite, tmp_path, monkeypatch, tiny_conductor_dirs):
    """`brushedit eval run --inpainter flux2-klein` with BRUSHEDIT_FLUX2_KLEIN_MODEL set: every
    row is edited by that conductor (no row ends in an error), and the config records it."""
    from tests.tools.conductor_parts import conductor_env

    for key, value in conductor_env(tiny_conductor_dirs).items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "run"
    result = runner.invoke(app, run_args(tiny_suite, out, "--limit", "1", "--inpainter",
                                         "flux2-klein", "--steps", "1", "--no-report"))
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["inpainter"] == "flux2-klein"
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(row["ok"] for row in rows), rows
