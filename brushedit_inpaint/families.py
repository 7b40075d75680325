# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""Which model family (Stable Diffusion 1.5 or SDXL) a base or a BrushNet belongs to, from configs and key names.

Light on purpose (json and safetensors' header reader; torch only for `.ckpt` files), so `brushedit doctor` can
tell the family of the configured weights without loading them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

_SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")
Family = Literal["sd15", "sdxl"]
FAMILY_NAMES = {"sd15": "Stable Diffusion 1.5", "sdxl": "SDXL"}
A_FAMILY = {"sd15": "a Stable Diffusion 1.5", "sdxl": "an SDXL"}
"""The family's name with its indefinite article, for messages."""
# Key prefixes only an SDXL original-format checkpoint has (second text encoder; the UNet's text_time embedding).
_SDXL_SINGLE_FILE_KEYS = ("conditioner.embedders.1.", "model.diffusion_model.label_emb.")


class BrushNetLoadError(ValueError):
    """A base model or BrushNet checkpoint is missing or does not fit this pipeline; the message says why."""


def _looks_like_path(name: str) -> bool:
    """Hub ids are `owner/name`; anything absolute, relative-dotted, deeper or with a file suffix is a path."""
    if os.path.isabs(name) or name.startswith((".", "~")) or name.endswith(_SINGLE_FILE_SUFFIXES):
        return True
    return name.count("/") > 1 or "\\" in name


def brushnet_family(config: Any) -> Family:
    """`"sdxl"` for a BrushNet with SDXL's `text_time` embedding (or SDXL's 2048-wide text), else `"sd15"`."""
    if (
        config.get("addition_embed_type") == "text_time"
        or config.get("cross_attention_dim") == 2048
    ):
        return "sdxl"
    return "sd15"


def base_family(base: str, local_files_only: bool = False) -> Family:
    r"""
    Whether `base` is a Stable Diffusion 1.5 or an SDXL base, from its config alone (no weights are loaded).

    Args:
        base (`str`): A Hub id, a diffusers folder (`model_index.json`, `unet/config.json`) or a single
            `.safetensors`/`.ckpt` file (its key names: SDXL has a second text encoder and a `label_emb`).
        local_files_only (`bool`, defaults to `False`): Only look in the local Hugging Face cache for Hub ids.

    Raises:
        BrushNetLoadError: the base cannot be found or read.
    """
    path = Path(base).expanduser()
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise BrushNetLoadError(
            f"Base model path {base} is not a regular file or folder (a device, FIFO or socket)."
        )
    if path.is_file():
        return (
            "sdxl"
            if any(k.startswith(_SDXL_SINGLE_FILE_KEYS) for k in _checkpoint_keys(path))
            else "sd15"
        )
    if path.is_dir():
        unet_config = path / "unet" / "config.json"
        index = path / "model_index.json"
        if not index.is_file():
            raise BrushNetLoadError(
                f"Base model folder {base} has no model_index.json: expected a diffusers-format Stable Diffusion "
                "folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/)."
            )
        if unet_config.is_file():
            return _unet_family(_read_json(unet_config))
        return _index_family(_read_json(index))
    if _looks_like_path(base):
        raise BrushNetLoadError(f"Base model path {base} does not exist.")
    from huggingface_hub import hf_hub_download

    try:
        unet_config = hf_hub_download(
            base, "config.json", subfolder="unet", local_files_only=local_files_only
        )
        return _unet_family(json.loads(Path(unet_config).read_text()))
    except Exception:  # fall back to model_index.json below, which also reports a missing repo
        pass
    try:
        index = hf_hub_download(base, "model_index.json", local_files_only=local_files_only)
    except Exception as exc:
        raise BrushNetLoadError(
            f"Could not read the config of the base model {base!r}: {exc}"
        ) from exc
    return _index_family(json.loads(Path(index).read_text()))


def _read_json(path: Path) -> dict[str, Any]:
    """A config file as a dict, or a `BrushNetLoadError` naming the file."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BrushNetLoadError(f"Could not read {path}: {exc}") from None
    if not isinstance(value, dict):
        raise BrushNetLoadError(f"{path} is not a config (a JSON object), it holds a {type(value).__name__}.")
    return value


def _unet_family(config: dict[str, Any]) -> Family:
    if (
        config.get("addition_embed_type") == "text_time"
        or config.get("cross_attention_dim") == 2048
    ):
        return "sdxl"
    return "sd15"


def _index_family(index: dict[str, Any]) -> Family:
    return (
        "sdxl" if "XL" in str(index.get("_class_name", "")) or "text_encoder_2" in index else "sd15"
    )


def _checkpoint_keys(path: Path) -> list[str]:
    """Tensor names of a single-file checkpoint, without reading the tensors of a .safetensors file."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                return list(handle.keys())
        if path.suffix == ".ckpt":
            import torch

            state = torch.load(str(path), map_location="meta", weights_only=True, mmap=True)
            return list(state.get("state_dict", state))
    except Exception as exc:
        raise BrushNetLoadError(f"Could not read the single-file checkpoint {path}: {exc}") from exc
    raise BrushNetLoadError(
        f"Base model file {path} must be a .safetensors or .ckpt single-file checkpoint."
    )
