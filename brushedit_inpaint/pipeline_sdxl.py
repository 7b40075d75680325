# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""Stable Diffusion XL + BrushNet inpainting pipeline on stock diffusers (written against diffusers 0.42.1).

Same conventions as [`StableDiffusionBrushNetPipeline`] (original image in, white = generate, aspect ratio kept,
output at the input size, optional blur blend), plus SDXL's two text encoders, pooled embeddings and size/crop
micro-conditioning. The SDXL branch reads the micro-conditioning (`text_time`), so unlike SD1.5 it is only shared
between the classifier-free-guidance halves when both halves give it identical inputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers.image_processor import VaeImageProcessor
from diffusers.loaders import (
    FromSingleFileMixin,
    IPAdapterMixin,
    StableDiffusionXLLoraLoaderMixin,
    TextualInversionLoaderMixin,
)
from diffusers.models import AutoencoderKL, UNet2DConditionModel
from diffusers.pipelines.pipeline_utils import DiffusionPipeline, StableDiffusionMixin
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput, logging

from .brushnet import BrushNetModel
from .caching import EncodeCache, encoder_state, prompt_key
from .pipeline import encode_masked_image
from .pipeline_common import BrushNetPipelineMixin
from .processing import (
    ImageLike,
    callback_updates,
    check_call_arguments,
    hole_to_known_mask,
    resize_image,
    resize_mask,
)
from .toolbox import (
    BrushNetToolboxMixin,
    check_toolbox_inputs,
    crop_to_mask,
    encode_clip_text,
    guidance_embedding,
    lora_text_scale,
    region_working_size,
    retrieve_timesteps,
)
from .unet_injection import unet_forward_with_brushnet

logger = logging.get_logger(__name__)


@dataclass
class StableDiffusionXLBrushNetPipelineOutput(BaseOutput):
    """
    Output of [`StableDiffusionXLBrushNetPipeline`].

    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The edited images at the input image's size: PIL images, a float `(N, H, W, 3)` array in [0, 1], a float
            `(N, 3, H, W)` tensor in [0, 1], or the final latents for `output_type="latent"`.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


class StableDiffusionXLBrushNetPipeline(
    BrushNetPipelineMixin,
    BrushNetToolboxMixin,
    DiffusionPipeline,
    StableDiffusionMixin,
    TextualInversionLoaderMixin,
    IPAdapterMixin,
    StableDiffusionXLLoraLoaderMixin,
    FromSingleFileMixin,
):
    r"""
    Text-guided inpainting with a frozen SDXL UNet and an SDXL [`BrushNetModel`] branch (BrushNet's SDXL checkpoints).

    Differences from the reference SDXL pipeline, all deliberate: it takes the *original* image and masks it itself;
    the mask is white where content is generated (converted once, in [`hole_to_known_mask`]); the masked-image latent
    is sampled with the caller's `generator`; non-square images keep their aspect ratio and come back at the input
    size; the optional final blend is the blur blend of the BrushNet paper; under classifier-free guidance the branch
    runs once on the un-doubled batch when both halves would give it the same inputs (same pooled embedding and time
    ids), and on the doubled batch otherwise.

    Args:
        vae ([`AutoencoderKL`]): Encodes the masked image and decodes the result. SDXL's VAE overflows in float16;
            with `force_upcast` in its config it is run in float32 for encoding and decoding (or use a fp16-fixed VAE
            such as `madebyollin/sdxl-vae-fp16-fix`, whose config has `force_upcast=False`).
        text_encoder ([`~transformers.CLIPTextModel`], *optional*): CLIP ViT-L; not needed with embeddings.
        text_encoder_2 ([`~transformers.CLIPTextModelWithProjection`], *optional*):
            OpenCLIP ViT-bigG, which also gives the pooled embedding; not needed with embeddings.
        tokenizer, tokenizer_2 ([`~transformers.CLIPTokenizer`], *optional*): The two encoders' tokenizers.
        unet ([`UNet2DConditionModel`]): A stock, frozen SDXL text-to-image UNet (4 input channels, `text_time`).
        brushnet ([`BrushNetModel`]): An SDXL inpainting branch (`addition_embed_type="text_time"`).
        scheduler ([`SchedulerMixin`]): Any diffusers scheduler; BrushNet was tuned with UniPC.
        image_encoder, feature_extractor (*optional*): For IP-Adapter; unused unless one is loaded.
        force_zeros_for_empty_prompt (`bool`, defaults to `True`):
            As in SDXL: without a negative prompt, the negative embeddings are zeros (no encoder needed).

    The diffusers toolbox works as on diffusers' SDXL inpaint pipeline (see [`BrushNetToolboxMixin`] and
    `docs/inpainting.md`): `load_lora_weights` / `fuse_lora` / `set_adapters` / `unload_lora_weights` (UNet and both
    text encoders; the BrushNet branch is never changed), `load_textual_inversion`, `load_ip_adapter`,
    `from_single_file`, and `DiffusionPipeline.from_pretrained(saved_folder, trust_remote_code=True)`.
    """

    model_cpu_offload_seq = "text_encoder->text_encoder_2->image_encoder->brushnet->unet->vae"
    _optional_components = [  # noqa: RUF012 (diffusers convention)
        "tokenizer",
        "tokenizer_2",
        "text_encoder",
        "text_encoder_2",
        "image_encoder",
        "feature_extractor",
    ]
    _callback_tensor_inputs = ["latents", "prompt_embeds", "add_text_embeds", "add_time_ids"]  # noqa: RUF012

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: Any | None,
        text_encoder_2: Any | None,
        tokenizer: Any | None,
        tokenizer_2: Any | None,
        unet: UNet2DConditionModel,
        brushnet: BrushNetModel,
        scheduler: KarrasDiffusionSchedulers,
        image_encoder: Any | None = None,
        feature_extractor: Any | None = None,
        force_zeros_for_empty_prompt: bool = True,
    ):
        super().__init__()
        self.register_modules(
            vae=vae,
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            tokenizer=tokenizer,
            tokenizer_2=tokenizer_2,
            unet=unet,
            brushnet=brushnet,
            scheduler=scheduler,
            image_encoder=image_encoder,
            feature_extractor=feature_extractor,
        )
        self.register_to_config(force_zeros_for_empty_prompt=force_zeros_for_empty_prompt)
        self.vae_scale_factor = (
            2 ** (len(self.vae.config.block_out_channels) - 1) if vae is not None else 8
        )
        self.image_processor = VaeImageProcessor(
            vae_scale_factor=self.vae_scale_factor, do_convert_rgb=True
        )
        self._branch_shared = False

    @property
    def branch_shared(self) -> bool:
        """Whether the last call ran the branch once for both CFG halves (True) or on the doubled batch (False)."""
        return self._branch_shared

    # -- prompts --------------------------------------------------------------------------------------------------

    # Adapted from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl.StableDiffusionXLPipeline
    # .encode_prompt (diffusers 0.42.1).
    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        prompt_2: str | list[str] | None,
        device: torch.device,
        num_images_per_prompt: int,
        do_classifier_free_guidance: bool,
        negative_prompt: str | list[str] | None = None,
        negative_prompt_2: str | list[str] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        pooled_prompt_embeds: torch.Tensor | None = None,
        negative_pooled_prompt_embeds: torch.Tensor | None = None,
        lora_scale: float | None = None,
        clip_skip: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """Encode prompt and negative prompt with both encoders: (embeds, negative, pooled, negative pooled).

        Hidden states are the penultimate layers of both encoders (`clip_skip` more layers back), concatenated; the
        pooled embedding is `text_encoder_2`'s projection. `prompt_2` / `negative_prompt_2` default to `prompt` /
        `negative_prompt`. Textual-inversion tokens are expanded; `lora_scale` scales the encoders' LoRA layers.
        """
        with lora_text_scale(self, [self.text_encoder, self.text_encoder_2], lora_scale):
            prompt = [prompt] if isinstance(prompt, str) else prompt
            batch_size = len(prompt) if prompt is not None else prompt_embeds.shape[0]

            if prompt_embeds is None:
                prompt_2 = prompt_2 or prompt
                prompt_2 = [prompt_2] if isinstance(prompt_2, str) else prompt_2
                prompt_embeds, pooled_prompt_embeds = self._encode_text(
                    prompt, prompt_2, device, clip_skip
                )

            zero_out_negative = negative_prompt is None and self.config.force_zeros_for_empty_prompt
            if do_classifier_free_guidance and negative_prompt_embeds is None and zero_out_negative:
                negative_prompt_embeds = torch.zeros_like(prompt_embeds)
                negative_pooled_prompt_embeds = torch.zeros_like(pooled_prompt_embeds)
            elif do_classifier_free_guidance and negative_prompt_embeds is None:
                negative_prompt = negative_prompt or ""
                negative_prompt_2 = negative_prompt_2 or negative_prompt
                negative_prompt = (
                    batch_size * [negative_prompt]
                    if isinstance(negative_prompt, str)
                    else negative_prompt
                )
                negative_prompt_2 = (
                    batch_size * [negative_prompt_2]
                    if isinstance(negative_prompt_2, str)
                    else negative_prompt_2
                )
                negative_prompt_embeds, negative_pooled_prompt_embeds = self._encode_text(
                    negative_prompt, negative_prompt_2, device, clip_skip
                )

            dtype = self.unet.dtype if self.unet is not None else prompt_embeds.dtype
            prompt_embeds = _repeat(prompt_embeds.to(dtype=dtype, device=device), num_images_per_prompt)
            pooled_prompt_embeds = _repeat(
                pooled_prompt_embeds.to(dtype=dtype, device=device), num_images_per_prompt
            )
            if do_classifier_free_guidance:
                negative_prompt_embeds = _repeat(
                    negative_prompt_embeds.to(dtype=dtype, device=device), num_images_per_prompt
                )
                negative_pooled_prompt_embeds = _repeat(
                    negative_pooled_prompt_embeds.to(dtype=dtype, device=device), num_images_per_prompt
                )
            return (
                prompt_embeds,
                negative_prompt_embeds,
                pooled_prompt_embeds,
                negative_pooled_prompt_embeds,
            )

    def _encode_text(
        self, text: list[str], text_2: list[str], device: torch.device, clip_skip: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate hidden states of each available encoder (concatenated) and the last encoder's pooled output."""
        pairs = [
            (t, tok, enc)
            for t, tok, enc in (
                (text, self.tokenizer, self.text_encoder),
                (text_2, self.tokenizer_2, self.text_encoder_2),
            )
            if tok is not None and enc is not None
        ]
        hidden, pooled = [], None
        # SDXL takes raw (un-normed) hidden states, the penultimate layer by default: clip_skip counts from there
        skip = (clip_skip or 0) + 1
        for t, tokenizer, text_encoder in pairs:
            states, projected = encode_clip_text(
                self, t, tokenizer, text_encoder, device, clip_skip=skip, final_layer_norm=False
            )
            if projected is not None:  # CLIPTextModelWithProjection: text_embeds
                pooled = projected
            hidden.append(states)
        if pooled is None:
            raise ValueError(
                "`text_encoder_2` must be a CLIPTextModelWithProjection: SDXL needs its pooled text embedding."
            )
        return torch.cat(hidden, dim=-1), pooled

    def _get_add_time_ids(
        self,
        original_size: tuple[int, int],
        crops_coords_top_left: tuple[int, int],
        target_size: tuple[int, int],
        dtype: torch.dtype,
        text_encoder_projection_dim: int,
    ) -> torch.Tensor:
        """SDXL's six micro-conditioning ids, checked against the UNet's and the branch's add embedding width."""
        add_time_ids = [*original_size, *crops_coords_top_left, *target_size]
        passed = self.unet.config.addition_time_embed_dim * len(add_time_ids) + int(
            text_encoder_projection_dim
        )
        for name, model in (("unet", self.unet), ("brushnet", self.brushnet)):
            expected = model.add_embedding.linear_1.in_features
            if expected != passed:
                raise ValueError(
                    f"The {name}'s added embedding takes {expected} values but the pooled embedding "
                    f"({text_encoder_projection_dim}) and six time ids give {passed}: the embeddings do not "
                    "belong to this model."
                )
        return torch.tensor([add_time_ids], dtype=dtype)

    # -- checks ---------------------------------------------------------------------------------------------------

    def check_inputs(
        self,
        prompt,
        prompt_2,
        image,
        mask_image,
        negative_prompt,
        negative_prompt_2,
        prompt_embeds,
        negative_prompt_embeds,
        pooled_prompt_embeds,
        negative_pooled_prompt_embeds,
    ) -> None:
        """Raise a `ValueError` naming the offending argument; never silently fix an input."""
        if getattr(self.brushnet.config, "addition_embed_type", None) != "text_time":
            raise ValueError(
                "`brushnet` is a Stable Diffusion 1.5 BrushNet; this SDXL pipeline needs an SDXL BrushNet "
                "(addition_embed_type='text_time'), or use StableDiffusionBrushNetPipeline with an SD1.5 base."
            )
        if getattr(self.unet.config, "addition_embed_type", None) != "text_time":
            raise ValueError(
                "`unet` is not an SDXL UNet (no 'text_time' addition embedding); use "
                "StableDiffusionBrushNetPipeline for Stable Diffusion 1.5 bases."
            )
        if image is None:
            raise ValueError("`image` is required: pass the original (unmasked) image.")
        if mask_image is None:
            raise ValueError("`mask_image` is required: white (255) where content is generated.")
        if prompt is not None and prompt_embeds is not None:
            raise ValueError("Pass either `prompt` or `prompt_embeds`, not both.")
        if prompt_2 is not None and prompt_embeds is not None:
            raise ValueError("Pass either `prompt_2` or `prompt_embeds`, not both.")
        if prompt is None and prompt_embeds is None:
            raise ValueError("Provide either `prompt` or `prompt_embeds`; both are None.")
        for name, value in (("prompt", prompt), ("prompt_2", prompt_2)):
            if value is not None and not isinstance(value, (str, list)):
                raise ValueError(
                    f"`{name}` must be a str or a list of str, got {type(value).__name__}."
                )
        if prompt is not None and (self.text_encoder_2 is None or self.tokenizer_2 is None):
            raise ValueError(
                "`prompt` needs `text_encoder_2` and `tokenizer_2`; this pipeline has none, pass `prompt_embeds` "
                "and `pooled_prompt_embeds`."
            )
        if prompt_embeds is not None and pooled_prompt_embeds is None:
            raise ValueError(
                "`pooled_prompt_embeds` is required with `prompt_embeds`: SDXL also conditions on the pooled text "
                "embedding of `text_encoder_2`, so pass both from the same encoding."
            )
        if negative_prompt_embeds is not None and negative_pooled_prompt_embeds is None:
            raise ValueError(
                "`negative_pooled_prompt_embeds` is required with `negative_prompt_embeds`: SDXL also conditions "
                "on the pooled text embedding, so pass both from the same encoding."
            )
        for name, value in (
            ("negative_prompt", negative_prompt),
            ("negative_prompt_2", negative_prompt_2),
        ):
            if value is not None and negative_prompt_embeds is not None:
                raise ValueError(f"Pass either `{name}` or `negative_prompt_embeds`, not both.")
        if prompt is not None and isinstance(negative_prompt, list):
            n_prompt = 1 if isinstance(prompt, str) else len(prompt)
            if len(negative_prompt) != n_prompt:
                raise ValueError(
                    f"`negative_prompt` has {len(negative_prompt)} entries but `prompt` has {n_prompt}."
                )
        if prompt_embeds is not None and negative_prompt_embeds is not None:
            if prompt_embeds.shape != negative_prompt_embeds.shape:
                raise ValueError(
                    "`prompt_embeds` and `negative_prompt_embeds` must have the same shape, got "
                    f"{tuple(prompt_embeds.shape)} and {tuple(negative_prompt_embeds.shape)}."
                )
            if pooled_prompt_embeds.shape != negative_pooled_prompt_embeds.shape:
                raise ValueError(
                    "`pooled_prompt_embeds` and `negative_pooled_prompt_embeds` must have the same shape, got "
                    f"{tuple(pooled_prompt_embeds.shape)} and {tuple(negative_pooled_prompt_embeds.shape)}."
                )
        if (
            self._guidance_scale > 1
            and negative_prompt_embeds is None
            and (negative_prompt is not None or not self.config.force_zeros_for_empty_prompt)
            and (self.text_encoder_2 is None or self.tokenizer_2 is None)
        ):
            raise ValueError(
                "`negative_prompt_embeds` and `negative_pooled_prompt_embeds` are required with `guidance_scale` > 1 "
                "when the pipeline has no `text_encoder_2` to encode the negative prompt."
            )

    # -- latents and conditioning ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _vae_in_float32(self) -> Iterator[None]:
        """Run the VAE in float32 when it is float16 and its config says it overflows there (SDXL's VAE)."""
        dtype = self.vae.dtype
        upcast = dtype == torch.float16 and getattr(self.vae.config, "force_upcast", False)
        if upcast:
            self.vae.to(dtype=torch.float32)
        try:
            yield
        finally:
            if upcast:
                self.vae.to(dtype=dtype)

    def _decode(self, latents: torch.Tensor, generator) -> torch.Tensor:
        with self._vae_in_float32():
            decoded = super()._decode(latents, generator)
        return decoded.float()

    def prepare_conditioning(
        self,
        image: np.ndarray,
        hole_mask: np.ndarray,
        batch_size: int,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
        encode_cache: EncodeCache | None = None,
    ) -> torch.Tensor:
        """Encode the masked image once and append the latent-size mask: BrushNet's 5 conditioning channels.

        `image` is float `(h, w, 3)` in [0, 1] and `hole_mask` `(h, w)` with 1 = generate, both at working size.
        With `encode_cache`, the VAE's latent distribution is reused; each call samples it with its own generator.
        """
        known = hole_to_known_mask(hole_mask)
        masked = image * known[:, :, None]
        masked = torch.from_numpy(masked).permute(2, 0, 1)[None] * 2.0 - 1.0
        if isinstance(generator, list):
            generator = generator[0]
        with self._vae_in_float32():
            masked = masked.to(device=device, dtype=self.vae.dtype)
            latent = encode_masked_image(self.vae, masked, generator, encode_cache)
        latent = latent * self.vae.config.scaling_factor

        known_t = torch.from_numpy(np.ascontiguousarray(known))[None, None].to(
            device=device, dtype=latent.dtype
        )
        known_t = F.interpolate(known_t, size=latent.shape[-2:])  # nearest, as in the reference
        conditioning = torch.cat([latent, known_t], dim=1).to(dtype=self.brushnet.dtype)
        return conditioning.repeat(batch_size, 1, 1, 1)

    # -- call -----------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        prompt_2: str | list[str] | None = None,
        image: ImageLike | None = None,
        mask_image: ImageLike | None = None,
        negative_prompt: str | list[str] | None = None,
        negative_prompt_2: str | list[str] | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 5.0,
        brushnet_conditioning_scale: float = 1.0,
        control_guidance_start: float = 0.0,
        control_guidance_end: float = 1.0,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        pooled_prompt_embeds: torch.Tensor | None = None,
        negative_pooled_prompt_embeds: torch.Tensor | None = None,
        original_size: tuple[int, int] | None = None,
        crops_coords_top_left: tuple[int, int] = (0, 0),
        target_size: tuple[int, int] | None = None,
        negative_original_size: tuple[int, int] | None = None,
        negative_crops_coords_top_left: tuple[int, int] | None = None,
        negative_target_size: tuple[int, int] | None = None,
        blending: bool = True,
        output_type: str = "pil",
        callback_on_step_end: Callable[[Any, int, Any, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],  # noqa: B006 (diffusers signature)
        height: int | None = None,
        width: int | None = None,
        return_dict: bool = True,
        max_side: int = 1024,
        eta: float = 0.0,
        cross_attention_kwargs: dict[str, Any] | None = None,
        branch_cfg_batching: str = "shared",
        timesteps: list[int] | None = None,
        sigmas: list[float] | None = None,
        guidance_rescale: float = 0.0,
        clip_skip: int | None = None,
        ip_adapter_image: Any | None = None,
        ip_adapter_image_embeds: list[torch.Tensor] | None = None,
        padding_mask_crop: int | None = None,
        encode_cache: EncodeCache | None = None,
    ) -> StableDiffusionXLBrushNetPipelineOutput | tuple:
        r"""
        Inpaint `image` where `mask_image` is white, guided by `prompt`.

        Args:
            prompt (`str` or `list[str]`, *optional*): What the masked region should show. Or pass `prompt_embeds`.
            prompt_2 (`str` or `list[str]`, *optional*): Prompt for `text_encoder_2`; defaults to `prompt`.
            image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`):
                The original image: PIL, `(H, W, 3)` uint8 or float in [0, 1], or a float tensor `(3, H, W)` in
                [0, 1]. The pipeline masks it itself.
            mask_image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`):
                Same size as `image`; white (255 / 1.0) where content is generated, black where it is kept.
            negative_prompt, negative_prompt_2 (`str` or `list[str]`, *optional*):
                Without them (and `force_zeros_for_empty_prompt`, SDXL's default) the negative embeddings are zeros.
            num_inference_steps (`int`, *optional*, defaults to 50): Denoising steps.
            guidance_scale (`float`, *optional*, defaults to 5.0): Classifier-free guidance; off when <= 1.
            brushnet_conditioning_scale (`float`, *optional*, defaults to 1.0): Weight of the branch's samples.
            control_guidance_start (`float`, *optional*, defaults to 0.0): Fraction of steps before the branch applies.
            control_guidance_end (`float`, *optional*, defaults to 1.0): Fraction of steps after which it stops.
            num_images_per_prompt (`int`, *optional*, defaults to 1): Images per prompt.
            generator (`torch.Generator`, *optional*): Seeds the initial noise and the masked-image latent.
            latents (`torch.Tensor`, *optional*): Initial noise `(batch, 4, h/8, w/8)` at the working size.
            prompt_embeds, negative_prompt_embeds (`torch.Tensor`, *optional*):
                Pre-computed hidden states of both encoders, concatenated (`(batch, 77, 2048)` for SDXL).
            pooled_prompt_embeds, negative_pooled_prompt_embeds (`torch.Tensor`, *optional*):
                `text_encoder_2`'s pooled embeddings (`(batch, 1280)`); required with the hidden states above.
            original_size (`tuple[int, int]`, *optional*): SDXL micro-conditioning `(height, width)`; defaults to the
                working size.
            crops_coords_top_left (`tuple[int, int]`, *optional*, defaults to `(0, 0)`): Micro-conditioning crop.
            target_size (`tuple[int, int]`, *optional*): Micro-conditioning target; defaults to the working size.
            negative_original_size, negative_crops_coords_top_left, negative_target_size (*optional*):
                Micro-conditioning of the negative half; default to the positive one.
            blending (`bool`, *optional*, defaults to `True`):
                Blur-blend the result onto the original so pixels outside the mask (and its 21 px seam) are kept.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"`, `"pt"` or `"latent"`.
            callback_on_step_end (`Callable`, *optional*): `fn(pipe, step, timestep, callback_kwargs) -> dict`.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): Tensors passed in `callback_kwargs`.
            height, width (`int`, *optional*):
                Working size (multiples of 8). Default: the input size rounded down to multiples of 8, shrunk to
                `max_side` on the longer side only when larger; the output is always resized back to the input size.
                SDXL works best near 1024x1024 pixels: pass a larger working size for small inputs.
            return_dict (`bool`, *optional*, defaults to `True`): Return the output dataclass instead of a tuple.
            max_side (`int`, *optional*, defaults to 1024): Longest working side when `height`/`width` are not given.
            eta (`float`, *optional*, defaults to 0.0): Passed to schedulers that accept it (DDIM).
            cross_attention_kwargs (`dict`, *optional*): Passed to the UNet's attention processors.
            branch_cfg_batching (`str`, *optional*, defaults to `"shared"`):
                `"shared"` runs BrushNet once per step on the un-doubled batch when both CFG halves give it the same
                pooled embedding and time ids (its only text-dependent inputs), else on the doubled batch; `"doubled"`
                always uses the doubled batch like the reference. [`branch_shared`] tells which one ran.
            timesteps, sigmas, guidance_rescale, clip_skip, ip_adapter_image, ip_adapter_image_embeds,
            padding_mask_crop (*optional*): As for [`StableDiffusionBrushNetPipeline`] (the diffusers toolbox);
                `clip_skip` counts from SDXL's penultimate layer, and a `padding_mask_crop` crop is edited at the
                native 1024 px long side (at most `max_side`).
            encode_cache ([`EncodeCache`], *optional*): As for [`StableDiffusionBrushNetPipeline`]: the prompt
                embeddings (both encoders, pooled included) and the masked image's VAE encoding are reused across
                calls; results are unchanged.

        Returns:
            [`StableDiffusionXLBrushNetPipelineOutput`] or `tuple`: `images` at the input size.
        """
        # 1. Check inputs
        check_call_arguments(
            num_inference_steps=num_inference_steps,
            max_steps=int(getattr(self.scheduler.config, "num_train_timesteps", None) or 1000),
            guidance_scale=guidance_scale, brushnet_conditioning_scale=brushnet_conditioning_scale,
            num_images_per_prompt=num_images_per_prompt, generator=generator, max_side=max_side,
            eta=eta, cross_attention_kwargs=cross_attention_kwargs,
            callback_on_step_end=callback_on_step_end, blending=blending, return_dict=return_dict,
            prompts={"prompt": prompt, "prompt_2": prompt_2, "negative_prompt": negative_prompt,
                     "negative_prompt_2": negative_prompt_2},
        )
        self._begin_run(guidance_scale, guidance_rescale, clip_skip, cross_attention_kwargs)
        self._branch_shared = False
        check_toolbox_inputs(
            ip_adapter_image,
            ip_adapter_image_embeds,
            padding_mask_crop,
            guidance_rescale,
            clip_skip,
            timesteps,
            sigmas,
        )
        self.check_inputs(
            prompt=prompt,
            prompt_2=prompt_2,
            image=image,
            mask_image=mask_image,
            negative_prompt=negative_prompt,
            negative_prompt_2=negative_prompt_2,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            pooled_prompt_embeds=pooled_prompt_embeds,
            negative_pooled_prompt_embeds=negative_pooled_prompt_embeds,
        )
        self.check_run_options(
            num_inference_steps=num_inference_steps,
            brushnet_conditioning_scale=brushnet_conditioning_scale,
            control_guidance_start=control_guidance_start,
            control_guidance_end=control_guidance_end,
            height=height,
            width=width,
            output_type=output_type,
            branch_cfg_batching=branch_cfg_batching,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
        )
        original, hole = self._original_and_hole(image, mask_image)

        # 2. Define call parameters
        batch_size = self._prompt_batch_size(prompt, prompt_embeds)
        total_batch = batch_size * num_images_per_prompt
        device = self._execution_device
        do_cfg = self.do_classifier_free_guidance

        # 3. Encode input prompt (once per prompt with an `encode_cache`)
        lora_scale = (cross_attention_kwargs or {}).get("scale")
        given = (prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds)

        def encode() -> tuple[torch.Tensor, ...]:
            return self.encode_prompt(
                prompt,
                prompt_2,
                device,
                num_images_per_prompt,
                do_cfg,
                negative_prompt,
                negative_prompt_2,
                prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_prompt_embeds,
                pooled_prompt_embeds=pooled_prompt_embeds,
                negative_pooled_prompt_embeds=negative_pooled_prompt_embeds,
                lora_scale=lora_scale,
                clip_skip=clip_skip,
            )

        if encode_cache is not None and all(t is None for t in given):
            key = prompt_key(prompt, prompt_2, negative_prompt, negative_prompt_2, num_images_per_prompt, do_cfg,
                             lora_scale, clip_skip, str(device), encoder_state(self))
            encoded = encode_cache.get("prompt", key, encode)
        else:
            encoded = encode()
        prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds = encoded
        image_embeds = None
        if ip_adapter_image is not None or ip_adapter_image_embeds is not None:
            image_embeds = self.prepare_ip_adapter_image_embeds(
                ip_adapter_image, ip_adapter_image_embeds, device, total_batch, do_cfg
            )

        # 4. Prepare image and mask at the working size (aspect ratio kept); optionally only a crop around the mask
        full_image, full_hole = original, hole
        original, hole, crop_box = crop_to_mask(original, hole, padding_mask_crop, height, width)
        orig_h, orig_w = original.shape[:2]
        height, width = region_working_size(
            self, orig_h, orig_w, height, width, max_side, cropped=crop_box is not None
        )
        work_image = resize_image(original, height, width)
        work_hole = resize_mask(hole, height, width)

        # 5. Prepare timesteps (custom `timesteps` / `sigmas` through diffusers' retrieve_timesteps)
        timesteps, num_inference_steps = retrieve_timesteps(
            self.scheduler, num_inference_steps, device, timesteps, sigmas
        )
        self._num_timesteps = len(timesteps)

        # 6. Prepare latent variables, then the conditioning (masked image encoded once)
        latents = self.prepare_latents(
            total_batch,
            self.unet.config.in_channels,
            height,
            width,
            prompt_embeds.dtype,
            device,
            generator,
            latents,
        )
        conditioning_latents = self.prepare_conditioning(
            work_image, work_hole, total_batch, device, generator, encode_cache
        )

        # 7. Micro-conditioning (SDXL's size and crop ids) and the CFG batch
        original_size = tuple(original_size or (height, width))
        target_size = tuple(target_size or (height, width))
        projection_dim = int(pooled_prompt_embeds.shape[-1])
        add_time_ids = self._get_add_time_ids(
            original_size,
            tuple(crops_coords_top_left),
            target_size,
            prompt_embeds.dtype,
            projection_dim,
        )
        negative_add_time_ids = self._get_add_time_ids(
            tuple(negative_original_size or original_size),
            tuple(negative_crops_coords_top_left or crops_coords_top_left),
            tuple(negative_target_size or target_size),
            prompt_embeds.dtype,
            projection_dim,
        )
        add_time_ids = add_time_ids.to(device).repeat(total_batch, 1)
        negative_add_time_ids = negative_add_time_ids.to(device).repeat(total_batch, 1)
        add_text_embeds = pooled_prompt_embeds
        # The branch sees the text only through `text_time`: one pass serves both halves iff those inputs agree.
        shared = (
            do_cfg
            and branch_cfg_batching == "shared"
            and torch.equal(negative_pooled_prompt_embeds, pooled_prompt_embeds)
            and torch.equal(negative_add_time_ids, add_time_ids)
        )
        self._branch_shared = bool(shared)
        if do_cfg:
            prompt_embeds = torch.cat([negative_prompt_embeds, prompt_embeds])
            add_text_embeds = torch.cat([negative_pooled_prompt_embeds, add_text_embeds])
            add_time_ids = torch.cat([negative_add_time_ids, add_time_ids])
        branch_cond = (
            torch.cat([conditioning_latents] * 2) if do_cfg and not shared else conditioning_latents
        )

        # 8. Prepare extra step kwargs, the LCM guidance embedding and the per-step branch switch
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)
        timestep_cond = guidance_embedding(self, guidance_scale, total_batch, device, latents.dtype)
        keep = self.brushnet_keep(len(timesteps), control_guidance_start, control_guidance_end)

        # 9. Denoising loop
        num_warmup_steps = len(timesteps) - num_inference_steps * self.scheduler.order
        with self.progress_bar(total=num_inference_steps) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue

                latent_model_input = torch.cat([latents] * 2) if do_cfg else latents
                latent_model_input = self.scheduler.scale_model_input(latent_model_input, t)
                added_cond_kwargs = {"text_embeds": add_text_embeds, "time_ids": add_time_ids}
                unet_added = (
                    added_cond_kwargs
                    if image_embeds is None
                    else {**added_cond_kwargs, "image_embeds": image_embeds}
                )

                # 9.1 BrushNet: skipped outside [start, end], where the reference adds zeros.
                add_samples = {}
                if keep[i] > 0:
                    if shared:
                        branch_input = latent_model_input[total_batch:]
                        branch_embeds = prompt_embeds[total_batch:]
                        branch_added = {
                            "text_embeds": add_text_embeds[total_batch:],
                            "time_ids": add_time_ids[total_batch:],
                        }
                    else:
                        branch_input, branch_embeds = latent_model_input, prompt_embeds
                        branch_added = added_cond_kwargs
                    down, mid, up = self.brushnet(
                        branch_input,
                        t,
                        encoder_hidden_states=branch_embeds,
                        brushnet_cond=branch_cond,
                        conditioning_scale=brushnet_conditioning_scale * keep[i],
                        added_cond_kwargs=branch_added,
                        return_dict=False,
                    )
                    # Shared: the samples cover one half and broadcast over both in the UNet walk.
                    add_samples = {
                        "down_block_add_samples": down,
                        "mid_block_add_sample": mid,
                        "up_block_add_samples": up,
                    }

                # 9.2 predict the noise residual with the branch injected
                noise_pred = unet_forward_with_brushnet(
                    self.unet,
                    latent_model_input,
                    t,
                    encoder_hidden_states=prompt_embeds,
                    timestep_cond=timestep_cond,
                    cross_attention_kwargs=self.cross_attention_kwargs,
                    added_cond_kwargs=unet_added,
                    return_dict=False,
                    **add_samples,
                )[0]

                # 9.3 perform guidance
                noise_pred = self._guide(noise_pred)

                # 9.4 compute the previous noisy sample x_t -> x_t-1
                latents = self.scheduler.step(
                    noise_pred, t, latents, **extra_step_kwargs, return_dict=False
                )[0]

                if callback_on_step_end is not None:
                    callback_kwargs = {}
                    for k in callback_on_step_end_tensor_inputs:
                        callback_kwargs[k] = locals()[k]
                    callback_outputs = callback_updates(
                        callback_on_step_end(self, i, t, callback_kwargs)
                    )
                    latents = callback_outputs.pop("latents", latents)
                    prompt_embeds = callback_outputs.pop("prompt_embeds", prompt_embeds)
                    add_text_embeds = callback_outputs.pop("add_text_embeds", add_text_embeds)
                    add_time_ids = callback_outputs.pop("add_time_ids", add_time_ids)

                if i == len(timesteps) - 1 or (
                    (i + 1) > num_warmup_steps and (i + 1) % self.scheduler.order == 0
                ):
                    progress_bar.update()

        # 10. Decode, resize back to the input size, blend
        return self._finish(
            latents,
            generator,
            output_type,
            return_dict,
            StableDiffusionXLBrushNetPipelineOutput,
            size=(orig_h, orig_w),
            crop_box=crop_box,
            full_image=full_image,
            full_hole=full_hole,
            blending=blending,
        )


def _repeat(embeds: torch.Tensor, times: int) -> torch.Tensor:
    """Repeat each prompt's embedding `times` times in a row (batch order p0, p0, p1, p1, ...)."""
    return embeds.repeat_interleave(times, dim=0) if times > 1 else embeds
