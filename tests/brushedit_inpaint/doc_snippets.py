"""Run the docs' Python snippets as written, on tiny models at the paths and Hub ids the snippets name.

The mechanism (docs/inpainting.md states it): every ```python block of `docs/inpainting.md`, and those of the
README's BrushNet section, runs verbatim, top to bottom as one script per document, in a fresh Python process whose

- working directory holds tiny models and images at the relative paths the snippets name (`models/sd15`,
  `loras/watercolor_sd15.safetensors`, `photo.png`, ...), and whose
- Hugging Face cache (`HF_HUB_CACHE`, with `HF_HUB_OFFLINE=1`) holds tiny models under the Hub ids they name
  (`TencentARC/BrushEdit`, `stabilityai/stable-diffusion-xl-base-1.0`, ...), in the Hub cache's own layout.

Nothing in a snippet is substituted: a docs edit that names a new path or Hub id needs an entry in `write_models`.

    python -m tests.brushedit_inpaint.doc_snippets ROOT OUT.json

(with `snippet_environment(ROOT)` set) writes the models under ROOT, runs the snippets with ROOT/work as the working directory and records each snippet's
result (ok, or its traceback) in OUT.json.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = (("docs/inpainting.md", None), ("README.md", "## BrushNet on a GPU"))
"""The documents whose Python snippets run, each with the `## ` section it is limited to (None: all of it)."""

_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Snippet:
    doc: str  # path relative to the repository
    line: int  # line of the opening fence
    heading: str  # the closest heading above it
    code: str

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def python_snippets(doc: str, section: str | None = None) -> list[Snippet]:
    """The ```python blocks of `doc` (of its `section` only, when given), in order."""
    text = (REPO / doc).read_text(encoding="utf-8")
    start, end = 0, len(text)
    if section is not None:
        start = text.index(section)
        following = text.find("\n## ", start + len(section))
        end = following if following != -1 else len(text)
    # headings outside code blocks only (blanked out, offsets kept)
    prose = _FENCED.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    snippets = []
    for match in _FENCE.finditer(text, start, end):
        headings = re.findall(r"^#+ .*$", prose[: match.start()], re.MULTILINE)
        line = text.count("\n", 0, match.start()) + 1
        snippets.append(Snippet(doc, line, headings[-1] if headings else "", match.group(1)))
    return snippets


def all_snippets() -> list[Snippet]:
    return [snippet for doc, section in DOCS for snippet in python_snippets(doc, section)]


def snippet_environment(root: Path) -> dict[str, str]:
    """The environment variables of the snippet process: its own offline Hugging Face home and cache."""
    return {
        "HF_HOME": str(root / "hf_home"),  # trust_remote_code copies pipeline files under HF_HOME/modules
        "HF_HUB_CACHE": str(root / "hub"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }


# -- the tiny models ---------------------------------------------------------------------------------------------


def hub_snapshot(cache: Path, repo_id: str) -> Path:
    """A snapshot folder of `repo_id` in the Hub cache layout (`models--org--name/snapshots/<commit>`, `refs/main`)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def _images(work: Path) -> None:
    import numpy as np
    from PIL import Image

    from .tiny_parts import image_and_mask

    photo, mask = image_and_mask(32, 32, seed=1)
    Image.fromarray(photo).save(work / "photo.png")
    Image.fromarray(photo).save(work / "photo.jpg")
    Image.fromarray(mask).save(work / "mask.png")
    reference, _ = image_and_mask(40, 40, seed=2)
    Image.fromarray(reference).save(work / "reference.png")
    large = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)  # the "4000x3000" photo
    large_mask = np.zeros((120, 160), dtype=np.uint8)
    large_mask[50:62, 100:120] = 255
    Image.fromarray(large).save(work / "IMG_4000x3000.jpg")
    Image.fromarray(large_mask).save(work / "IMG_4000x3000_mask.png")


def _loras(work: Path, hub: Path, scratch: Path) -> None:
    import shutil

    from .test_toolbox import _tiny_lora
    from .tiny_parts import SD15, SDXL

    sd15 = _tiny_lora(scratch / "sd15", SD15) / "pytorch_lora_weights.safetensors"
    (work / "loras").mkdir()
    shutil.copy(sd15, work / "loras" / "watercolor_sd15.safetensors")
    shutil.copy(sd15, hub_snapshot(hub, "latent-consistency/lcm-lora-sdv1-5") / sd15.name)
    sdxl = _tiny_lora(scratch / "sdxl", SDXL) / "pytorch_lora_weights.safetensors"
    shutil.copy(sdxl, hub_snapshot(hub, "h1t/TCD-SDXL-LoRA") / sdxl.name)


def _sd15(work: Path, hub: Path, scratch: Path) -> None:
    import shutil

    import torch
    from safetensors.torch import save_file

    from .single_file_parts import released_like_brushnet, save_sd15_single_file
    from .test_toolbox import _tiny_ip_adapter
    from .tiny_parts import SD15, family_models, save_tiny_base, sd15_text

    models = work / "models"
    brushnet = save_tiny_base(SD15, models / "sd15")
    for name in ("realisticVisionV60B1_v51VAE", "stable-diffusion-v1-5"):
        shutil.copytree(models / "sd15", models / name)
    brushnet.save_pretrained(hub_snapshot(hub, "TencentARC/BrushEdit") / "brushnetX")
    brushnet.save_pretrained(models / "brushedit" / "brushnetX")
    save_file(brushnet.state_dict(), models / "brushnetX.safetensors")
    save_file(released_like_brushnet().state_dict(), models / "random_mask_brushnet.safetensors")
    unet, vae, _ = family_models(SD15, seed=1)
    text = sd15_text(scratch / "tok")
    save_sd15_single_file(models / "realisticVisionV60B1_v51VAE.safetensors", unet, vae, text["text_encoder"])
    save_file(
        {"<cat-toy>": torch.randn(16, generator=torch.Generator().manual_seed(4))},
        hub_snapshot(hub, "sd-concepts-library/cat-toy") / "learned_embeds.safetensors",
    )
    ip_adapter = hub_snapshot(hub, "h94/IP-Adapter") / "models"
    ip_adapter.mkdir()
    _tiny_ip_adapter(unet, ip_adapter)
    (ip_adapter / "ip-adapter.safetensors").rename(ip_adapter / "ip-adapter_sd15.safetensors")


def _sdxl(work: Path, hub: Path) -> None:
    from diffusers import AutoencoderKL

    from .tiny_parts import SDXL, TINY_SDXL_VAE, save_tiny_base

    brushnet = save_tiny_base(SDXL, hub_snapshot(hub, "stabilityai/stable-diffusion-xl-base-1.0"))
    brushnet.save_pretrained(work / "models" / "brushnet_ckpt" / "segmentation_mask_brushnet_ckpt_sdxl_v1")
    vae = AutoencoderKL(**{**TINY_SDXL_VAE, "force_upcast": False})
    vae.save_pretrained(hub_snapshot(hub, "madebyollin/sdxl-vae-fp16-fix"))


def write_models(root: Path) -> Path:
    """Write every model, image and Hub repo the snippets name under `root`; return the working directory."""
    work, hub, scratch = root / "work", root / "hub", root / "scratch"
    for folder in (work, hub, scratch):
        folder.mkdir(parents=True, exist_ok=True)
    _images(work)
    _loras(work, hub, scratch)
    _sd15(work, hub, scratch)
    _sdxl(work, hub)
    return work


# -- running -------------------------------------------------------------------------------------------------------


def run_document(snippets: list[Snippet]) -> list[dict]:
    """Execute `snippets` in order in one namespace (as a reader runs the page); one result per snippet."""
    namespace: dict = {"__name__": "__main__"}
    results = []
    for snippet in snippets:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            exec(compile(snippet.code, snippet.id, "exec"), namespace)  # the docs' own code
            error = None
        except Exception:  # every failure is reported, and the page goes on like a notebook
            error = traceback.format_exc()
        results.append(
            {**asdict(snippet), "id": snippet.id, "ok": error is None, "error": error,
             "seconds": round(time.perf_counter() - started, 2), "cpu_seconds": round(time.process_time() - cpu, 2)}
        )  # fmt: skip
    return results


def main(argv: list[str]) -> None:
    root, out = Path(argv[0]), Path(argv[1])
    work = write_models(root)
    os.chdir(work)
    results = []
    for doc, section in DOCS:
        results.extend(run_document(python_snippets(doc, section)))
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    import torch

    # Tiny models gain nothing from intra-op threads, and on a shared machine idle-spinning threads slow them down
    # many times over.
    torch.set_num_threads(1)
    main(sys.argv[1:])
