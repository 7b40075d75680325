"""Are a model's weights on this machine? The checks loading runs before it tries, and doctor shows.

Nothing here downloads: Hub ids are looked up in the local Hugging Face cache only. A model
that is not on disk fails at once with the fix (`missing_weights_error`), instead of spending
half a minute retrying the Hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphs.settings import Settings
from tools.errors import ModelLoadError


@dataclass
class Check:
    """One line of the report.

    `inpainter` names the inpainter the row is needed by (the doctor says which are usable);
    an `optional` row that fails is an extra not installed (a conductor left at its default
    weights), which `brushedit doctor --strict` does not count against the setup.
    """

    name: str
    ok: bool
    detail: str
    fix: str | None = None
    inpainter: str | None = None
    optional: bool = False


def inpainter_weight_checks(settings: Settings, family: bool = False) -> list[Check]:
    """The base model and the BrushNet branch, as the BrushNet inpainter loads them (and, with
    `family`, whether the two are of one model family: SD1.5 or SDXL)."""
    base = check_weights(
        "Base model", settings.base_model, "BRUSHEDIT_BASE_MODEL", "model_index.json"
    )
    brushnet = check_weights(
        "BrushNet", settings.brushnet, "BRUSHEDIT_BRUSHNET", "config.json",
        subfolder=settings.brushnet_subfolder,
    )
    pair = check_family(settings) if family and base.ok and brushnet.ok else None
    checks = [base, brushnet, *([pair] if pair else [])]
    for check in checks:
        check.inpainter = "brushnet"
    return checks


def conductor_weight_checks(settings: Settings) -> list[Check]:
    """One row per diffusers conductor (`tools.registry.CONDUCTOR_NAMES`): its weights found or
    not (from the local cache only: `tools.conductors.weights_status`), its family, the dtype
    and device it would run in, and the fix. A conductor left at its default repository and not
    downloaded is optional; one whose `BRUSHEDIT_<NAME>_MODEL` was set but is unusable is not."""
    from tools.conductors.loading import weights_status
    from tools.registry import CONDUCTOR_NAMES, INPAINTERS

    device = _device(settings)
    runs = f"{settings.conductor_dtype(device)} on {device}" + (
        f", {settings.conductor_offload} offload" if settings.conductor_offload != "none" else "")
    checks = []
    for name in CONDUCTOR_NAMES:
        spec = INPAINTERS[name]
        model = settings.conductor_model(name)
        status = weights_status(name, model)
        if status.found:
            detail = f"{spec.family}: {status.detail} ({status.pipeline_class}); {runs}"
            fix = None
        else:
            detail = f"{spec.family}: {_reason(status.detail)}"
            fix = _conductor_fix(spec, status)
        checks.append(Check(f"Conductor {name}", status.found, detail, fix, inpainter=name,
                            optional=not status.found and model == spec.default_model))
    return checks


def _device(settings: Settings) -> str:
    """The device models would load on (the CPU where torch is missing: the torch row says so)."""
    try:
        return settings.resolved_device()
    except ImportError:
        return "cpu"


def _reason(detail: str) -> str:
    """A conductor's load error as a doctor cell: what is wrong, not the conductor's name again."""
    text = " ".join(detail.split()).rstrip(".")
    for lead in ("The ", "the "):
        if text.startswith(lead) and " conductor" in text[:40]:
            text = text.split(" conductor", 1)[1].lstrip("'s ").strip()
    return text.split("; fetch them")[0]


def _conductor_fix(spec: Any, status: Any) -> str:
    """The command that fetches a conductor's weights and the setting that names them."""
    if status.fix:
        gated = "`hf auth login` and accept its licence on the Hub, then " if spec.gated else ""
        return f"{gated}{status.fix}, then set {spec.model_env} to that folder"
    if status.pipeline_class:
        return (f"point {spec.model_env} at a {spec.pipeline_class} checkpoint (a folder, Hub "
                "id or single file)")
    return f"point {spec.model_env} at a diffusers folder written by save_pretrained, or a Hub id"


def usable_inpainters(checks: list[Check]) -> list[str]:
    """The inpainters whose every row passed (the weightless fill always), in registry order."""
    from tools.registry import INPAINTERS

    failed = {c.inpainter for c in checks if c.inpainter and not c.ok}
    needed = {c.inpainter for c in checks if c.inpainter}
    return [name for name, spec in INPAINTERS.items()
            if (not spec.needs_weights or name in needed) and name not in failed]


def segmenter_weight_checks(settings: Settings) -> list[Check]:
    """GroundingDINO and SAM, as the grounded segmenter loads them."""
    return [
        check_weights("GroundingDINO", settings.detector, "BRUSHEDIT_DETECTOR", "config.json"),
        check_weights("SAM", settings.sam, "BRUSHEDIT_SAM", "config.json"),
    ]


def missing_weights_error(checks: list[Check], what: str, *, inpainter: str | None = None,
                          segmenter: bool = False) -> ModelLoadError | None:
    """One sentence naming every missing piece and its fix, or None when all are in place.

    Loading a model that is not on disk would otherwise spend half a minute retrying the Hub
    before failing; this check answers at once, from the local cache only. `inpainter` and
    `segmenter` say whose weights are missing (the error's typed fields).
    """
    missing = [check for check in checks if not check.ok]
    if not missing:
        return None
    summary = f"the {what} cannot load, its weights are not on this machine"
    parts = "; ".join(f"{c.name}: {c.detail} (fix: {c.fix})" for c in missing)
    return ModelLoadError(
        f"{summary}. {parts}. `brushedit doctor` lists everything; set "
        "BRUSHEDIT_ALLOW_DOWNLOADS=1 to let models download on first use.",
        inpainter=inpainter, segmenter=segmenter, summary=summary,
    )


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


def check_family(settings: Settings) -> Check | None:
    """SD1.5 or SDXL, read from the base's and the BrushNet's configs (no weights loaded); they must match.

    None when a config cannot be read here (the weight checks above already say what is missing).
    """
    from brushedit_inpaint.families import (
        A_FAMILY,
        FAMILY_NAMES,
        BrushNetLoadError,
        base_family,
        brushnet_family,
    )

    try:
        base = base_family(settings.base_model, local_files_only=True)
        branch = brushnet_family(_brushnet_config(settings.brushnet, settings.brushnet_subfolder))
    except (BrushNetLoadError, OSError, ValueError):
        return None
    if base != branch:
        return Check(
            "Model family", False,
            f"{FAMILY_NAMES[base]} base with {A_FAMILY[branch]} BrushNet: they cannot be paired",
            f"point BRUSHEDIT_BRUSHNET at {A_FAMILY[base]} BrushNet or "
            f"BRUSHEDIT_BASE_MODEL at {A_FAMILY[branch]} base",
        )
    if base == "sdxl":
        detail = (
            f"SDXL base and BrushNet; edits run at about {settings.sdxl_working_side} px "
            "squared (BRUSHEDIT_SDXL_WORKING_SIDE); fp16 needs an fp16-fixed VAE or upcasts it"
        )
    else:
        detail = "Stable Diffusion 1.5 base and BrushNet; edits run at the image's size"
    return Check("Model family", True, detail)


def _brushnet_config(source: str, subfolder: str | None) -> dict:
    """The BrushNet's config.json from a local folder or the local Hugging Face cache."""
    import json

    path = Path(source).expanduser()
    if path.exists():
        return json.loads(((path / subfolder if subfolder else path) / "config.json").read_text())
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source, f"{subfolder}/config.json" if subfolder else "config.json")
    if not isinstance(cached, str):
        raise OSError(f"{source} is not in the local cache")
    return json.loads(Path(cached).read_text())
