"""Which vision-language model plans: built from `Settings` once, described the same everywhere.

`build_vlm(settings)` is the one place the configuration becomes a model: Ollama at
`BRUSHEDIT_OLLAMA_HOST`, or any OpenAI-compatible server (vLLM, llama.cpp's `llama-server`, LM
Studio) when `BRUSHEDIT_VLM_URL` is set, through `agents.vlm.make_vlm`. `PlannerInfo` says which
server kind, address, model and family plan a context's edits, without asking the server, so the
HTTP API, the MCP server, the web editor, the CLI and `brushedit doctor` all say it in the same
words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, computed_field

if TYPE_CHECKING:
    from graphs.context import Context
    from graphs.settings import Settings

SERVER_LABELS = {"ollama": "Ollama", "openai": "OpenAI-compatible server"}


def build_vlm(settings: Settings, *, timeout: float | None = None) -> Any:
    """The configured VLM (`OllamaVLM` or `OpenAIVLM`); nothing is asked until it is used.

    Args:
        settings: `vlm_url` picks the OpenAI-compatible server (else Ollama at `ollama_host`),
            `planner_model` the model, `vlm_family` a forced family, `vlm_api_key` the key.
        timeout: seconds per HTTP call instead of `ollama_timeout` (a probe wants a short one).
    """
    from agents.vlm import make_vlm

    key = settings.vlm_api_key.get_secret_value() if settings.vlm_api_key else None
    return make_vlm(
        settings.planner_model,
        url=settings.vlm_url,
        host=settings.ollama_host,
        timeout=timeout or settings.ollama_timeout,
        api_key=key if settings.vlm_url else None,
        family=settings.vlm_family,
    )


class PlannerInfo(BaseModel):
    """Who plans a context's edits: the mode, and the VLM's server, model and family.

    The family is found from the model's name (or the forced one), without asking the server;
    `brushedit doctor` asks it and says what the server itself reports.
    """

    mode: Literal["auto", "vlm", "rules"] = Field(
        description="auto: the VLM, falling back to the rule parser; vlm: the VLM only; rules."
    )
    server: Literal["ollama", "openai"] | None = Field(
        default=None, description="The VLM's server kind; None when only the rules plan."
    )
    url: str | None = Field(default=None, description="The server's address.")
    model: str | None = Field(default=None, description="The model's name on its server.")
    family: str | None = Field(default=None, description="Its family (`agents.families`).")
    family_label: str | None = Field(default=None, description="The family as people write it.")
    grounding: str | None = Field(
        default=None, description="How far its boxes are trusted: strong, fair, none, unknown."
    )
    thinks: bool | None = Field(default=None, description="Whether the model thinks first.")

    @computed_field(description="The same in one line, as the CLI and the web editor show it.")
    @property
    def summary(self) -> str:
        """One line: `qwen3-vl:8b-instruct (Qwen3-VL) on Ollama at http://...; planner auto`."""
        if self.model is None:
            return "the rule parser (no vision model)"
        where = "" if self.server is None else (
            f" on {SERVER_LABELS[self.server]}" + (f" at {self.url}" if self.url else ""))
        grounding = "" if self.grounding in (None, "strong", "fair") else (
            ", cannot point at places" if self.grounding == "none" else ", grounding unknown")
        return f"{self.model} ({self.family_label}{grounding}){where}; planner {self.mode}"


def planner_info(context: Context) -> PlannerInfo:
    """What plans `context`'s edits, from its VLM's own fields (no server is asked)."""
    from agents.families import bare_model_name, resolve_family

    mode = context.settings.planner
    vlm = context.vlm
    if vlm is None or mode == "rules":
        return PlannerInfo(mode=mode)  # no model: the rules plan
    model = bare_model_name(str(getattr(vlm, "model_id", "")))
    match = resolve_family(model, None, getattr(vlm, "family_override", None))
    server = getattr(vlm, "server", None)
    return PlannerInfo(
        mode=mode, server=server if server in SERVER_LABELS else None,
        url=getattr(vlm, "url", None) or getattr(vlm, "host", None), model=model,
        family=match.family.name, family_label=match.family.label,
        grounding=match.family.grounding, thinks=match.thinks,
    )
