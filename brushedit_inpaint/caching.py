# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""What a retry would compute again: prompt embeddings and the masked image's VAE encoding.

A verifier loop calls the pipeline again with a new seed or a higher guidance scale: the prompt and the
masked image are unchanged, so their encodings are too. Pass one [`EncodeCache`] to every call
(`pipe(..., encode_cache=cache)`) and those calls cost only their denoising loop and decode.

Results equal uncached calls exactly: the prompt cache is keyed by everything the text encoders see (the
prompts, `clip_skip`, the LoRA scale, and a counter bumped by every LoRA / textual-inversion change), and the
image cache holds the VAE's latent *distribution* (keyed by the masked pixels), from which each call still
samples with its own generator.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import torch

__all__ = ["EncodeCache", "encoder_state", "masked_image_key"]


class EncodeCache:
    r"""
    A small least-recently-used store of encoder outputs, shared by the calls of one pipeline.

    Args:
        max_items (`int`, defaults to 8): entries kept per kind (`"prompt"`, `"masked_image"`).
    """

    def __init__(self, max_items: int = 8) -> None:
        if not isinstance(max_items, int) or max_items < 1:
            raise ValueError(f"`max_items` must be a positive integer, got {max_items!r}")
        self.max_items = max_items
        self._entries: dict[str, OrderedDict[Hashable, Any]] = {}
        self.hits: dict[str, int] = {}
        self.misses: dict[str, int] = {}

    def get(self, kind: str, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value stored under (`kind`, `key`), computing and keeping it on a miss."""
        entries = self._entries.setdefault(kind, OrderedDict())
        if key in entries:
            entries.move_to_end(key)
            self.hits[kind] = self.hits.get(kind, 0) + 1
            return entries[key]
        value = compute()
        entries[key] = value
        self.misses[kind] = self.misses.get(kind, 0) + 1
        while len(entries) > self.max_items:
            entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()

    def __repr__(self) -> str:
        return f"EncodeCache(max_items={self.max_items}, hits={self.hits}, misses={self.misses})"


def encoder_state(pipe: Any) -> tuple:
    """What besides the prompt decides the text embeddings: the encoders' identity, the LoRA/TI generation."""
    encoders = [getattr(pipe, name, None) for name in ("text_encoder", "text_encoder_2")]
    tokenizers = [getattr(pipe, name, None) for name in ("tokenizer", "tokenizer_2")]
    return (
        tuple(id(e) for e in encoders),
        tuple(len(t) if t is not None else None for t in tokenizers),
        getattr(pipe, "_encoder_generation", 0),
    )


def masked_image_key(masked: torch.Tensor) -> tuple:
    """The masked image's pixels (hashed), shape, dtype and device: what the VAE encoder sees."""
    data = masked.detach().to("cpu").contiguous()
    digest = hashlib.sha256(data.numpy().tobytes() if data.dtype != torch.bfloat16
                            else data.float().numpy().tobytes()).hexdigest()
    return (digest, tuple(masked.shape), str(masked.dtype), str(masked.device))


def prompt_key(*parts: Any) -> tuple:
    """A hashable key from prompt arguments (lists become tuples)."""
    return tuple(tuple(p) if isinstance(p, list) else p for p in parts)
