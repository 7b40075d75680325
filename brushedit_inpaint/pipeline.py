# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""Stable Diffusion 1.5 + BrushNet inpainting pipeline on stock diffusers (written against diffusers 0.42.1)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
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

from .auto_pipeline import register_auto_pipeline
from .brushnet import BrushNetModel
from .caching import EncodeCache
from .pipeline_common import BrushNetPipelineMixin, encode_masked_image, retrieve_latents
from .processing import ImageLike
from .toolbox import BrushNetToolboxMixin, encode_clip_text, lora_text_scale

__all__ = [
    "StableDiffusionBrushNetPipeline",
    "StableDiffusionBrushNetPipelineOutput",
    "encode_masked_image",  # moved to `pipeline_common`; kept importable from here
    "retrieve_latents",
]

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
    _prompt_arguments = ("prompt", "negative_prompt")
    _embedding_arguments = ("prompt_embeds", "negative_prompt_embeds")

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
        self._init_image_processing()

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
        self._check_image_and_prompts(image, mask_image, {"prompt": prompt}, prompt_embeds)
        if prompt is not None and self.text_encoder is None:
            raise ValueError(
                "`prompt` needs a `text_encoder` and `tokenizer`; this pipeline has none, pass `prompt_embeds`."
            )
        self._check_negative_prompts(
            prompt,
            {"negative_prompt": negative_prompt},
            {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds},
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

    def prepare_text_conditioning(
        self,
        encoded: tuple[torch.Tensor, torch.Tensor | None],
        height: int,
        width: int,
        device: torch.device,
        batch_size: int,
    ) -> dict[str, torch.Tensor]:
        """The denoising loop's text tensors: the CLIP hidden states as the UNet takes them, both CFG halves.

        As in diffusers' SD pipelines, `prompt_embeds` is what the UNet reads (negative half first under CFG), so a
        `callback_on_step_end` that replaces it (e.g. `SDCFGCutoffCallback`, which keeps `prompt_embeds[-1:]`)
        changes the next steps; `negative_prompt_embeds` is the negative half as `encode_prompt` gave it. SD1.5 has
        no micro-conditioning, so the working size, device and batch size are not needed.
        """
        prompt_embeds, negative_prompt_embeds = encoded
        if self.do_classifier_free_guidance:
            prompt_embeds = torch.cat([negative_prompt_embeds, prompt_embeds])
        return {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds}

    @staticmethod
    def _text_inputs(tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The UNet's `encoder_hidden_states` for a step, and no added text conditioning (that is SDXL's)."""
        return tensors["prompt_embeds"], {}

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        image: ImageLike | list[ImageLike] | None = None,
        mask_image: ImageLike | list[ImageLike] | None = None,
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
        strength: float = 1.0,
    ) -> StableDiffusionBrushNetPipelineOutput | tuple:
        r"""
        Inpaint `image` where `mask_image` is white, guided by `prompt`.

        Args:
            prompt (`str` or `list[str]`, *optional*): What the masked region should show. Or pass `prompt_embeds`.
            image (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor` or a list of them):
                The original image: PIL, `(H, W, 3)` uint8 or float in [0, 1], or a float tensor `(3, H, W)` in
                [0, 1]. The pipeline masks it itself. A list (all of one size) edits a batch: one prompt per image,
                or one prompt for all images (one image for several prompts works too).
            mask_image (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor` or a list of them):
                Same size as `image`; white (255 / 1.0) where content is generated, black where it is kept. A list
                gives one mask per image; a single mask serves every image.
            negative_prompt (`str` or `list[str]`, *optional*): Defaults to the empty prompt.
            num_inference_steps (`int`, *optional*, defaults to 50): Denoising steps.
            guidance_scale (`float`, *optional*, defaults to 7.5): Classifier-free guidance; off when <= 1.
            brushnet_conditioning_scale (`float`, *optional*, defaults to 1.0): Weight of the branch's samples.
            control_guidance_start (`float`, *optional*, defaults to 0.0): Fraction of steps before the branch applies.
            control_guidance_end (`float`, *optional*, defaults to 1.0): Fraction of steps after which it stops.
            num_images_per_prompt (`int`, *optional*, defaults to 1): Images per prompt.
            generator (`torch.Generator`, *optional*): Seeds the initial noise and the masked-image latent.
            latents (`torch.Tensor`, *optional*): Initial noise `(batch, 4, h/8, w/8)` at the working size (with
                `strength` < 1, the noise added to the image's latents).
            prompt_embeds, negative_prompt_embeds (`torch.Tensor`, *optional*): Pre-computed CLIP hidden states.
            blending (`bool`, *optional*, defaults to `True`):
                Blur-blend the result onto the original so pixels outside the mask (and its 21 px seam) are kept.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"`, `"pt"` or `"latent"`.
            callback_on_step_end (`Callable` or [`~diffusers.callbacks.PipelineCallback`], *optional*):
                `fn(pipe, step, timestep, callback_kwargs) -> dict`, called after each step; the tensors it returns
                replace the loop's. diffusers' own callbacks work as on its pipelines, e.g.
                `SDCFGCutoffCallback(cutoff_step_ratio=0.4)` (guidance off after 40% of the steps) and
                `IPAdapterScaleCutoffCallback`; their `tensor_inputs` are passed.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): Tensors passed in `callback_kwargs`, from
                `_callback_tensor_inputs`: `latents`, `prompt_embeds` (what the UNet reads, both CFG halves),
                `negative_prompt_embeds`.
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
            strength (`float`, *optional*, defaults to 1.0):
                As in diffusers' inpaint pipelines: below 1, denoising starts from `image` itself, noised to the
                timestep `strength` of the way through the schedule, and runs only `int(num_inference_steps *
                strength)` steps, so the masked area keeps more of the original (its colours, its layout). 1 starts
                from pure noise.

        Returns:
            [`StableDiffusionBrushNetPipelineOutput`] or `tuple`: `images` at the input size.
        """
        # The steps are the SDXL pipeline's too: `BrushNetPipelineMixin._inpaint`.
        arguments = {name: value for name, value in locals().items() if name != "self"}
        return self._inpaint(StableDiffusionBrushNetPipelineOutput, **arguments)


register_auto_pipeline(StableDiffusionBrushNetPipeline)  # AutoPipelineForInpainting finds it (see auto_pipeline.py)
