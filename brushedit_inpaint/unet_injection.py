# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""Dense BrushNet injection into a stock diffusers `UNet2DConditionModel`, without forking or patching it.

`unet_forward_with_brushnet` re-walks the UNet's own submodules in the order of
`UNet2DConditionModel.forward` (diffusers 0.42.1) and adds the branch's samples where the reference BrushNet fork
adds them. With no samples it computes exactly what `unet(...)` computes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel, UNet2DConditionOutput
from diffusers.utils import USE_PEFT_BACKEND, scale_lora_layers, unscale_lora_layers
from diffusers.utils.torch_utils import apply_freeu

_DOWN_BLOCKS = ("DownBlock2D", "CrossAttnDownBlock2D")
_UP_BLOCKS = ("UpBlock2D", "CrossAttnUpBlock2D")
_MID_BLOCKS = ("UNetMidBlock2DCrossAttn", "UNetMidBlock2D")


def _check_supported(unet: UNet2DConditionModel) -> None:
    """Fail loudly on UNet layouts the walk below does not mirror (SD1.x/2.x and SDXL use only these blocks)."""
    for block in unet.down_blocks:
        if type(block).__name__ not in _DOWN_BLOCKS:
            raise NotImplementedError(
                f"BrushNet injection does not support down block {type(block).__name__}."
            )
    for block in unet.up_blocks:
        if type(block).__name__ not in _UP_BLOCKS:
            raise NotImplementedError(
                f"BrushNet injection does not support up block {type(block).__name__}."
            )
    if unet.mid_block is not None and type(unet.mid_block).__name__ not in _MID_BLOCKS:
        raise NotImplementedError(
            f"BrushNet injection does not support mid block {type(unet.mid_block).__name__}."
        )


def _add(sample: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """`sample + add`, where `add` may cover one CFG half: it then broadcasts over the halves.

    The shared branch runs once for both guidance halves; broadcasting its samples costs no copy,
    where concatenating them would copy 25 tensors every step.
    """
    if add.shape[0] == sample.shape[0]:
        return sample + add
    if add.shape[0] == 0 or sample.shape[0] % add.shape[0]:
        raise ValueError(
            f"a BrushNet sample of batch {add.shape[0]} cannot be added to a UNet batch of "
            f"{sample.shape[0]}"
        )
    halves = sample.shape[0] // add.shape[0]
    return (sample.unflatten(0, (halves, add.shape[0])) + add).flatten(0, 1)


def _attn_kwargs(
    encoder_hidden_states, attention_mask, cross_attention_kwargs, encoder_attention_mask
):
    return {
        "encoder_hidden_states": encoder_hidden_states,
        "cross_attention_kwargs": cross_attention_kwargs,
        "attention_mask": attention_mask,
        "encoder_attention_mask": encoder_attention_mask,
        "return_dict": False,
    }


@contextmanager
def _lora_scale(
    unet: UNet2DConditionModel, cross_attention_kwargs: dict[str, Any] | None
) -> Iterator[dict[str, Any] | None]:
    """Same LoRA scaling as the `@apply_lora_scale("cross_attention_kwargs")` decorator on `unet.forward`.

    Yields `cross_attention_kwargs` without its `"scale"`; a context manager rather than that decorator, which only
    sees keyword arguments.
    """
    lora_scale = 1.0
    if cross_attention_kwargs is not None:
        cross_attention_kwargs = cross_attention_kwargs.copy()
        lora_scale = cross_attention_kwargs.pop("scale", 1.0)
    if USE_PEFT_BACKEND:
        scale_lora_layers(unet, lora_scale)
    try:
        yield cross_attention_kwargs
    finally:
        if USE_PEFT_BACKEND:
            unscale_lora_layers(unet, lora_scale)


def unet_forward_with_brushnet(
    unet: UNet2DConditionModel,
    sample: torch.Tensor,
    timestep: torch.Tensor | float | int,
    encoder_hidden_states: torch.Tensor,
    down_block_add_samples: Sequence[torch.Tensor] | None = None,
    mid_block_add_sample: torch.Tensor | None = None,
    up_block_add_samples: Sequence[torch.Tensor] | None = None,
    timestep_cond: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    cross_attention_kwargs: dict[str, Any] | None = None,
    added_cond_kwargs: dict[str, torch.Tensor] | None = None,
    class_labels: torch.Tensor | None = None,
    encoder_attention_mask: torch.Tensor | None = None,
    return_dict: bool = True,
) -> UNet2DConditionOutput | tuple:
    r"""
    The forward pass of a stock [`UNet2DConditionModel`] with BrushNet's samples added densely.

    Samples are added to the hidden state after `conv_in`, after each down resnet(+attention) and downsampler, after
    the mid block, and after each up resnet(+attention) and upsampler. As in the reference, the first skip connection
    is taken from `conv_in` *before* its sample is added, while the skips of the down blocks carry the added samples.

    Args:
        unet (`UNet2DConditionModel`): A stock SD1.x/2.x or SDXL UNet (not modified).
        sample, timestep, encoder_hidden_states: As for `unet.forward`.
        down_block_add_samples (`Sequence[torch.Tensor]`, *optional*):
            [`BrushNetOutput.down_block_res_samples`]; all three sample arguments must be given together or omitted.
        mid_block_add_sample (`torch.Tensor`, *optional*): [`BrushNetOutput.mid_block_res_sample`].
        up_block_add_samples (`Sequence[torch.Tensor]`, *optional*): [`BrushNetOutput.up_block_res_samples`].
        added_cond_kwargs (`dict`, *optional*): SDXL's `{"text_embeds", "time_ids"}`, used exactly as
            `unet.forward` uses them (its `text_time` embedding).
        return_dict (`bool`, defaults to `True`): Return a `UNet2DConditionOutput` instead of a tuple.
    """
    given = [
        x is not None for x in (down_block_add_samples, mid_block_add_sample, up_block_add_samples)
    ]
    if any(given) and not all(given):
        raise ValueError(
            "`down_block_add_samples`, `mid_block_add_sample` and `up_block_add_samples` must be passed together."
        )
    _check_supported(unet)
    # Model CPU offload hooks `unet.forward`, which this walk bypasses: run the hook's load step explicitly.
    hook = getattr(unet, "_hf_hook", None)
    if hook is not None:
        hook.pre_forward(unet)
    is_brushnet = all(given)
    down_adds = list(down_block_add_samples) if is_brushnet else []
    up_adds = list(up_block_add_samples) if is_brushnet else []
    if is_brushnet:
        n_down = 1 + sum(len(b.resnets) + (b.downsamplers is not None) for b in unet.down_blocks)
        n_up = sum(len(b.resnets) + (b.upsamplers is not None) for b in unet.up_blocks)
        if len(down_adds) != n_down or len(up_adds) != n_up:
            raise ValueError(
                f"This UNet takes {n_down} down and {n_up} up BrushNet samples, got {len(down_adds)} and "
                f"{len(up_adds)}: was the BrushNet built from a different UNet config?"
            )

    mid_add = mid_block_add_sample if is_brushnet else None
    with _lora_scale(unet, cross_attention_kwargs) as cross_attention_kwargs:
        # Mirrors UNet2DConditionModel.forward (diffusers 0.42.1), minus ControlNet/T2I-adapter residuals.
        default_overall_up_factor = 2**unet.num_upsamplers
        forward_upsample_size = any(
            dim % default_overall_up_factor != 0 for dim in sample.shape[-2:]
        )
        upsample_size = None

        if attention_mask is not None:
            attention_mask = ((1 - attention_mask.to(sample.dtype)) * -10000.0).unsqueeze(1)
        if encoder_attention_mask is not None:
            encoder_attention_mask = (
                (1 - encoder_attention_mask.to(sample.dtype)) * -10000.0
            ).unsqueeze(1)

        # 0. center input if necessary
        if unet.config.center_input_sample:
            sample = 2 * sample - 1.0

        # 1. time
        t_emb = unet.get_time_embed(sample=sample, timestep=timestep)
        emb = unet.time_embedding(t_emb, timestep_cond)
        class_emb = unet.get_class_embed(sample=sample, class_labels=class_labels)
        if class_emb is not None:
            emb = (
                torch.cat([emb, class_emb], dim=-1)
                if unet.config.class_embeddings_concat
                else emb + class_emb
            )
        aug_emb = unet.get_aug_embed(
            emb=emb,
            encoder_hidden_states=encoder_hidden_states,
            added_cond_kwargs=added_cond_kwargs,
        )
        if unet.config.addition_embed_type == "image_hint":
            aug_emb, hint = aug_emb
            sample = torch.cat([sample, hint], dim=1)
        emb = emb + aug_emb if aug_emb is not None else emb
        if unet.time_embed_act is not None:
            emb = unet.time_embed_act(emb)
        encoder_hidden_states = unet.process_encoder_hidden_states(
            encoder_hidden_states=encoder_hidden_states, added_cond_kwargs=added_cond_kwargs
        )
        attn_kwargs = _attn_kwargs(
            encoder_hidden_states, attention_mask, cross_attention_kwargs, encoder_attention_mask
        )

        # 2. pre-process
        sample = unet.conv_in(sample)
        if (
            cross_attention_kwargs is not None
            and cross_attention_kwargs.get("gligen", None) is not None
        ):
            cross_attention_kwargs = cross_attention_kwargs.copy()
            gligen_args = cross_attention_kwargs.pop("gligen")
            cross_attention_kwargs["gligen"] = {"objs": unet.position_net(**gligen_args)}
            attn_kwargs["cross_attention_kwargs"] = cross_attention_kwargs

        # 3. down (the first skip is taken before the conv_in sample is added, as in the reference)
        down_block_res_samples = (sample,)
        if down_adds:
            sample = _add(sample, down_adds.pop(0))
        for block in unet.down_blocks:
            attentions = (
                block.attentions
                if getattr(block, "has_cross_attention", False)
                else [None] * len(block.resnets)
            )
            for resnet, attn in zip(block.resnets, attentions, strict=True):
                sample = resnet(sample, emb)
                if attn is not None:
                    sample = attn(sample, **attn_kwargs)[0]
                if down_adds:
                    sample = _add(sample, down_adds.pop(0))
                down_block_res_samples += (sample,)
            if block.downsamplers is not None:
                for downsampler in block.downsamplers:
                    sample = downsampler(sample)
                if down_adds:
                    sample = _add(sample, down_adds.pop(0))
                down_block_res_samples += (sample,)

        # 4. mid
        if unet.mid_block is not None:
            if getattr(unet.mid_block, "has_cross_attention", False):
                sample = unet.mid_block(
                    sample,
                    emb,
                    encoder_hidden_states=encoder_hidden_states,
                    attention_mask=attention_mask,
                    cross_attention_kwargs=cross_attention_kwargs,
                    encoder_attention_mask=encoder_attention_mask,
                )
            else:
                sample = unet.mid_block(sample, emb)
        if mid_add is not None:
            sample = _add(sample, mid_add)

        # 5. up
        for i, block in enumerate(unet.up_blocks):
            is_final_block = i == len(unet.up_blocks) - 1
            res_samples = down_block_res_samples[-len(block.resnets) :]
            down_block_res_samples = down_block_res_samples[: -len(block.resnets)]
            if not is_final_block and forward_upsample_size:
                upsample_size = down_block_res_samples[-1].shape[2:]

            is_freeu_enabled = (
                getattr(block, "s1", None)
                and getattr(block, "s2", None)
                and getattr(block, "b1", None)
                and getattr(block, "b2", None)
            )
            attentions = (
                block.attentions
                if getattr(block, "has_cross_attention", False)
                else [None] * len(block.resnets)
            )
            for resnet, attn in zip(block.resnets, attentions, strict=True):
                res_hidden_states = res_samples[-1]
                res_samples = res_samples[:-1]
                if is_freeu_enabled:
                    sample, res_hidden_states = apply_freeu(
                        block.resolution_idx,
                        sample,
                        res_hidden_states,
                        s1=block.s1,
                        s2=block.s2,
                        b1=block.b1,
                        b2=block.b2,
                    )
                sample = torch.cat([sample, res_hidden_states], dim=1)
                sample = resnet(sample, emb)
                if attn is not None:
                    sample = attn(sample, **attn_kwargs)[0]
                if up_adds:
                    sample = _add(sample, up_adds.pop(0))
            if block.upsamplers is not None:
                for upsampler in block.upsamplers:
                    sample = upsampler(sample, upsample_size)
                if up_adds:
                    sample = _add(sample, up_adds.pop(0))

        # 6. post-process
        if unet.conv_norm_out:
            sample = unet.conv_norm_out(sample)
            sample = unet.conv_act(sample)
        sample = unet.conv_out(sample)

    if not return_dict:
        return (sample,)
    return UNet2DConditionOutput(sample=sample)
