"""Per-step time of BrushNet inpainting: ours vs the reference fork (TencentARC/BrushNet), in separate processes.

Random weights of the real SD1.5 (and SDXL) shapes are built once, saved to a folder (diffusers safetensors) and
loaded by every run, ours and the fork's alike; each run checksums what it loaded, so both time the same weights.
Each run is its own process: ours in this venv, the fork's in the venv named by `--reference-python` (its
`StableDiffusionBrushNetPipeline` / `StableDiffusionXLBrushNetPipeline`, diffusers 0.27.0.dev0 installed from its
source; recipe in docs/speed.md). Runs interleave (ours, fork, ours, fork, ...), so load from other work falls on
both alike; the table gives the best and the median of the runs, with the load averages and the share of the CPUs
that other processes used during each run, and warns when the machine was busy.

    python benchmarks/inpaint_step.py --reference-python /work/refvenv/bin/python      # SD1.5 512 px vs the fork
    python benchmarks/inpaint_step.py --reference-python PY --family sdxl --size 1024  # SDXL at its size
    python benchmarks/inpaint_step.py --size 256 --levers channels_last,compile        # levers, vs our doubled batch
    python benchmarks/inpaint_step.py --profile                                        # + torch.profiler, one step per row

Without `--reference-python` the baseline is our own pipeline run like the reference (the branch on the doubled
CFG batch), and the rows say so ("our doubled batch"): it is not the reference.

Per step: the median of the intervals between `callback_on_step_end` calls of one call (the first step, which holds
the masked-image encode and any compilation, is reported apart as "first step"), in wall time and in the run's own
CPU time (all threads, user + system), which other work on the machine disturbs far less. CFG 7.5, float32, UniPC ending on
sigma_min (the fork's diffusers 0.27 behaviour, so both end on the same image). The identity check re-runs every
row (the fork too) in float64 at `--check-size` and compares its image with the baseline's: summation order moves a
float64 image by ~1e-12, a real change of the computation by far more than 1e-4.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
BUSY_SHARE = 0.10  # other processes' share of the CPUs above which a run counts as disturbed
BUSY_LOAD = 0.5  # 1-minute load average per core before the first run above which the machine counts as busy


# -- rows ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the table: an implementation and, for ours, the levers it runs with (None = our default)."""

    name: str
    impl: str  # "ours" or "fork"
    batching: str = "shared"  # ours: `branch_cfg_batching`
    memory_format: str | None = "default"  # ours: optimize_for_inference's memory_format ("default": load_pipeline's)
    compile: bool | None = None  # ours: torch.compile of the branch and the UNet blocks (None: load_pipeline's)
    options: tuple = ()  # ours: optimize_for_inference keyword arguments, as (name, value) pairs
    env: tuple = ()  # environment variables of the run's process, as (name, value) pairs


FORK = Row("fork: TencentARC/BrushNet", "fork")
OURS = Row("ours (default)", "ours")
DOUBLED = Row("our doubled batch", "ours", batching="doubled", memory_format=None, compile=False)
# What `keep_freed_memory` sets, given to a process through glibc's environment instead.
MALLOC_KEEP = (("MALLOC_MMAP_MAX_", "0"), ("MALLOC_TRIM_THRESHOLD_", str(2**31 - 1)))
LEVERS = {
    "doubled": DOUBLED,
    "no_allocator": replace(OURS, name="ours, malloc left as it is", options=(("cpu_allocator", None),)),
    "fork_allocator": Row("fork + MALLOC_MMAP_MAX_=0", "fork", env=MALLOC_KEEP),
    "shared": replace(OURS, name="ours: shared branch only", memory_format=None, compile=False),
    "channels_last": replace(OURS, name="ours + channels_last", memory_format="channels_last"),
    "contiguous": replace(OURS, name="ours, contiguous", memory_format="contiguous"),
    "compile": replace(OURS, name="ours + torch.compile", compile=True),
    "no_compile": replace(OURS, name="ours, no compile", compile=False),
    # torch's CPU allocator asks for transparent huge pages (madvise) for blocks of 2 MB and more
    "thp": replace(OURS, name="ours + THP_MEM_ALLOC_ENABLE=1", env=(("THP_MEM_ALLOC_ENABLE", "1"),)),
    "compile_channels_last": replace(
        OURS, name="ours + compile + channels_last", compile=True, memory_format="channels_last"
    ),
}


# -- the worker: one timed call in its own process (runs in our venv and in the fork's) -----------------------------


def state_checksum(module) -> str:
    """sha256 over a module's state dict (names and float32 bytes, in name order): equal weights, equal sums."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def fork_classes(family: str):
    """The fork's BrushNet and pipeline classes, or a SystemExit that says how to get them."""
    import diffusers

    name = "StableDiffusionXLBrushNetPipeline" if family == "sdxl" else "StableDiffusionBrushNetPipeline"
    if not hasattr(diffusers, name):
        raise SystemExit(
            f"{sys.executable}: its diffusers {diffusers.__version__} has no {name}; install TencentARC/BrushNet's "
            "diffusers from its source into that venv (docs/speed.md)"
        )
    return diffusers.BrushNetModel, getattr(diffusers, name)


def load_components(spec: dict) -> dict:
    """UNet, VAE and branch from the weights folder, in `spec["dtype"]`, with their checksums."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    if spec["impl"] == "fork":
        brushnet_class = fork_classes(spec["family"])[0]
    else:
        from brushedit_inpaint import BrushNetModel as brushnet_class
    folder = Path(spec["weights"])
    models = {
        "unet": UNet2DConditionModel.from_pretrained(folder / "unet"),
        "vae": AutoencoderKL.from_pretrained(folder / "vae"),
        "brushnet": brushnet_class.from_pretrained(folder / "brushnet"),
    }
    sums = {name: state_checksum(model) for name, model in models.items()}
    dtype = getattr(torch, spec["dtype"])
    return {name: model.to(dtype).eval() for name, model in models.items()}, sums


def scheduler_for(impl: str):
    from diffusers import UniPCMultistepScheduler

    extra = {} if impl == "fork" else {"final_sigmas_type": "sigma_min"}  # the fork's diffusers 0.27 ends there
    return UniPCMultistepScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, **extra
    )


def build_pipe(spec: dict, models: dict):
    """The fork's pipeline as its README builds it, or ours with the row's levers."""
    sdxl = spec["family"] == "sdxl"
    text = {"text_encoder": None, "tokenizer": None}
    if sdxl:
        text |= {"text_encoder_2": None, "tokenizer_2": None}
    if spec["impl"] == "fork":
        pipe_class = fork_classes(spec["family"])[1]
        extra = {} if sdxl else {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
        pipe = pipe_class(**models, **text, scheduler=scheduler_for("fork"), **extra)
    else:
        from brushedit_inpaint import (
            StableDiffusionBrushNetPipeline,
            StableDiffusionXLBrushNetPipeline,
        )

        pipe_class = StableDiffusionXLBrushNetPipeline if sdxl else StableDiffusionBrushNetPipeline
        pipe = pipe_class(**models, **text, scheduler=scheduler_for("ours"))
        apply_levers(pipe, spec["row"])
    pipe.set_progress_bar_config(disable=True)
    return pipe


def apply_levers(pipe, row: dict) -> None:
    """`optimize_for_inference` with the row's levers; unset ones take `load_pipeline`'s defaults."""
    import inspect

    from brushedit_inpaint import load_pipeline
    from brushedit_inpaint.speed import optimize_for_inference

    defaults = inspect.signature(load_pipeline).parameters
    memory_format = row["memory_format"]
    if memory_format == "default":
        memory_format = defaults["memory_format"].default
    options = {"memory_format": memory_format, "cpu_allocator": defaults["cpu_allocator"].default,
               "compile": defaults["compile"].default if row["compile"] is None else row["compile"]}
    optimize_for_inference(pipe, **{**options, **dict(row["options"])})


def call_kwargs(spec: dict, inputs: dict) -> dict:
    """The same edit for both: ours takes the original and a white-is-generated mask; the fork the masked image."""
    import numpy as np
    import torch
    from PIL import Image

    dtype = getattr(torch, spec["dtype"])
    image, hole = inputs["image"].numpy(), inputs["mask"].numpy()
    kwargs = {
        "prompt_embeds": inputs["prompt_embeds"].to(dtype),
        "negative_prompt_embeds": inputs["negative_prompt_embeds"].to(dtype),
        "latents": inputs["latents"].to(dtype),
        "num_inference_steps": spec["steps"],
        "guidance_scale": 7.5,
        "output_type": "np",
    }
    if spec["family"] == "sdxl":
        kwargs["pooled_prompt_embeds"] = inputs["pooled_prompt_embeds"].to(dtype)
        kwargs["negative_pooled_prompt_embeds"] = inputs["negative_pooled_prompt_embeds"].to(dtype)
    if spec["impl"] == "fork":
        masked = image * (hole[:, :, None] == 0)
        kwargs["image"] = Image.fromarray(masked.astype(np.uint8))
        kwargs["mask"] = Image.fromarray(hole).convert("RGB")
    else:
        kwargs |= {"image": image, "mask_image": hole, "blending": False,
                   "branch_cfg_batching": spec["row"]["batching"]}
    return kwargs


def timed_call(pipe, spec: dict, kwargs: dict) -> dict:
    """Run the edit; the timestamps (and page faults) at each `callback_on_step_end`, optionally one step profiled."""
    import torch

    stamps, cpu, faults, profile = [], [], [], {}

    def on_step_end(_pipe, i, _t, callback_kwargs):
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
        if spec.get("profile") and i in (1, 2):
            toggle_profiler(profile, i == 1)
        return callback_kwargs

    # Ours samples the masked-image latent from `generator`; the fork from the global RNG (its known quirk): seeding
    # both the same way gives both the same latent.
    torch.manual_seed(spec["seed"])
    generator = torch.Generator().manual_seed(spec["seed"])
    start = time.perf_counter()
    with torch.no_grad():
        image = pipe(**kwargs, generator=generator, callback_on_step_end=on_step_end).images
    intervals = [b - a for a, b in itertools.pairwise(stamps)]
    return {
        "first_step": stamps[0] - start,
        "intervals": intervals,
        "cpu_intervals": [b - a for a, b in itertools.pairwise(cpu)],
        "faults_per_step": (faults[-1] - faults[0]) / max(1, len(intervals)),
        "total": time.perf_counter() - start,
        "image": image,
        "profile": profile.get("table"),
    }


def toggle_profiler(state: dict, start: bool) -> None:
    from torch.profiler import ProfilerActivity, profile

    if start:
        state["profiler"] = profile(activities=[ProfilerActivity.CPU])
        state["profiler"].__enter__()
        return
    state["profiler"].__exit__(None, None, None)
    state["table"] = state["profiler"].key_averages().table(sort_by="self_cpu_time_total", row_limit=30)


def worker(spec: dict) -> None:
    """One run: load, build, time, write the result (and the image) where the parent said."""
    import numpy as np
    import torch
    from safetensors.torch import load_file

    torch.set_num_threads(spec["threads"])
    try:
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()  # unused-config-key notes from the other diffusers version
    except ImportError:  # pragma: no cover
        pass
    t0 = time.perf_counter()
    models, sums = load_components(spec)
    pipe = build_pipe(spec, models)
    inputs = load_file(Path(spec["weights"]) / f"inputs_{spec['size']}.safetensors")
    loaded = time.perf_counter() - t0
    result = timed_call(pipe, spec, call_kwargs(spec, inputs))
    np.save(spec["image_path"], np.asarray(result.pop("image"), dtype=np.float64))
    result |= {"checksums": sums, "load_s": loaded, "pid": os.getpid(),
               "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
               "versions": versions()}
    Path(spec["result_path"]).write_text(json.dumps(result))


def versions() -> dict:
    import diffusers
    import torch

    return {"torch": torch.__version__, "diffusers": diffusers.__version__, "python": sys.version.split()[0]}


# -- weights and inputs, built once -----------------------------------------------------------------------------------


def model_configs(family: str, config: str) -> dict:
    from brushedit_inpaint import configs

    if config == "tiny":  # plumbing checks only: the same code paths on toy widths
        unet = {"block_out_channels": [8, 16, 16, 16], "cross_attention_dim": 8, "attention_head_dim": 2,
                "norm_num_groups": 4, "layers_per_block": 1}
        vae = {"block_out_channels": [8, 8, 8, 8], "norm_num_groups": 4, "layers_per_block": 1}
        if family == "sdxl":
            unet = {**unet, "block_out_channels": [8, 16, 16], "transformer_layers_per_block": [1, 1, 2],
                    "attention_head_dim": [2, 2, 2], "addition_time_embed_dim": 4,
                    "projection_class_embeddings_input_dim": 8 + 6 * 4}
    else:
        unet, vae = {}, {}
    if family == "sdxl":
        return {"unet": {**configs.SDXL_UNET_CONFIG, **unet}, "vae": {**configs.SDXL_VAE_CONFIG, **vae}}
    return {"unet": {**configs.SD15_UNET_CONFIG, **unet}, "vae": {**configs.SD15_VAE_CONFIG, **vae}}


def build_weights(folder: Path, family: str, config: str) -> dict:
    """Random UNet, VAE and branch (its zero taps randomised, so the branch matters), saved; their checksums."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from brushedit_inpaint import BrushNetModel

    manifest = folder / "manifest.json"
    if manifest.is_file():
        saved = json.loads(manifest.read_text())
        if saved["family"] == family and saved["config"] == config:
            return saved
    torch.manual_seed(0)
    cfg = model_configs(family, config)
    models = {"unet": UNet2DConditionModel(**cfg["unet"]).eval(), "vae": AutoencoderKL(**cfg["vae"]).eval()}
    models["brushnet"] = BrushNetModel.from_unet(models["unet"]).eval()
    with torch.no_grad():
        for name, param in models["brushnet"].named_parameters():
            if name.startswith("brushnet_"):
                param.normal_(0.0, 0.01)
        # The fork encodes the masked image once per CFG half (its image batch is doubled), so each half gets its own
        # latent sample; we sample once. A VAE whose log-variance is -30 makes both samples the mean (as the golden
        # fixtures do), so the images can be compared; the cost per step is the same either way.
        quant_conv, channels = models["vae"].quant_conv, cfg["vae"]["latent_channels"]
        quant_conv.weight[channels:] = 0.0
        quant_conv.bias[channels:] = -30.0
    for name, model in models.items():
        # One file per model: the fork's diffusers (0.27) cannot read sharded checkpoints (SDXL's UNet is 10 GB,
        # past save_pretrained's default shard size).
        model.save_pretrained(folder / name, safe_serialization=True, max_shard_size="100GB")
    saved = {"family": family, "config": config,
             "checksums": {name: state_checksum(model) for name, model in models.items()},
             "cross_attention_dim": cfg["unet"]["cross_attention_dim"]}
    if family == "sdxl":
        saved["pooled_dim"] = cfg["unet"]["projection_class_embeddings_input_dim"] - 6 * cfg["unet"][
            "addition_time_embed_dim"]
    manifest.write_text(json.dumps(saved))
    return saved


def write_inputs(folder: Path, manifest: dict, size: int, seed: int = 0) -> None:
    """The edit both sides run: a random image, a centred square hole, noise latents, random text embeddings."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    path = folder / f"inputs_{size}.safetensors"
    if path.is_file():
        return
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros((size, size), dtype=torch.uint8)
    mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    embeds = torch.randn((1, 77, manifest["cross_attention_dim"]), generator=generator)
    tensors = {
        "image": torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)),
        "mask": mask,
        "latents": torch.randn((1, 4, size // 8, size // 8), generator=generator),
        "prompt_embeds": embeds,
        "negative_prompt_embeds": torch.zeros_like(embeds),
    }
    if manifest["family"] == "sdxl":
        pooled = torch.randn((1, manifest["pooled_dim"]), generator=generator)
        tensors |= {"pooled_prompt_embeds": pooled, "negative_pooled_prompt_embeds": torch.zeros_like(pooled)}
    save_file(tensors, path)


# -- the parent: interleaved runs, machine load, the table ---------------------------------------------------------


def cpu_busy_seconds() -> float:
    """CPU seconds all processes spent busy since boot (/proc/stat; 0 where it does not exist)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_worker(python: str, spec: dict, timeout: float) -> dict:
    """One run in its own process; adds the load averages around it and the other processes' share of the CPUs."""
    load_before = os.getloadavg()
    busy0, own0, t0 = cpu_busy_seconds(), children_cpu_seconds(), time.monotonic()
    env = {**os.environ, **dict(spec["row"]["env"])}
    proc = subprocess.run([python, str(HERE), "--worker", json.dumps(spec)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{spec['row']['name']} run failed ({python}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    result = json.loads(Path(spec["result_path"]).read_text())
    others = max(0.0, (cpu_busy_seconds() - busy0) - (children_cpu_seconds() - own0))
    result |= {"load_before": load_before, "load_after": os.getloadavg(),
               "others_share": others / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0}
    return result


def per_step(result: dict) -> float:
    """One run's per-step time: the median interval (the first step, with encode and compilation, is excluded)."""
    return statistics.median(result["intervals"]) if result["intervals"] else result["first_step"]


def cpu_per_step(result: dict) -> float:
    """One run's process CPU time (all threads, user + system) per step: less sensitive to other work than wall time."""
    return statistics.median(result["cpu_intervals"]) if result["cpu_intervals"] else float("nan")


def check_reference_python(python: str, family: str) -> str:
    """The fork's versions as its venv reports them, or a SystemExit naming what is wrong."""
    name = "StableDiffusionXLBrushNetPipeline" if family == "sdxl" else "StableDiffusionBrushNetPipeline"
    code = (f"import diffusers, torch; getattr(diffusers, {name!r}); "
            "print(f'diffusers {diffusers.__version__} ({diffusers.__file__}), torch {torch.__version__}')")
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
    except OSError as error:
        raise SystemExit(f"--reference-python {python}: cannot run it ({error})") from None
    if proc.returncode != 0:
        raise SystemExit(
            f"--reference-python {python} has no {name} in its diffusers: it must be a venv with TencentARC/BrushNet's "
            f"diffusers installed from its source (docs/speed.md).\n{proc.stderr.strip()[-500:]}"
        )
    return proc.stdout.strip().splitlines()[-1]


def interleaved_runs(rows: list[Row], pythons: dict, base_spec: dict, repeats: int, scratch: Path) -> dict:
    """`repeats` rounds of every row in turn (ours, fork, ours, fork, ...), each run a fresh process."""
    results: dict[str, list[dict]] = {row.name: [] for row in rows}
    for rnd in range(repeats):
        for index, row in enumerate(rows):
            spec = {**base_spec, "impl": row.impl, "row": asdict(row),
                    "profile": bool(base_spec.get("profile")) and rnd == 0,
                    "result_path": str(scratch / f"result_{rnd}_{index}.json"),
                    "image_path": str(scratch / f"image_{rnd}_{index}.npy")}
            result = run_worker(pythons[row.impl], spec, base_spec["timeout"])
            result["image_path"] = spec["image_path"]
            results[row.name].append(result)
            print(f"  run {rnd + 1}/{repeats} {row.name}: {per_step(result):.3f} s/step (median of "
                  f"{len(result['intervals'])}), {cpu_per_step(result):.2f} CPU s/step, first step "
                  f"{result['first_step']:.1f} s, load "
                  f"{fmt_load(result['load_before'])} -> {fmt_load(result['load_after'])}, other processes "
                  f"{result['others_share']:.0%} of the CPUs, {result['faults_per_step']:.0f} page faults/step, "
                  f"peak rss {result['peak_rss_gib']:.1f} GiB, pid {result['pid']}", flush=True)
            if result.get("profile"):
                print(result["profile"])
    return results


def fmt_load(load) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def max_diff(path_a: str, path_b: str) -> float:
    import numpy as np

    return float(np.abs(np.load(path_a) - np.load(path_b)).max())


def verify_checksums(results: dict, manifest: dict) -> None:
    for name, runs in results.items():
        for run in runs:
            if run["checksums"] != manifest["checksums"]:
                raise SystemExit(f"{name} loaded different weights: {run['checksums']} != {manifest['checksums']}")
    print(f"weights checksums equal in every run: {manifest['checksums']}")


def print_table(rows: list[Row], results: dict, baseline: Row, header: str) -> None:
    """Best and median wall time per step, their ratios to the baseline, and the median CPU time per step."""
    print(f"\n{header}")
    label = "fork/row" if baseline.impl == "fork" else "doubled/row"
    print(f"{'row':34s} {'best s/step':>11s} {'median':>7s} {label + ' best':>16s} {'median':>7s} "
          f"{'CPU s/step':>10s} {label + ' CPU':>15s} {'first step s':>12s} {'fp32 max|diff|':>14s}")
    base = results[baseline.name]
    base_steps, base_cpu = [per_step(r) for r in base], statistics.median([cpu_per_step(r) for r in base])
    for row in rows:
        runs = results[row.name]
        steps, cpu = [per_step(r) for r in runs], statistics.median([cpu_per_step(r) for r in runs])
        best, middle = min(base_steps) / min(steps), statistics.median(base_steps) / statistics.median(steps)
        first = statistics.median([r["first_step"] for r in runs])
        diff = max_diff(runs[-1]["image_path"], base[-1]["image_path"])
        print(f"{row.name:34s} {min(steps):11.3f} {statistics.median(steps):7.3f} {best:15.2f}x {middle:6.2f}x "
              f"{cpu:10.2f} {base_cpu / cpu:14.2f}x {first:12.1f} {diff:14.2e}")


def warn_if_busy(results: dict, first_load: tuple) -> None:
    runs = [run for row_runs in results.values() for run in row_runs]
    worst = max(run["others_share"] for run in runs)
    cores = os.cpu_count() or 1
    print(f"load average before the first run {fmt_load(first_load)}, after the last {fmt_load(runs[-1]['load_after'])}"
          f" ({cores} cores); other processes used at most {worst:.0%} of the CPUs during a run")
    if worst > BUSY_SHARE or first_load[0] > BUSY_LOAD * cores:
        print("WARNING: the machine was busy with other work. The runs were interleaved in separate processes, so the "
              "ratios stay comparable, but the absolute times are inflated and the ratios noisier: rerun on a quiet "
              "machine for numbers to publish.")


def float64_check(rows: list[Row], pythons: dict, base_spec: dict, baseline: Row, scratch: Path) -> None:
    """Every row once more in float64 at `--check-size`: each image against the baseline's."""
    spec = {**base_spec, "dtype": "float64", "size": base_spec["check_size"], "steps": base_spec["check_steps"],
            "profile": False}
    images = {}
    for index, row in enumerate(rows):
        run_spec = {**spec, "impl": row.impl, "row": asdict(row),
                    "result_path": str(scratch / f"check_{index}.json"),
                    "image_path": str(scratch / f"check_{index}.npy")}
        run_worker(pythons[row.impl], run_spec, base_spec["timeout"])
        images[row.name] = run_spec["image_path"]
    for row in rows:
        diff = max_diff(images[row.name], images[baseline.name])
        verdict = "equal within 1e-4" if diff <= 1e-4 else "DIFFERENT"
        print(f"float64 check ({spec['size']} px, {spec['steps']} steps): {row.name} vs {baseline.name}: "
              f"max abs diff {diff:.2e}: {verdict}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-python", help="python of a venv with the fork's diffusers (docs/speed.md)")
    parser.add_argument("--family", choices=("sd15", "sdxl"), default="sd15")
    parser.add_argument("--size", type=int, default=512, help="square image side (multiple of 8)")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps per call (the first is not timed)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs per row")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads per run")
    parser.add_argument("--levers", default="", help=f"extra rows of ours, comma-separated: {', '.join(LEVERS)}")
    parser.add_argument("--check-size", type=int, default=128, help="image side of the float64 identity check")
    parser.add_argument("--check-steps", type=int, default=3)
    parser.add_argument("--no-check", action="store_true", help="skip the float64 identity check")
    parser.add_argument("--profile", action="store_true", help="torch.profiler table of one step of each row (its first run)")
    parser.add_argument("--weights-dir", type=Path, help="keep (and reuse) the random weights here")
    parser.add_argument("--config", choices=("real", "tiny"), default="real", help="tiny: plumbing checks only")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run before giving up")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return
    unknown = [name for name in filter(None, args.levers.split(",")) if name not in LEVERS]
    if unknown:
        raise SystemExit(f"unknown --levers {unknown}; known: {', '.join(LEVERS)}")
    pythons = {"ours": sys.executable}
    if args.reference_python:
        pythons["fork"] = args.reference_python
        print(f"reference: {check_reference_python(args.reference_python, args.family)}")
    baseline = FORK if args.reference_python else DOUBLED
    rows = [OURS, baseline]
    rows += [LEVERS[name] for name in filter(None, args.levers.split(",")) if LEVERS[name] not in rows]
    scratch = Path(tempfile.mkdtemp(prefix="inpaint_step_"))
    weights = args.weights_dir or scratch / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        manifest = build_weights(weights, args.family, args.config)
        for size in {args.size, args.check_size}:
            write_inputs(weights, manifest, size)
        print(f"weights ({args.family}, {args.config}) in {weights} ({time.perf_counter() - t0:.0f} s)")
        base_spec = {"family": args.family, "weights": str(weights), "size": args.size, "steps": args.steps,
                     "threads": args.threads, "dtype": "float32", "seed": 0, "profile": args.profile,
                     "check_size": args.check_size, "check_steps": args.check_steps, "timeout": args.timeout}
        first_load = os.getloadavg()
        results = interleaved_runs(rows, pythons, base_spec, args.repeats, scratch)
        verify_checksums(results, manifest)
        header = (f"{args.family} shapes ({args.config}), {args.size}x{args.size}, CFG 7.5, float32, {args.threads} "
                  f"threads, {args.steps} steps per call ({args.steps - 1} timed), {args.repeats} interleaved runs per "
                  f"row; baseline: {baseline.name}")
        print_table(rows, results, baseline, header)
        warn_if_busy(results, first_load)
        if not args.no_check:
            float64_check(rows, pythons, base_spec, baseline, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
