"""`brushedit ui | serve | mcp`: registered on a Typer app, refusing unsafe binds clearly."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from interfaces.cli_errors import FAILED_EXIT, BrushEditGroup
from interfaces.server_commands import register


def make_app() -> typer.Typer:
    app = typer.Typer(cls=BrushEditGroup, pretty_exceptions_enable=False)
    register(app)
    return app


def test_commands_are_registered_with_help():
    runner = CliRunner()
    for name, words in (("ui", "web editor"), ("serve", "HTTP API"), ("mcp", "MCP tools")):
        result = runner.invoke(make_app(), [name, "--help"])
        assert result.exit_code == 0, result.output
        assert words in result.output and "--host" in result.output


def test_open_binds_without_a_token_are_refused(monkeypatch, tmp_path):
    monkeypatch.delenv("BRUSHEDIT_API_TOKEN", raising=False)
    monkeypatch.setenv("BRUSHEDIT_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    for args in (["serve", "--host", "0.0.0.0"], ["ui", "--host", "0.0.0.0"],
                 ["mcp", "--transport", "http", "--host", "0.0.0.0"]):
        result = runner.invoke(make_app(), args)
        assert result.exit_code == FAILED_EXIT, (args, result.output)  # a setting to fix
        assert "refusing" in result.output


def test_bad_option_values_are_usage_errors():
    result = CliRunner().invoke(make_app(), ["serve", "--inpainter", "magic"])
    assert result.exit_code == 2 and "magic" in result.output
