# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""Image and mask conventions of the inpainting pipeline (numpy only, no model code).

Public convention: images are RGB, masks are white (255 / 1.0) where content is generated. The BrushNet branch wants
the opposite (1 = known pixel); [`hole_to_known_mask`] is the only place that flips it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import PIL.Image
import torch

ImageLike = PIL.Image.Image | np.ndarray | torch.Tensor


MAX_IMAGES_PER_PROMPT = 64
"""Most images one call makes per prompt: their latents and activations are held at once."""


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _is_count(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_call_arguments(
    *,
    num_inference_steps: object,
    max_steps: int,
    guidance_scale: object,
    brushnet_conditioning_scale: object,
    num_images_per_prompt: object,
    generator: object,
    max_side: object,
    eta: object,
    cross_attention_kwargs: object,
    callback_on_step_end: object,
    blending: object,
    return_dict: object,
    prompts: dict[str, object],
    strength: object = 1.0,
) -> None:
    """The `__call__` arguments both BrushNet pipelines share, checked before any work starts.

    Each problem is one `ValueError` naming the argument, instead of a NaN image, a tensor error
    from deep inside the UNet, or (for a huge step count) a scheduler allocating gigabytes.
    """
    if not _is_count(num_inference_steps) or not 1 <= num_inference_steps <= max_steps:
        raise ValueError(
            f"`num_inference_steps` must be an int from 1 to {max_steps} (the scheduler's training "
            f"steps), got {num_inference_steps!r}."
        )
    for name, value in (("guidance_scale", guidance_scale),
                        ("brushnet_conditioning_scale", brushnet_conditioning_scale),
                        ("eta", eta)):
        if not _is_number(value) or not math.isfinite(value):
            raise ValueError(f"`{name}` must be a finite number, got {value!r}.")
    if not _is_count(num_images_per_prompt) or not 1 <= num_images_per_prompt <= MAX_IMAGES_PER_PROMPT:
        raise ValueError(
            f"`num_images_per_prompt` must be an int from 1 to {MAX_IMAGES_PER_PROMPT}, got "
            f"{num_images_per_prompt!r}."
        )
    generators = generator if isinstance(generator, list) else [generator]
    if generator is not None and not all(isinstance(g, torch.Generator) for g in generators):
        raise ValueError(
            "`generator` must be a torch.Generator or a list of them, got "
            f"{type(generator).__name__}."
        )
    if not _is_number(strength) or not 0.0 < strength <= 1.0:
        raise ValueError(
            f"`strength` must be a number in (0, 1] (1 starts from pure noise, lower keeps more of `image`), got "
            f"{strength!r}."
        )
    if not _is_count(max_side) or max_side < 8:
        raise ValueError(f"`max_side` must be an int >= 8, got {max_side!r}.")
    if cross_attention_kwargs is not None and not isinstance(cross_attention_kwargs, dict):
        raise ValueError(
            f"`cross_attention_kwargs` must be a dict, got {type(cross_attention_kwargs).__name__}."
        )
    if callback_on_step_end is not None and not callable(callback_on_step_end):
        raise ValueError(
            f"`callback_on_step_end` must be callable, got {type(callback_on_step_end).__name__}."
        )
    for name, value in (("blending", blending), ("return_dict", return_dict)):
        if not isinstance(value, bool):
            raise ValueError(f"`{name}` must be True or False, got {value!r}.")
    for name, value in prompts.items():
        if value is None or isinstance(value, str):
            continue
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ValueError(f"`{name}` must be a str or a non-empty list of str, got {value!r:.80}.")


def check_strength_steps(strength: float, num_steps: int) -> None:
    """After `strength` cut the schedule (diffusers' `get_timesteps`), at least one step must be left to run."""
    if num_steps < 1:
        raise ValueError(
            f"`strength`={strength} leaves no denoising step: it runs int(num_inference_steps * strength) of the "
            "steps; raise `strength` or `num_inference_steps`."
        )


def callback_updates(outputs: object) -> dict:
    """What `callback_on_step_end` returned, which must be a dict (possibly empty)."""
    if not isinstance(outputs, dict):
        raise ValueError(
            "`callback_on_step_end` must return a dict of the tensors it changes (or `{}`), got "
            f"{type(outputs).__name__}."
        )
    return outputs


def to_float_rgb(image: ImageLike) -> np.ndarray:
    """Return `image` as a float32 `(H, W, 3)` array in [0, 1].

    Accepts a PIL image, a `(H, W, 3)` / `(H, W)` uint8 array, a float array in [0, 1], or a float tensor in [0, 1]
    shaped `(3, H, W)` or `(1, 3, H, W)`.
    """
    if isinstance(image, PIL.Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if isinstance(image, torch.Tensor):
        array = image.detach().cpu().float()
        if array.ndim == 4:
            if array.shape[0] != 1:
                raise ValueError(
                    f"`image` tensor must hold one image, got shape {tuple(image.shape)}."
                )
            array = array[0]
        if array.ndim != 3 or array.shape[0] not in (1, 3):
            raise ValueError(
                f"`image` tensor must be (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}."
            )
        array = array.permute(1, 2, 0).numpy()
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise TypeError(
            f"`image` must be a PIL image, numpy array or torch tensor, got {type(image).__name__}."
        )

    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"`image` must be (H, W, 3), got shape {array.shape}.")
    array = array[:, :, :3]
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"`image` is empty, got shape {array.shape}.")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError("`image` holds NaN or infinite values.")
    if array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(
            f"`image` floats must lie in [0, 1], got range [{array.min():.3f}, {array.max():.3f}]."
        )
    return array


def to_hole_mask(mask: ImageLike) -> np.ndarray:
    """Return the edit mask as a float32 `(H, W)` array of 0/1, 1 = area to generate (white).

    Grey or RGB masks are averaged over channels and binarised at 0.5 (inclusive), which is what the reference's
    "sum of normalised channels < 0 means known" rule amounts to.
    """
    if isinstance(mask, PIL.Image.Image):
        array = np.asarray(mask.convert("L"), dtype=np.float32) / 255.0
    else:
        if isinstance(mask, torch.Tensor):
            array = mask.detach().cpu().float().numpy()
            array = np.squeeze(array)
            if array.ndim == 3 and array.shape[0] in (1, 3):
                array = array.transpose(1, 2, 0)
        elif isinstance(mask, np.ndarray):
            array = mask
        else:
            raise TypeError(
                f"`mask_image` must be a PIL image, numpy array or torch tensor, got {type(mask).__name__}."
            )
        if array.dtype == np.bool_:
            array = array.astype(np.float32)
        elif array.dtype == np.uint8:
            array = array.astype(np.float32) / 255.0
        else:
            array = array.astype(np.float32)
            if array.size == 0:
                raise ValueError(f"`mask_image` is empty, got shape {np.shape(mask)}.")
            if not np.isfinite(array).all():
                raise ValueError("`mask_image` holds NaN or infinite values.")
            if array.min() < 0.0 or array.max() > 1.0:
                raise ValueError(
                    f"`mask_image` floats must lie in [0, 1], got range [{array.min():.3f}, {array.max():.3f}]."
                )
        if array.ndim == 3:
            array = array.mean(axis=2)
        if array.ndim != 2:
            raise ValueError(
                f"`mask_image` must be (H, W) or (H, W, C), got shape {np.shape(mask)}."
            )
    return (array >= 0.5).astype(np.float32)


def hole_to_known_mask(hole_mask: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """The single polarity flip: API masks (1 = generate) to BrushNet's conditioning mask (1 = known pixel)."""
    return 1.0 - hole_mask


def working_size(
    height: int, width: int, max_side: int = 1024, multiple: int = 8
) -> tuple[int, int]:
    """Size to generate at: keep the aspect ratio, shrink only if the longer side exceeds `max_side`, and round
    both sides down to a multiple of `multiple` (at least one multiple)."""
    scale = min(1.0, max_side / max(height, width))
    h = max(multiple, int(math.floor(height * scale / multiple)) * multiple)
    w = max(multiple, int(math.floor(width * scale / multiple)) * multiple)
    return h, w


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a float `(H, W, C)` image; area filter when shrinking, bicubic when enlarging."""
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    out = cv2.resize(image, (width, height), interpolation=interpolation)
    if out.ndim == 2:
        out = out[:, :, None]
    return np.clip(out, 0.0, 1.0)


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a binary `(H, W)` mask with nearest neighbour, so it stays binary."""
    if mask.shape == (height, width):
        return mask
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)


def blur_blend(
    original: np.ndarray, generated: np.ndarray, hole_mask: np.ndarray, kernel_size: int = 21
) -> np.ndarray:
    """Paste the generated pixels back onto the original with a soft seam.

    `blur = GaussianBlur(mask, 21x21)`, `m = 1 - (1 - mask) * (1 - blur)`, `out = orig * (1 - m) + gen * m`: the hole
    is fully generated and the seam fades outwards only, so unedited pixels far from the mask stay exact.
    """
    m = blend_weights(hole_mask, kernel_size)[:, :, None]
    return original * (1.0 - m) + generated * m


def blend_weights(hole_mask: np.ndarray, kernel_size: int = 21) -> np.ndarray:
    """[`blur_blend`]'s weight of the generated pixels, float32 `(H, W)` in [0, 1]: 1 inside the hole, fading to
    exactly 0 within `kernel_size // 2` pixels outside it (where the original is kept as is)."""
    mask = hole_mask.astype(np.float32)
    blur = cv2.GaussianBlur(mask, (kernel_size, kernel_size), 0)
    return 1.0 - (1.0 - mask) * (1.0 - blur)


def native_working_size(
    height: int, width: int, side: int = 1024, multiple: int = 8, max_side: int = 2048
) -> tuple[int, int]:
    """Size to generate at for a model trained near `side` x `side` pixels (SDXL: 1024): keep the aspect ratio and
    scale up or down to about `side**2` pixels, the longer side at most `max_side`, both sides multiples of
    `multiple`."""
    scale = math.sqrt(side * side / (height * width))
    scale = min(scale, max_side / max(height, width))
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    return h, w
