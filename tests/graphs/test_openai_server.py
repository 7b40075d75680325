"""The editing graph on a VLM behind an OpenAI-compatible server (vLLM, llama.cpp, LM Studio).

Most tests hand the graph an `OpenAIVLM`; one builds it the application's way, from
`BRUSHEDIT_VLM_URL` (the CLI's `--vlm-url` is in tests/interfaces/test_vlm_cli.py). Same nodes,
same traces, same errors as with Ollama.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from agents.errors import VLMUnavailableError
from agents.openai_vlm import OpenAIVLM
from graphs.session import EditSession
from tests.conftest import closed_port
from tests.fakes.openai_server import FakeOpenAI
from tests.graphs.helpers import DarkSegmenter, make_components, nodes_of, object_mask, picture
from tools.types import EditOptions

MODEL = "Qwen/Qwen3-VL-8B-Instruct"


def test_a_removal_runs_on_an_openai_server(tmp_path):
    with FakeOpenAI(models=[MODEL], family="qwen3-vl") as server:
        components = make_components(tmp_path / "data", vlm=server.vlm(), planner="vlm",
                                     segmenter=DarkSegmenter())
        session = EditSession.open(components)
        result = session.edit(picture(), "remove the dark square")
    assert result.accepted and result.planner == "vlm" and result.plan.category.value == "removal"
    trace = session.trace()
    assert nodes_of(trace) == ["start", "classify", "identify", "mask", "caption", "inpaint",
                               "verify", "finish"]
    calls = [c for e in trace for c in e["calls"]]
    assert calls and all(c["model"] == f"openai:{MODEL}" and c["parsed"] for c in calls)


def test_an_addition_lands_where_the_model_meant(tmp_path, tiny_brushnet):
    pixels = np.array(picture())
    pixels[4:20, 40:60] = (255, 0, 255)  # where the fake model will say the cat goes
    image = Image.fromarray(pixels)
    with FakeOpenAI(models=[MODEL], family="qwen3-vl") as server:
        components = make_components(tmp_path / "data", vlm=server.vlm(), planner="vlm",
                                     inpainters={"brushnet": tiny_brushnet},
                                     inpainter="brushnet")
        result = EditSession.open(components).edit(
            image, "add a cat", options=EditOptions(inpainter="brushnet", steps=2, max_attempts=1))
    assert result.plan.category.value == "addition"
    box = result.plan.box.as_tuple()
    assert max(abs(a - b) for a, b in zip(box, (40, 4, 60, 20), strict=True)) <= 1


def test_a_server_that_is_down_falls_back_with_its_address(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    components = make_components(tmp_path / "data", vlm=OpenAIVLM(MODEL, url, timeout=2),
                                 planner="auto")
    session = EditSession.open(components)
    result = session.edit(picture(), "remove the dark square", mask=object_mask())
    assert result.planner == "rules" and result.accepted
    start = next(e for e in session.trace() if e["node"] == "start")
    reason = start["outputs"]["history"][0]["reason"]
    assert "no answer at" in reason and url in reason


def test_a_server_that_is_down_is_the_same_error_with_planner_vlm(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    vlm = OpenAIVLM(MODEL, url, timeout=2, transport_retries=0)
    session = EditSession.open(make_components(tmp_path / "d", vlm=vlm, planner="vlm"))
    with pytest.raises(VLMUnavailableError) as caught:
        session.edit(picture(), "remove the dark square", mask=object_mask())
    assert caught.value.server == "openai" and caught.value.url == url
    assert session.turns()[0].status == "failed"


def test_brushedit_vlm_url_puts_the_whole_graph_on_the_server(tmp_path, monkeypatch):
    from graphs.components import build_components
    from graphs.settings import load_settings
    from graphs.vlm_setup import planner_info

    with FakeOpenAI(models=[MODEL], family="qwen3-vl") as server:
        monkeypatch.setenv("BRUSHEDIT_VLM_URL", server.url)  # no path: `/v1` is added
        monkeypatch.setenv("BRUSHEDIT_VLM_MODEL", MODEL)
        monkeypatch.setenv("BRUSHEDIT_VLM_API_KEY", "sk-local-test")
        components = build_components(load_settings(), inpainter="opencv", planner="vlm",
                                      segmenter=False)
        info = planner_info(components)
        session = EditSession.open(components)
        result = session.edit(picture(), "remove the dark square", mask=object_mask())
    assert (info.server, info.url, info.model, info.family) == (
        "openai", server.base_url, MODEL, "qwen3-vl")
    assert info.summary.startswith(f"{MODEL} (Qwen3-VL) on OpenAI-compatible server at ")
    assert result.planner == "vlm" and result.plan.source == "vlm"
    chats = [r for r in server.requests if r.path == server.chat_path]
    assert chats and {r.authorization for r in chats} == {"Bearer sk-local-test"}
    calls = [c for e in session.trace() for c in e["calls"]]
    assert calls and {(c["model"], c["family"]) for c in calls} == {(f"openai:{MODEL}",
                                                                     "qwen3-vl")}
    components.close()


def _traced(session: EditSession) -> list[tuple]:
    """A run's trace without what differs between servers (model ids, times, hashes of calls)."""
    return [(e["node"], e["status"], json.dumps(e["outputs"], sort_keys=True),
             [(c["family"], c["from_thinking"], c["parsed"], c["error"]) for c in e["calls"]])
            for e in session.trace()]


def test_the_same_edit_leaves_the_same_trace_on_ollama_and_an_openai_server(tmp_path):
    from tests.fakes.ollama_server import FakeOllama

    traces, results = [], []
    for name, server in (("ollama", FakeOllama.as_family("qwen3-vl", model="qwen3-vl:8b")),
                         ("openai", FakeOpenAI(models=["qwen3-vl:8b"], family="qwen3-vl"))):
        with server:
            server.smart.set_verdicts("retry:mask", "accept")
            components = make_components(tmp_path / name, vlm=server.vlm(), planner="vlm",
                                         segmenter=DarkSegmenter())
            session = EditSession.open(components)
            results.append(session.edit(picture(), "remove the dark square"))
            traces.append(_traced(session))
    assert traces[0] == traces[1]
    assert results[0].image == results[1].image and results[0].attempts == 2


@pytest.mark.parametrize("kind", ["ollama", "openai"])
def test_an_unknown_model_is_the_same_error_on_both_servers(tmp_path, kind):
    from agents.errors import VLMModelNotFoundError
    from tests.fakes.ollama_server import FakeOllama

    server = FakeOllama(models=["qwen3-vl:8b"]) if kind == "ollama" else FakeOpenAI(
        models=["qwen3-vl:8b"])
    with server:
        vlm = server.vlm(model="no-such-model:1b")
        session = EditSession.open(make_components(tmp_path / "d", vlm=vlm, planner="vlm"))
        with pytest.raises(VLMModelNotFoundError) as caught:
            session.edit(picture(), "remove the dark square", mask=object_mask())
    assert caught.value.server == kind and caught.value.model == "no-such-model:1b"
    assert "qwen3-vl:8b" in caught.value.available
