"""`brushedit doctor`: what is installed, reachable and cached, and how to fix what is not.

The weight checks are the engine's own (`graphs.weights`, run before a model loads); this module
adds torch and the Ollama server and prints the report. Nothing here downloads.
"""

from __future__ import annotations

import importlib.util

from graphs.settings import Settings
from graphs.weights import Check, inpainter_weight_checks, segmenter_weight_checks
from interfaces.terminal import console as terminal_console
from interfaces.terminal import markup, plain

TORCH_SPEC = "torch==2.13.0"


def run_checks(settings: Settings) -> list[Check]:
    return [
        check_torch(settings),
        *check_ollama(settings.ollama_host, settings.ollama_model),
        *inpainter_weight_checks(settings, family=True),
        *segmenter_weight_checks(settings),
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
    """The server and the model, through the agents' own probe (`OllamaVLM.check`)."""
    from agents.vlm import OllamaVLM

    status = OllamaVLM(model=model, host=host, timeout=3.0).check()
    server = Check("Ollama server", status.reachable, status.error or f"answers at {host}")
    label = f"Ollama model {model}"
    if not status.reachable:
        server.detail, server.fix = status.error or "no answer", status.fix
        return [server, Check(label, False, "unknown: server not reachable", f"ollama pull {model}")]
    if status.ok:
        caps = f"; capabilities: {', '.join(status.capabilities)}" if status.capabilities else ""
        return [server, Check(label, True, f"pulled{caps}")]
    return [server, Check(label, False, status.error or "not usable", status.fix)]


def print_json(checks: list[Check]) -> None:
    """The checks as one JSON object on stdout: `ok` (everything in place) and each check."""
    import json
    import sys

    report = {"ok": all(c.ok for c in checks),
              "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix}
                         for c in checks]}
    sys.stdout.write(json.dumps(report) + "\n")


def print_report(checks: list[Check]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="brushedit doctor", show_lines=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail")

    for check in checks:  # details may quote a server's answer: printed as text, never markup
        table.add_row(markup(check.name), "[green]ok[/]" if check.ok else "[red]missing[/]",
                      markup(check.detail))
    console = Console(width=120) if Console().is_terminal else terminal_console()
    console.print(table)
    fixes = [c for c in checks if not c.ok and c.fix]
    if fixes:
        console.print("To fix:")
        for check in fixes:
            console.print(f"  {plain(check.name)}: {plain(check.fix)}", markup=False,
                          highlight=False)
    else:
        console.print("Everything is in place.")
