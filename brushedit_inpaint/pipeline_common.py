# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""What the SD1.5 and SDXL BrushNet pipelines share: the steps of `__call__`, run state, checks, latents, decoding.

One place for the logic both pipelines run the same way, so a fix to one is a fix to both. A pipeline adds only what
differs (see [`BrushNetPipelineMixin`]): its prompt arguments, `check_inputs`, `encode_prompt`, and the text side of
the denoising loop (SDXL: pooled embeddings and size/crop micro-conditioning; its VAE may run in float32).
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils.torch_utils import randn_tensor

from .caching import EncodeCache, encoder_state, masked_image_key, prompt_key
from .processing import (
    ImageLike,
    blur_blend,
    callback_updates,
    check_call_arguments,
    check_strength_steps,
    hole_to_known_mask,
    resize_image,
    resize_mask,
    to_float_rgb,
    to_hole_mask,
)
from .toolbox import (
    check_toolbox_inputs,
    crop_to_masks,
    guidance_embedding,
    paste_crop,
    region_working_size,
    rescale_noise_cfg,
    retrieve_timesteps,
)
from .unet_injection import unet_forward_with_brushnet

_OUTPUT_TYPES = ("pil", "np", "pt", "latent")
_BRANCH_BATCHING = ("shared", "doubled")


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


def _per_call(name: str, doc: str) -> property:
    """A read-only property for the value the running call keeps as `self._<name>` (diffusers' convention)."""
    attribute = f"_{name}"
    return property(lambda self: getattr(self, attribute), doc=doc)


class BrushNetPipelineMixin:
    """Shared by [`StableDiffusionBrushNetPipeline`] and [`StableDiffusionXLBrushNetPipeline`].

    Each pipeline's `__call__` declares and documents its arguments and hands them to [`_inpaint`], which runs the
    numbered steps. What a pipeline provides:

    - `_prompt_arguments` / `_embedding_arguments`: the names of its prompt and embedding arguments;
    - `check_inputs(image=..., mask_image=..., **prompts, **embeddings)` and `encode_prompt(...)`;
    - `prepare_text_conditioning(encoded, height, width, device, batch, **rest)`: the loop's text tensors by name
      (those in `_callback_tensor_inputs` are the ones `callback_on_step_end` may read and replace), where `rest`
      holds its remaining `__call__` arguments;
    - `_text_inputs(tensors)`: the UNet's `encoder_hidden_states` and text `added_cond_kwargs` for one step;
    - optionally `_vae_precision()`, the context the VAE runs in (SDXL upcasts a float16 VAE that overflows).
    """

    _prompt_arguments: tuple[str, ...]
    _embedding_arguments: tuple[str, ...]

    guidance_scale = _per_call("guidance_scale", "The classifier-free guidance scale of the running call.")
    guidance_rescale = _per_call("guidance_rescale", "The CFG rescale factor of the running call.")
    clip_skip = _per_call("clip_skip", "The CLIP layers skipped by the running call (None: the last layer).")
    cross_attention_kwargs = _per_call(
        "cross_attention_kwargs", "What the running call passes to the UNet's attention processors."
    )
    num_timesteps = _per_call("num_timesteps", "How many timesteps the running call denoises.")
    interrupt = _per_call(
        "interrupt", "True once a callback set `pipe._interrupt = True`: the remaining steps are skipped."
    )
    branch_shared = _per_call(
        "branch_shared",
        "Whether the last call ran the branch once for both CFG halves (True) or on the doubled batch (False).",
    )

    @property
    def do_classifier_free_guidance(self) -> bool:
        # guidance-distilled UNets (LCM) embed the scale instead of running two halves
        return self._guidance_scale > 1 and self.unet.config.time_cond_proj_dim is None

    def _init_image_processing(self) -> None:
        """After `register_modules`: the VAE's scale factor and image processor, and the run state."""
        self.vae_scale_factor = (
            2 ** (len(self.vae.config.block_out_channels) - 1) if self.vae is not None else 8
        )
        self.image_processor = VaeImageProcessor(
            vae_scale_factor=self.vae_scale_factor, do_convert_rgb=True
        )
        self._branch_shared = False

    def _begin_run(self, guidance_scale, guidance_rescale, clip_skip, cross_attention_kwargs) -> None:
        """Record the per-call settings the properties above read."""
        self._guidance_scale = guidance_scale
        self._guidance_rescale = guidance_rescale
        self._clip_skip = clip_skip
        self._cross_attention_kwargs = cross_attention_kwargs
        self._interrupt = False
        self._branch_shared = False

    @staticmethod
    def _original_and_hole(image: ImageLike, mask_image: ImageLike) -> tuple[np.ndarray, np.ndarray]:
        """The image as float RGB and the mask as a hole mask, after checking that their sizes match."""
        original = to_float_rgb(image)
        hole = to_hole_mask(mask_image)
        if original.shape[:2] != hole.shape:
            raise ValueError(
                f"`mask_image` size {hole.shape[1]}x{hole.shape[0]} (WxH) must match `image` size "
                f"{original.shape[1]}x{original.shape[0]}."
            )
        return original, hole

    @classmethod
    def _originals_and_holes(cls, image, mask_image) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """`image` and `mask_image`, each one image or a list, as equally long lists of float RGB images and hole
        masks of one size. A single image or mask goes with every entry of the other list."""
        images = list(image) if isinstance(image, (list, tuple)) else [image]
        masks = list(mask_image) if isinstance(mask_image, (list, tuple)) else [mask_image]
        for name, values in (("image", images), ("mask_image", masks)):
            if not values:
                raise ValueError(f"`{name}` is an empty list: pass an image or a non-empty list of them.")
        if len(images) != len(masks) and 1 not in (len(images), len(masks)):
            raise ValueError(
                f"`mask_image` has {len(masks)} entries but `image` has {len(images)}: pass one mask per image, "
                "or one mask for all images."
            )
        count = max(len(images), len(masks))
        images, masks = images * (count // len(images)), masks * (count // len(masks))
        pairs = [cls._original_and_hole(im, m) for im, m in zip(images, masks, strict=True)]
        sizes = {original.shape[:2] for original, _ in pairs}
        if len(sizes) > 1:
            shown = ", ".join(f"{w}x{h}" for h, w in sorted(sizes))
            raise ValueError(
                f"The entries of `image` must all have the same size (WxH), got {shown}: resize them first or "
                "make one call per size."
            )
        return [original for original, _ in pairs], [hole for _, hole in pairs]

    @staticmethod
    def _prompt_batch_size(prompt, prompt_embeds) -> int:
        if prompt is not None and isinstance(prompt, str):
            return 1
        if prompt is not None:
            return len(prompt)
        return prompt_embeds.shape[0]

    def _batch(
        self, prompts: dict[str, Any], embeddings: dict[str, Any], num_images: int
    ) -> tuple[int, dict[str, Any], dict[str, Any]]:
        """The call's batch size, one entry per prompt and per image: they must be as many, or one of them 1.

        One prompt (or one row of embeddings) with several images is repeated for each image, as diffusers repeats a
        single image for several prompts. Returns the batch size and the prompts and embeddings to encode.
        """
        num_prompts = self._prompt_batch_size(prompts["prompt"], embeddings["prompt_embeds"])
        if num_images == 1 or num_images == num_prompts:
            return num_prompts, prompts, embeddings
        if num_prompts != 1:
            given = "`prompt`" if prompts["prompt"] is not None else "`prompt_embeds`"
            raise ValueError(
                f"`image` has {num_images} entries but {given} has {num_prompts}: pass one prompt per image, one "
                "prompt for all images, or one image for all prompts."
            )
        prompts = {
            name: [value] * num_images if isinstance(value, str) else value * num_images if value else value
            for name, value in prompts.items()
        }
        embeddings = {
            name: None if value is None else value.repeat(num_images, *[1] * (value.ndim - 1))
            for name, value in embeddings.items()
        }
        return num_images, prompts, embeddings

    @staticmethod
    def _check_image_and_prompts(image, mask_image, prompts: dict[str, Any], prompt_embeds) -> None:
        """`check_inputs`' checks of both pipelines on the images and the (positive) `prompts`, by name."""
        if image is None:
            raise ValueError("`image` is required: pass the original (unmasked) image.")
        if mask_image is None:
            raise ValueError("`mask_image` is required: white (255) where content is generated.")
        for name, value in prompts.items():
            if value is not None and prompt_embeds is not None:
                raise ValueError(f"Pass either `{name}` or `prompt_embeds`, not both.")
        if prompts["prompt"] is None and prompt_embeds is None:
            raise ValueError("Provide either `prompt` or `prompt_embeds`; both are None.")
        for name, value in prompts.items():
            if value is not None and not isinstance(value, (str, list)):
                raise ValueError(
                    f"`{name}` must be a str or a list of str, got {type(value).__name__}."
                )

    @staticmethod
    def _check_negative_prompts(
        prompt, negative_prompts: dict[str, Any], embeddings: dict[str, torch.Tensor | None]
    ) -> None:
        """`check_inputs`' checks of both pipelines on the `negative_prompts` and the `embeddings`, by name.

        With `prompt_embeds` and `negative_prompt_embeds` given, each `<name>` in `embeddings` must have the shape of
        its `negative_<name>` (SDXL: the pooled embeddings too).
        """
        negative_prompt_embeds = embeddings["negative_prompt_embeds"]
        for name, value in negative_prompts.items():
            if value is not None and negative_prompt_embeds is not None:
                raise ValueError(f"Pass either `{name}` or `negative_prompt_embeds`, not both.")
        negative_prompt = negative_prompts["negative_prompt"]
        if prompt is not None and isinstance(negative_prompt, list):
            n_prompt = 1 if isinstance(prompt, str) else len(prompt)
            if len(negative_prompt) != n_prompt:
                raise ValueError(
                    f"`negative_prompt` has {len(negative_prompt)} entries but `prompt` has {n_prompt}."
                )
        if embeddings["prompt_embeds"] is None or negative_prompt_embeds is None:
            return
        for name, value in embeddings.items():
            negative = embeddings.get(f"negative_{name}")
            if negative is not None and value.shape != negative.shape:
                raise ValueError(
                    f"`{name}` and `negative_{name}` must have the same shape, got {tuple(value.shape)} and "
                    f"{tuple(negative.shape)}."
                )

    def check_run_options(
        self,
        num_inference_steps: int,
        brushnet_conditioning_scale: float,
        control_guidance_start: float,
        control_guidance_end: float,
        height: int | None,
        width: int | None,
        output_type: str,
        branch_cfg_batching: str,
        callback_on_step_end_tensor_inputs: list[str] | None,
    ) -> None:
        """Raise a `ValueError` naming the offending run option (steps, branch scale and window, size, output)."""
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(
                f"`num_inference_steps` must be a positive int, got {num_inference_steps!r}."
            )
        if not isinstance(brushnet_conditioning_scale, (int, float)):
            raise ValueError(
                f"`brushnet_conditioning_scale` must be a number, got {type(brushnet_conditioning_scale).__name__}."
            )
        if not 0.0 <= control_guidance_start < control_guidance_end <= 1.0:
            raise ValueError(
                "`control_guidance_start` and `control_guidance_end` must satisfy 0 <= start < end <= 1, got "
                f"{control_guidance_start} and {control_guidance_end}."
            )
        for name, value in (("height", height), ("width", width)):
            if value is not None and (not isinstance(value, int) or value < 8 or value % 8 != 0):
                raise ValueError(f"`{name}` must be a positive multiple of 8, got {value!r}.")
        if output_type not in _OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {_OUTPUT_TYPES}, got {output_type!r}.")
        if branch_cfg_batching not in _BRANCH_BATCHING:
            raise ValueError(
                f"`branch_cfg_batching` must be one of {_BRANCH_BATCHING}, got {branch_cfg_batching!r}."
            )
        if callback_on_step_end_tensor_inputs is not None:
            unknown = [
                k
                for k in callback_on_step_end_tensor_inputs
                if k not in self._callback_tensor_inputs
            ]
            if unknown:
                raise ValueError(
                    f"`callback_on_step_end_tensor_inputs` has {unknown}; allowed: {self._callback_tensor_inputs}."
                )

    # Adapted from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion.StableDiffusionPipeline.prepare_latents
    # (diffusers 0.42.1): with `image_latents` (`strength` < 1) the noise is added to them at `timestep`, as diffusers'
    # inpaint pipelines do, instead of being scaled by the scheduler's initial sigma.
    def prepare_latents(
        self,
        batch_size,
        num_channels_latents,
        height,
        width,
        dtype,
        device,
        generator,
        latents=None,
        image_latents=None,
        timestep=None,
    ):
        shape = (
            batch_size,
            num_channels_latents,
            int(height) // self.vae_scale_factor,
            int(width) // self.vae_scale_factor,
        )
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(
                f"You have passed a list of generators of length {len(generator)}, but requested an effective batch"
                f" size of {batch_size}. Make sure the batch size matches the length of the generators."
            )
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        else:
            if tuple(latents.shape) != shape:
                raise ValueError(f"`latents` must have shape {shape}, got {tuple(latents.shape)}.")
            latents = latents.to(device)
        if image_latents is not None:
            return self.scheduler.add_noise(image_latents, latents, timestep)
        # scale the initial noise by the standard deviation required by the scheduler
        return latents * self.scheduler.init_noise_sigma

    # Copied from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint.StableDiffusionInpaintPipeline
    # .get_timesteps (diffusers 0.42.1)
    def get_timesteps(self, num_inference_steps, strength, device):
        # get the original timestep using init_timestep
        init_timestep = min(int(num_inference_steps * strength), num_inference_steps)

        t_start = max(num_inference_steps - init_timestep, 0)
        timesteps = self.scheduler.timesteps[t_start * self.scheduler.order :]
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(t_start * self.scheduler.order)

        return timesteps, num_inference_steps - t_start

    def prepare_image_latents(
        self,
        images: list[np.ndarray],
        repeats: int,
        dtype: torch.dtype,
        device: torch.device,
        generators: list[torch.Generator | None],
        encode_cache: EncodeCache | None = None,
    ) -> torch.Tensor:
        """The VAE latents of the whole working-size `images` (float `(h, w, 3)` in [0, 1]), each repeated `repeats`
        times: where a `strength` < 1 edit starts from (noised to its first timestep). `generators`: one per image."""
        latents = []
        with self._vae_precision():
            for image, generator in zip(images, generators, strict=True):
                pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None] * 2.0 - 1.0
                pixels = pixels.to(device=device, dtype=self.vae.dtype)
                latent = encode_masked_image(self.vae, pixels, generator, encode_cache)
                latents.append(latent.repeat(repeats, 1, 1, 1))
        return (torch.cat(latents) * self.vae.config.scaling_factor).to(dtype=dtype)

    def _vae_precision(self) -> contextlib.AbstractContextManager:
        """The context the VAE encodes and decodes in: as it is (the SDXL pipeline upcasts an overflowing one)."""
        return contextlib.nullcontext()

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
        with self._vae_precision():
            masked = masked.to(device=device, dtype=self.vae.dtype)
            latent = encode_masked_image(self.vae, masked, generator, encode_cache)
        latent = latent * self.vae.config.scaling_factor

        known_t = torch.from_numpy(np.ascontiguousarray(known))[None, None].to(
            device=device, dtype=latent.dtype
        )
        known_t = F.interpolate(known_t, size=latent.shape[-2:])  # nearest, as in the reference
        conditioning = torch.cat([latent, known_t], dim=1).to(dtype=self.brushnet.dtype)
        return conditioning.repeat(batch_size, 1, 1, 1)

    @staticmethod
    def brushnet_keep(num_timesteps: int, start: float, end: float) -> list[float]:
        """Per step 1.0 if the branch is applied, 0.0 outside [start, end] (the reference's `brushnet_keep`)."""
        return [
            1.0 - float(i / num_timesteps < start or (i + 1) / num_timesteps > end)
            for i in range(num_timesteps)
        ]

    # Copied from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion.StableDiffusionPipeline
    # .prepare_extra_step_kwargs (diffusers 0.42.1)
    def prepare_extra_step_kwargs(self, generator: torch.Generator | None, eta: float) -> dict:
        params = set(inspect.signature(self.scheduler.step).parameters.keys())
        extra_step_kwargs = {}
        if "eta" in params:
            extra_step_kwargs["eta"] = eta
        if "generator" in params:
            extra_step_kwargs["generator"] = generator
        return extra_step_kwargs

    def _encode_prompt_once(
        self,
        prompts: dict[str, Any],
        embeddings: dict[str, torch.Tensor | None],
        device: torch.device,
        num_images_per_prompt: int,
        clip_skip: int | None,
        encode_cache: EncodeCache | None,
    ) -> tuple[torch.Tensor | None, ...]:
        """`encode_prompt` for this call; with `encode_cache` (and no embeddings given) once per distinct prompt."""
        options = {
            "device": device,
            "num_images_per_prompt": num_images_per_prompt,
            "do_classifier_free_guidance": self.do_classifier_free_guidance,
            "lora_scale": (self.cross_attention_kwargs or {}).get("scale"),
            "clip_skip": clip_skip,
        }

        def encode() -> tuple[torch.Tensor | None, ...]:
            return self.encode_prompt(**prompts, **embeddings, **options)

        if encode_cache is None or any(e is not None for e in embeddings.values()):
            return encode()
        # keyed by all the encoders see: the prompts, the options above, the encoders and their LoRA/TI state
        key = prompt_key(*prompts.values(), *options.values(), encoder_state(self))
        return encode_cache.get("prompt", key, encode)

    def _guide(self, noise_pred: torch.Tensor) -> torch.Tensor:
        """Classifier-free guidance on the (uncond, text) halves, with the optional `guidance_rescale`."""
        if not self.do_classifier_free_guidance:
            return noise_pred
        noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
        noise_pred = noise_pred_uncond + self.guidance_scale * (noise_pred_text - noise_pred_uncond)
        if self.guidance_rescale > 0.0:
            noise_pred = rescale_noise_cfg(
                noise_pred, noise_pred_text, guidance_rescale=self.guidance_rescale
            )
        return noise_pred

    def _step_end(self, callback, i: int, t, names: list[str], tensors: dict[str, torch.Tensor]) -> None:
        """Run `callback_on_step_end` on the loop's `tensors` named in `names`; what it returns replaces them."""
        callback_outputs = callback_updates(callback(self, i, t, {k: tensors[k] for k in names}))
        for k in self._callback_tensor_inputs:
            tensors[k] = callback_outputs.pop(k, tensors[k])

    def _inpaint(
        self,
        output_class: type,
        *,
        image,
        mask_image,
        num_inference_steps,
        guidance_scale,
        brushnet_conditioning_scale,
        control_guidance_start,
        control_guidance_end,
        num_images_per_prompt,
        generator,
        latents,
        blending,
        output_type,
        callback_on_step_end,
        callback_on_step_end_tensor_inputs,
        height,
        width,
        return_dict,
        max_side,
        eta,
        cross_attention_kwargs,
        branch_cfg_batching,
        timesteps,
        sigmas,
        guidance_rescale,
        clip_skip,
        ip_adapter_image,
        ip_adapter_image_embeds,
        padding_mask_crop,
        encode_cache,
        strength,
        **text_arguments,
    ):
        """The steps of both pipelines' `__call__`, given its arguments by name (see the pipelines for their docs).

        `text_arguments` are the pipeline's own: its `_prompt_arguments`, its `_embedding_arguments`, and the rest,
        which go to its `prepare_text_conditioning`.
        """
        prompts = {name: text_arguments.pop(name) for name in self._prompt_arguments}
        embeddings = {name: text_arguments.pop(name) for name in self._embedding_arguments}

        # 1. Check inputs; diffusers' own callbacks (`PipelineCallback`) name the tensors they read
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        check_call_arguments(
            num_inference_steps=num_inference_steps,
            max_steps=int(getattr(self.scheduler.config, "num_train_timesteps", None) or 1000),
            guidance_scale=guidance_scale, brushnet_conditioning_scale=brushnet_conditioning_scale,
            num_images_per_prompt=num_images_per_prompt, generator=generator, max_side=max_side,
            eta=eta, cross_attention_kwargs=cross_attention_kwargs,
            callback_on_step_end=callback_on_step_end, blending=blending, return_dict=return_dict,
            prompts=prompts, strength=strength,
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
        self.check_inputs(image=image, mask_image=mask_image, **prompts, **embeddings)
        self.check_run_options(
            num_inference_steps,
            brushnet_conditioning_scale,
            control_guidance_start,
            control_guidance_end,
            height,
            width,
            output_type,
            branch_cfg_batching,
            callback_on_step_end_tensor_inputs,
        )
        originals, holes = self._originals_and_holes(image, mask_image)

        # 2. Define call parameters: one entry per prompt and per image (one of them may serve all)
        batch_size, prompts, embeddings = self._batch(prompts, embeddings, len(originals))
        total_batch = batch_size * num_images_per_prompt
        if isinstance(generator, list) and len(generator) != total_batch:
            raise ValueError(
                f"`generator` is a list of {len(generator)} but the call makes {total_batch} images (prompts or "
                "images x `num_images_per_prompt`): pass one generator per image, or a single one."
            )
        device = self._execution_device
        do_cfg = self.do_classifier_free_guidance

        # 3. Encode input prompt (once per prompt with an `encode_cache`) and the IP-Adapter images
        encoded = self._encode_prompt_once(
            prompts, embeddings, device, num_images_per_prompt, clip_skip, encode_cache
        )
        image_embeds = None
        if ip_adapter_image is not None or ip_adapter_image_embeds is not None:
            image_embeds = self.prepare_ip_adapter_image_embeds(
                ip_adapter_image, ip_adapter_image_embeds, device, total_batch, do_cfg
            )

        # 4. Prepare images and masks at the working size (aspect ratio kept); optionally only a crop around the masks
        full_images, full_holes = originals, holes
        originals, holes, crop_box = crop_to_masks(originals, holes, padding_mask_crop, height, width)
        orig_h, orig_w = originals[0].shape[:2]
        height, width = region_working_size(
            self, orig_h, orig_w, height, width, max_side, cropped=crop_box is not None
        )
        work_images = [resize_image(original, height, width) for original in originals]
        work_holes = [resize_mask(hole, height, width) for hole in holes]
        per_image = total_batch // len(work_images)  # outputs per distinct image
        # with one generator per output, image j's VAE samples come from its first output's generator (as in diffusers)
        image_generators = [
            generator[j * per_image] if isinstance(generator, list) else generator for j in range(len(work_images))
        ]

        # 5. Prepare timesteps (custom `timesteps` / `sigmas` through diffusers' retrieve_timesteps), cut by `strength`
        timesteps, num_inference_steps = retrieve_timesteps(
            self.scheduler, num_inference_steps, device, timesteps, sigmas
        )
        image_latents = None
        if strength < 1.0:
            timesteps, num_inference_steps = self.get_timesteps(num_inference_steps, strength, device)
            check_strength_steps(strength, num_inference_steps)
            image_latents = self.prepare_image_latents(
                work_images, per_image, encoded[0].dtype, device, image_generators, encode_cache
            )
        self._num_timesteps = len(timesteps)

        # 6. Prepare latent variables (from noise, or with `strength` < 1 from the noised image), then the conditioning
        #    (each masked image encoded once)
        latents = self.prepare_latents(
            total_batch,
            self.unet.config.in_channels,
            height,
            width,
            encoded[0].dtype,
            device,
            generator,
            latents,
            image_latents,
            None if image_latents is None else timesteps[:1].repeat(total_batch),
        )
        conditioning_latents = torch.cat([
            self.prepare_conditioning(image, hole, per_image, device, image_generator, encode_cache)
            for image, hole, image_generator in zip(work_images, work_holes, image_generators, strict=True)
        ])

        # 7. The loop's text tensors (the pipeline's) and the branch's batch. The branch sees the text only through its
        #    added conditioning (none on SD1.5): one pass serves both CFG halves iff those inputs agree.
        tensors = self.prepare_text_conditioning(
            encoded, height, width, device, total_batch, **text_arguments
        )
        tensors["latents"] = latents
        _, text_added = self._text_inputs(tensors)
        shared = (
            do_cfg
            and branch_cfg_batching == "shared"
            and all(torch.equal(v[:total_batch], v[total_batch:]) for v in text_added.values())
        )
        self._branch_shared = bool(shared)
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

                do_cfg = self.do_classifier_free_guidance  # a callback may switch it off (diffusers' CFG cutoff)
                latents = tensors["latents"]
                latent_model_input = torch.cat([latents] * 2) if do_cfg else latents
                latent_model_input = self.scheduler.scale_model_input(latent_model_input, t)
                encoder_hidden_states, text_added = self._text_inputs(tensors)
                unet_added = (
                    text_added if image_embeds is None else {**text_added, "image_embeds": image_embeds}
                )

                # 9.1 BrushNet: skipped outside [start, end], where the reference adds zeros.
                add_samples = {}
                if keep[i] > 0:
                    if shared and do_cfg:  # the text half; both halves hold the same latents
                        branch_input = latent_model_input[total_batch:]
                        branch_embeds = encoder_hidden_states[total_batch:]
                        branch_added = {k: v[total_batch:] for k, v in text_added.items()}
                    else:
                        branch_input, branch_embeds = latent_model_input, encoder_hidden_states
                        branch_added = text_added
                    down, mid, up = self.brushnet(
                        branch_input,
                        t,
                        encoder_hidden_states=branch_embeds,
                        brushnet_cond=branch_cond if do_cfg else conditioning_latents,
                        conditioning_scale=brushnet_conditioning_scale * keep[i],
                        added_cond_kwargs=branch_added or None,
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
                    encoder_hidden_states=encoder_hidden_states,
                    timestep_cond=timestep_cond,
                    cross_attention_kwargs=self.cross_attention_kwargs,
                    added_cond_kwargs=unet_added or None,
                    return_dict=False,
                    **add_samples,
                )[0]

                # 9.3 perform guidance
                noise_pred = self._guide(noise_pred)

                # 9.4 compute the previous noisy sample x_t -> x_t-1
                tensors["latents"] = self.scheduler.step(
                    noise_pred, t, latents, **extra_step_kwargs, return_dict=False
                )[0]

                if callback_on_step_end is not None:
                    self._step_end(callback_on_step_end, i, t, callback_on_step_end_tensor_inputs, tensors)

                if i == len(timesteps) - 1 or (
                    (i + 1) > num_warmup_steps and (i + 1) % self.scheduler.order == 0
                ):
                    progress_bar.update()

        # 10. Decode, resize back to the input size, blend
        return self._finish(
            tensors["latents"],
            generator,
            output_type,
            return_dict,
            output_class,
            size=(orig_h, orig_w),
            crop_box=crop_box,
            full_images=full_images,
            full_holes=full_holes,
            blending=blending,
        )

    def _decode(self, latents: torch.Tensor, generator) -> torch.Tensor:
        with self._vae_precision():
            return self.vae.decode(
                latents.to(self.vae.dtype) / self.vae.config.scaling_factor,
                return_dict=False,
                generator=generator,
            )[0]

    def _finish(
        self,
        latents: torch.Tensor,
        generator,
        output_type: str,
        return_dict: bool,
        output_class: type,
        *,
        size: tuple[int, int],
        crop_box: Any,
        full_images: list[np.ndarray],
        full_holes: list[np.ndarray],
        blending: bool,
    ):
        """Decode, resize back to the input `size` (h, w), paste a crop back, blend, and wrap as `output_class`.

        Output `k` belongs to input image `k // (len(latents) // len(full_images))` (images in order, each repeated
        for its prompt's `num_images_per_prompt`)."""
        if output_type == "latent":
            self.maybe_free_model_hooks()
            return output_class(images=latents) if return_dict else (latents,)

        generated = self.image_processor.postprocess(self._decode(latents, generator), output_type="np")
        results = []
        per_image = len(generated) // len(full_images)
        for k, gen in enumerate(generated):
            full_image, full_hole = full_images[k // per_image], full_holes[k // per_image]
            gen = resize_image(gen.astype(np.float32), *size)
            if crop_box is not None:
                gen = paste_crop(full_image, gen, crop_box)
            if blending:
                gen = blur_blend(full_image, gen, full_hole)
            results.append(gen.astype(np.float32))
        images = np.stack(results)

        if output_type == "pil":
            images = self.image_processor.numpy_to_pil(images)
        elif output_type == "pt":
            images = torch.from_numpy(images).permute(0, 3, 1, 2)

        # Offload all models
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return output_class(images=images)
