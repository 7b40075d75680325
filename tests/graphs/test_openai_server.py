"""The editing graph on a VLM behind an OpenAI-compatible server (vLLM, llama.cpp, LM Studio).

The graph is handed the `OpenAIVLM` directly here; reading `BRUSHEDIT_VLM_URL` into the
components is the settings' job. Same nodes, same traces, same errors as with Ollama.
"""

from __future__ import annotations

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
