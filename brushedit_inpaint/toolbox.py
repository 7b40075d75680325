# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""The diffusers toolbox shared by the BrushNet pipelines (SD1.5 and SDXL).

Small mixins and functions, so each pipeline only lists them as bases and calls them from `__call__`:

- [`BrushNetToolboxMixin`]: `save_pretrained` writes a one-line pipeline file so that
  `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` finds our class, while
  `OurPipeline.from_pretrained(folder)` keeps working without it; `load_lora_weights` refuses a LoRA of the other
  family in one sentence before touching any weights; IP-Adapter image encoding borrowed from diffusers.
- prompt encoding with textual inversion, `clip_skip` and LoRA text-encoder scaling: [`encode_clip_text`];
- timesteps / sigmas ([`retrieve_timesteps`]), CFG rescale ([`rescale_noise_cfg`]), the LCM guidance embedding;
- crop-to-mask for large photos: [`mask_crop_box`], [`crop_working_size`], [`paste_crop`].

LoRA, textual inversion, IP-Adapter and single-file loading themselves are diffusers' loader mixins, used as is.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import inspect
import json
import os
import re
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.loaders import TextualInversionLoaderMixin
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
    StableDiffusionPipeline,
    rescale_noise_cfg,
)
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
    retrieve_timesteps as diffusers_retrieve_timesteps,
)
from diffusers.utils import USE_PEFT_BACKEND, scale_lora_layers, unscale_lora_layers

__all__ = [
    "BrushNetToolboxMixin",
    "crop_working_size",
    "encode_clip_text",
    "guidance_embedding",
    "lora_family_error",
    "mask_crop_box",
    "paste_crop",
    "rescale_noise_cfg",
    "retrieve_timesteps",
]

# Text-embedding width of each family's UNet cross-attention: what a LoRA's attn2.to_k/to_v layers consume.
_FAMILIES = {768: "SD1.5", 1024: "SD2.x", 2048: "SDXL"}
_CROSS_KV_LORA_DOWN = re.compile(r"attn2[._]to_[kv]\.(lora_A|lora\.down|lora_down)\.weight$")

PIPELINE_FILE_SUFFIX = "_brushnet_pipeline"


def family_name(cross_attention_dim: int | None) -> str:
    """`SD1.5` / `SD2.x` / `SDXL` for a UNet's `cross_attention_dim` (or a plain description otherwise)."""
    if isinstance(cross_attention_dim, (list, tuple)):
        cross_attention_dim = cross_attention_dim[0]
    return _FAMILIES.get(cross_attention_dim, f"a {cross_attention_dim}-dim text-embedding model")


def lora_family_error(
    state_dict: dict[str, torch.Tensor], unet_cross_attention_dim: int, has_text_encoder_2: bool
) -> str | None:
    """One sentence saying why this LoRA (diffusers-format state dict) was made for another model family, or None.

    Checks the input width of the LoRA's cross-attention key/value layers against the UNet's text-embedding width,
    and that a LoRA with `text_encoder_2` layers is only loaded into a pipeline that has a second text encoder.
    """
    ours = family_name(unet_cross_attention_dim)
    want = unet_cross_attention_dim
    if isinstance(want, (list, tuple)):
        want = want[0]
    for key, value in state_dict.items():
        if _CROSS_KV_LORA_DOWN.search(key) and getattr(value, "ndim", 0) == 2:
            if int(value.shape[1]) != want:
                theirs = family_name(int(value.shape[1]))
                return (
                    f"This LoRA was made for {theirs} (its cross-attention takes {int(value.shape[1])}-dim text "
                    f"embeddings) but this pipeline's base is {ours} ({want}); load a LoRA made for {ours}."
                )
            break
    if not has_text_encoder_2 and any(
        k.startswith(("text_encoder_2.", "lora_te2_")) for k in state_dict
    ):
        return (
            f"This LoRA was made for SDXL (it has layers for a second text encoder) but this pipeline's base is "
            f"{ours}; load a LoRA made for {ours}."
        )
    return None


def _text_encoder_lora_blocker(state_dict: dict[str, torch.Tensor]) -> str | None:
    """Why this LoRA's text-encoder layers cannot load here (transformers' PEFT integration wants a newer peft).

    Checked before loading anything, so a refused LoRA never leaves the UNet half-patched.
    """
    if not any(k.startswith(("text_encoder.", "text_encoder_2.")) for k in state_dict):
        return None
    try:
        from packaging import version
        from transformers.integrations.peft import MIN_PEFT_VERSION

        installed = importlib.metadata.version("peft")
    except (ImportError, importlib.metadata.PackageNotFoundError):
        return None
    if version.parse(installed) >= version.parse(MIN_PEFT_VERSION):
        return None
    return (
        f"This LoRA also changes the text encoder, which transformers only loads with peft >= {MIN_PEFT_VERSION} "
        f"(installed: {installed}); upgrade peft, or pass only the LoRA's `unet.` tensors as a dict."
    )


class BrushNetToolboxMixin:
    """Shared by the BrushNet pipelines; list it before diffusers' loader mixins in the class bases."""

    # -- saving and reloading through DiffusionPipeline ------------------------------------------------------------
    def save_config(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs):
        """Also write `<name>_brushnet_pipeline.py` (one import line) and name it in `model_index.json`.

        diffusers' convention for a pipeline class it does not ship: `"_class_name": [module file, class]` with the
        file in the folder. `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` then imports our
        class through that file (it needs `brushedit_inpaint` installed); our own class ignores the file.
        """
        super().save_config(save_directory, push_to_hub=push_to_hub, **kwargs)
        cls = type(self)
        stem = cls.__module__.rsplit(".", 1)[-1] + PIPELINE_FILE_SUFFIX
        with open(os.path.join(save_directory, f"{stem}.py"), "w", encoding="utf-8") as f:
            f.write(
                f'"""Written by {cls.__name__}.save_pretrained: lets '
                '`DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` find the class."""\n'
                f"from {cls.__module__} import {cls.__name__}\n"
            )
        index = os.path.join(save_directory, self.config_name)
        with open(index, encoding="utf-8") as f:
            config = json.load(f)
        config["_class_name"] = [stem, cls.__name__]
        with open(index, "w", encoding="utf-8") as f:
            f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load_config(cls, *args, **kwargs):
        """Read `["<file>", "OurClass"]` as `"OurClass"` when loading with our class, so it never runs the file."""
        result = super().load_config(*args, **kwargs)
        config = result if isinstance(result, dict) else result[0]
        name = config.get("_class_name")
        if isinstance(name, (list, tuple)) and len(name) == 2 and name[1] == cls.__name__:
            config["_class_name"] = cls.__name__
        return result

    # -- LoRA ------------------------------------------------------------------------------------------------------
    def load_lora_weights(self, pretrained_model_name_or_path_or_dict, adapter_name=None, **kwargs):
        """diffusers' `load_lora_weights` (UNet and text encoders; BrushNet untouched), after a family check.

        Raises:
            ValueError: the LoRA was made for another model family (e.g. an SDXL LoRA on an SD1.5 base).
        """
        state_kwargs = {
            k: v
            for k, v in kwargs.items()
            if k not in ("hotswap", "low_cpu_mem_usage", "return_lora_metadata")
        }
        source = pretrained_model_name_or_path_or_dict
        if isinstance(source, dict):
            source = dict(source)
        state_dict = self.lora_state_dict(source, **state_kwargs)[0]
        message = lora_family_error(
            state_dict,
            self.unet.config.cross_attention_dim,
            has_text_encoder_2="text_encoder_2" in self._lora_loadable_modules,
        )
        if message is None:
            message = _text_encoder_lora_blocker(state_dict)
        if message is not None:
            raise ValueError(message)
        self._bump_encoder_generation()
        return super().load_lora_weights(
            pretrained_model_name_or_path_or_dict, adapter_name=adapter_name, **kwargs
        )

    # -- anything that changes what the text encoders compute bumps `_encoder_generation` (see `caching.py`) ---------
    def _bump_encoder_generation(self) -> None:
        self._encoder_generation = getattr(self, "_encoder_generation", 0) + 1

    # -- IP-Adapter: diffusers' own functions (they use self.image_encoder, self.feature_extractor, self.unet) --------
    encode_image = StableDiffusionPipeline.encode_image
    prepare_ip_adapter_image_embeds = StableDiffusionPipeline.prepare_ip_adapter_image_embeds
    get_guidance_scale_embedding = StableDiffusionPipeline.get_guidance_scale_embedding


ENCODER_CHANGING_METHODS = (
    "set_adapters", "fuse_lora", "unfuse_lora", "unload_lora_weights", "delete_adapters", "enable_lora",
    "disable_lora", "load_textual_inversion", "unload_textual_inversion",
)
"""diffusers loader methods after which the text encoders may compute other embeddings."""


def _bumping(name: str):
    def method(self, *args, **kwargs):
        self._bump_encoder_generation()
        return getattr(super(BrushNetToolboxMixin, self), name)(*args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"diffusers' `{name}`; prompt embeddings cached before it are not reused (see `caching.py`)."
    return method


for _name in ENCODER_CHANGING_METHODS:
    setattr(BrushNetToolboxMixin, _name, _bumping(_name))


def check_toolbox_inputs(
    ip_adapter_image: Any,
    ip_adapter_image_embeds: Any,
    padding_mask_crop: Any,
    guidance_rescale: Any,
    clip_skip: Any,
    timesteps: Any,
    sigmas: Any,
) -> None:
    """Raise a `ValueError` naming the argument, for the toolbox's `__call__` arguments."""
    if ip_adapter_image is not None and ip_adapter_image_embeds is not None:
        raise ValueError("Pass either `ip_adapter_image` or `ip_adapter_image_embeds`, not both.")
    if ip_adapter_image_embeds is not None and (
        not isinstance(ip_adapter_image_embeds, list)
        or any(getattr(e, "ndim", 0) not in (3, 4) for e in ip_adapter_image_embeds)
    ):
        raise ValueError(
            "`ip_adapter_image_embeds` must be a list of 3D or 4D tensors, one per IP-Adapter."
        )
    if padding_mask_crop is not None and (
        isinstance(padding_mask_crop, bool)
        or not isinstance(padding_mask_crop, int)
        or padding_mask_crop < 0
    ):
        raise ValueError(
            f"`padding_mask_crop` must be an int >= 0 (pixels around the mask), got {padding_mask_crop!r}."
        )
    if not isinstance(guidance_rescale, (int, float)) or not 0.0 <= guidance_rescale <= 1.0:
        raise ValueError(
            f"`guidance_rescale` must be a number in [0, 1], got {guidance_rescale!r}."
        )
    if clip_skip is not None and (
        isinstance(clip_skip, bool) or not isinstance(clip_skip, int) or clip_skip < 0
    ):
        raise ValueError(f"`clip_skip` must be an int >= 0, got {clip_skip!r}.")
    if timesteps is not None and sigmas is not None:
        raise ValueError("Pass either `timesteps` or `sigmas`, not both.")


# Preferred first when suggesting a scheduler for custom timesteps: UniPC's multistep sibling, then the rest by name.
_SUGGESTED_SCHEDULERS = ("DPMSolverMultistepScheduler", "EulerDiscreteScheduler")


def _takes(scheduler_cls: type, argument: str) -> bool:
    """Whether `scheduler_cls.set_timesteps` takes `argument` (False for diffusers' placeholders of schedulers whose
    extra dependency is missing)."""
    try:
        return argument in inspect.signature(scheduler_cls.set_timesteps).parameters
    except ImportError:
        return False


def custom_schedule_error(scheduler: Any, argument: str) -> str | None:
    """Why `scheduler` cannot run a custom `timesteps` / `sigmas` schedule, and which scheduler to switch to."""
    if _takes(type(scheduler), argument):
        return None
    takers = sorted(
        {cls.__name__ for cls in getattr(scheduler, "compatibles", []) if _takes(cls, argument)},
        key=lambda n: (_SUGGESTED_SCHEDULERS.index(n) if n in _SUGGESTED_SCHEDULERS else len(_SUGGESTED_SCHEDULERS), n),
    )
    name = type(scheduler).__name__
    switch = (
        f"switch first, e.g. `pipe.scheduler = {takers[0]}.from_config(pipe.scheduler.config)`"
        + (f" (also {', '.join(takers[1:4])})" if len(takers) > 1 else "")
        if takers
        else "switch to a scheduler whose `set_timesteps` takes it"
    )
    other = "sigmas" if argument == "timesteps" else "timesteps"
    instead = f", or pass `{other}=`, which {name} takes" if _takes(type(scheduler), other) else ""
    return f"{name} does not support custom `{argument}`: {switch}{instead}."


def retrieve_timesteps(
    scheduler: Any,
    num_inference_steps: int | None,
    device: Any,
    timesteps: list[int] | None = None,
    sigmas: list[float] | None = None,
):
    """diffusers' `retrieve_timesteps`, refusing a custom schedule the scheduler cannot take with the scheduler to
    switch to (diffusers only says it is unsupported)."""
    for argument, values in (("timesteps", timesteps), ("sigmas", sigmas)):
        message = custom_schedule_error(scheduler, argument) if values is not None else None
        if message is not None:
            raise ValueError(message)
    return diffusers_retrieve_timesteps(
        scheduler, num_inference_steps, device, timesteps=timesteps, sigmas=sigmas
    )


def encode_clip_text(
    pipe: Any,
    text: str | list[str],
    tokenizer: Any,
    text_encoder: Any,
    device: torch.device,
    clip_skip: int | None = None,
    max_length: int | None = None,
    final_layer_norm: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """CLIP hidden states for `text`, as diffusers' SD pipelines compute them.

    Textual-inversion tokens are expanded when `pipe` has [`TextualInversionLoaderMixin`]; `clip_skip=k` takes the
    hidden state `k` layers before the last, through the encoder's final layer norm when `final_layer_norm` (SD1.5's
    convention; SDXL takes raw hidden states: pass `clip_skip + 1` and `final_layer_norm=False`). Returns
    `(hidden_states, pooled)`; `pooled` is the projected text embedding of a `CLIPTextModelWithProjection`, else None.
    """
    if isinstance(pipe, TextualInversionLoaderMixin):
        text = pipe.maybe_convert_prompt(text, tokenizer)
    inputs = tokenizer(
        text,
        padding="max_length",
        max_length=max_length or tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    attention_mask = None
    if getattr(text_encoder.config, "use_attention_mask", False):
        attention_mask = inputs.attention_mask.to(device)
    output = text_encoder(
        inputs.input_ids.to(device),
        attention_mask=attention_mask,
        output_hidden_states=clip_skip is not None,
    )
    pooled = getattr(output, "text_embeds", None)
    if clip_skip is None:
        return output[0], pooled
    hidden = output.hidden_states[-(clip_skip + 1)]
    if final_layer_norm:
        # transformers >= 5 keeps the layer norm on CLIPTextModel itself, earlier versions on `.text_model`
        norm = getattr(text_encoder, "final_layer_norm", None)
        if norm is None:
            norm = text_encoder.text_model.final_layer_norm
        hidden = norm(hidden)
    return hidden, pooled


@contextlib.contextmanager
def lora_text_scale(pipe: Any, text_encoders: list[Any], scale: float | None):
    """Scale the PEFT LoRA layers of `text_encoders` by `scale` while a prompt is encoded (as diffusers does)."""
    encoders = [e for e in text_encoders if e is not None]
    active = scale is not None and USE_PEFT_BACKEND and hasattr(pipe, "load_lora_weights")
    if scale is not None:
        pipe._lora_scale = scale
    if active:
        for encoder in encoders:
            scale_lora_layers(encoder, scale)
    try:
        yield
    finally:
        if active:
            for encoder in encoders:
                unscale_lora_layers(encoder, scale)


def guidance_embedding(
    pipe: Any, guidance_scale: float, batch: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor | None:
    """The `timestep_cond` of guidance-distilled UNets (LCM's `time_cond_proj_dim`), else None."""
    dim = pipe.unet.config.time_cond_proj_dim
    if dim is None:
        return None
    w = torch.tensor(guidance_scale - 1).repeat(batch)
    return pipe.get_guidance_scale_embedding(w, embedding_dim=dim).to(device=device, dtype=dtype)


# -- crop-to-mask ------------------------------------------------------------------------------------------------


def mask_crop_box(
    hole_mask: np.ndarray, padding: int, aspect_width: int, aspect_height: int
) -> tuple[int, int, int, int]:
    """`(x1, y1, x2, y2)` around the white pixels of `hole_mask`, `padding` px wider, widened to the aspect ratio
    `aspect_width : aspect_height` and clamped to the image ([`VaeImageProcessor.get_crop_region`])."""
    if not hole_mask.any():
        raise ValueError(
            "`padding_mask_crop` needs a mask with at least one white pixel to crop around."
        )
    mask = PIL.Image.fromarray((hole_mask > 0.5).astype(np.uint8) * 255, "L")
    x1, y1, x2, y2 = VaeImageProcessor.get_crop_region(
        mask, aspect_width, aspect_height, pad=padding
    )
    return int(x1), int(y1), int(x2), int(y2)


def crop_working_size(
    crop_height: int, crop_width: int, long_side: int, multiple: int = 8
) -> tuple[int, int]:
    """Working size for a crop: scaled (up or down) so its longer side is `long_side`, aspect kept, sides rounded
    down to `multiple`. A small crop of a large photo is edited at the model's native resolution."""
    scale = long_side / max(crop_height, crop_width)
    h = max(multiple, int(crop_height * scale) // multiple * multiple)
    w = max(multiple, int(crop_width * scale) // multiple * multiple)
    return h, w


def crop_to_mask(
    image: np.ndarray,
    hole_mask: np.ndarray,
    padding_mask_crop: int | None,
    height: int | None,
    width: int | None,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int] | None]:
    """The region to edit: the whole image, or with `padding_mask_crop` the crop around the mask (widened to
    `width:height`, else to the image's aspect ratio). Returns `(image, hole_mask, box)`, `box=None` when uncropped."""
    if padding_mask_crop is None:
        return image, hole_mask, None
    box = mask_crop_box(
        hole_mask, padding_mask_crop, width or hole_mask.shape[1], height or hole_mask.shape[0]
    )
    x1, y1, x2, y2 = box
    return image[y1:y2, x1:x2], hole_mask[y1:y2, x1:x2], box


def crop_to_masks(
    images: list[np.ndarray],
    hole_masks: list[np.ndarray],
    padding_mask_crop: int | None,
    height: int | None,
    width: int | None,
) -> tuple[list[np.ndarray], list[np.ndarray], tuple[int, int, int, int] | None]:
    """[`crop_to_mask`] for a batch of same-size images: one box around the white pixels of all the masks, so every
    crop has the same size. Returns `(images, hole_masks, box)`, `box=None` when uncropped."""
    if padding_mask_crop is None:
        return images, hole_masks, None
    union = hole_masks[0] if len(hole_masks) == 1 else np.maximum.reduce(hole_masks)
    _, _, box = crop_to_mask(images[0], union, padding_mask_crop, height, width)
    x1, y1, x2, y2 = box
    return [im[y1:y2, x1:x2] for im in images], [h[y1:y2, x1:x2] for h in hole_masks], box


def region_working_size(
    pipe: Any,
    region_height: int,
    region_width: int,
    height: int | None,
    width: int | None,
    max_side: int,
    cropped: bool,
) -> tuple[int, int]:
    """`height`/`width` when given; else a crop at the model's native long side (`unet.config.sample_size *
    vae_scale_factor`, at most `max_side`), or a whole image at its own size shrunk to `max_side`."""
    from .processing import working_size

    if height is not None and width is not None:
        return height, width
    if cropped:
        native = pipe.unet.config.sample_size * pipe.vae_scale_factor
        auto_h, auto_w = crop_working_size(region_height, region_width, min(max_side, native))
    else:
        auto_h, auto_w = working_size(region_height, region_width, max_side=max_side)
    return height or auto_h, width or auto_w


def paste_crop(
    original: np.ndarray, generated_crop: np.ndarray, box: tuple[int, int, int, int]
) -> np.ndarray:
    """The original image with the box `(x1, y1, x2, y2)` replaced by `generated_crop` (already at the box size)."""
    x1, y1, x2, y2 = box
    out = original.copy()
    out[y1:y2, x1:x2] = generated_crop
    return out
