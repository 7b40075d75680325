# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""Train a BrushNet branch on a folder of images: `python -m brushedit_inpaint.train --help`.

VAE, UNet and text encoder are frozen; only BrushNet learns, with the epsilon (or v-prediction, if the scheduler says
so) MSE of the UNet+BrushNet prediction. Masks are random brush strokes or segmentation masks from a folder, eroded or
dilated 30% of the time and swapped inside/outside 50% of the time ([`brushedit_inpaint.masking`]).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from .masking import load_mask, sample_training_mask
from .processing import hole_to_known_mask

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class TrainConfig:
    """Training options; every field is also a `--flag` of the CLI."""

    data_dir: str = field(
        metadata={"help": "Folder of images; an optional `<stem>.txt` beside each is its caption."}
    )
    output_dir: str = field(metadata={"help": "Where `checkpoint-<step>/` folders are written."})
    pretrained_model: str | None = field(
        default=None,
        metadata={"help": "Diffusers SD1.5 folder or Hub id (vae, unet, text_encoder, tokenizer)."},
    )
    brushnet: str | None = field(
        default=None,
        metadata={"help": "BrushNet folder to fine-tune; default: initialise from the UNet."},
    )
    mask_dir: str | None = field(
        default=None,
        metadata={"help": "Optional folder of segmentation masks named `<image stem>.png`."},
    )
    resolution: int = field(
        default=512, metadata={"help": "Square training resolution (multiple of 8)."}
    )
    train_batch_size: int = 2
    learning_rate: float = 1e-5
    max_train_steps: int = 1000
    checkpointing_steps: int = 500
    gradient_accumulation_steps: int = 1
    mixed_precision: str = field(default="no", metadata={"help": "no, fp16 or bf16."})
    seed: int = 0
    resume: bool = field(
        default=False, metadata={"help": "Continue from the latest checkpoint in output_dir."}
    )
    p_segmentation: float = 0.5
    p_morph: float = 0.3
    p_swap: float = 0.5
    gradient_checkpointing: bool = False


class InpaintingFolderDataset(torch.utils.data.Dataset):
    """Images (center-cropped and resized), captions and training hole masks from plain folders."""

    def __init__(self, config: TrainConfig):
        root = Path(config.data_dir)
        self.paths = sorted(p for p in root.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not self.paths:
            raise ValueError(f"`data_dir` {root} holds no images ({', '.join(_IMAGE_SUFFIXES)}).")
        self.mask_dir = Path(config.mask_dir) if config.mask_dir else None
        self.config = config

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        size = self.config.resolution
        path = self.paths[index]
        image = PIL.Image.open(path).convert("RGB")
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize(
            (size, size), PIL.Image.BICUBIC
        )
        caption_path = path.with_suffix(".txt")
        caption = caption_path.read_text().strip() if caption_path.is_file() else ""

        segmentation = None
        if self.mask_dir is not None:
            mask_path = self.mask_dir / f"{path.stem}.png"
            if mask_path.is_file():
                segmentation = load_mask(mask_path, size, size)
        # The item's own seed keeps masks reproducible per (seed, index) regardless of worker order.
        rng = np.random.default_rng(
            [self.config.seed, index, torch.randint(0, 2**31 - 1, ()).item()]
        )
        hole = sample_training_mask(
            size,
            size,
            rng,
            segmentation,
            p_segmentation=self.config.p_segmentation,
            p_morph=self.config.p_morph,
            p_swap=self.config.p_swap,
        )
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return {"pixels": pixels, "hole": torch.from_numpy(hole)[None], "caption": caption}


def _load_components(config: TrainConfig) -> dict[str, Any]:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    if config.pretrained_model is None:
        raise ValueError(
            "`pretrained_model` is required unless `components` are passed to `train`."
        )
    base = config.pretrained_model
    return {
        "vae": AutoencoderKL.from_pretrained(base, subfolder="vae"),
        "unet": UNet2DConditionModel.from_pretrained(base, subfolder="unet"),
        "text_encoder": CLIPTextModel.from_pretrained(base, subfolder="text_encoder"),
        "tokenizer": CLIPTokenizer.from_pretrained(base, subfolder="tokenizer"),
        "noise_scheduler": DDPMScheduler.from_pretrained(base, subfolder="scheduler"),
    }


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The `checkpoint-<step>` folder with the highest step, or None."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := re.fullmatch(r"checkpoint-(\d+)", p.name))
    ]
    return max(found)[1] if found else None


def training_loss(
    brushnet,
    unet,
    vae,
    text_encoder,
    tokenizer,
    noise_scheduler,
    batch: dict[str, Any],
    generator=None,
) -> torch.Tensor:
    """One BrushNet training loss on a batch of `pixels` (B,3,H,W in [0,1]), `hole` (B,1,H,W) and `caption`s."""
    from .unet_injection import unet_forward_with_brushnet

    pixels, hole = batch["pixels"], batch["hole"]
    device, dtype = pixels.device, vae.dtype
    known = hole_to_known_mask(hole)
    with torch.no_grad():
        latents = vae.encode((pixels * 2 - 1).to(dtype)).latent_dist.sample(generator)
        latents = latents * vae.config.scaling_factor
        masked = vae.encode((pixels * known * 2 - 1).to(dtype)).latent_dist.sample(generator)
        masked = masked * vae.config.scaling_factor
        mask_latent = F.interpolate(known.to(dtype), size=latents.shape[-2:])
        ids = tokenizer(
            list(batch["caption"]),
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(device)
        encoder_hidden_states = text_encoder(ids)[0]

    noise = torch.randn(latents.shape, generator=generator, device=device, dtype=latents.dtype)
    timesteps = torch.randint(
        0,
        noise_scheduler.config.num_train_timesteps,
        (latents.shape[0],),
        generator=generator,
        device=device,
    )
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    down, mid, up = brushnet(
        noisy,
        timesteps,
        encoder_hidden_states=encoder_hidden_states,
        brushnet_cond=torch.cat([masked, mask_latent], dim=1),
        return_dict=False,
    )
    pred = unet_forward_with_brushnet(
        unet,
        noisy,
        timesteps,
        encoder_hidden_states,
        down_block_add_samples=down,
        mid_block_add_sample=mid,
        up_block_add_samples=up,
        return_dict=False,
    )[0]
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    return F.mse_loss(pred.float(), target.float())


def train(config: TrainConfig, components: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train BrushNet; returns `{"losses": [...], "global_step": int, "output_dir": str}`.

    `components` may hold ready models (`vae`, `unet`, `text_encoder`, `tokenizer`, `noise_scheduler`, optional
    `brushnet`) instead of loading them from `config.pretrained_model`.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from .brushnet import BrushNetModel

    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
    )
    set_seed(config.seed)
    parts = dict(components) if components is not None else _load_components(config)
    vae, unet, text_encoder = parts["vae"], parts["unet"], parts["text_encoder"]
    tokenizer, noise_scheduler = parts["tokenizer"], parts["noise_scheduler"]
    brushnet = parts.get("brushnet")
    if brushnet is None:
        brushnet = (
            BrushNetModel.from_pretrained(config.brushnet)
            if config.brushnet
            else BrushNetModel.from_unet(unet)
        )
    for frozen in (vae, unet, text_encoder):
        frozen.requires_grad_(False)
        frozen.eval()
    brushnet.train()
    if config.gradient_checkpointing:
        brushnet.enable_gradient_checkpointing()

    dataset = InpaintingFolderDataset(config)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=config.train_batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(config.seed),
        drop_last=len(dataset) >= config.train_batch_size,
    )
    optimizer = torch.optim.AdamW(brushnet.parameters(), lr=config.learning_rate)
    brushnet, optimizer, loader = accelerator.prepare(brushnet, optimizer, loader)
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
        accelerator.mixed_precision, torch.float32
    )
    for frozen in (vae, unet, text_encoder):
        frozen.to(accelerator.device, dtype=weight_dtype)

    global_step = 0
    output_dir = Path(config.output_dir)
    if config.resume:
        checkpoint = latest_checkpoint(output_dir)
        if checkpoint is None:
            raise ValueError(
                f"`resume` was set but {output_dir} holds no checkpoint-<step> folder."
            )
        accelerator.load_state(str(checkpoint / "accelerate_state"))
        global_step = json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]

    losses: list[float] = []
    while global_step < config.max_train_steps:
        for batch in loader:
            with accelerator.accumulate(brushnet):
                loss = training_loss(
                    brushnet, unet, vae, text_encoder, tokenizer, noise_scheduler, batch
                )
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            losses.append(loss.detach().item())
            if (
                global_step % config.checkpointing_steps == 0
                or global_step == config.max_train_steps
            ):
                save_checkpoint(accelerator, brushnet, output_dir, global_step)
            if global_step >= config.max_train_steps:
                break

    accelerator.end_training()
    return {"losses": losses, "global_step": global_step, "output_dir": str(output_dir)}


def save_checkpoint(accelerator, brushnet, output_dir: Path, global_step: int) -> Path:
    """`checkpoint-<step>/brushnet` (diffusers format, loads with `from_pretrained`) + optimizer/RNG state."""
    path = output_dir / f"checkpoint-{global_step}"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        path.mkdir(parents=True, exist_ok=True)
        accelerator.unwrap_model(brushnet).save_pretrained(path / "brushnet")
        (path / "trainer_state.json").write_text(json.dumps({"global_step": global_step}))
    accelerator.save_state(str(path / "accelerate_state"))
    return path


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(
        prog="python -m brushedit_inpaint.train", description=__doc__.splitlines()[0]
    )
    for f in dataclasses.fields(TrainConfig):
        flag = f"--{f.name}"
        help_text = f.metadata.get("help", "")
        required = f.default is dataclasses.MISSING
        if f.type in ("bool", bool):
            parser.add_argument(flag, action="store_true", help=help_text)
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            default = None if required else f.default
            parser.add_argument(flag, type=kind, default=default, required=required, help=help_text)
    return TrainConfig(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> None:
    result = train(parse_args(argv))
    print(f"trained to step {result['global_step']}; checkpoints in {result['output_dir']}")


if __name__ == "__main__":
    main()
