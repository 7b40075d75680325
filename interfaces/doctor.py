"""`brushedit doctor`: what is installed, reachable and cached, and how to fix what is not.

The weight checks are the engine's own (`graphs.weights`, run before a model loads); this module
adds torch and the VLM's server (Ollama, or the OpenAI-compatible server at `BRUSHEDIT_VLM_URL`):
which kind and address answered, whether it has the model, the model's family and whether it can
see, each with its fix. Nothing here downloads.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from agents.families import DEFAULT_OLLAMA_MODEL
from graphs.settings import Settings
from graphs.weights import Check, inpainter_weight_checks, segmenter_weight_checks
from interfaces.terminal import markup, plain

TORCH_SPEC = "torch==2.13.0"
BOX_WORDS = {"resized_pixels": "in pixels of its resized input", "grid_1000": "on a 0-1000 grid",
             "box_tag_1000": "as <box> tags on 0-1000",
             "padded_square_1": "as 0-1 of the picture padded to a square"}
"""How each family's box rule (`agents.families.BoxConvention`) reads in the report."""


def run_checks(settings: Settings) -> list[Check]:
    return [
        check_torch(settings),
        *check_vlm(settings),
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


def check_vlm(settings: Settings) -> list[Check]:
    """The configured VLM (`graphs.vlm_setup.build_vlm`), asked with a short deadline."""
    from graphs.vlm_setup import build_vlm

    return vlm_checks(build_vlm(settings, timeout=3.0))


def check_ollama(host: str, model: str) -> list[Check]:
    """An Ollama server and model (the agents' own probe, `OllamaVLM.check`)."""
    from agents.vlm import OllamaVLM

    return vlm_checks(OllamaVLM(model=model, host=host, timeout=3.0))


def vlm_checks(vlm: Any) -> list[Check]:
    """Three rows from `vlm.check()`: the server (kind, address), the model (there or not, its
    capabilities) and its family (box rule, grounding, vision, thinking)."""
    from agents.errors import server_name

    status = vlm.check()
    ollama = status.server == "ollama"
    where = server_name(status.server)
    server = Check(where, status.reachable, status.error or f"answers at {status.url}"
                   + (f" (Ollama {status.version})" if status.version else ""))
    label = f"{'Ollama' if ollama else 'VLM'} model {status.model}"
    if not status.reachable:
        server.fix = status.fix
        pull = f"ollama pull {status.model}" if ollama else \
            "serve a vision model there (e.g. `vllm serve Qwen/Qwen3-VL-8B-Instruct`)"
        model = Check(label, False, f"unknown: the {where} does not answer", pull)
    elif status.ok:
        caps = f"; capabilities: {', '.join(status.capabilities)}" if status.capabilities else ""
        model = Check(label, True, ("pulled" if ollama else "served") + caps)
    else:
        fix = status.fix
        if not ollama and not status.model_present:
            fix = ("set BRUSHEDIT_VLM_MODEL (or --vlm-model) to one of: "
                   f"{', '.join(status.available_models) or '(none listed)'}")
        model = Check(label, False, status.error or "not usable", fix)
    return [server, model, _family_check(vlm, status)]


def _family_check(vlm: Any, status: Any) -> Check:
    """What the agents will do with the model's answers: its family (how its boxes are read),
    whether it can point at places at all, think, and see. Missing only when it cannot see."""
    from agents.families import bare_model_name, resolve_family

    match = status.family or resolve_family(
        bare_model_name(vlm.model_id), None, getattr(vlm, "family_override", None))
    family = match.family
    vision = {True: "sees images", False: "cannot see images",
              None: "vision not listed by the server"}[status.vision]
    if status.vision_probed:
        vision += " (it took a test picture)" if status.vision else " (it refused a test picture)"
    if match.heuristic:
        boxes = ("unknown family: its boxes are read by heuristics (name it with "
                 "BRUSHEDIT_VLM_FAMILY: qwen2.5-vl, qwen3-vl, minicpm-v, llava...)")
    elif family.grounding == "none":
        boxes = ("cannot point at places: an addition needs a mask or a thing named to put it "
                 f"by (a model that points: {DEFAULT_OLLAMA_MODEL})")
    else:
        boxes = f"boxes {BOX_WORDS.get(family.box.value, family.box.value)}, grounding " \
                f"{family.grounding}"
    thinks = "; thinks" if match.thinks else ""
    return Check("VLM family", status.vision is not False,
                 f"{family.label}, by {match.evidence}; {vision}; {boxes}{thinks}")


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
    console = Console(width=120)
    console.print(table)
    fixes = [c for c in checks if not c.ok and c.fix]
    if fixes:
        console.print("To fix:")
        for check in fixes:
            console.print(f"  {plain(check.name)}: {plain(check.fix)}", markup=False,
                          highlight=False)
    else:
        console.print("Everything is in place.")
