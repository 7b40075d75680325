"""GPU check: the goldens in half precision; per-step time and peak memory of BrushNet and each conductor.

BrushNet at real SD1.5 and SDXL sizes; the conductors (FLUX.1 Fill and Kontext, Qwen-Image-Edit, FLUX.2 klein,
SD inpainting) at their native size.

Skips (exit 0) without a CUDA device; never part of the test suite. One command, one table, its own
timeout (default 450 s, well inside 8 minutes): when the budget runs out it prints what it measured
and exits 124.

    python benchmarks/gpu_check.py                        # goldens fp16/bf16 + speed table + conductors
    python benchmarks/gpu_check.py --shared ../shared     # where the golden fixtures are
    python benchmarks/gpu_check.py --no-compile --sizes 512
    python benchmarks/gpu_check.py --only-conductors --conductors flux2-klein,sd-inpaint
    python benchmarks/gpu_check.py --tiny                 # the conductor rows on tiny models, CPU (checks this script)

Conductors: each transformer (or UNet) and VAE at its real config, random weights in bfloat16 on the GPU
(no downloads), driven through its conductor's own call (`DiffusersConductor.pipeline_call`: guidance
argument, strength, size extras) at the native working size (about 1024**2 pixels; SD1.5 512**2) with random
prompt embeddings of the real width, so the text encoders are not loaded: their weights (T5-XXL 9.5 GB,
Qwen2.5-VL-7B 16.6 GB, Qwen3-4B 8 GB, CLIP 0.25 GB) come on top of the peak shown. Per-step time is the median
step-to-step interval after the first step, at the conductor's default steps (at most `--steps`); peak memory is
`torch.cuda.max_memory_allocated` over the call.

Goldens: the tiny reference fixtures re-run in float16 and bfloat16 on the GPU and compared with the
reference's float32 image, through the CPU tests' own builders (tests/brushedit_inpaint/tiny_parts.py). Tolerances (image in [0, 1]): 2e-2 for float16 (10-bit mantissa) and 5e-2
for bfloat16 (7-bit mantissa); float32 on the GPU must stay within the CPU tests' 1e-3.

Speed: random weights at the real SD1.5 and SDXL configs (no downloads), float16, channels_last,
shared branch, CFG, `--steps` steps; per-step time is the median step-to-step interval after the
first step; peak memory is `torch.cuda.max_memory_allocated`. Compile rows `torch.compile` the UNet
and the branch and report their warm-up (compilation) time separately.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROWS: list[str] = []
DEVICE = "cuda"


def emit(row: str) -> None:
    ROWS.append(row)
    print(row, flush=True)


def _on_timeout(signum, frame):  # pragma: no cover - only on a GPU machine
    print("\n== time budget spent; what was measured:", flush=True)
    for row in ROWS:
        print(row)
    sys.exit(124)


# -- goldens -----------------------------------------------------------------------------------


def _repo_on_path() -> None:
    repo = str(Path(__file__).resolve().parents[1])
    if repo not in sys.path:
        sys.path.insert(0, repo)  # run as `python benchmarks/gpu_check.py`: the folder above holds `tests`


def _golden_builders():
    """The CPU tests' golden loader and builders (tests/brushedit_inpaint/tiny_parts.py), so both run the same pipelines."""
    _repo_on_path()
    from tests.brushedit_inpaint import tiny_parts

    return tiny_parts


def _on_device(kwargs: dict, dtype: torch.dtype) -> dict:
    """A golden call with its embeddings and latents on the device in `dtype`, the mask as uint8."""
    kwargs = {k: v.to(DEVICE, dtype) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    kwargs["mask_image"] = kwargs["mask_image"].astype(np.uint8)
    return kwargs


def check_goldens(shared: Path, dtypes: list[torch.dtype]) -> None:
    limits = {torch.float32: 1e-3, torch.float16: 2e-2, torch.bfloat16: 5e-2}
    tolerance = {dtype: limits[dtype] for dtype in dtypes}
    parts = _golden_builders()
    for family, label in ((parts.SD15, "SD1.5"), (parts.SDXL, "SDXL")):
        folder = shared / "reference" / "golden" / family.golden_dir.name
        if not (folder / "config.json").is_file():
            emit(f"golden {folder.name}: fixture not found at {folder} (pass --shared)")
            continue
        golden = parts.load_golden(folder, folder.name)
        expected = golden["tensors"]["pipe.out_image"].numpy()
        for dtype, limit in tolerance.items():
            pipe = parts.golden_pipeline(family, golden).to(DEVICE, dtype)
            with torch.no_grad():
                out = pipe(**_on_device(parts.golden_kwargs(golden), dtype)).images[0]
            diff = float(np.abs(out.astype(np.float32) - expected).max())
            verdict = "ok" if diff <= limit else "OVER"
            emit(f"golden {label} {str(dtype)[6:]:9s} max|diff| {diff:.2e}"
                 f" (tolerance {limit:.0e}): {verdict}")


# -- speed -------------------------------------------------------------------------------------


def _speed_pipe(family: str):
    from diffusers import AutoencoderKL, UNet2DConditionModel, UniPCMultistepScheduler

    from brushedit_inpaint import (
        BrushNetModel,
        StableDiffusionBrushNetPipeline,
        StableDiffusionXLBrushNetPipeline,
    )
    from brushedit_inpaint.configs import (
        SD15_UNET_CONFIG,
        SD15_VAE_CONFIG,
        SDXL_UNET_CONFIG,
        SDXL_VAE_CONFIG,
    )

    sdxl = family == "SDXL"
    with torch.device("cuda"):
        unet = UNet2DConditionModel(**(SDXL_UNET_CONFIG if sdxl else SD15_UNET_CONFIG))
        vae = AutoencoderKL(**(SDXL_VAE_CONFIG if sdxl else SD15_VAE_CONFIG))
        brushnet = BrushNetModel.from_unet(unet)
    scheduler = UniPCMultistepScheduler(beta_start=0.00085, beta_end=0.012,
                                        beta_schedule="scaled_linear")
    common = {"vae": vae, "unet": unet, "brushnet": brushnet, "scheduler": scheduler}
    if sdxl:
        pipe = StableDiffusionXLBrushNetPipeline(text_encoder=None, text_encoder_2=None,
                                                 tokenizer=None, tokenizer_2=None, **common)
    else:
        pipe = StableDiffusionBrushNetPipeline(text_encoder=None, tokenizer=None, **common)
    pipe.set_progress_bar_config(disable=True)
    pipe.to("cuda", torch.float16)
    for model in (pipe.unet, pipe.brushnet, pipe.vae):
        model.to(memory_format=torch.channels_last)
    if sdxl:
        pipe.vae.to(torch.float32)  # SDXL's VAE overflows in float16 (force_upcast)
    return pipe


def _speed_kwargs(family: str, size: int, steps: int) -> dict:
    generator = torch.Generator("cuda").manual_seed(0)
    dim = 2048 if family == "SDXL" else 768
    embeds = torch.randn((1, 77, dim), generator=generator, device="cuda", dtype=torch.float16)
    rng = np.random.default_rng(0)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    kwargs = {"image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "mask_image": mask,
              "prompt_embeds": embeds, "negative_prompt_embeds": torch.zeros_like(embeds),
              "num_inference_steps": steps, "guidance_scale": 7.5, "output_type": "np",
              "height": size, "width": size}
    if family == "SDXL":
        pooled = torch.randn((1, 1280), generator=generator, device="cuda", dtype=torch.float16)
        kwargs |= {"pooled_prompt_embeds": pooled,
                   "negative_pooled_prompt_embeds": torch.zeros_like(pooled)}
    return kwargs


def _per_step(pipe, kwargs) -> float:
    stamps: list[float] = []

    def on_step_end(_pipe, _i, _t, cb_kwargs):
        torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        return cb_kwargs

    torch.cuda.synchronize()
    pipe(**kwargs, callback_on_step_end=on_step_end, generator=torch.Generator("cuda").manual_seed(1))
    return float(np.median(np.diff(stamps)))


def check_speed(sizes: list[int], steps: int, compile_too: bool) -> None:
    emit(f"{'family':6s} {'size':>5s} {'compile':>8s} {'s/step':>8s} {'warm-up s':>10s} "
         f"{'peak GiB':>9s}")
    for family in ("SD1.5", "SDXL"):
        pipe = _speed_pipe(family)
        plain_unet, plain_branch = pipe.unet, pipe.brushnet
        for compiled in ([False, True] if compile_too else [False]):
            if compiled:
                pipe.unet = torch.compile(plain_unet)
                pipe.brushnet = torch.compile(plain_branch)
            for size in sizes:
                kwargs = _speed_kwargs(family, size, steps)
                torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter()
                with torch.no_grad():
                    pipe(**{**kwargs, "num_inference_steps": 2})  # warm-up (and compilation)
                warm = time.perf_counter() - t0
                with torch.no_grad():
                    per_step = _per_step(pipe, kwargs)
                peak = torch.cuda.max_memory_allocated() / 2**30
                emit(f"{family:6s} {size:5d} {('yes' if compiled else 'no'):>8s} "
                     f"{per_step:8.3f} {warm:10.1f} {peak:9.1f}")
        pipe.unet, pipe.brushnet = plain_unet, plain_branch
        del pipe
        torch.cuda.empty_cache()


# -- conductors --------------------------------------------------------------------------------

CONDUCTOR_CONFIGS = {
    "flux-fill": ("FluxTransformer2DModel", {
        "patch_size": 1, "in_channels": 384, "out_channels": 64, "num_layers": 19,
        "num_single_layers": 38, "attention_head_dim": 128, "num_attention_heads": 24,
        "joint_attention_dim": 4096, "pooled_projection_dim": 768, "guidance_embeds": True,
        "axes_dims_rope": [16, 56, 56]}),
    "flux-kontext": ("FluxTransformer2DModel", {
        "patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38,
        "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
        "pooled_projection_dim": 768, "guidance_embeds": True, "axes_dims_rope": [16, 56, 56]}),
    "qwen-image-edit": ("QwenImageTransformer2DModel", {}),  # diffusers' defaults: the 20B model
    "flux2-klein": ("Flux2TransformerModel", {
        "num_layers": 5, "num_single_layers": 20, "num_attention_heads": 24,
        "joint_attention_dim": 7680, "guidance_embeds": False}),
    "sd-inpaint": ("UNet2DConditionModel", {}),  # SD1.5's UNet with 9 input channels
}  # fmt: skip
"""Real denoiser configs (FLUX.1 [dev] Fill / Kontext, Qwen-Image 20B, FLUX.2 klein 4B, SD1.5 inpainting)."""
FLUX_VAE = {"block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4, "layers_per_block": 2, "latent_channels": 16,
            "scaling_factor": 0.3611, "shift_factor": 0.1159, "use_quant_conv": False,
            "use_post_quant_conv": False}
TEXT_TOKENS = {"flux-fill": 512, "flux-kontext": 512, "qwen-image-edit": 128, "flux2-klein": 512,
               "sd-inpaint": 77}


def _real_conductor_pipe(name: str):
    """The conductor's pipeline at its real size, random bfloat16 weights on the GPU, no text encoders."""
    import diffusers

    from brushedit_inpaint.configs import SD15_UNET_CONFIG, SD15_VAE_CONFIG
    from tools.registry import INPAINTERS

    model_class, config = CONDUCTOR_CONFIGS[name]
    model_class = model_class.replace("Flux2TransformerModel", "Flux2Transformer2DModel")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # build in bfloat16: Qwen-Image in float32 would not fit
    try:
        with torch.device(DEVICE):
            if name == "sd-inpaint":
                parts = {"unet": diffusers.UNet2DConditionModel(**{**SD15_UNET_CONFIG, "in_channels": 9}),
                         "vae": diffusers.AutoencoderKL(**SD15_VAE_CONFIG)}
            else:
                parts = {"transformer": getattr(diffusers, model_class)(**config), "vae": {
                    "qwen-image-edit": lambda: diffusers.AutoencoderKLQwenImage(),
                    "flux2-klein": lambda: diffusers.AutoencoderKLFlux2(),
                }.get(name, lambda: diffusers.AutoencoderKL(**FLUX_VAE))()}
    finally:
        torch.set_default_dtype(previous)
    cls = getattr(diffusers, {"sd-inpaint": "StableDiffusionInpaintPipeline"}.get(
        name, INPAINTERS[name].pipeline_class))
    return cls(**_without_text(cls, parts))


def _without_text(cls, parts: dict) -> dict:
    """`parts` plus None for every text part and the scheduler the pipeline class expects."""
    import inspect

    import diffusers

    kwargs = dict(parts)
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.name in ("self", "kwargs") or param.name in kwargs:
            continue
        if param.name == "scheduler":
            kwargs["scheduler"] = (diffusers.DDIMScheduler(steps_offset=1) if "unet" in parts
                                   else diffusers.FlowMatchEulerDiscreteScheduler())
        elif param.default is inspect.Parameter.empty:
            kwargs[param.name] = None
    if "requires_safety_checker" in inspect.signature(cls.__init__).parameters:
        kwargs["requires_safety_checker"] = False
    return kwargs


def _prompt_embeddings(name: str, pipe, tokens: int, generator) -> dict:
    """Random prompt embeddings of the width the denoiser reads, in place of the text encoders."""
    dtype = pipe.dtype
    if name == "sd-inpaint":
        width = pipe.unet.config.cross_attention_dim
    else:
        width = pipe.transformer.config.joint_attention_dim
    shape = (1, tokens, width)

    def draw(*size):
        return torch.randn(size, generator=generator, dtype=torch.float32).to(DEVICE, dtype)

    embeds = {"prompt_embeds": draw(*shape)}
    if name in ("flux-fill", "flux-kontext"):
        embeds["pooled_prompt_embeds"] = draw(1, pipe.transformer.config.pooled_projection_dim)
    if name == "qwen-image-edit":
        ones = torch.ones((1, tokens), dtype=torch.long, device=DEVICE)
        embeds |= {"prompt_embeds_mask": ones, "negative_prompt_embeds": draw(*shape),
                   "negative_prompt_embeds_mask": ones}
    if name == "sd-inpaint":
        embeds["negative_prompt_embeds"] = draw(*shape)
    return embeds


def _conductor_kwargs(conductor, name: str, steps: int, tokens: int) -> dict:
    """The call the conductor makes for a local edit at its native size, prompts as embeddings."""
    from PIL import Image

    from tools.conductors import frame_edit, resolve_knobs
    from tools.inpainter import InpaintRequest
    from tools.types import EditCategory, EditOptions

    side = conductor.working_side
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), "RGB")
    mask = np.zeros((side, side), np.uint8)
    mask[side // 4: 3 * side // 4, side // 4: 3 * side // 4] = 255
    options = EditOptions(steps=steps)
    request = InpaintRequest(image=image, mask=mask, prompt="", category=EditCategory.LOCAL,
                             options=options, seed=0, negative_prompt="")
    knobs = resolve_knobs(conductor.spec(), options, 0, "")
    framing = frame_edit(image.size, mask, side=side, multiple=conductor.size_multiple,
                         min_side=conductor.min_side)
    kwargs = conductor.pipeline_call(image, Image.fromarray(mask, "L"), request, knobs,
                                     framing.working_size)
    for text in ("prompt", "negative_prompt"):
        kwargs.pop(text, None)
    generator = torch.Generator("cpu").manual_seed(0)
    return {**kwargs, **_prompt_embeddings(name, conductor.pipeline, tokens, generator),
            "num_inference_steps": steps, "generator": generator, "output_type": "np"}


def check_conductors(names: list[str], max_steps: int, tiny: bool) -> None:
    """One row per conductor: working size, steps, per-step time, peak memory (GPU) or RSS (tiny)."""
    from tools.conductors import CONDUCTORS
    from tools.registry import INPAINTERS

    emit(f"{'conductor':16s} {'size':>9s} {'steps':>5s} {'s/step':>8s} {'total s':>8s} {'peak GiB':>9s}")
    root = Path(tempfile.mkdtemp(prefix="tiny-conductors-")) if tiny else None
    for name in names:
        steps = min(INPAINTERS[name].default_steps, max_steps)
        if tiny:
            from tests.tools.conductor_parts import TINY_BUILDERS

            pipe, side = TINY_BUILDERS[name](root / name), 64
        else:
            pipe, side = _real_conductor_pipe(name), None
        pipe.set_progress_bar_config(disable=True)
        conductor = CONDUCTORS[name](pipe, working_side=side)
        kwargs = _conductor_kwargs(conductor, name, steps, 16 if tiny else TEXT_TOKENS[name])
        _reset_peak()
        started = time.perf_counter()
        per_step = _timed_steps(pipe, kwargs)
        total = time.perf_counter() - started
        size = "x".join(str(v) for v in (kwargs["width"], kwargs["height"]))
        emit(f"{name:16s} {size:>9s} {steps:5d} {per_step:8.3f} {total:8.1f} {_peak_gib():9.1f}")
        del conductor, pipe, kwargs
        if DEVICE == "cuda":
            torch.cuda.empty_cache()


def _timed_steps(pipe, kwargs) -> float:
    """Run once; the median step-to-step interval (the first step, with the VAE encode, left out)."""
    stamps: list[float] = []

    def on_step_end(_pipe, _i, _t, cb_kwargs):
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        return cb_kwargs

    with torch.inference_mode():
        pipe(**kwargs, callback_on_step_end=on_step_end)
    return float(np.median(np.diff(stamps))) if len(stamps) > 1 else float("nan")


def _reset_peak() -> None:
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float:
    if DEVICE == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process peak RSS (KiB -> GiB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared",
                        help="folder holding reference/golden/ (default: ../shared)")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[512, 1024])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--timeout", type=int, default=450, help="seconds before giving up")
    parser.add_argument("--cpu-goldens", action="store_true",
                        help="only re-run the goldens in float32 on the CPU (checks this script)")
    parser.add_argument("--conductors", type=lambda s: s.split(","), default=None,
                        help="conductors to time (default: all of tools.registry.CONDUCTOR_NAMES)")
    parser.add_argument("--only-conductors", action="store_true",
                        help="skip the goldens and the BrushNet speed table")
    parser.add_argument("--tiny", action="store_true",
                        help="time the conductors on tiny models on the CPU (checks this script)")
    args = parser.parse_args()
    _repo_on_path()
    from tools.registry import CONDUCTOR_NAMES

    names = args.conductors or list(CONDUCTOR_NAMES)
    unknown = sorted(set(names) - set(CONDUCTOR_NAMES))
    if unknown:
        parser.error(f"unknown conductor(s) {', '.join(unknown)}; choose from {', '.join(CONDUCTOR_NAMES)}")
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # the dtype-cast notes are about fp16 upcasting
    global DEVICE
    if args.cpu_goldens or args.tiny:
        DEVICE = "cpu"
        if args.tiny:
            torch.set_num_threads(min(4, torch.get_num_threads()))
            check_conductors(names, args.steps, tiny=True)
        else:
            check_goldens(args.shared, [torch.float32])
        return
    if not torch.cuda.is_available():
        print("no CUDA device: gpu_check skipped")
        return
    signal.signal(signal.SIGALRM, _on_timeout)
    signal.alarm(args.timeout)
    emit(f"device {torch.cuda.get_device_name()}, torch {torch.__version__}")
    if not args.only_conductors:
        check_goldens(args.shared, [torch.float32, torch.float16, torch.bfloat16])
        check_speed(args.sizes, args.steps, not args.no_compile)
    check_conductors(names, args.steps, tiny=False)
    signal.alarm(0)


if __name__ == "__main__":
    main()
