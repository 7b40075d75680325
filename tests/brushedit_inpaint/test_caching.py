"""EncodeCache: a retry with a new seed or guidance re-runs neither the text encoders nor the VAE encoder,
and its result equals an uncached call's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brushedit_inpaint import EncodeCache, StableDiffusionBrushNetPipeline


def _inputs(mask_shift: int = 0):
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16 + mask_shift: 40 + mask_shift, 16:40] = 255
    return image, mask


class Counter:
    """Counts forward calls of modules through hooks (the real modules run)."""

    def __init__(self, **modules):
        self.calls = dict.fromkeys(modules, 0)
        self.handles = [m.register_forward_hook(self._hook(name)) for name, m in modules.items()]

    def _hook(self, name):
        def hook(*_):
            self.calls[name] += 1
        return hook

    def close(self):
        for handle in self.handles:
            handle.remove()


def _run(pipe, seed, cache=None, prompt="a red dog", mask_shift=0, guidance=7.5):
    image, mask = _inputs(mask_shift)
    return pipe(prompt=prompt, image=image, mask_image=mask, num_inference_steps=2,
                guidance_scale=guidance, generator=torch.Generator().manual_seed(seed),
                output_type="np", blending=False, encode_cache=cache).images


def test_a_retry_reuses_the_encoders_and_changes_nothing(family, tiny_pipe):
    pipe = tiny_pipe
    encoders = {"text": pipe.text_encoder, "vae_encoder": pipe.vae.encoder}
    if family.name == "sdxl":
        encoders["text_2"] = pipe.text_encoder_2
    uncached_1, uncached_2 = _run(pipe, 1), _run(pipe, 2, guidance=9.0)

    cache = EncodeCache()
    counter = Counter(**encoders)
    try:
        first = _run(pipe, 1, cache)
        after_first = dict(counter.calls)
        retry = _run(pipe, 2, cache, guidance=9.0)  # what the verifier's inpaint retry changes
        after_retry = dict(counter.calls)
        _run(pipe, 3, cache, prompt="a blue cat")  # a caption retry: the prompt is re-encoded
        after_caption = dict(counter.calls)
        _run(pipe, 3, cache, mask_shift=8)  # a mask retry: the masked image is re-encoded
        after_mask = dict(counter.calls)
    finally:
        counter.close()

    assert all(n > 0 for n in after_first.values())
    assert after_retry == after_first  # no encoder ran for the retry
    assert np.array_equal(first, uncached_1) and np.array_equal(retry, uncached_2)
    assert not np.array_equal(first, retry)  # the seed still matters: the latent is re-sampled
    assert after_caption["vae_encoder"] == after_first["vae_encoder"]
    assert after_caption["text"] > after_retry["text"]
    assert after_mask["vae_encoder"] > after_caption["vae_encoder"]
    assert after_mask["text"] == after_caption["text"]
    assert cache.hits == {"prompt": 2, "masked_image": 2} or cache.hits["prompt"] >= 2


@pytest.mark.families("sd15")
def test_adapter_changes_make_cached_prompts_stale(tiny_pipe):
    """A LoRA or textual-inversion change bumps the encoder generation, so the prompt is encoded anew."""
    cache = EncodeCache()
    counter = Counter(text=tiny_pipe.text_encoder)
    try:
        _run(tiny_pipe, 1, cache)
        before = counter.calls["text"]
        _run(tiny_pipe, 2, cache)
        assert counter.calls["text"] == before
        generation = getattr(tiny_pipe, "_encoder_generation", 0)
        tiny_pipe._bump_encoder_generation()  # what set_adapters / fuse_lora / load_textual_inversion do
        assert tiny_pipe._encoder_generation == generation + 1
        _run(tiny_pipe, 2, cache)
        assert counter.calls["text"] > before
    finally:
        counter.close()
    for name in ("set_adapters", "fuse_lora", "unload_lora_weights", "load_textual_inversion"):
        assert "not reused" in getattr(StableDiffusionBrushNetPipeline, name).__doc__


def test_cache_bounds_and_arguments():
    cache = EncodeCache(max_items=2)
    for key in range(3):
        cache.get("prompt", key, lambda key=key: key * 10)
    assert cache.get("prompt", 0, lambda: "recomputed") == "recomputed"  # the oldest was dropped
    assert cache.get("prompt", 2, lambda: "stale") == 20
    with pytest.raises(ValueError, match="max_items"):
        EncodeCache(max_items=0)
