"""`brushedit doctor`: what is installed, reachable and cached, and how to fix what is not.

Nothing here downloads: Hub ids are looked up in the local Hugging Face cache only.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from graphs.settings import Settings

TORCH_SPEC = "torch==2.13.0"


@dataclass
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


def run_checks(settings: Settings) -> list[Check]:
    return [
        check_torch(settings),
        *check_ollama(settings.ollama_host, settings.ollama_model),
        check_weights("SD1.5 base", settings.base_model, "BRUSHEDIT_BASE_MODEL", "model_index.json"),
        check_weights(
            "BrushNet", settings.brushnet, "BRUSHEDIT_BRUSHNET", "config.json",
            subfolder=settings.brushnet_subfolder,
        ),
        check_weights("GroundingDINO", settings.detector, "BRUSHEDIT_DETECTOR", "config.json"),
        check_weights("SAM", settings.sam, "BRUSHEDIT_SAM", "config.json"),
    ]


def check_torch(settings: Settings) -> Check:
    if importlib.util.find_spec("torch") is None:
        return Check("torch", False, "not installed", f"pip install '{TORCH_SPEC}'")
    import torch

    device = settings.resolved_device()
    dtype = settings.resolved_dtype(device)
    build = "CUDA " + str(torch.version.cuda) if torch.version.cuda else "CPU"
    return Check("torch", True, f"{torch.__version__} ({build} build); device {device}, {dtype}")


def check_ollama(host: str, model: str) -> list[Check]:
    import httpx

    try:
        tags = httpx.get(f"{host}/api/tags", timeout=3.0)
        tags.raise_for_status()
        names = {m.get("name") for m in tags.json().get("models", [])}
    except (httpx.HTTPError, ValueError) as exc:
        reason = type(exc).__name__ if not str(exc) else str(exc).splitlines()[0]
        return [
            Check(
                "Ollama server", False, f"no answer at {host} ({reason})",
                "start it with `ollama serve` (or set OLLAMA_HOST / BRUSHEDIT_OLLAMA_HOST)",
            ),
            Check(f"Ollama model {model}", False, "unknown: server not reachable",
                  f"ollama pull {model}"),
        ]
    server = Check("Ollama server", True, f"answers at {host}")
    wanted = {model, model if ":" in model else f"{model}:latest"}
    if not names & wanted:
        return [server, Check(f"Ollama model {model}", False, "not pulled", f"ollama pull {model}")]
    detail = "pulled"
    try:
        shown = httpx.post(f"{host}/api/show", json={"model": model}, timeout=3.0).json()
        capabilities = shown.get("capabilities") or []
        if capabilities and "vision" not in capabilities:
            return [server, Check(
                f"Ollama model {model}", False, f"pulled, but has no vision capability ({capabilities})",
                "choose a vision model, e.g. BRUSHEDIT_OLLAMA_MODEL=qwen2.5vl:7b",
            )]
        if capabilities:
            detail = f"pulled; capabilities: {', '.join(capabilities)}"
    except (httpx.HTTPError, ValueError):
        pass
    return [server, Check(f"Ollama model {model}", True, detail)]


def check_weights(
    label: str, source: str, env: str, marker: str, subfolder: str | None = None
) -> Check:
    """A local path must hold the weights; a Hub id must be in the local cache."""
    path = Path(source).expanduser()
    if path.exists() or source.startswith((".", "/", "~")):
        folder = path / subfolder if subfolder and path.is_dir() else path
        if folder.is_file() and folder.suffix in (".safetensors", ".ckpt", ".bin", ".pth"):
            return Check(label, True, f"single file {folder}")
        if (folder / marker).is_file():
            return Check(label, True, f"local folder {folder}")
        return Check(
            label, False, f"{folder} has no {marker}",
            f"point {env} at a folder in diffusers/transformers format",
        )
    from huggingface_hub import try_to_load_from_cache

    filename = f"{subfolder}/{marker}" if subfolder else marker
    try:
        cached = try_to_load_from_cache(source, filename)
    except Exception as exc:
        return Check(label, False, f"{source!r} is not a Hub id or path ({exc})", f"fix {env}")
    if isinstance(cached, str):
        return Check(label, True, f"{source} in the local cache")
    include = f" --include '{subfolder}/*'" if subfolder else ""
    return Check(
        label, False, f"{source} not in the local cache",
        f"hf download {source}{include}   (or set {env} to a local folder)",
    )


def print_report(checks: list[Check]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="brushedit doctor", show_lines=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail")
    for check in checks:
        table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]missing[/]", check.detail)
    console = Console(width=120)
    console.print(table)
    fixes = [c for c in checks if not c.ok and c.fix]
    if fixes:
        console.print("To fix:")
        for check in fixes:
            console.print(f"  {check.name}: {check.fix}", markup=False, highlight=False)
    else:
        console.print("Everything is in place.")
