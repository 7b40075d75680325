"""The CLI's promises: fast help without torch, one-line errors, a truthful offline doctor."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from graphs.cli import app
from tests.fakes.ollama_server import FakeOllama


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _offline_env(monkeypatch, tmp_path, host: str) -> None:
    monkeypatch.setenv("BRUSHEDIT_OLLAMA_HOST", host)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("BRUSHEDIT_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)


def test_light_imports_never_load_torch() -> None:
    code = (
        "import sys, agents, tools, graphs, graphs.cli, evals;"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "doctor" in result.output


def test_doctor_offline_tells_the_truth(monkeypatch, tmp_path) -> None:
    _offline_env(monkeypatch, tmp_path, f"http://127.0.0.1:{_closed_port()}")
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "torch" in result.output and "ok" in result.output
    assert "ollama serve" in result.output
    assert "ollama pull qwen2.5vl:7b" in result.output
    assert "hf download TencentARC/BrushEdit --include 'brushnetX/*'" in result.output
    assert "hf download facebook/sam-vit-huge" in result.output
    strict = CliRunner().invoke(app, ["doctor", "--strict"])
    assert strict.exit_code == 1


def test_doctor_sees_server_model_and_local_weights(monkeypatch, tmp_path) -> None:
    server = FakeOllama(models=["qwen2.5vl:7b"], capabilities=["completion", "vision"]).start()
    _offline_env(monkeypatch, tmp_path, server.url)
    base = tmp_path / "sd15"
    base.mkdir()
    (base / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    brushnet = tmp_path / "brushnet"
    (brushnet / "brushnetX").mkdir(parents=True)
    (brushnet / "brushnetX" / "config.json").write_text("{}")
    monkeypatch.setenv("BRUSHEDIT_BASE_MODEL", str(base))
    monkeypatch.setenv("BRUSHEDIT_BRUSHNET", str(brushnet))
    monkeypatch.setenv("BRUSHEDIT_DETECTOR", str(tmp_path / "nowhere"))
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert "answers at" in lines["Ollama server"]
    assert "capabilities: completion, vision" in lines["Ollama model qwen2.5vl:7b"]
    assert "local folder" in lines["Base model"] and "local folder" in lines["BrushNet"]
    assert "missing" in lines["GroundingDINO"]
    assert "BRUSHEDIT_DETECTOR" in result.output
    server.stop()


@pytest.mark.parametrize(
    ("models", "capabilities", "expected"),
    [
        (["llama3:8b"], ["completion"], "no vision capability"),
        (["gemma3:4b"], ["completion", "vision"], "ollama pull llama3:8b"),
    ],
)
def test_doctor_flags_unusable_models(monkeypatch, tmp_path, models, capabilities, expected):
    with FakeOllama(models=models, capabilities=capabilities) as server:
        _offline_env(monkeypatch, tmp_path, server.url)
        monkeypatch.setenv("BRUSHEDIT_OLLAMA_MODEL", "llama3:8b")
        result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0
    assert expected in result.output


def test_brushedit_errors_are_one_line_exit_2(tmp_path) -> None:
    """Through the real console script: a user error prints one line, no traceback."""
    exe = os.path.join(os.path.dirname(sys.executable), "brushedit")
    result = subprocess.run([exe, "doctor", "--no-such-flag"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_expected_errors_become_one_line_and_exit_2() -> None:
    import typer

    from graphs.cli import BrushEditGroup
    from tools import InvalidImageError

    probe = typer.Typer(cls=BrushEditGroup)

    @probe.command()
    def explode() -> None:
        raise InvalidImageError("photo.jpg is damaged or truncated\n and cannot be read")

    @probe.command()
    def other() -> None:
        pass

    result = CliRunner().invoke(probe, ["explode"])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: photo.jpg is damaged or truncated and cannot be read"
    assert result.exception is None or isinstance(result.exception, SystemExit)
