"""`brushedit ui`, `brushedit serve` and `brushedit mcp`: the interfaces as CLI commands.

`register(app)` adds them to the root Typer app; gradio, fastapi, uvicorn and mcp are imported
only when a command runs, so `brushedit --help` stays fast.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tools.registry import DEFAULT_INPAINTER, INPAINTER_NAMES

InpainterChoice = StrEnum("InpainterChoice", {name: name for name in INPAINTER_NAMES})
"""The registry's inpainters, as Typer choices."""


class PlannerChoice(StrEnum):
    auto = "auto"
    vlm = "vlm"
    rules = "rules"


class Transport(StrEnum):
    stdio = "stdio"
    http = "http"


HostOption = Annotated[str, typer.Option("--host", help="Interface to bind (loopback by default).")]
InpainterOption = Annotated[
    InpainterChoice,
    typer.Option("--inpainter", help="Default inpainter (opencv needs no model weights)."),
]
PlannerOption = Annotated[
    PlannerChoice,
    typer.Option("--planner", help="auto: VLM with rule fallback; vlm; rules (no Ollama)."),
]


def ui(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 7860,
    inpainter: InpainterOption = InpainterChoice(DEFAULT_INPAINTER),
    planner: PlannerOption = PlannerChoice.auto,
) -> None:
    """Open the web editor (Gradio) in your browser at http://HOST:PORT."""
    from graphs.interfaces.common import settings_components_factory
    from graphs.interfaces.web import launch
    from graphs.settings import load_settings

    settings = load_settings()
    factory = settings_components_factory(
        settings, inpainter=inpainter.value, planner=planner.value
    )
    launch(factory, settings, host=host, port=port)


def serve(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    inpainter: InpainterOption = InpainterChoice(DEFAULT_INPAINTER),
    planner: PlannerOption = PlannerChoice.auto,
) -> None:
    """Run the HTTP API (docs at http://HOST:PORT/docs); set BRUSHEDIT_API_TOKEN off loopback."""
    from graphs.interfaces.api import serve as run_api
    from graphs.settings import load_settings

    run_api(load_settings(), host=host, port=port, inpainter=inpainter.value, planner=planner.value)


def mcp(
    transport: Annotated[
        Transport, typer.Option("--transport", help="stdio (for desktop clients) or http.")
    ] = Transport.stdio,
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8765,
    inpainter: InpainterOption = InpainterChoice(DEFAULT_INPAINTER),
    planner: PlannerOption = PlannerChoice.auto,
    root: Annotated[
        list[Path] | None,
        typer.Option(
            "--root",
            help="A folder whose image files the tools may read by path (repeatable; added to "
            "the client's MCP roots and BRUSHEDIT_MCP_ROOTS).",
        ),
    ] = None,
) -> None:
    """Serve the MCP tools edit_image, plan_edit and get_trace (HTTP: http://HOST:PORT/mcp)."""
    from graphs.interfaces.mcp_server import run_mcp
    from graphs.settings import load_settings

    run_mcp(
        load_settings(), transport=transport.value, host=host, port=port,
        inpainter=inpainter.value, planner=planner.value, roots=root or None,
    )


def register(app: typer.Typer) -> None:
    """Add `ui`, `serve` and `mcp` to the root `brushedit` app."""
    app.command(name="ui")(ui)
    app.command(name="serve")(serve)
    app.command(name="mcp")(mcp)
