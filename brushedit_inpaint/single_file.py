# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""A BrushNet checkpoint as one file (`brushnet.safetensors`), with or without its diffusers `config.json`.

BrushNet's checkpoints are shared as one file too (e.g. for ComfyUI): the same tensors as the diffusers folder's
`diffusion_pytorch_model.safetensors`, without `config.json`. [`BrushNetModel.from_single_file`] reads the config from
`config=` (a folder or Hub id holding one, or a dict), or infers it from the tensor shapes: the block widths and
depth, the mask channels and, for SDXL, the `text_time` embedding's width. What the shapes cannot tell is taken from
the released checkpoints: 32 GroupNorm groups, SDXL's 256-wide time ids.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

SDXL_ADDITION_TIME_EMBED_DIM = 256
"""SDXL's sinusoidal width per micro-conditioning id (not visible in the weights: `add_time_proj` has none)."""
RELEASED_NORM_GROUPS = 32
"""GroupNorm groups of every released SD1.5 and SDXL BrushNet (GroupNorm weights do not record it)."""


def _indices(shapes: Mapping[str, Any], prefix: str, suffix: str) -> int:
    """How many `prefix{i}suffix` keys exist for i = 0, 1, ... (the first gap ends the count)."""
    count = 0
    while f"{prefix}{count}{suffix}" in shapes:
        count += 1
    return count


def infer_brushnet_config(shapes: Mapping[str, Sequence[int]], source: str = "the checkpoint") -> dict[str, Any]:
    """A [`BrushNetModel`] config for a state dict, from its tensor names and shapes alone.

    Raises a `ValueError` when the tensors are not a BrushNet's, or when its widths do not fit 32 GroupNorm groups
    (then pass `config=`).
    """
    if "conv_in_condition.weight" not in shapes:
        raise ValueError(
            f"{source} is not a BrushNet checkpoint: it has no `conv_in_condition.weight` (a BrushNet's 9-channel input "
            "convolution). An original-format Stable Diffusion file is a base model: pass it as `base`."
        )
    in_channels = 4
    conditioning_channels = int(shapes["conv_in_condition.weight"][1]) - in_channels
    blocks = _indices(shapes, "down_blocks.", ".resnets.0.conv1.weight")
    layers = _indices(shapes, "down_blocks.0.resnets.", ".conv1.weight")
    if blocks == 0 or layers == 0:
        raise ValueError(f"{source} has no `down_blocks.<i>.resnets.<j>` tensors: it is not a BrushNet checkpoint.")
    widths = [int(shapes[f"down_blocks.{i}.resnets.0.conv2.weight"][0]) for i in range(blocks)]
    if any(width % RELEASED_NORM_GROUPS for width in widths):
        raise ValueError(
            f"{source} has block widths {widths}, which do not fit the {RELEASED_NORM_GROUPS} GroupNorm groups of "
            "the released BrushNets, and a single file does not record its groups: pass `config=` (the folder or "
            "Hub id of its config.json)."
        )
    config: dict[str, Any] = {
        "in_channels": in_channels,
        "conditioning_channels": conditioning_channels,
        "block_out_channels": widths,
        "layers_per_block": layers,
        "down_block_types": ["DownBlock2D"] * blocks,
        "up_block_types": ["UpBlock2D"] * blocks,
        "mid_block_type": "MidBlock2D" if "mid_block.resnets.0.conv1.weight" in shapes else None,
        "norm_num_groups": RELEASED_NORM_GROUPS,
    }
    if "add_embedding.linear_1.weight" in shapes:  # SDXL's text_time micro-conditioning
        config.update(
            addition_embed_type="text_time",
            addition_time_embed_dim=SDXL_ADDITION_TIME_EMBED_DIM,
            projection_class_embeddings_input_dim=int(shapes["add_embedding.linear_1.weight"][1]),
            cross_attention_dim=2048,
        )
    return config


def read_checkpoint_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a local `.safetensors` file without reading its tensors."""
    from safetensors import safe_open

    with safe_open(os.fspath(path), framework="pt") as handle:
        return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118 (safe_open is not iterable)


def _config_from(config: Any, subfolder: str | None, model_cls: type, **hub_kwargs) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return dict(config)
    loaded = model_cls.load_config(os.fspath(config), subfolder=subfolder, **hub_kwargs)
    if not isinstance(loaded, dict):
        raise ValueError(f"The config of {config} is not a JSON object (it holds a {type(loaded).__name__}).")
    return loaded


def _check_tensors(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """One sentence naming what does not fit, before any tensor is assigned."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state_dict) if tuple(state_dict[k].shape) != expected[k])
    if not (missing or unexpected or wrong):
        return
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            parts.append(f"{len(keys)} {label} tensor(s) (e.g. {', '.join(keys[:3])})")
    if wrong:
        k = wrong[0]
        parts.append(
            f"{len(wrong)} tensor(s) of another shape (e.g. {k}: {tuple(state_dict[k].shape)} in the file, "
            f"{expected[k]} in the config)"
        )
    raise ValueError(
        f"{source} does not fit this BrushNet config: {'; '.join(parts)}. Pass the `config=` it was saved with."
    )


def load_single_file(
    model_cls: type,
    pretrained_model_link_or_path: str | os.PathLike,
    config: Any = None,
    subfolder: str | None = None,
    dtype: torch.dtype | None = None,
    **hub_kwargs: Any,
):
    """[`BrushNetModel.from_single_file`]: read the tensors, build the model on the meta device, assign them."""
    from diffusers.loaders.single_file_utils import load_single_file_checkpoint

    source = os.fspath(pretrained_model_link_or_path)
    state_dict = load_single_file_checkpoint(source, **hub_kwargs)
    if config is None:
        model_config = infer_brushnet_config({k: tuple(v.shape) for k, v in state_dict.items()}, source)
    else:
        model_config = _config_from(config, subfolder, model_cls, **hub_kwargs)
    with torch.device("meta"):
        model = model_cls.from_config(model_config)
    _check_tensors(model, state_dict, source)
    target = dtype or torch.float32
    model.load_state_dict({k: v.to(dtype=target) for k, v in state_dict.items()}, strict=True, assign=True)
    model.register_to_config(_name_or_path=source)
    return model.eval()
