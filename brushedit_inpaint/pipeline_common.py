# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""What the SD1.5 and SDXL BrushNet pipelines share: run-state properties, run-option checks, latents, scheduler kwargs.

One place for the logic both pipelines run the same way, so a fix to one is a fix to both.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

from .processing import ImageLike, blur_blend, resize_image, to_float_rgb, to_hole_mask
from .toolbox import paste_crop, rescale_noise_cfg

_OUTPUT_TYPES = ("pil", "np", "pt", "latent")
_BRANCH_BATCHING = ("shared", "doubled")


class BrushNetPipelineMixin:
    """Shared by [`StableDiffusionBrushNetPipeline`] and [`StableDiffusionXLBrushNetPipeline`]."""

    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        # guidance-distilled UNets (LCM) embed the scale instead of running two halves
        return self._guidance_scale > 1 and self.unet.config.time_cond_proj_dim is None

    @property
    def clip_skip(self) -> int | None:
        return self._clip_skip

    @property
    def guidance_rescale(self) -> float:
        return self._guidance_rescale

    @property
    def cross_attention_kwargs(self) -> dict | None:
        return self._cross_attention_kwargs

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    def _begin_run(self, guidance_scale, guidance_rescale, clip_skip, cross_attention_kwargs) -> None:
        """Record the per-call settings the properties above read."""
        self._guidance_scale = guidance_scale
        self._guidance_rescale = guidance_rescale
        self._clip_skip = clip_skip
        self._cross_attention_kwargs = cross_attention_kwargs
        self._interrupt = False

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

    @staticmethod
    def _prompt_batch_size(prompt, prompt_embeds) -> int:
        if prompt is not None and isinstance(prompt, str):
            return 1
        if prompt is not None:
            return len(prompt)
        return prompt_embeds.shape[0]

    def check_run_options(
        self,
        num_inference_steps,
        brushnet_conditioning_scale,
        control_guidance_start,
        control_guidance_end,
        height,
        width,
        output_type,
        branch_cfg_batching,
        callback_on_step_end_tensor_inputs,
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

    # Copied from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion.StableDiffusionPipeline.prepare_latents
    # (diffusers 0.42.1)
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
        # scale the initial noise by the standard deviation required by the scheduler
        return latents * self.scheduler.init_noise_sigma

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

    def _decode(self, latents: torch.Tensor, generator) -> torch.Tensor:
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
        full_image: np.ndarray,
        full_hole: np.ndarray,
        blending: bool,
    ):
        """Decode, resize back to the input `size` (h, w), paste a crop back, blend, and wrap as `output_class`."""
        if output_type == "latent":
            self.maybe_free_model_hooks()
            return output_class(images=latents) if return_dict else (latents,)

        generated = self.image_processor.postprocess(self._decode(latents, generator), output_type="np")
        results = []
        for gen in generated:
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
