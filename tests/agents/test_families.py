"""Which family a model is, from its name and from what Ollama's `/api/show` says."""

from __future__ import annotations

import pytest

from agents.families import (
    FAMILIES,
    UNKNOWN,
    BoxConvention,
    ModelCard,
    family_named,
    family_of,
    match_name,
    resolve_family,
)
from tests.fakes.ollama_server import FakeOllama


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("qwen2.5vl:7b", "qwen2.5-vl"),
        ("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2.5-vl"),
        ("qwen2.5-vl-7b-instruct-q4_k_m.gguf", "qwen2.5-vl"),
        ("Qwen/Qwen2-VL-7B-Instruct", "qwen2-vl"),
        ("qwen3-vl:8b", "qwen3-vl"),
        ("Qwen/Qwen3-VL-30B-A3B-Thinking", "qwen3-vl"),
        ("qwen3.5:27b", "qwen3.5"),
        ("minicpm-v:8b", "minicpm-v"),
        ("openbmb/MiniCPM-V-2_6", "minicpm-v"),
        ("llava:13b", "llava"),
        ("llava-hf/llava-1.5-7b-hf", "llava"),
        ("bakllava:7b", "llava"),
        ("gemma3:12b", "gemma3"),
        ("google/gemma-3-27b-it", "gemma3"),
        ("gemma4:26b", "gemma4"),
        ("llama3.2-vision:11b", "llama3.2-vision"),
        ("meta-llama/Llama-3.2-11B-Vision-Instruct", "llama3.2-vision"),
        ("moondream:1.8b", "moondream"),
        ("ollama:qwen3-vl:8b", "qwen3-vl"),  # a model_id with this package's prefix
    ],
)
def test_names_people_use_find_the_family(model, family):
    assert match_name(model).name == family


@pytest.mark.parametrize("model", ["qwen3:8b", "llama3:8b", "my-vlm:latest", "mistral-small3.1"])
def test_other_names_match_nothing(model):
    assert match_name(model) is None
    found = resolve_family(model)
    assert found.family is UNKNOWN and found.source == "fallback" and found.heuristic
    assert found.trace()["heuristic"] is True and found.trace()["box_convention"] == "heuristic"


def test_every_family_has_a_rule_and_a_prompt_when_it_can_point():
    for family in FAMILIES:
        assert family.box is not BoxConvention.HEURISTIC
        assert family.boxes_trusted == (family.box is not BoxConvention.NONE)
        assert (family.box_prompt is not None) == family.boxes_trusted
        assert family.grounding == ("none" if not family.boxes_trusted else family.grounding)
        assert family_named(family.name) is family and family_named(family.label) is family
    assert not {"gemma3", "llama3.2-vision", "moondream"} & {
        f.name for f in FAMILIES if f.boxes_trusted}


def test_an_unknown_family_name_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown model family 'qwen9'.*qwen3-vl"):
        family_named("qwen9")


def test_the_server_card_outranks_the_name():
    card = ModelCard(family="qwen3vl", capabilities=("completion", "vision"),
                     lists_thinking=True)
    found = resolve_family("my-renamed-model:latest", card)
    assert found.family.name == "qwen3-vl" and found.source == "server"
    assert found.evidence == "details.family 'qwen3vl'" and not found.thinks


def test_a_clip_based_card_leaves_it_to_the_name():
    """Ollama reports MiniCPM-V as its language model (`qwen2`, with `clip`): not Qwen2-VL."""
    card = ModelCard(family="qwen2", families=("qwen2", "clip"), capabilities=("vision",),
                     lists_thinking=True)
    assert resolve_family("minicpm-v:8b", card).family.name == "minicpm-v"


def test_thinking_comes_from_capabilities_then_the_tag_then_the_family():
    listing = ModelCard(capabilities=("completion", "vision", "thinking"), lists_thinking=True)
    assert resolve_family("qwen3-vl:8b", listing).thinks
    assert not resolve_family("qwen3-vl:8b", ModelCard(capabilities=("vision",),
                                                        lists_thinking=True)).thinks
    assert resolve_family("Qwen/Qwen3-VL-8B-Thinking").thinks
    assert not resolve_family("Qwen/Qwen3-VL-8B-Instruct").thinks
    assert resolve_family("qwen3.5:9b").thinks  # thinks unless told not to
    assert not resolve_family("qwen2.5vl:7b").thinks


def test_an_override_wins_and_says_so():
    found = resolve_family("my-model", override="llava")
    assert found.family.name == "llava" and found.source == "override"


def test_ollama_show_is_read_through_the_public_type():
    with FakeOllama.as_family("qwen3-vl", model="house-model:latest") as server:
        vlm = server.vlm()
        found = vlm.family
        assert found.family.name == "qwen3-vl" and found.source == "server" and found.thinks
        assert "thinking" in found.capabilities
        assert family_of(vlm) == found
        vlm.family  # noqa: B018 - asked again: /api/show is not
        assert sum(r.path == "/api/show" for r in server.requests) == 1


def test_a_body_that_is_not_a_show_reply_gives_an_empty_card():
    assert ModelCard.from_ollama_show({"capabilities": "not a list"}) == ModelCard()
