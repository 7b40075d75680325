# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""The BrushNet branch: an attention-free copy of the SD UNet that reads the masked image.

Written against diffusers 0.42.1. State-dict names and shapes follow the reference `BrushNetModel`
(TencentARC/BrushNet), so its released SD1.5 and SDXL checkpoints and BrushEdit's `brushnetX` load strictly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.unets.unet_2d_blocks import get_down_block, get_up_block
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.utils import BaseOutput, logging
from torch import nn

logger = logging.get_logger(__name__)


@dataclass
class BrushNetOutput(BaseOutput):
    """
    The output of [`BrushNetModel`]: one tensor per injection point, already multiplied by the conditioning scale.

    Args:
        down_block_res_samples (`tuple[torch.Tensor]`):
            Added to the UNet after `conv_in`, after each down resnet(+attention) and after each downsampler.
        mid_block_res_sample (`torch.Tensor`):
            Added to the UNet after its mid block.
        up_block_res_samples (`tuple[torch.Tensor]`):
            Added to the UNet after each up resnet(+attention) and after each upsampler.
    """

    down_block_res_samples: tuple[torch.Tensor, ...]
    mid_block_res_sample: torch.Tensor
    up_block_res_samples: tuple[torch.Tensor, ...]


# Copied from diffusers.models.controlnets.controlnet.zero_module (diffusers 0.42.1)
def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _zero_taps(channels: int, count: int) -> list[nn.Conv2d]:
    """`count` zero-initialised 1x1 convolutions: the taps of one block, so the untrained branch adds nothing."""
    return [zero_module(nn.Conv2d(channels, channels, 1)) for _ in range(count)]


# The `UNet2DConditionModel` config entries `BrushNetModel.from_unet` copies as they are; the block types become their
# attention-free counterparts, the rest are the branch's own.
_UNET_CONFIG_COPIED = (
    "in_channels",
    "flip_sin_to_cos",
    "freq_shift",
    "only_cross_attention",
    "block_out_channels",
    "layers_per_block",
    "downsample_padding",
    "mid_block_scale_factor",
    "act_fn",
    "norm_num_groups",
    "norm_eps",
    "cross_attention_dim",
    "attention_head_dim",
    "num_attention_heads",
    "use_linear_projection",
    "upcast_attention",
    "resnet_time_scale_shift",
    "class_embed_type",
    "num_class_embeds",
    "addition_embed_type",
    "projection_class_embeddings_input_dim",
)


class MidBlock2D(nn.Module):
    """
    A resnet-only mid block (`num_layers + 1` resnets, no attention), as in the reference BrushNet.

    diffusers' `UNetMidBlock2D(add_attention=False)` has the same parameters, but this class keeps the reference's
    name and constructor so `mid_block_type="MidBlock2D"` configs load unchanged.
    """

    def __init__(
        self,
        in_channels: int,
        temb_channels: int,
        dropout: float = 0.0,
        num_layers: int = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "swish",
        resnet_groups: int | None = 32,
        resnet_pre_norm: bool = True,
        output_scale_factor: float = 1.0,
    ):
        super().__init__()
        self.has_cross_attention = False
        resnet_groups = resnet_groups if resnet_groups is not None else min(in_channels // 4, 32)
        self.resnets = nn.ModuleList(
            [
                ResnetBlock2D(
                    in_channels=in_channels,
                    out_channels=in_channels,
                    temb_channels=temb_channels,
                    eps=resnet_eps,
                    groups=resnet_groups,
                    dropout=dropout,
                    time_embedding_norm=resnet_time_scale_shift,
                    non_linearity=resnet_act_fn,
                    output_scale_factor=output_scale_factor,
                    pre_norm=resnet_pre_norm,
                )
                for _ in range(num_layers + 1)
            ]
        )
        self.gradient_checkpointing = False

    def forward(
        self, hidden_states: torch.Tensor, temb: torch.Tensor | None = None
    ) -> torch.Tensor:
        for resnet in self.resnets:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden_states = self._gradient_checkpointing_func(resnet, hidden_states, temb)
            else:
                hidden_states = resnet(hidden_states, temb)
        return hidden_states


class BrushNetModel(ModelMixin, ConfigMixin):
    r"""
    BrushNet: the SD UNet with every attention layer removed, fed the noisy latent, the masked-image latent and the
    mask (`in_channels + conditioning_channels` = 9 input channels), with a zero-initialised 1x1 convolution on each of
    its taps. Its outputs are added densely to a frozen UNet (see [`unet_forward_with_brushnet`]).

    One class serves both families. The SD1.5 branch ignores the text entirely; the SDXL branch
    (`addition_embed_type="text_time"`) adds SDXL's micro-conditioning embedding (pooled text embedding + size and
    crop ids, `added_cond_kwargs={"text_embeds", "time_ids"}`) to its time embedding, as the SDXL UNet does.

    The constructor keeps every argument of the reference class so that released `config.json` files load as-is;
    options this re-implementation does not support (class embeddings, other addition embeddings, encoder
    projections) raise a `ValueError` at construction instead of being silently ignored.

    Args:
        in_channels (`int`, defaults to 4): Channels of the noisy latent.
        conditioning_channels (`int`, defaults to 5): Masked-image latent (4) plus mask (1).
        flip_sin_to_cos (`bool`, defaults to `True`): Time-embedding layout, copied from the UNet.
        freq_shift (`int`, defaults to 0): Time-embedding frequency shift, copied from the UNet.
        down_block_types (`tuple[str]`): Must all be `"DownBlock2D"` (attention-free).
        mid_block_type (`str`, defaults to `"MidBlock2D"`): The resnet-only mid block.
        up_block_types (`tuple[str]`): Must all be `"UpBlock2D"`.
        block_out_channels (`tuple[int]`, defaults to `(320, 640, 1280, 1280)`): Channels per resolution.
        layers_per_block (`int`, defaults to 2): Resnets per down block (up blocks get one more).
        downsample_padding (`int`, defaults to 1): Padding of the downsampling convolutions.
        mid_block_scale_factor (`float`, defaults to 1): Output scale of the mid-block resnets.
        act_fn (`str`, defaults to `"silu"`): Activation.
        norm_num_groups (`int`, defaults to 32): GroupNorm groups.
        norm_eps (`float`, defaults to 1e-5): GroupNorm epsilon.
        cross_attention_dim (`int`, defaults to 768): Kept for config compatibility (the branch has no attention).
        transformer_layers_per_block, attention_head_dim, num_attention_heads, use_linear_projection:
            Copied from the UNet for config compatibility (per block for SDXL); the branch has no attention.
        addition_embed_type (`str`, *optional*): `None` (SD1.5) or `"text_time"` (SDXL micro-conditioning).
        addition_time_embed_dim (`int`, *optional*): Sinusoidal width per time id (`"text_time"` only; 256 in SDXL).
        projection_class_embeddings_input_dim (`int`, *optional*):
            Input width of `add_embedding`: pooled text width + 6 * `addition_time_embed_dim` (2816 in SDXL).
        brushnet_conditioning_channel_order (`str`, defaults to `"rgb"`): `"bgr"` flips the conditioning channels.
        global_pool_conditions (`bool`, defaults to `False`): Average every output over space (reference option).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,
        conditioning_channels: int = 5,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        down_block_types: tuple[str, ...] = (
            "DownBlock2D",
            "DownBlock2D",
            "DownBlock2D",
            "DownBlock2D",
        ),
        mid_block_type: str | None = "MidBlock2D",
        up_block_types: tuple[str, ...] = ("UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
        only_cross_attention: bool | tuple[bool, ...] = False,
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        act_fn: str = "silu",
        norm_num_groups: int | None = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 768,
        transformer_layers_per_block: int | tuple[int, ...] = 1,
        encoder_hid_dim: int | None = None,
        encoder_hid_dim_type: str | None = None,
        attention_head_dim: int | tuple[int, ...] = 8,
        num_attention_heads: int | tuple[int, ...] | None = None,
        use_linear_projection: bool = False,
        class_embed_type: str | None = None,
        addition_embed_type: str | None = None,
        addition_time_embed_dim: int | None = None,
        num_class_embeds: int | None = None,
        upcast_attention: bool = False,
        resnet_time_scale_shift: str = "default",
        projection_class_embeddings_input_dim: int | None = None,
        brushnet_conditioning_channel_order: str = "rgb",
        conditioning_embedding_out_channels: tuple[int, ...] | None = (16, 32, 96, 256),
        global_pool_conditions: bool = False,
        addition_embed_type_num_heads: int = 64,
    ):
        super().__init__()

        # 0. Reject what this class does not implement, with the reason.
        if class_embed_type is not None or num_class_embeds is not None:
            raise ValueError(
                "`BrushNetModel` does not implement class embeddings; got "
                f"`class_embed_type`={class_embed_type!r}, `num_class_embeds`={num_class_embeds!r}."
            )
        if addition_embed_type not in (None, "text_time"):
            raise ValueError(
                "`addition_embed_type` must be None (Stable Diffusion 1.5) or 'text_time' (SDXL), got "
                f"{addition_embed_type!r}."
            )
        if addition_embed_type == "text_time" and (
            addition_time_embed_dim is None or projection_class_embeddings_input_dim is None
        ):
            raise ValueError(
                "An SDXL BrushNet (`addition_embed_type`='text_time') needs `addition_time_embed_dim` and "
                f"`projection_class_embeddings_input_dim`, got {addition_time_embed_dim!r} and "
                f"{projection_class_embeddings_input_dim!r}."
            )
        if encoder_hid_dim is not None or encoder_hid_dim_type is not None:
            raise ValueError(
                f"`encoder_hid_dim`={encoder_hid_dim!r} / `encoder_hid_dim_type`={encoder_hid_dim_type!r} are not "
                "supported: the BrushNet branch does not use text embeddings."
            )
        if len(down_block_types) != len(up_block_types):
            raise ValueError(
                "Must provide the same number of `down_block_types` as `up_block_types`. "
                f"`down_block_types`: {down_block_types}. `up_block_types`: {up_block_types}."
            )
        if len(block_out_channels) != len(down_block_types):
            raise ValueError(
                "Must provide the same number of `block_out_channels` as `down_block_types`. "
                f"`block_out_channels`: {block_out_channels}. `down_block_types`: {down_block_types}."
            )
        bad = [
            t for t in (*down_block_types, *up_block_types) if t not in ("DownBlock2D", "UpBlock2D")
        ]
        if bad:
            raise ValueError(
                f"`down_block_types`/`up_block_types` must be attention-free DownBlock2D/UpBlock2D, got {bad}."
            )
        if mid_block_type not in ("MidBlock2D", None):
            raise ValueError(
                f"`mid_block_type` must be 'MidBlock2D' or None, got {mid_block_type!r}."
            )
        if brushnet_conditioning_channel_order not in ("rgb", "bgr"):
            raise ValueError(
                "`brushnet_conditioning_channel_order` must be 'rgb' or 'bgr', got "
                f"{brushnet_conditioning_channel_order!r}."
            )

        # 1. Input: noisy latent + masked-image latent + mask.
        self.conv_in_condition = nn.Conv2d(
            in_channels + conditioning_channels, block_out_channels[0], kernel_size=3, padding=1
        )

        # 2. Time embedding (same layout as the UNet's, so from_unet can copy it).
        time_embed_dim = block_out_channels[0] * 4
        self.time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(
            block_out_channels[0], time_embed_dim, act_fn=act_fn
        )
        if addition_embed_type == "text_time":
            # SDXL micro-conditioning, named and shaped as in the UNet (and the reference branch).
            self.add_time_proj = Timesteps(addition_time_embed_dim, flip_sin_to_cos, freq_shift)
            self.add_embedding = TimestepEmbedding(
                projection_class_embeddings_input_dim, time_embed_dim
            )
        else:
            self.add_time_proj = None
            self.add_embedding = None

        # Every resnet of the branch (down, mid and up) is built with the UNet's time embedding and norm settings.
        resnet_kwargs = {
            "temb_channels": time_embed_dim,
            "resnet_eps": norm_eps,
            "resnet_act_fn": act_fn,
            "resnet_groups": norm_num_groups,
            "resnet_time_scale_shift": resnet_time_scale_shift,
        }

        def block_kwargs(num_layers: int, in_channels: int, out_channels: int) -> dict:
            """What `get_down_block` and `get_up_block` both take: the block's size plus the resnet settings."""
            return {
                "num_layers": num_layers,
                "in_channels": in_channels,
                "out_channels": out_channels,
                # Unused (the blocks have no attention); given so `get_*_block` does not warn.
                "attention_head_dim": out_channels,
                **resnet_kwargs,
            }

        # 3. Down blocks; one zero conv after conv_in, each resnet and each downsampler.
        self.down_blocks = nn.ModuleList([])
        output_channel = block_out_channels[0]
        self.brushnet_down_blocks = nn.ModuleList(_zero_taps(output_channel, 1))
        for i, down_block_type in enumerate(down_block_types):
            input_channel = output_channel
            output_channel = block_out_channels[i]
            is_final_block = i == len(block_out_channels) - 1
            self.down_blocks.append(
                get_down_block(
                    down_block_type,
                    add_downsample=not is_final_block,
                    downsample_padding=downsample_padding,
                    **block_kwargs(layers_per_block, input_channel, output_channel),
                )
            )
            self.brushnet_down_blocks.extend(
                _zero_taps(output_channel, layers_per_block + (0 if is_final_block else 1))
            )

        # 4. Mid block (two resnets) and its zero conv.
        mid_block_channel = block_out_channels[-1]
        self.brushnet_mid_block = zero_module(nn.Conv2d(mid_block_channel, mid_block_channel, 1))
        self.mid_block = (
            MidBlock2D(
                in_channels=mid_block_channel,
                output_scale_factor=mid_block_scale_factor,
                **resnet_kwargs,
            )
            if mid_block_type is not None
            else None
        )

        # 5. Up blocks (layers_per_block + 1 resnets); a zero conv after each resnet and each upsampler.
        self.num_upsamplers = 0
        reversed_block_out_channels = list(reversed(block_out_channels))
        output_channel = reversed_block_out_channels[0]
        self.up_blocks = nn.ModuleList([])
        self.brushnet_up_blocks = nn.ModuleList([])
        for i, up_block_type in enumerate(up_block_types):
            is_final_block = i == len(block_out_channels) - 1
            prev_output_channel = output_channel
            output_channel = reversed_block_out_channels[i]
            input_channel = reversed_block_out_channels[min(i + 1, len(block_out_channels) - 1)]
            if not is_final_block:
                self.num_upsamplers += 1
            self.up_blocks.append(
                get_up_block(
                    up_block_type,
                    prev_output_channel=prev_output_channel,
                    add_upsample=not is_final_block,
                    resolution_idx=i,
                    **block_kwargs(layers_per_block + 1, input_channel, output_channel),
                )
            )
            self.brushnet_up_blocks.extend(
                _zero_taps(output_channel, layers_per_block + 1 + (0 if is_final_block else 1))
            )

        self.gradient_checkpointing = False

    @classmethod
    def from_unet(
        cls,
        unet: UNet2DConditionModel,
        brushnet_conditioning_channel_order: str = "rgb",
        conditioning_embedding_out_channels: tuple[int, ...] | None = (16, 32, 96, 256),
        load_weights_from_unet: bool = True,
        conditioning_channels: int = 5,
    ) -> BrushNetModel:
        r"""
        Build a [`BrushNetModel`] from a [`UNet2DConditionModel`], as the reference initialises training.

        `conv_in` is copied into input channels `0:4` (noisy latent) and `4:8` (masked-image latent), the mask channel
        starts at zero; the time embedding (and, for SDXL, the `text_time` add embedding) is copied; block weights are
        copied non-strictly (attention is dropped); all taps stay zero, so the untrained branch leaves the UNet
        unchanged. (The reference leaves the SDXL add embedding random; copying it gives the copied resnets the time
        embedding they were trained with.)
        """
        config = unet.config
        brushnet = cls(
            **{key: config[key] for key in _UNET_CONFIG_COPIED},
            conditioning_channels=conditioning_channels,
            down_block_types=["DownBlock2D"] * len(config.down_block_types),
            mid_block_type="MidBlock2D",
            up_block_types=["UpBlock2D"] * len(config.down_block_types),
            transformer_layers_per_block=config.get("transformer_layers_per_block", 1),
            addition_time_embed_dim=config.get("addition_time_embed_dim"),
            brushnet_conditioning_channel_order=brushnet_conditioning_channel_order,
            conditioning_embedding_out_channels=conditioning_embedding_out_channels,
        )

        if load_weights_from_unet:
            with torch.no_grad():
                in_ch = config.in_channels
                weight = torch.zeros_like(brushnet.conv_in_condition.weight)
                weight[:, :in_ch] = unet.conv_in.weight
                weight[:, in_ch : 2 * in_ch] = unet.conv_in.weight
                brushnet.conv_in_condition.weight.copy_(weight)
                brushnet.conv_in_condition.bias.copy_(unet.conv_in.bias)
            brushnet.time_proj.load_state_dict(unet.time_proj.state_dict())
            brushnet.time_embedding.load_state_dict(unet.time_embedding.state_dict())
            if brushnet.add_embedding is not None:
                brushnet.add_embedding.load_state_dict(unet.add_embedding.state_dict())
            brushnet.down_blocks.load_state_dict(unet.down_blocks.state_dict(), strict=False)
            brushnet.mid_block.load_state_dict(unet.mid_block.state_dict(), strict=False)
            brushnet.up_blocks.load_state_dict(unet.up_blocks.state_dict(), strict=False)

        return brushnet

    @classmethod
    def from_single_file(
        cls,
        pretrained_model_link_or_path: str | os.PathLike,
        *,
        config: str | os.PathLike | dict | None = None,
        subfolder: str | None = None,
        dtype: torch.dtype | None = None,
        torch_dtype: torch.dtype | None = None,
        local_files_only: bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
        force_download: bool = False,
        proxies: dict | None = None,
    ) -> BrushNetModel:
        r"""
        Load a BrushNet saved as one file: the tensors of a diffusers BrushNet folder without its `config.json`.

        Args:
            pretrained_model_link_or_path (`str` or `os.PathLike`):
                A local `.safetensors` (or `.bin`/`.ckpt`) file, or its Hub URL
                (`https://huggingface.co/<repo>/blob/main/<file>`), as for diffusers' `from_single_file`.
            config (`str`, `os.PathLike` or `dict`, *optional*):
                The folder or Hub id holding the checkpoint's `config.json` (with `subfolder`), or the config itself.
                Without it the config is inferred from the tensor shapes (block widths and depth, mask channels,
                SDXL's `text_time` embedding), with the released checkpoints' 32 GroupNorm groups.
            subfolder (`str`, *optional*): Where `config.json` sits inside `config`, e.g. `"brushnetX"`.
            dtype (`torch.dtype`, *optional*, defaults to `torch.float32`): The weights' dtype after loading.
            torch_dtype (`torch.dtype`, *optional*): Deprecated name of `dtype` (as in diffusers).
            local_files_only, cache_dir, revision, token, force_download, proxies (*optional*):
                As for `from_pretrained`, for a Hub URL or a Hub `config`.

        Raises:
            ValueError: the file is not a BrushNet, or does not fit `config` (missing, unexpected or differently
                shaped tensors, named).

        Example:

        ```py
        >>> brushnet = BrushNetModel.from_single_file("brushnet_segmentation_mask.safetensors", dtype=torch.float16)
        >>> brushnet = BrushNetModel.from_single_file("brushnetX.safetensors", config="TencentARC/BrushEdit",
        ...                                           subfolder="brushnetX")
        ```
        """
        from diffusers.utils import deprecate

        from .single_file import load_single_file

        if torch_dtype is not None:
            if dtype is not None:
                raise ValueError("Pass `dtype` only: `torch_dtype` is its deprecated name.")
            deprecate("torch_dtype", "1.0.0", "`torch_dtype` is deprecated: pass `dtype` instead.")
            dtype = torch_dtype
        hub_kwargs = {
            "local_files_only": local_files_only,
            "cache_dir": cache_dir,
            "revision": revision,
            "token": token,
            "force_download": force_download,
            "proxies": proxies,
        }
        return load_single_file(cls, pretrained_model_link_or_path, config, subfolder, dtype, **hub_kwargs)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor | None = None,
        brushnet_cond: torch.Tensor | None = None,
        conditioning_scale: float = 1.0,
        timestep_cond: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        added_cond_kwargs: dict | None = None,
        cross_attention_kwargs: dict | None = None,
        guess_mode: bool = False,
        return_dict: bool = True,
        conditioning: torch.Tensor | None = None,
    ) -> BrushNetOutput | tuple:
        r"""
        Run the branch.

        Args:
            sample (`torch.Tensor`): The noisy latent `(batch, 4, h, w)`, already scaled by the scheduler.
            timestep (`torch.Tensor`, `float` or `int`): The denoising timestep.
            encoder_hidden_states (`torch.Tensor`, *optional*):
                Accepted for signature compatibility with the reference; unused (the branch has no attention), which
                is what lets the pipeline evaluate it once for both halves of a classifier-free-guidance batch.
            brushnet_cond (`torch.Tensor`):
                Masked-image latent (4 channels) followed by the mask (1 channel, 1 = known pixel, 0 = hole).
            conditioning_scale (`float`, defaults to 1.0): Multiplies every output.
            added_cond_kwargs (`dict`, *optional*):
                SDXL branch only (`addition_embed_type="text_time"`), required there: `{"text_embeds": pooled text
                embedding (batch, D), "time_ids": (batch, 6) original size, crop top-left, target size}`.
            guess_mode (`bool`, defaults to `False`): Reference option: scales outputs log-spaced from 0.1 to 1.
            return_dict (`bool`, defaults to `True`): Return a [`BrushNetOutput`] instead of a tuple.
            conditioning (`torch.Tensor`, *optional*): Alias of `brushnet_cond`.
        """
        if conditioning is not None and brushnet_cond is not None:
            raise ValueError(
                "Pass the conditioning as `brushnet_cond` or as `conditioning`, not both."
            )
        brushnet_cond = brushnet_cond if brushnet_cond is not None else conditioning
        if brushnet_cond is None:
            raise ValueError("`brushnet_cond` (masked-image latent + mask) is required.")
        expected = self.config.in_channels + self.config.conditioning_channels
        if sample.shape[1] + brushnet_cond.shape[1] != expected:
            raise ValueError(
                f"`sample` ({sample.shape[1]} channels) and `brushnet_cond` ({brushnet_cond.shape[1]} channels) must "
                f"add up to the {expected} input channels this BrushNet was built with."
            )
        if self.config.brushnet_conditioning_channel_order == "bgr":
            brushnet_cond = torch.flip(brushnet_cond, dims=[1])

        # 1. time (same as UNet2DConditionModel.get_time_embed)
        timesteps = timestep
        if not torch.is_tensor(timesteps):
            is_mps = sample.device.type == "mps"
            if isinstance(timestep, float):
                dtype = torch.float32 if is_mps else torch.float64
            else:
                dtype = torch.int32 if is_mps else torch.int64
            timesteps = torch.tensor([timesteps], dtype=dtype, device=sample.device)
        elif len(timesteps.shape) == 0:
            timesteps = timesteps[None].to(sample.device)
        timesteps = timesteps.expand(sample.shape[0])
        t_emb = self.time_proj(timesteps).to(dtype=sample.dtype)
        emb = self.time_embedding(t_emb)
        if self.add_embedding is not None:
            emb = emb + self._text_time_embedding(added_cond_kwargs, emb)

        # 2. pre-process
        sample = self.conv_in_condition(torch.cat([sample, brushnet_cond], dim=1))

        # 3. down
        down_block_res_samples = (sample,)
        for down_block in self.down_blocks:
            sample, res_samples = down_block(hidden_states=sample, temb=emb)
            down_block_res_samples += res_samples

        brushnet_down_samples = [
            conv(s)
            for s, conv in zip(down_block_res_samples, self.brushnet_down_blocks, strict=True)
        ]

        # 4. mid
        if self.mid_block is not None:
            sample = self.mid_block(sample, emb)
        brushnet_mid_sample = self.brushnet_mid_block(sample)

        # 5. up: the stock UpBlock2D does not expose its intermediate states, so walk its modules.
        up_block_res_samples = ()
        upsample_size = None
        for i, up_block in enumerate(self.up_blocks):
            is_final_block = i == len(self.up_blocks) - 1
            res_samples = down_block_res_samples[-len(up_block.resnets) :]
            down_block_res_samples = down_block_res_samples[: -len(up_block.resnets)]
            if not is_final_block:
                upsample_size = down_block_res_samples[-1].shape[2:]
            for resnet in up_block.resnets:
                sample = torch.cat([sample, res_samples[-1]], dim=1)
                res_samples = res_samples[:-1]
                if torch.is_grad_enabled() and self.gradient_checkpointing:
                    sample = self._gradient_checkpointing_func(resnet, sample, emb)
                else:
                    sample = resnet(sample, emb)
                up_block_res_samples += (sample,)
            if up_block.upsamplers is not None:
                for upsampler in up_block.upsamplers:
                    sample = upsampler(sample, upsample_size)
                up_block_res_samples += (sample,)

        brushnet_up_samples = [
            conv(s) for s, conv in zip(up_block_res_samples, self.brushnet_up_blocks, strict=True)
        ]

        # 6. scaling, over all taps in order: down, mid, up
        samples = [*brushnet_down_samples, brushnet_mid_sample, *brushnet_up_samples]
        if guess_mode and not self.config.global_pool_conditions:
            scales = torch.logspace(-1, 0, len(samples), device=sample.device) * conditioning_scale
            samples = [s * w for s, w in zip(samples, scales, strict=True)]
        else:
            samples = [s * conditioning_scale for s in samples]
        if self.config.global_pool_conditions:
            samples = [torch.mean(s, dim=(2, 3), keepdim=True) for s in samples]
        n_down = len(brushnet_down_samples)
        brushnet_down_samples = samples[:n_down]
        brushnet_mid_sample = samples[n_down]
        brushnet_up_samples = samples[n_down + 1 :]

        if not return_dict:
            return (tuple(brushnet_down_samples), brushnet_mid_sample, tuple(brushnet_up_samples))
        return BrushNetOutput(
            down_block_res_samples=tuple(brushnet_down_samples),
            mid_block_res_sample=brushnet_mid_sample,
            up_block_res_samples=tuple(brushnet_up_samples),
        )

    def _text_time_embedding(
        self, added_cond_kwargs: dict | None, emb: torch.Tensor
    ) -> torch.Tensor:
        """SDXL's `text_time` embedding, computed as `UNet2DConditionModel.get_aug_embed` does (diffusers 0.42.1)."""
        missing = [k for k in ("text_embeds", "time_ids") if k not in (added_cond_kwargs or {})]
        if missing:
            raise ValueError(
                "This SDXL BrushNet (`addition_embed_type`='text_time') needs `added_cond_kwargs` with "
                f"'text_embeds' (pooled text embedding) and 'time_ids'; missing {missing}."
            )
        text_embeds = added_cond_kwargs["text_embeds"]
        time_ids = added_cond_kwargs["time_ids"]
        time_embeds = self.add_time_proj(time_ids.flatten())
        time_embeds = time_embeds.reshape((text_embeds.shape[0], -1))
        add_embeds = torch.concat([text_embeds, time_embeds], dim=-1).to(emb.dtype)
        return self.add_embedding(add_embeds)
