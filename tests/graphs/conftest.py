"""Graph-test fixtures: no real Ollama is ever reached, a tiny BrushNet when the package has one."""

from __future__ import annotations

import socket

import pytest


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _no_real_ollama(monkeypatch):
    monkeypatch.setenv("BRUSHEDIT_OLLAMA_HOST", f"http://127.0.0.1:{closed_port()}")


@pytest.fixture(scope="session")
def tiny_brushnet(tmp_path_factory):
    """`tools.inpaint.BrushNetInpainter` around a random-weight tiny pipeline (seconds on CPU)."""
    pytest.importorskip("brushedit_inpaint")
    import torch
    from diffusers import UniPCMultistepScheduler

    from brushedit_inpaint import StableDiffusionBrushNetPipeline
    from tests.inpaint.conftest import make_tiny_models, make_tiny_text
    from tools.inpaint import BrushNetInpainter

    torch.set_num_threads(2)
    unet, vae, brushnet = make_tiny_models()
    text_encoder, tokenizer = make_tiny_text(tmp_path_factory.mktemp("tok"))
    pipe = StableDiffusionBrushNetPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, brushnet=brushnet,
        scheduler=UniPCMultistepScheduler(
            beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012
        ),
    )
    pipe.set_progress_bar_config(disable=True)
    return BrushNetInpainter(pipe)
