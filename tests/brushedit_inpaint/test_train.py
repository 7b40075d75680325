"""BrushNet training on tiny models: the loss goes down, checkpoints load, and --resume continues."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import DDPMScheduler

from brushedit_inpaint import BrushNetModel
from brushedit_inpaint.train import TrainConfig, latest_checkpoint, parse_args, train

from .tiny_parts import SD15, tiny_components


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    for i in range(4):
        # smooth images (gradients + a disc) so there is structure to learn from the unmasked context
        img = np.stack([xx * 8 * (i + 1) % 256, yy * 8, np.full_like(xx, 60 * i)], -1)
        img[(xx - 16) ** 2 + (yy - 16) ** 2 < 40] = rng.integers(0, 256, 3)
        PIL.Image.fromarray(img.astype(np.uint8)).save(root / f"img{i}.png")
        (root / f"img{i}.txt").write_text("a disc")
    return root


def _components(tmp_path):
    parts = tiny_components(SD15, tmp_path / "tok")
    del parts["brushnet"]  # without one, `train` starts from `BrushNetModel.from_unet` (zero taps)
    return {**parts, "noise_scheduler": DDPMScheduler(num_train_timesteps=1000)}


def _config(data_dir, out, **overrides):
    values = {
        "data_dir": str(data_dir),
        "output_dir": str(out),
        "resolution": 32,
        "train_batch_size": 4,
        "learning_rate": 2e-3,
        "max_train_steps": 30,
        "checkpointing_steps": 15,
        "seed": 0,
    }
    values.update(overrides)
    return TrainConfig(**values)


def test_loss_decreases_and_checkpoints_are_diffusers_format(data_dir, tmp_path):
    result = train(_config(data_dir, tmp_path / "run"), components=_components(tmp_path))
    losses = result["losses"]
    assert result["global_step"] == 30 and len(losses) == 30
    first, last = float(np.mean(losses[:5])), float(np.mean(losses[-5:]))
    assert last < 0.8 * first, (first, last)
    checkpoint = latest_checkpoint(tmp_path / "run")
    assert checkpoint.name == "checkpoint-30"
    trained = BrushNetModel.from_pretrained(checkpoint / "brushnet")
    assert any(
        torch.count_nonzero(p) for n, p in trained.named_parameters() if n.startswith("brushnet_")
    )


def test_resume_continues_step_and_optimizer(data_dir, tmp_path):
    out = tmp_path / "run"
    train(
        _config(data_dir, out, max_train_steps=4, checkpointing_steps=2),
        components=_components(tmp_path),
    )
    state_before = torch.load(
        out / "checkpoint-4" / "accelerate_state" / "optimizer.bin", weights_only=False
    )
    components = _components(tmp_path)
    components["brushnet"] = BrushNetModel.from_pretrained(out / "checkpoint-4" / "brushnet")
    result = train(
        _config(data_dir, out, max_train_steps=6, checkpointing_steps=2, resume=True),
        components=components,
    )
    assert result["global_step"] == 6 and len(result["losses"]) == 2  # steps 5 and 6 only
    assert json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())["global_step"] == 6
    state_after = torch.load(
        out / "checkpoint-6" / "accelerate_state" / "optimizer.bin", weights_only=False
    )
    steps_before = {int(s["step"]) for s in state_before["state"].values()}
    steps_after = {int(s["step"]) for s in state_after["state"].values()}
    assert steps_before == {4} and steps_after == {6}  # Adam's moments continued, not restarted


def test_resume_without_checkpoint_fails(data_dir, tmp_path):
    with pytest.raises(ValueError, match="`resume`"):
        train(_config(data_dir, tmp_path / "empty", resume=True), components=_components(tmp_path))


def test_cli_parses_flags(tmp_path):
    config = parse_args(
        [
            "--data_dir",
            "d",
            "--output_dir",
            "o",
            "--learning_rate",
            "5e-6",
            "--resume",
            "--max_train_steps",
            "7",
        ]
    )
    assert config.learning_rate == 5e-6 and config.resume and config.max_train_steps == 7
    assert config.pretrained_model is None
