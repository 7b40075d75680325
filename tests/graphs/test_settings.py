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
