"""Settings: environment and `.env` precedence, bounds, device and dtype resolution."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from graphs.settings import Settings


def test_settings_prefix_env_file_and_ollama_host(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("OLLAMA_HOST", "BRUSHEDIT_OLLAMA_HOST", "BRUSHEDIT_OLLAMA_MODEL"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().ollama_host == "http://127.0.0.1:11434"
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:11434")
    assert Settings().ollama_host == "http://gpu-box:11434"
    monkeypatch.setenv("BRUSHEDIT_OLLAMA_HOST", "http://other:1/")
    assert Settings().ollama_host == "http://other:1"
    (tmp_path / ".env").write_text("BRUSHEDIT_OLLAMA_MODEL=gemma3:4b\nBRUSHEDIT_MAX_ATTEMPTS=5\n")
    settings = Settings()
    assert settings.ollama_model == "gemma3:4b" and settings.max_attempts == 5
    monkeypatch.setenv("BRUSHEDIT_MAX_ATTEMPTS", "2")
    assert Settings().max_attempts == 2, "environment beats .env"


def test_settings_data_dir_and_bounds(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("BRUSHEDIT_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings().data_dir == tmp_path / "xdg" / "brushedit"
    monkeypatch.setenv("BRUSHEDIT_DATA_DIR", str(tmp_path / "data"))
    assert Settings().sqlite_path == tmp_path / "data" / "sessions.sqlite"
    monkeypatch.setenv("BRUSHEDIT_MAX_ATTEMPTS", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_device_and_dtype_resolution(monkeypatch) -> None:
    monkeypatch.setenv("BRUSHEDIT_DEVICE", "cpu")
    settings = Settings()
    assert settings.resolved_device() == "cpu"
    assert settings.resolved_dtype() == "float32"
    assert settings.resolved_dtype("cuda") == "float16"
    monkeypatch.setenv("BRUSHEDIT_DTYPE", "bfloat16")
    assert Settings().resolved_dtype("cuda") == "bfloat16"


def test_the_vlm_server_comes_from_brushedit_vlm_url(monkeypatch) -> None:
    from agents.ollama_vlm import OllamaVLM
    from agents.openai_vlm import OpenAIVLM
    from graphs.vlm_setup import build_vlm

    settings = Settings(_env_file=None)
    ollama = build_vlm(settings)
    assert isinstance(ollama, OllamaVLM) and ollama.model == "qwen3-vl:8b-instruct"
    assert settings.vlm_server == "ollama" and ollama.host == settings.ollama_host
    monkeypatch.setenv("BRUSHEDIT_VLM_URL", "http://gpu-box:8000/v1/chat/completions")
    monkeypatch.setenv("BRUSHEDIT_VLM_MODEL", "served-vlm")
    monkeypatch.setenv("BRUSHEDIT_VLM_FAMILY", "Qwen2.5-VL")
    monkeypatch.setenv("BRUSHEDIT_VLM_API_KEY", "sk-1")
    monkeypatch.setenv("BRUSHEDIT_OLLAMA_TIMEOUT", "30")
    settings = Settings(_env_file=None)
    assert (settings.vlm_url, settings.vlm_family) == ("http://gpu-box:8000/v1", "qwen2.5-vl")
    assert "sk-1" not in repr(settings)  # the key is a secret
    openai = build_vlm(settings, timeout=3)
    assert isinstance(openai, OpenAIVLM) and openai.url == "http://gpu-box:8000/v1"
    assert (openai.model, openai.api_key, openai.timeout) == ("served-vlm", "sk-1", 3)
    assert openai.family.family.name == "qwen2.5-vl" and openai.family.source == "override"
    monkeypatch.setenv("BRUSHEDIT_VLM_URL", "")  # empty: back to Ollama, with the model given
    assert isinstance(build_vlm(Settings(_env_file=None)), OllamaVLM)
    assert build_vlm(Settings(_env_file=None)).model == "served-vlm"


@pytest.mark.parametrize(("name", "value", "said"), [
    ("BRUSHEDIT_VLM_URL", "ftp://gpu-box/v1", "BRUSHEDIT_VLM_URL: 'ftp://gpu-box/v1' is not a "
     "server address (give an http:// or https:// address with a host name)"),
    ("BRUSHEDIT_VLM_URL", "http://gpu-box:99999", "BRUSHEDIT_VLM_URL: 'http://gpu-box:99999'"),
    ("BRUSHEDIT_VLM_FAMILY", "gpt-4o", "BRUSHEDIT_VLM_FAMILY: unknown model family 'gpt-4o'; "
     "known families: qwen2.5-vl, qwen2-vl, qwen3-vl"),
])
def test_a_bad_vlm_setting_is_one_sentence_naming_it(monkeypatch, name, value, said) -> None:
    from graphs.settings import load_settings
    from tools.errors import ConfigError

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert said in str(caught.value) and "\n" not in str(caught.value)


def test_planner_info_says_server_kind_model_and_family(tmp_path) -> None:
    from graphs.components import build_components
    from graphs.vlm_setup import planner_info

    base = {"data_dir": tmp_path, "_env_file": None}
    rules = build_components(Settings(**base), inpainter="opencv", planner="rules", persist=False)
    assert planner_info(rules).summary == "the rule parser (no vision model)"
    gemma = build_components(Settings(**base, ollama_model="gemma3:4b"), inpainter="opencv",
                             persist=False)
    info = planner_info(gemma)
    assert (info.server, info.family, info.grounding, info.mode) == (
        "ollama", "gemma3", "none", "auto")
    assert info.summary == (f"gemma3:4b (Gemma 3, cannot point at places) on Ollama at "
                            f"{Settings(**base).ollama_host}; planner auto")
    served = build_components(Settings(**base, vlm_url="http://h:1", vlm_model="x"),
                              inpainter="opencv", persist=False)
    assert planner_info(served).model_dump()["summary"] == (
        "x (unknown family, grounding unknown) on OpenAI-compatible server at http://h:1/v1; "
        "planner auto")
    for context in (rules, gemma, served):
        context.close()
