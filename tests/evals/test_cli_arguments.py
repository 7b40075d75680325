"""`brushedit eval` given numbers out of range, a file as its run folder, damaged run files."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from evals.cli import _MAX_VARIANTS, _MAX_WORKERS, app
from interfaces.cli_errors import REFUSED_EXIT, USAGE_EXIT
from tests.evals.conftest import run_args

runner = CliRunner()


def _refused(result, *words: str, code: int = REFUSED_EXIT) -> str:
    """One line, no traceback, the words, and the exit status: 3 for a refused input (a run
    folder), 2 for a command line click refuses."""
    output = result.output
    assert result.exit_code == code, output
    assert "Traceback" not in output and "ValidationError" not in output, output
    for word in words:
        assert word in output, output
    return output


@pytest.mark.parametrize(("flag", "value"), [("--seed", str(2**64)), ("--variants", str(10**9)),
                                             ("--workers", str(10**5))])
def test_numbers_out_of_range_are_refused_by_the_flag(tiny_suite, tmp_path, flag, value):
    out = tmp_path / "run"
    _refused(runner.invoke(app, run_args(tiny_suite, out, "--limit", "1", flag, value)), flag,
             code=USAGE_EXIT)
    assert not out.exists()  # nothing ran, nothing was written


def test_the_flag_bounds_are_the_models_bounds():
    from evals.bench import BenchConfig, BenchOptions
    from evals.runner import EvalConfig, RunOptions
    from tools.types import SEED_MAX

    def high(model, name):
        return next(m.le for m in model.model_fields[name].metadata if getattr(m, "le", None))

    assert high(EvalConfig, "variants") == _MAX_VARIANTS
    assert high(RunOptions, "workers") == high(BenchOptions, "workers") == _MAX_WORKERS
    assert high(EvalConfig, "seed") == high(BenchConfig, "seed") == SEED_MAX


def test_a_file_as_the_run_folder_is_refused_and_kept(tiny_suite, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    _refused(runner.invoke(app, run_args(tiny_suite, target, "--limit", "1")), "not a run folder")
    assert target.read_text() == "keep me"


def test_a_run_folder_inside_the_data_folder_is_refused(tiny_suite, tmp_path, monkeypatch):
    data = tmp_path / "brushedit-data"
    monkeypatch.setenv("BRUSHEDIT_DATA_DIR", str(data))
    _refused(runner.invoke(app, run_args(tiny_suite, data / "run", "--limit", "1")),
             "inside the data folder")


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "\xff\xfe"])
def test_a_damaged_config_is_one_sentence(tmp_path, content):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_bytes(content.encode("latin-1"))
    for args in (["report", str(out)], ["bench", "report", str(out)]):
        _refused(runner.invoke(app, args), "config.json is damaged")


def test_a_damaged_config_stops_a_resumed_run(tiny_suite, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{oops")
    _refused(runner.invoke(app, run_args(tiny_suite, out, "--limit", "1")), "damaged")


def test_a_config_that_is_a_fifo_does_not_hang(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    os.mkfifo(out / "config.json")
    # `is_file()` is False for a FIFO: the folder is not a run, said at once.
    _refused(runner.invoke(app, ["report", str(out)]), "not an eval run folder")
