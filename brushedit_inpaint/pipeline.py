# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""Stable Diffusion 1.5 + BrushNet inpainting pipeline on stock diffusers (written against diffusers 0.42.1)."""

from __future__ import annotations

from collections.abc import Callable
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
    StableDiffusionLoraLoaderMixin,
    TextualInversionLoaderMixin,
)
from diffusers.models import AutoencoderKL, UNet2DConditionModel
from diffusers.pipelines.pipeline_utils import DiffusionPipeline, StableDiffusionMixin
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput, logging

from .brushnet import BrushNetModel
from .caching import EncodeCache, encoder_state, masked_image_key, prompt_key
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
class StableDiffusionBrushNetPipelineOutput(BaseOutput):
    """
    Output of [`StableDiffusionBrushNetPipeline`].

    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The edited images at the input image's size: PIL images, a float `(N, H, W, 3)` array in [0, 1], a float
            `(N, 3, H, W)` tensor in [0, 1], or the final latents for `output_type="latent"`.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


# Copied from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img.retrieve_latents (diffusers 0.42.1)
def retrieve_latents(
    encoder_output: torch.Tensor,
    generator: torch.Generator | None = None,
    sample_mode: str = "sample",
):
    if hasattr(encoder_output, "latent_dist") and sample_mode == "sample":
        return encoder_output.latent_dist.sample(generator)
    elif hasattr(encoder_output, "latent_dist") and sample_mode == "argmax":
        return encoder_output.latent_dist.mode()
    elif hasattr(encoder_output, "latents"):
        return encoder_output.latents
    else:
        raise AttributeError("Could not access latents of provided encoder_output")


def encode_masked_image(
    vae: Any, masked: torch.Tensor, generator: torch.Generator | None, encode_cache: EncodeCache | None
) -> torch.Tensor:
    """A latent sample of the masked image; with `encode_cache` the encoder runs once per distinct image."""
    if encode_cache is None:
        return retrieve_latents(vae.encode(masked), generator=generator)
    key = (masked_image_key(masked), id(vae))
    encoded = encode_cache.get("masked_image", key, lambda: vae.encode(masked))
    return retrieve_latents(encoded, generator=generator)


class StableDiffusionBrushNetPipeline(
    BrushNetPipelineMixin,
    BrushNetToolboxMixin,
    DiffusionPipeline,
    StableDiffusionMixin,
    TextualInversionLoaderMixin,
    IPAdapterMixin,
    StableDiffusionLoraLoaderMixin,
    FromSingleFileMixin,
):
    r"""
    Text-guided inpainting with a frozen SD1.5 UNet and a [`BrushNetModel`] branch (BrushNet / BrushEdit).

    Differences from the reference pipeline, all deliberate: it takes the *original* image and masks it itself; the
    mask is white where content is generated (converted once, in [`hole_to_known_mask`]); the masked-image latent is
    sampled with the caller's `generator`; non-square images keep their aspect ratio and come back at the input size;
    the optional final blend is the blur blend of the BrushNet paper; under classifier-free guidance the branch (which
    has no cross-attention) runs once on the un-doubled batch and is shared by both halves.

    Args:
        vae ([`AutoencoderKL`]): Encodes the masked image and decodes the result.
        text_encoder ([`~transformers.CLIPTextModel`], *optional*): Not needed when embeddings are passed.
        tokenizer ([`~transformers.CLIPTokenizer`], *optional*): Not needed when embeddings are passed.
        unet ([`UNet2DConditionModel`]): A stock, frozen SD1.5 text-to-image UNet (4 input channels).
        brushnet ([`BrushNetModel`]): The inpainting branch.
        scheduler ([`SchedulerMixin`]): Any diffusers scheduler; BrushNet was tuned with UniPC.
        image_encoder ([`~transformers.CLIPVisionModelWithProjection`], *optional*): For IP-Adapter images.
        feature_extractor ([`~transformers.CLIPImageProcessor`], *optional*): Preprocesses IP-Adapter images.

    The diffusers toolbox works as on diffusers' inpaint pipelines (see [`BrushNetToolboxMixin`] and
    `docs/inpainting.md`): `load_lora_weights` / `fuse_lora` / `set_adapters` / `unload_lora_weights` (UNet and text
    encoder; the BrushNet branch is never changed), `load_textual_inversion`, `load_ip_adapter`, `from_single_file`,
    and `DiffusionPipeline.from_pretrained(saved_folder, trust_remote_code=True)`.
    """

    model_cpu_offload_seq = "text_encoder->image_encoder->brushnet->unet->vae"
    _optional_components = ["text_encoder", "tokenizer", "image_encoder", "feature_extractor"]  # noqa: RUF012
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]  # noqa: RUF012

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: Any | None,
        tokenizer: Any | None,
        unet: UNet2DConditionModel,
        brushnet: BrushNetModel,
        scheduler: KarrasDiffusionSchedulers,
        image_encoder: Any | None = None,
        feature_extractor: Any | None = None,
    ):
        super().__init__()
        self.register_modules(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            brushnet=brushnet,
            scheduler=scheduler,
            image_encoder=image_encoder,
            feature_extractor=feature_extractor,
        )
        self.vae_scale_factor = (
            2 ** (len(self.vae.config.block_out_channels) - 1) if vae is not None else 8
        )
        self.image_processor = VaeImageProcessor(
            vae_scale_factor=self.vae_scale_factor, do_convert_rgb=True
        )

    # Adapted from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion.StableDiffusionPipeline.encode_prompt
    # (diffusers 0.42.1); `clip_skip` applies to the negative prompt too.
    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        device: torch.device,
        num_images_per_prompt: int,
        do_classifier_free_guidance: bool,
        negative_prompt: str | list[str] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        lora_scale: float | None = None,
        clip_skip: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encode the prompt (and the negative prompt, empty by default) into CLIP hidden states.

        Textual-inversion tokens are expanded, `lora_scale` scales the text encoder's LoRA layers, `clip_skip=k` uses
        the hidden state `k` layers before the last.
        """
        with lora_text_scale(self, [self.text_encoder], lora_scale):
            if prompt is not None and isinstance(prompt, str):
                batch_size = 1
            elif prompt is not None and isinstance(prompt, list):
                batch_size = len(prompt)
            else:
                batch_size = prompt_embeds.shape[0]

            if prompt_embeds is None:
                prompt_embeds = self._encode_text(prompt, device, clip_skip)

            dtype = self.unet.dtype if self.unet is not None else prompt_embeds.dtype
            prompt_embeds = prompt_embeds.to(dtype=dtype, device=device)
            bs_embed, seq_len, _ = prompt_embeds.shape
            prompt_embeds = prompt_embeds.repeat(1, num_images_per_prompt, 1)
            prompt_embeds = prompt_embeds.view(bs_embed * num_images_per_prompt, seq_len, -1)

            if do_classifier_free_guidance and negative_prompt_embeds is None:
                if negative_prompt is None:
                    uncond_tokens = [""] * batch_size
                elif isinstance(negative_prompt, str):
                    uncond_tokens = [negative_prompt] * batch_size
                else:
                    uncond_tokens = list(negative_prompt)
                negative_prompt_embeds = self._encode_text(uncond_tokens, device, clip_skip)

            if do_classifier_free_guidance:
                seq_len = negative_prompt_embeds.shape[1]
                negative_prompt_embeds = negative_prompt_embeds.to(dtype=dtype, device=device)
                negative_prompt_embeds = negative_prompt_embeds.repeat(1, num_images_per_prompt, 1)
                negative_prompt_embeds = negative_prompt_embeds.view(
                    batch_size * num_images_per_prompt, seq_len, -1
                )

            return prompt_embeds, negative_prompt_embeds

    def _encode_text(
        self, text: str | list[str], device: torch.device, clip_skip: int | None = None
    ) -> torch.Tensor:
        return encode_clip_text(self, text, self.tokenizer, self.text_encoder, device, clip_skip)[0]

    def check_inputs(
        self,
        prompt,
        image,
        mask_image,
        negative_prompt,
        prompt_embeds,
        negative_prompt_embeds,
    ) -> None:
        """Raise a `ValueError` naming the offending argument; never silently fix an input."""
        if image is None:
            raise ValueError("`image` is required: pass the original (unmasked) image.")
        if mask_image is None:
            raise ValueError("`mask_image` is required: white (255) where content is generated.")
        if prompt is not None and prompt_embeds is not None:
            raise ValueError("Pass either `prompt` or `prompt_embeds`, not both.")
        if prompt is None and prompt_embeds is None:
            raise ValueError("Provide either `prompt` or `prompt_embeds`; both are None.")
        if prompt is not None and not isinstance(prompt, (str, list)):
            raise ValueError(
                f"`prompt` must be a str or a list of str, got {type(prompt).__name__}."
            )
        if prompt is not None and self.text_encoder is None:
            raise ValueError(
                "`prompt` needs a `text_encoder` and `tokenizer`; this pipeline has none, pass `prompt_embeds`."
            )
        if negative_prompt is not None and negative_prompt_embeds is not None:
            raise ValueError("Pass either `negative_prompt` or `negative_prompt_embeds`, not both.")
        if prompt is not None and isinstance(negative_prompt, list):
            n_prompt = 1 if isinstance(prompt, str) else len(prompt)
            if len(negative_prompt) != n_prompt:
                raise ValueError(
                    f"`negative_prompt` has {len(negative_prompt)} entries but `prompt` has {n_prompt}."
                )
        if (
            prompt_embeds is not None
            and negative_prompt_embeds is not None
            and prompt_embeds.shape != negative_prompt_embeds.shape
        ):
            raise ValueError(
                "`prompt_embeds` and `negative_prompt_embeds` must have the same shape, got "
                f"{tuple(prompt_embeds.shape)} and {tuple(negative_prompt_embeds.shape)}."
            )
        if (
            prompt_embeds is not None
            and negative_prompt_embeds is None
            and self.text_encoder is None
            and self._guidance_scale > 1
        ):
            raise ValueError(
                "`negative_prompt_embeds` is required with `guidance_scale` > 1 when the pipeline has no "
                "`text_encoder` to encode the empty negative prompt."
            )

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
        masked = masked.to(device=device, dtype=self.vae.dtype)
        if isinstance(generator, list):
            generator = generator[0]
        latent = encode_masked_image(self.vae, masked, generator, encode_cache)
        latent = latent * self.vae.config.scaling_factor

        known_t = torch.from_numpy(np.ascontiguousarray(known))[None, None].to(
            device=device, dtype=latent.dtype
        )
        known_t = F.interpolate(known_t, size=latent.shape[-2:])  # nearest, as in the reference
        conditioning = torch.cat([latent, known_t], dim=1).to(dtype=self.brushnet.dtype)
        return conditioning.repeat(batch_size, 1, 1, 1)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        image: ImageLike | None = None,
        mask_image: ImageLike | None = None,
        negative_prompt: str | list[str] | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.5,
        brushnet_conditioning_scale: float = 1.0,
        control_guidance_start: float = 0.0,
        control_guidance_end: float = 1.0,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
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
    ) -> StableDiffusionBrushNetPipelineOutput | tuple:
        r"""
        Inpaint `image` where `mask_image` is white, guided by `prompt`.

        Args:
            prompt (`str` or `list[str]`, *optional*): What the masked region should show. Or pass `prompt_embeds`.
            image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`):
                The original image: PIL, `(H, W, 3)` uint8 or float in [0, 1], or a float tensor `(3, H, W)` in
                [0, 1]. The pipeline masks it itself.
            mask_image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`):
                Same size as `image`; white (255 / 1.0) where content is generated, black where it is kept.
            negative_prompt (`str` or `list[str]`, *optional*): Defaults to the empty prompt.
            num_inference_steps (`int`, *optional*, defaults to 50): Denoising steps.
            guidance_scale (`float`, *optional*, defaults to 7.5): Classifier-free guidance; off when <= 1.
            brushnet_conditioning_scale (`float`, *optional*, defaults to 1.0): Weight of the branch's samples.
            control_guidance_start (`float`, *optional*, defaults to 0.0): Fraction of steps before the branch applies.
            control_guidance_end (`float`, *optional*, defaults to 1.0): Fraction of steps after which it stops.
            num_images_per_prompt (`int`, *optional*, defaults to 1): Images per prompt.
            generator (`torch.Generator`, *optional*): Seeds the initial noise and the masked-image latent.
            latents (`torch.Tensor`, *optional*): Initial noise `(batch, 4, h/8, w/8)` at the working size.
            prompt_embeds, negative_prompt_embeds (`torch.Tensor`, *optional*): Pre-computed CLIP hidden states.
            blending (`bool`, *optional*, defaults to `True`):
                Blur-blend the result onto the original so pixels outside the mask (and its 21 px seam) are kept.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"`, `"pt"` or `"latent"`.
            callback_on_step_end (`Callable`, *optional*): `fn(pipe, step, timestep, callback_kwargs) -> dict`.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): Tensors passed in `callback_kwargs`.
            height, width (`int`, *optional*):
                Working size (multiples of 8). Default: the input size rounded down to multiples of 8, shrunk to
                `max_side` on the longer side only when larger; the output is always resized back to the input size.
            return_dict (`bool`, *optional*, defaults to `True`): Return the output dataclass instead of a tuple.
            max_side (`int`, *optional*, defaults to 1024): Longest working side when `height`/`width` are not given.
            eta (`float`, *optional*, defaults to 0.0): Passed to schedulers that accept it (DDIM).
            cross_attention_kwargs (`dict`, *optional*): Passed to the UNet's attention processors.
            branch_cfg_batching (`str`, *optional*, defaults to `"shared"`):
                `"shared"` runs BrushNet once per step on the un-doubled batch and reuses its samples for both CFG
                halves; `"doubled"` runs it on the doubled batch like the reference (same result, slower; kept for
                benchmarks and tests).
            timesteps (`list[int]`, *optional*): Custom timesteps for schedulers that accept them (overrides
                `num_inference_steps`), e.g. Hyper-SD's or TCD's trailing schedules.
            sigmas (`list[float]`, *optional*): Custom sigmas for schedulers that accept them.
            guidance_rescale (`float`, *optional*, defaults to 0.0): CFG rescale of "Common Diffusion Noise Schedules
                and Sample Steps are Flawed" (diffusers' `rescale_noise_cfg`); 0.7 for zero-terminal-SNR models.
            clip_skip (`int`, *optional*): Use the CLIP hidden state this many layers before the last.
            ip_adapter_image (*optional*): Image(s) for the IP-Adapter(s) loaded with `load_ip_adapter`.
            ip_adapter_image_embeds (`list[torch.Tensor]`, *optional*): Pre-computed IP-Adapter image embeddings,
                one tensor per adapter, `(2 * batch, num_images, dim)` with the negative half first under CFG.
            padding_mask_crop (`int`, *optional*):
                Edit only a crop around the mask, `padding_mask_crop` px wider on each side and widened to the
                `width:height` (default: the image's) aspect ratio, at the model's native working size (longer side
                `min(max_side, unet.config.sample_size * vae_scale_factor)` unless `height`/`width` are given), then
                paste it back into the full-size image: the way to edit a 4000 px photo. With `blending=True` the
                paste is the usual blur blend; with `blending=False` the whole crop rectangle is replaced.
            encode_cache ([`EncodeCache`], *optional*):
                Reuse the prompt embeddings and the masked image's VAE encoding across calls (a verifier retry with a
                new seed or guidance scale then costs only its denoising loop). Results are unchanged.

        Returns:
            [`StableDiffusionBrushNetPipelineOutput`] or `tuple`: `images` at the input size.
        """
        # 1. Check inputs
        check_call_arguments(
            num_inference_steps=num_inference_steps,
            max_steps=int(getattr(self.scheduler.config, "num_train_timesteps", None) or 1000),
            guidance_scale=guidance_scale, brushnet_conditioning_scale=brushnet_conditioning_scale,
            num_images_per_prompt=num_images_per_prompt, generator=generator, max_side=max_side,
            eta=eta, cross_attention_kwargs=cross_attention_kwargs,
            callback_on_step_end=callback_on_step_end, blending=blending, return_dict=return_dict,
            prompts={"prompt": prompt, "negative_prompt": negative_prompt},
        )
        self._begin_run(guidance_scale, guidance_rescale, clip_skip, cross_attention_kwargs)
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
            image=image,
            mask_image=mask_image,
            negative_prompt=negative_prompt,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
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

        # 3. Encode input prompt (once per prompt with an `encode_cache`)
        lora_scale = (cross_attention_kwargs or {}).get("scale")

        def encode() -> tuple[torch.Tensor, torch.Tensor]:
            return self.encode_prompt(
                prompt,
                device,
                num_images_per_prompt,
                self.do_classifier_free_guidance,
                negative_prompt,
                prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_prompt_embeds,
                lora_scale=lora_scale,
                clip_skip=clip_skip,
            )

        if encode_cache is not None and prompt_embeds is None and negative_prompt_embeds is None:
            key = prompt_key(prompt, negative_prompt, num_images_per_prompt, self.do_classifier_free_guidance,
                             lora_scale, clip_skip, str(device), encoder_state(self))
            prompt_embeds, negative_prompt_embeds = encode_cache.get("prompt", key, encode)
        else:
            prompt_embeds, negative_prompt_embeds = encode()
        unet_prompt_embeds = (
            torch.cat([negative_prompt_embeds, prompt_embeds])
            if self.do_classifier_free_guidance
            else prompt_embeds
        )

        added_cond_kwargs = None
        if ip_adapter_image is not None or ip_adapter_image_embeds is not None:
            image_embeds = self.prepare_ip_adapter_image_embeds(
                ip_adapter_image,
                ip_adapter_image_embeds,
                device,
                total_batch,
                self.do_classifier_free_guidance,
            )
            added_cond_kwargs = {"image_embeds": image_embeds}

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

        # 7. Prepare extra step kwargs, the LCM guidance embedding and the per-step branch switch
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)
        timestep_cond = guidance_embedding(self, guidance_scale, total_batch, device, latents.dtype)
        keep = self.brushnet_keep(len(timesteps), control_guidance_start, control_guidance_end)
        if branch_cfg_batching == "doubled" and self.do_classifier_free_guidance:
            branch_cond = torch.cat([conditioning_latents] * 2)
            branch_embeds = unet_prompt_embeds
        else:
            branch_cond = conditioning_latents
            branch_embeds = prompt_embeds

        # 8. Denoising loop
        num_warmup_steps = len(timesteps) - num_inference_steps * self.scheduler.order
        with self.progress_bar(total=num_inference_steps) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue

                latent_model_input = (
                    torch.cat([latents] * 2) if self.do_classifier_free_guidance else latents
                )
                latent_model_input = self.scheduler.scale_model_input(latent_model_input, t)

                # 8.1 BrushNet: skipped outside [start, end], where the reference adds zeros.
                add_samples = {}
                if keep[i] > 0:
                    shared = branch_cfg_batching == "shared" and self.do_classifier_free_guidance
                    # Both CFG halves hold the same latents and the branch ignores the text, so one pass serves both.
                    branch_input = (
                        latent_model_input[:total_batch] if shared else latent_model_input
                    )
                    down, mid, up = self.brushnet(
                        branch_input,
                        t,
                        encoder_hidden_states=branch_embeds,
                        brushnet_cond=branch_cond,
                        conditioning_scale=brushnet_conditioning_scale * keep[i],
                        return_dict=False,
                    )
                    # Shared: the samples cover one half and broadcast over both in the UNet walk.
                    add_samples = {
                        "down_block_add_samples": down,
                        "mid_block_add_sample": mid,
                        "up_block_add_samples": up,
                    }

                # 8.2 predict the noise residual with the branch injected
                noise_pred = unet_forward_with_brushnet(
                    self.unet,
                    latent_model_input,
                    t,
                    encoder_hidden_states=unet_prompt_embeds,
                    timestep_cond=timestep_cond,
                    cross_attention_kwargs=self.cross_attention_kwargs,
                    added_cond_kwargs=added_cond_kwargs,
                    return_dict=False,
                    **add_samples,
                )[0]

                # 8.3 perform guidance
                noise_pred = self._guide(noise_pred)

                # 8.4 compute the previous noisy sample x_t -> x_t-1
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
                    negative_prompt_embeds = callback_outputs.pop(
                        "negative_prompt_embeds", negative_prompt_embeds
                    )

                if i == len(timesteps) - 1 or (
                    (i + 1) > num_warmup_steps and (i + 1) % self.scheduler.order == 0
                ):
                    progress_bar.update()

        # 9. Decode, resize back to the input size, blend
        return self._finish(
            latents,
            generator,
            output_type,
            return_dict,
            StableDiffusionBrushNetPipelineOutput,
            size=(orig_h, orig_w),
            crop_box=crop_box,
            full_image=full_image,
            full_hole=full_hole,
            blending=blending,
        )
