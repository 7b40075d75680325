"""The CLI's promises: fast help without torch, one-line errors, a truthful offline doctor."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from interfaces.cli import app
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


HEAVY = ("torch", "diffusers", "transformers", "gradio", "fastapi", "langgraph", "numpy", "PIL",
         "pydantic")


def test_light_imports_and_help_never_load_heavy_libraries() -> None:
    """`import graphs` and `brushedit --help` (plugins included) stay a fraction of a second."""
    code = (
        "import sys, agents, tools, tools.errors, graphs, interfaces.cli, evals\n"
        "interfaces.cli._load_plugins(interfaces.cli.app)\n"
        "try:\n    interfaces.cli.app(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "eval" in out.stdout  # the plugin's sub-command is listed
    assert out.stdout.strip().splitlines()[-1] == "[]"


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
    assert "ollama pull qwen3-vl:8b-instruct" in result.output
    assert "hf download TencentARC/BrushEdit --include 'brushnetX/*'" in result.output
    assert "hf download facebook/sam-vit-huge" in result.output
    strict = CliRunner().invoke(app, ["doctor", "--strict"])
    assert strict.exit_code == 1


def test_doctor_sees_server_model_and_local_weights(monkeypatch, tmp_path) -> None:
    server = FakeOllama(models=["qwen3-vl:8b-instruct"], capabilities=["completion", "vision"]).start()
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
    assert "capabilities: completion, vision" in lines["Ollama model qwen3-vl:8b-instruct"]
    assert "Qwen3-VL, by details.family 'qwen3vl'" in lines["VLM family"]
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

    from interfaces.cli_errors import BrushEditGroup
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


def test_missing_weights_fail_at_once_with_doctors_fix(tmp_path) -> None:
    """Hub ids not in the cache: the edit stops before any Hub request, naming each fix.

    HF_HUB_OFFLINE is unset and the Hub endpoint is a closed local port: a load that tried the
    Hub would fail with huggingface_hub's own error (after its retries), not with ours.
    """
    from PIL import Image

    Image.new("RGB", (64, 64), (200, 100, 50)).save(tmp_path / "photo.png")
    Image.new("L", (64, 64), 255).save(tmp_path / "mask.png")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "BRUSHEDIT_"))}
    env |= {
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
        "BRUSHEDIT_DATA_DIR": str(tmp_path / "data"),
        "BRUSHEDIT_DEVICE": "cpu",
    }
    exe = os.path.join(os.path.dirname(sys.executable), "brushedit")
    result = subprocess.run(
        [exe, "edit", "photo.png", "make it a lake", "-o", "out.png", "--mask", "mask.png",
         "--planner", "rules"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().startswith("Error: the BrushNet inpainter cannot load")
    assert "hf download stable-diffusion-v1-5/stable-diffusion-v1-5" in result.stderr
    assert "hf download TencentARC/BrushEdit --include 'brushnetX/*'" in result.stderr
    assert "BRUSHEDIT_ALLOW_DOWNLOADS=1" in result.stderr
    assert "Traceback" not in result.stderr and "huggingface_hub" not in result.stderr
    assert not (tmp_path / "out.png").exists()
