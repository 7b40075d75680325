"""benchmarks/inpaint_step.py's plumbing on toy shapes (never its timings): separate processes, interleaving, the
baseline's name, identical weights in every run, and the refusals of a reference python without the fork."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "inpaint_step.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("inpaint_step_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.mark.slow  # two fresh processes
def test_without_a_reference_the_baseline_is_our_doubled_batch_run_in_separate_processes(bench, capsys):
    bench.main(["--config", "tiny", "--size", "32", "--steps", "3", "--repeats", "1", "--threads", "1", "--no-check"])
    out = capsys.readouterr().out
    assert "baseline: our doubled batch" in out
    assert "doubled/row" in out and "fork" not in out and "reference" not in out.lower()
    runs = re.findall(r"run 1/1 (.+?): [\d.]+ s/step .* pid (\d+)", out)
    assert [name for name, _ in runs] == ["ours (default)", "our doubled batch"]  # interleaved, ours first
    assert len({pid for _, pid in runs}) == 2  # one process per run
    assert "weights checksums equal in every run" in out
    assert re.search(r"load average before the first run [\d.]+ [\d.]+ [\d.]+, after the last", out)
    diffs = re.findall(r"^(ours \(default\)|our doubled batch) .* (\S+)$", out, re.M)
    assert [name for name, _ in diffs] == ["ours (default)", "our doubled batch"]
    assert all(float(diff) < 1e-4 for _, diff in diffs)  # the same image, in fp32


def test_a_reference_python_without_the_fork_is_refused_with_the_recipe(bench):
    with pytest.raises(SystemExit, match=r"has no StableDiffusionBrushNetPipeline.*docs/speed.md"):
        bench.check_reference_python(sys.executable, "sd15")
    with pytest.raises(SystemExit, match="cannot run it"):
        bench.check_reference_python("/nonexistent/bin/python", "sd15")


def test_unknown_levers_are_refused(bench):
    with pytest.raises(SystemExit, match="unknown --levers"):
        bench.main(["--levers", "turbo"])


def test_the_fork_gets_the_masked_image_and_an_rgb_hole_mask_ours_the_original(bench):
    import torch

    image = torch.full((16, 16, 3), 200, dtype=torch.uint8)
    mask = torch.zeros((16, 16), dtype=torch.uint8)
    mask[4:8, 4:8] = 255
    inputs = {"image": image, "mask": mask, "latents": torch.zeros(1, 4, 2, 2),
              "prompt_embeds": torch.ones(1, 77, 8), "negative_prompt_embeds": torch.zeros(1, 77, 8)}
    spec = {"family": "sd15", "dtype": "float64", "steps": 3, "row": {"batching": "shared"}}
    fork = bench.call_kwargs({**spec, "impl": "fork"}, inputs)
    masked = np.asarray(fork["image"])
    assert masked[4:8, 4:8].max() == 0 and masked[0, 0, 0] == 200  # the hole blacked out, the rest kept
    assert np.asarray(fork["mask"]).shape == (16, 16, 3) and np.asarray(fork["mask"])[5, 5, 0] == 255
    ours = bench.call_kwargs({**spec, "impl": "ours"}, inputs)
    assert ours["image"].min() == 200 and ours["blending"] is False and ours["branch_cfg_batching"] == "shared"
    assert ours["latents"].dtype == torch.float64 and fork["guidance_scale"] == ours["guidance_scale"] == 7.5


def test_different_weights_fail_the_checksum_check(bench):
    manifest = {"checksums": {"unet": "a", "vae": "b", "brushnet": "c"}}
    bench.verify_checksums({"ours": [{"checksums": manifest["checksums"]}]}, manifest)
    with pytest.raises(SystemExit, match="loaded different weights"):
        bench.verify_checksums({"fork": [{"checksums": {**manifest["checksums"], "vae": "x"}}]}, manifest)
