"""Small benchmark folders in the exact distributed layouts, and a tiny random CLIP.

PIE-Bench: `mapping_file.json` + `annotation_images/<type folder>/<id>.jpg`, masks as 0-based
runs over 512x512. BrushBench: `mapping_file.json` + `images/<id>.jpg`, inside and outside masks
as 1-based runs. Pictures come from scikit-image, resized to 512 px as the benchmarks ship them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from evals.benchmarks import encode_brushbench_mask, encode_pie_mask


def picture(name: str) -> np.ndarray:
    """A scikit-image sample picture as 512x512 RGB uint8."""
    from PIL import Image
    from skimage import data

    array = getattr(data, name)()
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.asarray(Image.fromarray(array[..., :3]).resize((512, 512)))


def rect_mask(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((512, 512), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 255
    return mask


PIE_ITEMS = {
    "000000000000": {
        "picture": "chelsea",
        "folder": "3_delete_object_80",
        "original_prompt": "a [cat] sitting on a wooden floor",
        "editing_prompt": "a wooden floor",
        "editing_instruction": "remove the cat",
        "editing_type_id": "3",
        "blended_word": "cat",
        "mask": (96, 400, 128, 384),
    },
    "000000000001": {
        "picture": "coffee",
        "folder": "1_change_object_80",
        "original_prompt": "a [cup] of coffee on a saucer",
        "editing_prompt": "a [bowl] of coffee on a saucer",
        "editing_instruction": "change the cup into a bowl",
        "editing_type_id": "1",
        "blended_word": "cup bowl",
        "mask": (64, 320, 96, 448),
    },
    "000000000002": {
        "picture": "astronaut",
        "folder": "3_delete_object_80",
        "original_prompt": "a man in a space suit with a [flag]",
        "editing_prompt": "a man in a space suit",
        "editing_instruction": "remove the man",
        "editing_type_id": "3",
        "blended_word": "flag",
        "mask": (40, 300, 150, 420),
    },
}


def write_pie_bench(folder: Path, items: dict | None = None) -> Path:
    """A PIE-Bench folder with `items` (default `PIE_ITEMS`); returns the folder."""
    from PIL import Image

    items = PIE_ITEMS if items is None else items
    mapping = {}
    for key, spec in items.items():
        image_path = f"{spec['folder']}/{key}.jpg"
        target = folder / "annotation_images" / image_path
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture(spec["picture"])).save(target, quality=95)
        mapping[key] = {
            "image_path": image_path,
            "original_prompt": spec["original_prompt"],
            "editing_prompt": spec["editing_prompt"],
            "editing_instruction": spec["editing_instruction"],
            "editing_type_id": spec["editing_type_id"],
            "blended_word": spec["blended_word"],
            "mask": encode_pie_mask(rect_mask(*spec["mask"])),
        }
    (folder / "mapping_file.json").write_text(json.dumps(mapping))
    return folder


BRUSH_ITEMS = {
    "0": {"picture": "chelsea", "caption": "a cat on a floor", "mask": (96, 400, 128, 384)},
    "1": {"picture": "rocket", "caption": "a rocket on a launch pad", "mask": (30, 480, 200, 320)},
}


def write_brushbench(folder: Path, items: dict | None = None) -> Path:
    """A BrushBench folder: images/<id>.jpg, inside mask = the box, outside = its complement."""
    from PIL import Image

    items = BRUSH_ITEMS if items is None else items
    mapping = {}
    for key, spec in items.items():
        target = folder / "images" / f"{key}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture(spec["picture"])).save(target, quality=95)
        inside = rect_mask(*spec["mask"])
        mapping[key] = {
            "image": f"images/{key}.jpg",
            "caption": spec["caption"],
            "inpainting_mask": encode_brushbench_mask(inside),
            "outpainting_mask": encode_brushbench_mask(255 - inside),
        }
    (folder / "mapping_file.json").write_text(json.dumps(mapping))
    return folder


def build_tiny_clip(folder: Path) -> Path:
    """A CLIP (1 layer, width 32, 32 px images) with a byte-level tokenizer, via save_pretrained."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    chars = list(bytes_to_unicode().values())
    tokens = [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    images = CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    eos = vocab["<|endoftext|>"]
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 37,
            "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 77,
            "bos_token_id": vocab["<|startoftext|>"], "eos_token_id": eos, "pad_token_id": eos,
        },
        vision_config={
            "image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
            "num_hidden_layers": 1, "num_attention_heads": 2,
        },
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(3)  # a seed whose random CLIP gives positive similarities here
    CLIPModel(config).eval().save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def build_tiny_segmenter(folder: Path) -> dict[str, Path]:
    """The tools tests' tiny GroundingDINO and SAM, the detector fed 128 px images.

    At the tools tests' 64 px a square picture leaves a 1x1 top feature level, which the
    detector's group norm refuses; 128 px keeps every level at least 2x2.
    """
    from transformers import GroundingDinoProcessor

    from tests.tools.conftest import build_tiny_grounding_dino, build_tiny_sam

    detector, sam = folder / "detector", folder / "sam"
    build_tiny_grounding_dino(detector)
    processor = GroundingDinoProcessor.from_pretrained(detector)
    processor.image_processor.size = {"shortest_edge": 128, "longest_edge": 128}
    processor.save_pretrained(detector)
    build_tiny_sam(sam)
    return {"detector": detector, "sam": sam}
