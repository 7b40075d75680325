"""Tiny random-weight GroundingDINO and SAM checkpoints, written once per session (no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

TINY_WORDS = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "a", "the", "cat", "dog", "red", "car",
    "person", "animal", "object", "tree", "sky", "man", "woman",
]  # fmt: skip


@pytest.fixture(scope="session")
def torch_threads():
    """Two cores are shared with other work: one torch thread avoids oversubscription."""
    import torch

    torch.set_num_threads(1)
    return torch


def build_tiny_grounding_dino(folder: Path) -> None:
    """A GroundingDINO (Swin + BERT, 2 decoder layers, d_model 32) and its processor."""
    import torch
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoProcessor,
    )
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    torch.manual_seed(0)
    config = GroundingDinoConfig(
        backbone_config={
            "model_type": "swin", "image_size": 64, "patch_size": 4, "embed_dim": 8,
            "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1], "window_size": 2,
            "out_indices": [2, 3, 4],
        },
        text_config={
            "model_type": "bert", "vocab_size": len(TINY_WORDS), "hidden_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
            "max_position_embeddings": 64,
        },
        num_queries=20, encoder_layers=1, decoder_layers=2, d_model=32, encoder_ffn_dim=32,
        decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2,
        max_text_len=32, encoder_n_points=2, decoder_n_points=2,
    )  # fmt: skip
    model = GroundingDinoForObjectDetection(config).eval()
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(TINY_WORDS)})
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96})
    model.save_pretrained(folder)
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(
        folder
    )


def build_tiny_sam(folder: Path) -> None:
    """A SAM with a 2-layer, 32-wide ViT on 64 px inputs, and its processor."""
    import torch
    from transformers import SamConfig, SamModel, SamProcessor
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    torch.manual_seed(0)
    config = SamConfig(
        vision_config={
            "hidden_size": 32, "output_channels": 16, "num_hidden_layers": 2,
            "num_attention_heads": 2, "image_size": 64, "patch_size": 16, "window_size": 2,
            "global_attn_indexes": [1], "num_pos_feats": 8, "mlp_dim": 64,
        },
        prompt_encoder_config={
            "hidden_size": 16, "image_size": 64, "patch_size": 16, "mask_input_channels": 4,
        },
        mask_decoder_config={
            "hidden_size": 16, "mlp_dim": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "iou_head_hidden_dim": 16,
        },
    )  # fmt: skip
    SamModel(config).eval().save_pretrained(folder)
    processor = SamProcessor(
        image_processor=SamImageProcessorPil(
            size={"longest_edge": 64},
            pad_size={"height": 64, "width": 64},
            mask_size={"longest_edge": 16},
            mask_pad_size={"height": 16, "width": 16},
        )
    )
    processor.save_pretrained(folder)


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory, torch_threads) -> dict[str, Path]:
    """Folders holding the tiny detector and SAM in transformers format."""
    root = tmp_path_factory.mktemp("tiny_segmenter")
    build_tiny_grounding_dino(root / "detector")
    build_tiny_sam(root / "sam")
    return {"detector": root / "detector", "sam": root / "sam"}


@pytest.fixture(scope="session")
def tiny_segmenter(tiny_model_dirs):
    """A `GroundedSegmenter` loaded through `from_pretrained` from the tiny local folders."""
    from tools.segment import GroundedSegmenter

    return GroundedSegmenter.from_pretrained(
        str(tiny_model_dirs["detector"]), str(tiny_model_dirs["sam"]), local_files_only=True
    )


@pytest.fixture
def rgb_image():
    """An 80x48 RGB noise image (deterministic)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8), "RGB")


@pytest.fixture(scope="session")
def tiny_conductors(tiny_conductor_dirs, torch_threads) -> dict:
    """Each conductor loaded from its tiny folder through `load_conductor`, painting at 64 px."""
    from tools.conductors import load_conductor

    return {
        name: load_conductor(name, str(folder), working_side=64)
        for name, folder in tiny_conductor_dirs.items()
    }
