"""`brushedit eval bench`: benchmark layouts, the paper's metrics and whole runs on tiny models.

The datasets are written in PIE-Bench's and BrushBench's exact layouts (tests/evals/bench_data.py);
CLIP, GroundingDINO and SAM are tiny random models saved with save_pretrained; the inpainter is
OpenCV (no weights). Metrics are checked against values computed here independently.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from evals.benchmarks import (
    BenchmarkError,
    decode_brushbench_mask,
    decode_pie_mask,
    encode_brushbench_mask,
    encode_pie_mask,
    load_brushbench,
    load_pie_bench,
)
from evals.cli import app
from tests.evals.bench_data import (
    PIE_ITEMS,
    build_tiny_clip,
    build_tiny_segmenter,
    picture,
    rect_mask,
    write_brushbench,
    write_pie_bench,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def torch_one_thread():
    import torch

    torch.set_num_threads(1)
    return torch


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory, torch_one_thread) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "clip")


@pytest.fixture(scope="module")
def tiny_segmenter_dirs(tmp_path_factory, torch_one_thread) -> dict[str, Path]:
    return build_tiny_segmenter(tmp_path_factory.mktemp("segmenter"))


@pytest.fixture(scope="module")
def pie(tmp_path_factory) -> Path:
    return write_pie_bench(tmp_path_factory.mktemp("pie") / "PIE-Bench_v1")


@pytest.fixture(scope="module")
def brushbench(tmp_path_factory) -> Path:
    return write_brushbench(tmp_path_factory.mktemp("brushbench") / "BrushBench")


# -- independent references --------------------------------------------------------------------


def benchmark_decoder(encoded: list[int], shape=(512, 512)) -> np.ndarray:
    """PIE-Bench's mask_decode, written out as the benchmark does it (a loop per pixel)."""
    length = shape[0] * shape[1]
    flat = np.zeros((length,))
    for i in range(0, len(encoded), 2):
        splice = min(encoded[i + 1], length - encoded[i])
        for j in range(splice):
            flat[encoded[i] + j] = 1
    mask = flat.reshape(shape)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = 1
    return mask


def unedited_mse(source: np.ndarray, result: np.ndarray, edited: np.ndarray) -> float:
    keep = ~edited
    diff = source.astype(np.float64) / 255 - result.astype(np.float64) / 255
    return float((diff[keep] ** 2).mean())


def clip_reference(folder: Path, image: np.ndarray, text: str) -> float:
    """CLIPScore through the towers and projections by hand: max(100 cos, 0)."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(folder).eval()
    processor = CLIPProcessor.from_pretrained(folder)
    pixels = processor(images=[image], return_tensors="pt")["pixel_values"]
    tokens = processor.tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        v = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
        t = model.text_projection(model.text_model(**tokens).pooler_output)
    cos = torch.nn.functional.cosine_similarity(v, t).item()
    return max(100 * cos, 0.0)


def read_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


# -- masks ------------------------------------------------------------------------------------


def test_pie_decoder_matches_the_benchmarks_own_loop():
    rng = np.random.default_rng(0)
    for _ in range(3):
        mask = np.zeros((512, 512), dtype=np.uint8)
        for _ in range(4):
            y, x = rng.integers(0, 480, 2)
            h, w = rng.integers(1, 60, 2)
            mask[y : y + h, x : x + w] = 255
        runs = encode_pie_mask(mask)
        decoded = decode_pie_mask(runs)
        assert np.array_equal(decoded > 0, benchmark_decoder(runs) > 0)
        border = np.zeros_like(mask, dtype=bool)
        border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
        assert np.array_equal(decoded > 0, (mask > 0) | border)


def test_pie_runs_are_zero_based_row_major():
    mask = np.zeros((512, 512), dtype=np.uint8)
    mask[1, 10:13] = 255
    mask[2, 0] = 255
    assert encode_pie_mask(mask) == [522, 3, 1024, 1]
    decoded = decode_pie_mask([522, 3]) > 0
    assert decoded[1, 10:13].all() and not decoded[1, 13] and not decoded[1, 9]
    assert decoded[0].all() and decoded[:, -1].all()  # the benchmark's border rule
    assert decoded[1:-1, 1:-1].sum() == 3
    # a run past the end is cut, as the benchmark's min(length, remaining) does
    assert (decode_pie_mask([512 * 512 - 2, 10]) > 0).sum() == (benchmark_decoder([0, 0]) > 0).sum()


def test_brushbench_runs_are_one_based_without_a_border():
    decoded = decode_brushbench_mask([1, 3, 513, 2]) > 0
    assert decoded[0, :3].all() and not decoded[0, 3]
    assert decoded[1, :2].all() and decoded.sum() == 5
    mask = rect_mask(10, 20, 30, 50)
    assert np.array_equal(decode_brushbench_mask(encode_brushbench_mask(mask)), mask)
    with pytest.raises(BenchmarkError, match="start at 1"):
        decode_brushbench_mask([0, 3])
    with pytest.raises(BenchmarkError, match="pairs"):
        decode_pie_mask([1, 2, 3])


# -- loading ----------------------------------------------------------------------------------


def test_pie_bench_layout_is_read_as_distributed(pie):
    bench = load_pie_bench(pie)
    assert [item.id for item in bench.items] == list(PIE_ITEMS)
    first = bench.items[0]
    assert first.image.endswith("annotation_images/3_delete_object_80/000000000000.jpg")
    assert first.instruction == "remove the cat" and first.editing_type_id == "3"
    assert bench.items[1].prompt == "a bowl of coffee on a saucer"  # brackets dropped
    assert [i.id for i in load_pie_bench(pie, ["1"]).items] == ["000000000001"]
    with pytest.raises(BenchmarkError, match="unknown editing type"):
        load_pie_bench(pie, ["12"])
    with pytest.raises(BenchmarkError, match=r"mapping_file\.json"):
        load_pie_bench(pie / "annotation_images")


def test_brushbench_layout_gives_inside_and_outside(brushbench):
    bench = load_brushbench(brushbench)
    assert [i.key for i in bench.items] == ["0|inside", "0|outside", "1|inside", "1|outside"]
    inside, outside = bench.items[0].mask(), bench.items[1].mask()
    assert np.array_equal(inside, rect_mask(96, 400, 128, 384))
    assert np.array_equal(outside, 255 - inside)


# -- metrics ----------------------------------------------------------------------------------


def test_measure_identical_shift_and_mask(tiny_clip):
    from skimage.metrics import structural_similarity

    from evals.scorers import Scorers, ScorerSettings, measure

    scorers = Scorers.load(ScorerSettings(clip_model=str(tiny_clip)), device="cpu")
    source = (picture("astronaut").astype(np.float64) * 0.8).astype(np.uint8)
    mask = rect_mask(100, 300, 150, 350)
    edited = mask > 0
    prompt = "a man in a space suit"

    same = measure(source, source, mask, prompt, scorers)
    assert same["psnr_unedited"] == 100.0 and same["mse_unedited"] == 0.0
    assert same["ssim_unedited"] == pytest.approx(1.0)

    shifted = source + 10  # no overflow: source <= 204
    known = measure(source, shifted, mask, prompt, scorers)
    assert known["mse_unedited"] == pytest.approx((10 / 255) ** 2, rel=1e-9)
    assert known["psnr_unedited"] == pytest.approx(10 * math.log10(255**2 / 100), rel=1e-9)
    keep = (~edited)[..., None]
    reference_ssim = structural_similarity(
        source / 255 * keep, shifted / 255 * keep, channel_axis=2, data_range=1.0,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    )  # fmt: skip
    assert known["ssim_unedited"] == pytest.approx(reference_ssim, abs=2e-3)
    assert known["ssim_unedited"] < 0.999

    inside_only = source.copy()
    inside_only[edited] = 255 - inside_only[edited]
    local = measure(source, inside_only, mask, prompt, scorers)
    assert local["psnr_unedited"] == 100.0 and local["mse_unedited"] == 0.0
    assert local["unedited_fraction"] == pytest.approx(1 - edited.mean())
    assert local["clip_whole"] == pytest.approx(
        clip_reference(tiny_clip, inside_only, prompt), abs=1e-4
    )
    masked = (inside_only * edited[..., None]).astype(np.uint8)
    assert local["clip_edited"] == pytest.approx(
        clip_reference(tiny_clip, masked, prompt), abs=1e-4
    )
    assert local["clip_whole"] > 0 and local["clip_whole"] != local["clip_edited"]

    full = measure(source, shifted, np.full((512, 512), 255, np.uint8), prompt, scorers)
    assert full["psnr_unedited"] is None and full["mse_unedited"] is None  # the benchmark's nan
    assert full["clip_whole"] is not None


def test_missing_models_are_null_with_a_reason(tmp_path):
    from evals.scorers import Scorers, ScorerSettings, measure

    scorers = Scorers.load(ScorerSettings(clip_model=str(tmp_path / "no-clip")), device="cpu")
    assert "could not be loaded" in scorers.missing["clip_whole"]
    assert "lpips" in scorers.missing["lpips_unedited"]
    assert "aesthetic" in scorers.missing["aesthetic"]
    source = picture("camera")
    metrics = measure(source, source, rect_mask(0, 10, 0, 10), "a man", scorers)
    assert metrics["clip_whole"] is None and metrics["lpips_unedited"] is None
    assert metrics["psnr_unedited"] == 100.0


def test_aesthetic_head_on_clip_image_embeddings(tiny_clip, tmp_path, torch_one_thread):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    from evals.scorers import Scorers, ScorerSettings

    torch.manual_seed(1)
    head = torch.nn.Linear(16, 1)
    torch.save(head.state_dict(), tmp_path / "head.pth")
    settings = ScorerSettings(clip_model=str(tiny_clip), aesthetic_head=str(tmp_path / "head.pth"))
    scorers = Scorers.load(settings, device="cpu")
    image = picture("coffee")
    model, processor = (
        CLIPModel.from_pretrained(tiny_clip),
        CLIPProcessor.from_pretrained(tiny_clip),
    )
    with torch.no_grad():
        pixels = processor(images=[image], return_tensors="pt")["pixel_values"]
        embedding = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
        expected = head(embedding / embedding.norm(dim=-1, keepdim=True)).item()
    assert scorers.quality(image, "coffee")["aesthetic"] == pytest.approx(expected, abs=1e-5)


def test_agent_summary_measures_the_verifier_loop():
    from evals.bench_report import agent_summary

    rows = [
        {"accepted": True, "attempts": 1, "metrics": {"psnr_unedited": 30.0},
         "first_metrics": {"psnr_unedited": 30.0}},
        {"accepted": False, "attempts": 3, "metrics": {"psnr_unedited": 28.0},
         "first_metrics": {"psnr_unedited": 20.0}},
    ]  # fmt: skip
    summary = agent_summary(rows)
    assert summary["accepted"] == 0.5 and summary["attempts_mean"] == 2.0
    assert summary["retried"] == 0.5
    assert summary["first_attempt"]["psnr_unedited"] == 25.0
    assert summary["final"]["psnr_unedited"] == 29.0
    assert summary["delta"]["psnr_unedited"] == 4.0


# -- whole runs -------------------------------------------------------------------------------


def pie_args(pie: Path, out: Path, clip: Path, *extra: str) -> list[str]:
    return ["bench", "pie-bench", str(pie), "--out", str(out), "--inpainter", "opencv",
            "--clip-model", str(clip), "--device", "cpu", *extra]  # fmt: skip


def test_pie_bench_mask_mode_end_to_end(pie, tiny_clip, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, pie_args(pie, out, tiny_clip, "--mode", "mask"))
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 3 and summary["mode"] == "mask"
    assert set(summary["metrics"]) >= {
        "psnr_unedited", "mse_unedited", "ssim_unedited", "lpips_unedited", "clip_whole",
        "clip_edited",
    }  # fmt: skip
    assert summary["metrics"]["lpips_unedited"] is None
    assert "lpips" in summary["missing"]["lpips_unedited"]
    assert set(summary["by_type"]) == {"1", "3"}
    assert summary["by_type"]["3"]["n"] == 2 and summary["by_type"]["3"]["name"] == "delete object"

    bench = load_pie_bench(pie)
    clips = []
    for item, row in zip(bench.items, sorted(read_rows(out), key=lambda r: r["key"]), strict=True):
        source = load_rgb(Path(item.image))
        result_image = load_rgb(out / row["result"])
        edited = item.mask() > 0
        # OpenCV fills the mask only: the unedited region is the source, to the pixel
        assert np.array_equal(result_image[~edited], source[~edited])
        assert not np.array_equal(result_image[edited], source[edited])
        assert row["metrics"]["psnr_unedited"] == 100.0
        expected = clip_reference(tiny_clip, result_image, item.prompt)
        assert row["metrics"]["clip_whole"] == pytest.approx(expected, abs=1e-4)
        clips.append(expected)
    assert summary["metrics"]["clip_whole"] == pytest.approx(np.mean(clips), abs=1e-4)
    assert row["fill_baseline"] is False and read_rows(out)[1]["fill_baseline"] is True

    items = (out / "items.jsonl").read_text().splitlines()
    assert len(items) == 3 and json.loads(items[0])["metrics"]["psnr_unedited"] == 100.0
    page = (out / "report.html").read_text()
    assert "32.16" in page and "LPIPS ×10³" in page and "MSE ×10⁴" in page
    assert "not measured" in page and "Per editing type" in page


def test_pie_bench_agent_mode_runs_the_whole_system(
    pie, tiny_clip, tiny_segmenter_dirs, tmp_path, monkeypatch
):
    monkeypatch.setenv("BRUSHEDIT_DETECTOR", str(tiny_segmenter_dirs["detector"]))
    monkeypatch.setenv("BRUSHEDIT_SAM", str(tiny_segmenter_dirs["sam"]))
    monkeypatch.setenv("BRUSHEDIT_DEVICE", "cpu")
    out = tmp_path / "agent"
    args = pie_args(pie, out, tiny_clip, "--mode", "agent", "--planner", "rules")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = {r["key"]: r for r in read_rows(out)}
    # the rule planner reads the instructions; OpenCV refuses the local edit, does the removals
    assert rows["000000000001"]["category"] == "local" and not rows["000000000001"]["ok"]
    assert rows["000000000001"]["error_type"] == "UnsupportedEditError"
    bench = {item.key: item for item in load_pie_bench(pie).items}
    for key in ("000000000000", "000000000002"):
        row = rows[key]
        assert row["ok"] and row["category"] == "removal", row.get("error")
        assert row["object"] == PIE_ITEMS[key]["editing_instruction"].split()[-1]
        assert row["attempts"] >= 1 and isinstance(row["accepted"], bool)
        source, result_image = load_rgb(Path(bench[key].image)), load_rgb(out / row["result"])
        edited = bench[key].mask() > 0
        mse = unedited_mse(source, result_image, edited)
        assert row["metrics"]["mse_unedited"] == pytest.approx(mse, rel=1e-9)
        assert row["metrics"]["psnr_unedited"] == pytest.approx(
            min(100.0, 10 * math.log10(1 / mse)) if mse else 100.0, rel=1e-9
        )
        assert row["first_metrics"] is not None
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 2 and summary["errors"] == {"UnsupportedEditError": 1}
    agent = summary["agent"]
    assert agent["compared"] == 2 and 0.0 <= agent["accepted"] <= 1.0
    assert agent["attempts_mean"] >= 1.0 and set(agent["delta"]) >= {"psnr_unedited"}
    assert "first attempt vs final" in (out / "report.html").read_text()


def test_limit_resume_and_a_changed_config(pie, tiny_clip, tmp_path):
    out = tmp_path / "resume"
    first = runner.invoke(app, pie_args(pie, out, tiny_clip, "--limit", "1", "--types", "3"))
    assert first.exit_code == 0, first.output
    assert [r["key"] for r in read_rows(out)] == ["000000000000"]
    stamp = read_rows(out)[0]["finished"]
    again = runner.invoke(app, pie_args(pie, out, tiny_clip, "--types", "3"))
    assert again.exit_code == 0, again.output
    assert "1 already done" in again.output
    rows = read_rows(out)
    assert [r["key"] for r in rows] == ["000000000000", "000000000002"]
    assert rows[0]["finished"] == stamp
    changed = runner.invoke(app, pie_args(pie, out, tiny_clip, "--types", "3", "--seed", "7"))
    assert changed.exit_code == 2
    assert "different configuration" in changed.output and "seed" in changed.output
    assert len(read_rows(out)) == 2


def test_brushbench_inside_and_outside(brushbench, tiny_clip, tmp_path):
    out = tmp_path / "bb"
    args = ["bench", "brushbench", str(brushbench), "--out", str(out), "--inpainter", "opencv",
            "--clip-model", str(tiny_clip), "--device", "cpu"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 4 and set(summary["by_mask"]) == {"inside", "outside"}
    rows = {r["key"]: r for r in read_rows(out)}
    outside = rows["0|outside"]
    # outside inpainting keeps the box: the unedited region is inside it, untouched by OpenCV
    source = load_rgb(brushbench / "images" / "0.jpg")
    result_image = load_rgb(out / outside["result"])
    box = rect_mask(96, 400, 128, 384) > 0
    assert np.array_equal(result_image[box], source[box])
    assert outside["metrics"]["psnr_unedited"] == 100.0
    assert outside["metrics"]["unedited_fraction"] == pytest.approx(box.mean())
    expected = clip_reference(tiny_clip, result_image, "a cat on a floor")
    assert outside["metrics"]["clip_whole"] == pytest.approx(expected, abs=1e-4)
    assert summary["script_convention"]["evaluator"].startswith("BrushNet")
    assert "Inside and outside masks" in (out / "report.html").read_text()


def test_two_workers_give_the_same_rows_as_one(pie, tiny_clip, tmp_path):
    serial, parallel = tmp_path / "one", tmp_path / "two"
    assert runner.invoke(app, pie_args(pie, serial, tiny_clip)).exit_code == 0
    result = runner.invoke(app, pie_args(pie, parallel, tiny_clip, "--workers", "2"))
    assert result.exit_code == 0, result.output
    one = {r["key"]: r for r in read_rows(serial)}
    two = {r["key"]: r for r in read_rows(parallel)}
    assert set(one) == set(two)
    assert all(r["pid"] != os.getpid() for r in two.values())  # edited in the workers
    for key in one:
        assert two[key]["metrics"] == pytest.approx(one[key]["metrics"])


def test_a_folder_without_a_mapping_file_is_one_line(tmp_path):
    result = runner.invoke(app, ["bench", "pie-bench", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and "mapping_file.json" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # one Ray cluster at a time under xdist
def test_ray_actors_hold_one_worker_each(pie, tiny_clip, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    result = runner.invoke(app, pie_args(pie, out, tiny_clip, "--ray", "local", "--workers", "2"))
    assert result.exit_code == 0, result.output
    rows = read_rows(out)
    assert sorted(r["key"] for r in rows) == sorted(PIE_ITEMS)
    assert all(r["ok"] and r["pid"] != os.getpid() for r in rows)
    assert len({r["pid"] for r in rows}) <= 2  # two actors, each editing several items


def test_agent_mode_measures_a_retry_of_the_verifier_loop(
    tiny_clip, tiny_segmenter_dirs, tmp_path, monkeypatch, fake_ollama
):
    """The VLM verifier (the fake Ollama) blames the mask; the relaxed masks of the random
    segmenter then fail the objective checks, so the loop gives up and returns attempt 1: the
    summary must show three attempts, no acceptance and no gain over the first attempt."""
    monkeypatch.setenv("OLLAMA_HOST", fake_ollama.url)
    monkeypatch.setenv("BRUSHEDIT_OLLAMA_MODEL", fake_ollama.models[0])
    monkeypatch.setenv("BRUSHEDIT_DETECTOR", str(tiny_segmenter_dirs["detector"]))
    monkeypatch.setenv("BRUSHEDIT_SAM", str(tiny_segmenter_dirs["sam"]))
    monkeypatch.setenv("BRUSHEDIT_DEVICE", "cpu")
    fake_ollama.smart.set_verdicts("retry:mask")
    out = tmp_path / "retry"
    pie = write_pie_bench(tmp_path / "pie", {"000000000002": PIE_ITEMS["000000000002"]})
    args = pie_args(pie, out, tiny_clip, "--mode", "agent", "--planner", "vlm")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (row,) = read_rows(out)
    assert row["ok"] and row["system_planner"] == "vlm", row.get("error")
    assert row["attempts"] == 3 and row["accepted"] is False
    assert "returning the best candidate by objective metrics (attempt 1)" in row["reason"]
    assert row["first_result"] == row["result"]  # attempt 1 was the best candidate
    item = load_pie_bench(pie).items[0]
    source, edited = load_rgb(Path(item.image)), item.mask() > 0
    final = load_rgb(out / row["result"])
    assert row["metrics"]["mse_unedited"] == pytest.approx(
        unedited_mse(source, final, edited), rel=1e-9
    )
    assert row["first_metrics"] == row["metrics"]
    agent = json.loads((out / "summary.json").read_text())["agent"]
    assert agent["retried"] == 1.0 and agent["attempts_mean"] == 3.0 and agent["accepted"] == 0.0
    assert agent["delta"]["psnr_unedited"] == 0.0
