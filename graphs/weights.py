"""Are a model's weights on this machine? The checks loading runs before it tries, and doctor shows.

Nothing here downloads: Hub ids are looked up in the local Hugging Face cache only. A model
that is not on disk fails at once with the fix (`missing_weights_error`), instead of spending
half a minute retrying the Hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from graphs.settings import Settings
from tools.errors import ModelLoadError


@dataclass
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


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
    return [base, brushnet, *([pair] if pair else [])]


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
