"""`--vlm-url` and `--vlm-model`: the command-line options that choose the VLM's server and model.

Every command that takes `--planner` takes these too (`edit`, `resume`, `chat`, `demo`, `ui`,
`serve`, `mcp`, `eval run`, `eval bench pie-bench`); they override `BRUSHEDIT_VLM_URL` and
`BRUSHEDIT_VLM_MODEL` for that command. Only typer is imported here.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer


def _api_root(value: str | None) -> str | None:
    """The address as the API root it means, or a usage error naming the option."""
    if value is None or not value.strip():
        return None
    from agents.openai_vlm import openai_base_url

    try:
        return openai_base_url(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value.strip()[:80]!r} is not a server address ({exc})",
                                 param_hint="--vlm-url") from None


VlmUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--vlm-url", callback=_api_root, metavar="URL",
        help="Ask the VLM on this OpenAI-compatible server (vLLM, llama.cpp's llama-server, LM "
        "Studio), e.g. http://127.0.0.1:8000/v1, instead of Ollama [env: BRUSHEDIT_VLM_URL].",
    ),
]
VlmModelOpt = Annotated[
    str | None,
    typer.Option(
        "--vlm-model", metavar="NAME",
        help="The VLM's name on its server (vLLM: the served name, e.g. "
        "Qwen/Qwen3-VL-8B-Instruct) [env: BRUSHEDIT_VLM_MODEL, else BRUSHEDIT_OLLAMA_MODEL].",
    ),
]


def vlm_overrides(url: str | None, model: str | None) -> dict[str, Any]:
    """The `Settings` fields the options set (none when they were not given)."""
    given = {"vlm_url": url, "vlm_model": model.strip() if model else None}
    return {name: value for name, value in given.items() if value}


def settings_with(url: str | None = None, model: str | None = None) -> Any:
    """`graphs.settings.load_settings()` with the options over the environment."""
    from graphs.settings import load_settings

    return load_settings(**vlm_overrides(url, model))


def export_to_environment(url: str | None, model: str | None) -> None:
    """Set the options as `BRUSHEDIT_VLM_URL`/`_MODEL` for this process and the workers it
    starts (eval workers and a local Ray cluster read their settings from the environment)."""
    import os

    for name, value in vlm_overrides(url, model).items():
        os.environ[f"BRUSHEDIT_{name.upper()}"] = value
