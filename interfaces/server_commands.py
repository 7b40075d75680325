"""`brushedit ui`, `brushedit serve` and `brushedit mcp`: the interfaces as CLI commands.

`register(app)` adds them to the root Typer app; gradio, fastapi, uvicorn and mcp are imported
only when a command runs, so `brushedit --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from interfaces.vlm_options import VlmModelOpt, VlmUrlOpt, settings_with
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
PortOption = Annotated[int, typer.Option("--port", min=1, max=65535)]
InpainterOption = Annotated[
    InpainterChoice,
    typer.Option("--inpainter", help="Default inpainter (opencv needs no model weights)."),
]
PlannerOption = Annotated[
    PlannerChoice,
    typer.Option("--planner", help="auto: VLM with rule fallback; vlm; rules (no VLM)."),
]


def _server_command(default_port: int, start: Callable[..., None], doc: str) -> Callable[..., None]:
    """A command that loads the settings and starts one server (`ui` or `serve`) on HOST:PORT."""

    def command(
        host: HostOption = "127.0.0.1",
        port: PortOption = default_port,
        inpainter: InpainterOption = InpainterChoice(DEFAULT_INPAINTER),
        planner: PlannerOption = PlannerChoice.auto,
        vlm_url: VlmUrlOpt = None,
        vlm_model: VlmModelOpt = None,
    ) -> None:
        start(settings_with(vlm_url, vlm_model), host=host, port=port,
              inpainter=inpainter.value, planner=planner.value)

    command.__doc__ = doc
    return command


def _start_ui(settings: Any, *, host: str, port: int, inpainter: str, planner: str) -> None:
    from interfaces.common import settings_components_factory
    from interfaces.web import launch

    factory = settings_components_factory(settings, inpainter=inpainter, planner=planner)
    launch(factory, settings, host=host, port=port)


def _start_api(settings: Any, **server: Any) -> None:
    from interfaces.api import serve as run_api

    run_api(settings, **server)


ui = _server_command(
    7860, _start_ui, "Open the web editor (Gradio) in your browser at http://HOST:PORT."
)
_serve_here = _server_command(8000, _start_api, "")


def serve(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    inpainter: InpainterOption = InpainterChoice(DEFAULT_INPAINTER),
    planner: PlannerOption = PlannerChoice.auto,
    ray: Annotated[str | None, typer.Option(
        "--ray", help="Serve on Ray Serve, the inpainter and the segmenter as deployments "
        "(replicas and GPUs from BRUSHEDIT_SERVE_*): `local` starts a cluster here, an address "
        "joins one.")] = None,
) -> None:
    """Run the HTTP API (docs at http://HOST:PORT/docs); set BRUSHEDIT_API_TOKEN off loopback."""
    if ray is None:
        _serve_here(host=host, port=port, inpainter=inpainter, planner=planner)
        return
    from graphs.settings import load_settings
    from interfaces.api.ray_serve import serve_on_ray

    serve_on_ray(load_settings(), address=ray, host=host, port=port, inpainter=inpainter.value,
                 planner=planner.value, on_ready=lambda url: typer.echo(
                     f"serving the API at {url} (docs at {url}/docs) on Ray Serve; Ctrl-C stops "
                     "it", err=True))


def mcp(
    transport: Annotated[
        Transport, typer.Option("--transport", help="stdio (for desktop clients) or http.")
    ] = Transport.stdio,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8765,
    inpainter: InpainterOption = InpainterChoice(DEFAULT_INPAINTER),
    planner: PlannerOption = PlannerChoice.auto,
    vlm_url: VlmUrlOpt = None,
    vlm_model: VlmModelOpt = None,
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
    from interfaces.mcp_server import run_mcp

    run_mcp(
        settings_with(vlm_url, vlm_model), transport=transport.value, host=host, port=port,
        inpainter=inpainter.value, planner=planner.value, roots=root or None,
    )


def register(app: typer.Typer) -> None:
    """Add `ui`, `serve` and `mcp` to the root `brushedit` app."""
    app.command(name="ui")(ui)
    app.command(name="serve")(serve)
    app.command(name="mcp")(mcp)
