"""Settings precedence and the vocabulary's validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from graphs.settings import Settings
from tools import Box, EditCategory, EditOptions, EditPlan


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


def test_category_aliases() -> None:
    assert EditCategory.parse(" Remove ") is EditCategory.REMOVAL
    assert EditCategory.parse("GLOBAL") is EditCategory.GLOBAL
    with pytest.raises(ValueError):
        EditCategory.parse("recolour")


def test_box_validation_and_clamping() -> None:
    with pytest.raises(ValidationError, match="empty"):
        Box(x0=10, y0=10, x1=10, y1=20)
    box = Box.clamped(-5, 3.6, 900, 50, width=100, height=40)
    assert box.as_tuple() == (0, 4, 100, 40) and box.area == 100 * 36
    with pytest.raises(ValidationError):
        Box.clamped(200, 0, 300, 10, width=100, height=40)


def test_plan_and_options_round_trip_as_json() -> None:
    plan = EditPlan(
        instruction="add a bird",
        category="addition",
        box=Box(x0=1, y0=2, x1=3, y1=4),
        target_caption="a bird",
    )
    assert EditPlan.model_validate_json(plan.model_dump_json()) == plan
    with pytest.raises(ValidationError):
        EditOptions(steps=0)
    with pytest.raises(ValidationError):
        EditOptions(inpainter="photoshop")
