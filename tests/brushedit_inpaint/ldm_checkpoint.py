"""Write tiny diffusers models as an original (LDM) Stable Diffusion single-file checkpoint, for `from_single_file`.

The key maps of diffusers' `scripts/convert_diffusers_to_original_stable_diffusion.py` (and its SDXL variant),
generalised from SD1.5's four blocks to the tiny test configs (N blocks, attention where the block type has it).
"""

from __future__ import annotations

import torch


def _unet_layer_map(down_types, up_types, layers: int) -> list[tuple[str, str]]:
    pairs = []
    n_blocks = len(down_types)
    for i in range(n_blocks):
        for j in range(layers):
            pairs.append(
                (f"input_blocks.{(layers + 1) * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}.")
            )
            if "CrossAttn" in down_types[i]:
                pairs.append(
                    (
                        f"input_blocks.{(layers + 1) * i + j + 1}.1.",
                        f"down_blocks.{i}.attentions.{j}.",
                    )
                )
        for j in range(layers + 1):
            pairs.append(
                (f"output_blocks.{(layers + 1) * i + j}.0.", f"up_blocks.{i}.resnets.{j}.")
            )
            if "CrossAttn" in up_types[i]:
                pairs.append(
                    (f"output_blocks.{(layers + 1) * i + j}.1.", f"up_blocks.{i}.attentions.{j}.")
                )
        if i < n_blocks - 1:
            pairs.append(
                (
                    f"input_blocks.{(layers + 1) * (i + 1)}.0.op.",
                    f"down_blocks.{i}.downsamplers.0.conv.",
                )
            )
            pairs.append(
                (
                    f"output_blocks.{(layers + 1) * i + layers}.{2 if 'CrossAttn' in up_types[i] else 1}.",
                    f"up_blocks.{i}.upsamplers.0.",
                )
            )
    pairs.append(("middle_block.1.", "mid_block.attentions.0."))
    for j in range(2):
        pairs.append((f"middle_block.{2 * j}.", f"mid_block.resnets.{j}."))
    return pairs


_UNET_TOP = [
    ("time_embed.0.", "time_embedding.linear_1."),
    ("time_embed.2.", "time_embedding.linear_2."),
    ("label_emb.0.0.", "add_embedding.linear_1."),  # SDXL's text_time embedding
    ("label_emb.0.2.", "add_embedding.linear_2."),
    ("input_blocks.0.0.", "conv_in."),
    ("out.0.", "conv_norm_out."),
    ("out.2.", "conv_out."),
]
_RESNET = [
    ("in_layers.0", "norm1"),
    ("in_layers.2", "conv1"),
    ("out_layers.0", "norm2"),
    ("out_layers.3", "conv2"),
    ("emb_layers.1", "time_emb_proj"),
    ("skip_connection", "conv_shortcut"),
]


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    cfg = unet.config
    layer_map = _unet_layer_map(cfg.down_block_types, cfg.up_block_types, cfg.layers_per_block)
    out = {}
    for key, value in unet.state_dict().items():
        name = key
        for sd, hf in _UNET_TOP:
            if name.startswith(hf):
                name = sd + name[len(hf) :]
        if "resnets" in key:
            for sd, hf in _RESNET:
                name = name.replace(hf, sd)
        for sd, hf in layer_map:
            name = name.replace(hf, sd)
        out["model.diffusion_model." + name] = value
    return out


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    cfg = vae.config
    n, layers = len(cfg.block_out_channels), cfg.layers_per_block
    pairs = [
        ("nin_shortcut", "conv_shortcut"),
        ("norm_out", "conv_norm_out"),
        ("mid.attn_1.", "mid_block.attentions.0."),
    ]
    for i in range(n):
        for j in range(layers):
            pairs.append((f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}."))
        if i < n - 1:
            pairs.append((f"down.{i}.downsample.", f"down_blocks.{i}.downsamplers.0."))
            pairs.append((f"up.{n - 1 - i}.upsample.", f"up_blocks.{i}.upsamplers.0."))
        for j in range(layers + 1):
            pairs.append(
                (f"decoder.up.{n - 1 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}.")
            )
    for i in range(2):
        pairs.append((f"mid.block_{i + 1}.", f"mid_block.resnets.{i}."))
    attn = [
        ("norm.", "group_norm."),
        ("q.", "to_q."),
        ("k.", "to_k."),
        ("v.", "to_v."),
        ("proj_out.", "to_out.0."),
    ]
    out = {}
    for key, value in vae.state_dict().items():
        name = key
        for sd, hf in pairs:
            name = name.replace(hf, sd)
        if "attentions" in key:
            for sd, hf in attn:
                name = name.replace(hf, sd)
            if value.ndim == 2:  # LDM keeps the VAE's attention projections as 1x1 convs
                value = value[:, :, None, None]
        out["first_stage_model." + name] = value
    return out
