from __future__ import annotations

import pytest

from agents.classify import Classification
from agents.errors import VLMInvalidAnswerError
from agents.vlm import RecordingVLM, VisionLanguageModel, VLMCall
from tools.images import content_hash


def test_records_prompt_images_raw_and_parsed(fake_ollama, image):
    fake_ollama.queue('{"category": "removal", "confidence": 0.5, "rationale": "r"}')
    vlm = RecordingVLM(fake_ollama.vlm())
    assert isinstance(vlm, VisionLanguageModel) and vlm.model_id == "ollama:qwen2.5vl:7b"
    vlm.ask(system="S", user="U", images=[image], schema=Classification)
    (call,) = vlm.calls
    assert isinstance(call, VLMCall)
    assert (call.system, call.user, call.schema_name) == ("S", "U", "Classification")
    assert call.image_hashes == [content_hash(image)]
    assert call.raw == '{"category": "removal", "confidence": 0.5, "rationale": "r"}'
    assert call.parsed == {"category": "removal", "confidence": 0.5, "rationale": "r"}
    assert call.error is None and call.duration_s > 0 and call.attempts == 1
    assert vlm.drain() == [call] and vlm.calls == []
    assert vlm.max_image_side == 1024  # settings of the wrapped model stay visible


def test_records_failures_with_the_raw_answer(fake_ollama):
    fake_ollama.queue("junk", "junk", '{"category": "junk"}')
    vlm = RecordingVLM(fake_ollama.vlm())
    with pytest.raises(VLMInvalidAnswerError):
        vlm.ask(system="S", user="U", schema=Classification)
    (call,) = vlm.drain()
    assert call.error.startswith("VLMInvalidAnswerError:") and call.raw == '{"category": "junk"}'
    assert call.parsed is None
