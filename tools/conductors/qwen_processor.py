"""Qwen-Image-Edit's vision-language processor without the video half.

transformers' `Qwen2VLProcessor` takes an image processor, a tokenizer and a video processor,
and its video processor needs torchvision, which many installs (ours: a CPU torch) lack. The
Qwen-Image-Edit pipelines only ever pass images, so this subclass declares the two parts they
use: it loads from the same `processor/` folder of a checkpoint, with or without torchvision,
and behaves the same on images. Imports transformers: load it only with a model.
"""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import Qwen2VLProcessor


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """`Qwen2VLProcessor` for images and text only (no video processor, so no torchvision)."""

    attributes: ClassVar[list[str]] = ["image_processor", "tokenizer"]
    """The parts, where transformers 4 looks for them (transformers 5 reads `__init__`)."""

    def __init__(
        self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kwargs
    ) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)
