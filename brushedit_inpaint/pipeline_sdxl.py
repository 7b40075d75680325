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

from .auto_pipeline import register_auto_pipeline
from .brushnet import BrushNetModel
from .caching import EncodeCache
from .pipeline_common import BrushNetPipelineMixin
from .processing import ImageLike
from .toolbox import BrushNetToolboxMixin, encode_clip_text, lora_text_scale

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
    _prompt_arguments = ("prompt", "prompt_2", "negative_prompt", "negative_prompt_2")
    _embedding_arguments = (
        "prompt_embeds",
        "negative_prompt_embeds",
        "pooled_prompt_embeds",
        "negative_pooled_prompt_embeds",
    )

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
        self._init_image_processing()

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

    def prepare_text_conditioning(
        self,
        encoded: tuple[torch.Tensor, ...],
        height: int,
        width: int,
        device: torch.device,
        batch_size: int,
        *,
        original_size: tuple[int, int] | None,
        crops_coords_top_left: tuple[int, int],
        target_size: tuple[int, int] | None,
        negative_original_size: tuple[int, int] | None,
        negative_crops_coords_top_left: tuple[int, int] | None,
        negative_target_size: tuple[int, int] | None,
    ) -> dict[str, torch.Tensor]:
        """The denoising loop's text tensors, both CFG halves: hidden states, pooled embeddings and time ids.

        The micro-conditioning sizes default to the working size (`height`, `width`), the negative ones to the
        positive ones. All three tensors are what `callback_on_step_end` may read and replace.
        """
        prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds = encoded
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
        add_time_ids = add_time_ids.to(device).repeat(batch_size, 1)
        negative_add_time_ids = negative_add_time_ids.to(device).repeat(batch_size, 1)
        add_text_embeds = pooled_prompt_embeds
        if self.do_classifier_free_guidance:
            prompt_embeds = torch.cat([negative_prompt_embeds, prompt_embeds])
            add_text_embeds = torch.cat([negative_pooled_prompt_embeds, add_text_embeds])
            add_time_ids = torch.cat([negative_add_time_ids, add_time_ids])
        return {"prompt_embeds": prompt_embeds, "add_text_embeds": add_text_embeds, "add_time_ids": add_time_ids}

    @staticmethod
    def _text_inputs(tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The UNet's `encoder_hidden_states` and SDXL's added text conditioning (`text_time`) for a step."""
        return tensors["prompt_embeds"], {
            "text_embeds": tensors["add_text_embeds"],
            "time_ids": tensors["add_time_ids"],
        }

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
        self._check_image_and_prompts(
            image, mask_image, {"prompt": prompt, "prompt_2": prompt_2}, prompt_embeds
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
        self._check_negative_prompts(
            prompt,
            {"negative_prompt": negative_prompt, "negative_prompt_2": negative_prompt_2},
            {
                "prompt_embeds": prompt_embeds,
                "negative_prompt_embeds": negative_prompt_embeds,
                "pooled_prompt_embeds": pooled_prompt_embeds,
                "negative_pooled_prompt_embeds": negative_pooled_prompt_embeds,
            },
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

    _vae_precision = _vae_in_float32

    def _decode(self, latents: torch.Tensor, generator) -> torch.Tensor:
        return super()._decode(latents, generator).float()

    # -- call -----------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        prompt_2: str | list[str] | None = None,
        image: ImageLike | list[ImageLike] | None = None,
        mask_image: ImageLike | list[ImageLike] | None = None,
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
        strength: float = 1.0,
    ) -> StableDiffusionXLBrushNetPipelineOutput | tuple:
        r"""
        Inpaint `image` where `mask_image` is white, guided by `prompt`.

        Args:
            prompt (`str` or `list[str]`, *optional*): What the masked region should show. Or pass `prompt_embeds`.
            prompt_2 (`str` or `list[str]`, *optional*): Prompt for `text_encoder_2`; defaults to `prompt`.
            image (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor` or a list of them):
                The original image: PIL, `(H, W, 3)` uint8 or float in [0, 1], or a float tensor `(3, H, W)` in
                [0, 1]. The pipeline masks it itself. A list (all of one size) edits a batch: one prompt per image,
                or one prompt for all images (one image for several prompts works too).
            mask_image (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor` or a list of them):
                Same size as `image`; white (255 / 1.0) where content is generated, black where it is kept. A list
                gives one mask per image; a single mask serves every image.
            negative_prompt, negative_prompt_2 (`str` or `list[str]`, *optional*):
                Without them (and `force_zeros_for_empty_prompt`, SDXL's default) the negative embeddings are zeros.
            num_inference_steps (`int`, *optional*, defaults to 50): Denoising steps.
            guidance_scale (`float`, *optional*, defaults to 5.0): Classifier-free guidance; off when <= 1.
            brushnet_conditioning_scale (`float`, *optional*, defaults to 1.0): Weight of the branch's samples.
            control_guidance_start (`float`, *optional*, defaults to 0.0): Fraction of steps before the branch applies.
            control_guidance_end (`float`, *optional*, defaults to 1.0): Fraction of steps after which it stops.
            num_images_per_prompt (`int`, *optional*, defaults to 1): Images per prompt.
            generator (`torch.Generator`, *optional*): Seeds the initial noise and the masked-image latent.
            latents (`torch.Tensor`, *optional*): Initial noise `(batch, 4, h/8, w/8)` at the working size (with
                `strength` < 1, the noise added to the image's latents).
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
            callback_on_step_end (`Callable` or [`~diffusers.callbacks.PipelineCallback`], *optional*):
                As for [`StableDiffusionBrushNetPipeline`]; `SDXLCFGCutoffCallback` switches guidance off after its
                cutoff step.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): Tensors passed in `callback_kwargs`:
                `latents`, and what the UNet reads, both CFG halves (negative first): `prompt_embeds`,
                `add_text_embeds` (pooled), `add_time_ids`.
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
            strength (`float`, *optional*, defaults to 1.0): As for [`StableDiffusionBrushNetPipeline`]: below 1 the
                edit starts from the noised `image` and runs `int(num_inference_steps * strength)` steps.

        Returns:
            [`StableDiffusionXLBrushNetPipelineOutput`] or `tuple`: `images` at the input size.
        """
        # The steps are the SD1.5 pipeline's too: `BrushNetPipelineMixin._inpaint`.
        arguments = {name: value for name, value in locals().items() if name != "self"}
        return self._inpaint(StableDiffusionXLBrushNetPipelineOutput, **arguments)


register_auto_pipeline(StableDiffusionXLBrushNetPipeline)  # AutoPipelineForInpainting finds it (see auto_pipeline.py)


def _repeat(embeds: torch.Tensor, times: int) -> torch.Tensor:
    """Repeat each prompt's embedding `times` times in a row (batch order p0, p0, p1, p1, ...)."""
    return embeds.repeat_interleave(times, dim=0) if times > 1 else embeds
