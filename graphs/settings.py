"""Application settings: the only place environment variables and `.env` are read.

Models and stores never read settings themselves; the app layer (CLI, servers) builds them from a
`Settings` instance and passes explicit arguments down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents.families import DEFAULT_OLLAMA_MODEL
from tools.registry import INPAINTERS

DeviceName = Literal["auto", "cpu", "cuda", "mps"]
OffloadName = Literal["none", "model", "sequential"]
DTypeName = Literal["auto", "float32", "float16", "bfloat16"]


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/brushedit`, else `~/.local/share/brushedit`."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "brushedit"


class Settings(BaseSettings):
    """Everything a deployment may configure, with `BRUSHEDIT_` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="BRUSHEDIT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    ollama_host: str = Field(
        default="http://127.0.0.1:11434",
        validation_alias=AliasChoices("BRUSHEDIT_OLLAMA_HOST", "OLLAMA_HOST"),
        description="Where the Ollama server answers.",
    )
    ollama_model: str = Field(
        default=DEFAULT_OLLAMA_MODEL,
        description="Vision model served by Ollama (`BRUSHEDIT_VLM_MODEL` wins when set).",
    )
    ollama_timeout: float = Field(
        default=120.0, gt=0, le=3600, allow_inf_nan=False,
        description="Seconds allowed for each VLM call, from connecting to the last byte.",
    )
    vlm_url: str | None = Field(
        default=None,
        description="An OpenAI-compatible server's API root (vLLM, llama.cpp's llama-server, LM "
        "Studio), e.g. http://127.0.0.1:8000/v1: the agents ask the model there instead of "
        "Ollama.",
    )
    vlm_model: str | None = Field(
        default=None,
        description="The model's name on its server (vLLM: the served name, such as "
        "Qwen/Qwen3-VL-8B-Instruct); unset: BRUSHEDIT_OLLAMA_MODEL.",
    )
    vlm_api_key: SecretStr | None = Field(
        default=None, description="The key an OpenAI-compatible server asks for, if any."
    )
    vlm_family: str | None = Field(
        default=None,
        description="The model's family (`agents.families`: qwen2.5-vl, qwen3-vl, minicpm-v, "
        "llava, gemma3...) when its name does not say it, e.g. a vLLM served name.",
    )

    base_model: str = Field(
        default="stable-diffusion-v1-5/stable-diffusion-v1-5",
        description="SD1.5 or SDXL base: Hub id, diffusers folder, or single .safetensors/.ckpt file.",
    )
    brushnet: str = Field(
        default="TencentARC/BrushEdit",
        description="BrushNet of the base's family (SD1.5 or SDXL): Hub id or folder.",
    )
    brushnet_subfolder: str | None = Field(
        default="brushnetX", description="Folder inside `brushnet`; empty for none."
    )
    compile: bool = Field(
        default=False,
        description="torch.compile the BrushNet branch and the UNet: the first edit compiles "
        "(minutes on a CPU), later ones run faster. For long-lived processes (serve, ui, evals).",
    )
    sdxl_working_side: int = Field(
        default=1024, ge=64, le=2048,
        description="SDXL bases generate at about this many pixels squared (native 1024).",
    )
    flux_fill_model: str = Field(
        default=INPAINTERS["flux-fill"].default_model,
        description="FLUX.1 Fill (the flux-fill conductor): Hub id, save_pretrained folder, or "
        "single .safetensors file.",
    )
    flux_kontext_model: str = Field(
        default=INPAINTERS["flux-kontext"].default_model,
        description="FLUX.1 Kontext (the flux-kontext conductor): Hub id, save_pretrained "
        "folder, or single .safetensors file.",
    )
    qwen_image_edit_model: str = Field(
        default=INPAINTERS["qwen-image-edit"].default_model,
        description="Qwen-Image-Edit, 2509 or 2511 (the qwen-image-edit conductor): Hub id or "
        "save_pretrained folder.",
    )
    flux2_klein_model: str = Field(
        default=INPAINTERS["flux2-klein"].default_model,
        description="FLUX.2 klein (the flux2-klein conductor): Hub id or save_pretrained folder.",
    )
    sd_inpaint_model: str = Field(
        default=INPAINTERS["sd-inpaint"].default_model,
        description="Any SD1.5 / SDXL / SD3 inpainting checkpoint (the sd-inpaint conductor): "
        "Hub id, save_pretrained folder, or single .safetensors file.",
    )
    conductor_offload: OffloadName = Field(
        default="none",
        description="CPU offload of the diffusers conductors on a GPU: model (one model on the "
        "GPU at a time; FLUX.1 in about 24 GB) or sequential (layer by layer: least memory, "
        "slowest).",
    )
    conductor_working_side: int | None = Field(
        default=None, ge=64, le=2048,
        description="Conductors paint at about this many pixels squared instead of their "
        "native size (FLUX: 1024): less memory and time, less detail.",
    )
    detector: str = Field(default="IDEA-Research/grounding-dino-tiny", description="GroundingDINO.")
    sam: str = Field(default="facebook/sam-vit-huge", description="Segment Anything.")

    allow_downloads: bool = Field(
        default=False,
        description="Let models download from the Hugging Face Hub on first use. Off: a model "
        "that is not on disk fails at once with `brushedit doctor`'s fix.",
    )
    device: DeviceName = "auto"
    dtype: DTypeName = "auto"
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(
        default=None, description="postgres://... for PostgresSaver; SQLite in data_dir otherwise."
    )
    max_image_side: int = Field(default=1024, ge=64, le=4096)
    max_attempts: int = Field(default=3, ge=1, le=10, description="Verifier attempts per edit.")
    api_token: str | None = Field(default=None, description="Bearer token for `brushedit serve`.")
    mcp_roots: str | None = Field(
        default=None,
        description="Folders (separated by the OS path separator) whose files the MCP tools may "
        "read as `image_path`/`mask_path`, besides the MCP roots the client shares.",
    )

    # -- who may reach what (issue 24) --------------------------------------------------------
    input_roots: str | None = Field(
        default=None,
        description="Folders (separated by the OS path separator) whose files the LangGraph "
        "server reads as image or mask paths; none by default, so its clients send data: "
        "URIs, public URLs or hashes. The command line and Python callers read any path.",
    )
    allow_private_urls: bool = Field(
        default=False,
        description="Also fetch image URLs of loopback, link-local and private addresses "
        "(off: a client cannot make the server reach this machine or its network).",
    )
    allowed_hosts: str | None = Field(
        default=None,
        description="Host names (comma-separated) the HTTP API, the web editor and the "
        "LangGraph server answer to besides loopback's (localhost, 127.0.0.1, ::1): a "
        "request naming any other `Host` is refused, so DNS rebinding reaches nothing.",
    )
    cors_origins: str | None = Field(
        default=None,
        description="Web origins (comma-separated, e.g. https://smith.langchain.com) whose "
        "pages may call the LangGraph server from a browser; none by default.",
    )
    max_concurrent_edits: int | None = Field(
        default=None, ge=1, le=1024,
        description="Edits running at once in one process (HTTP API, MCP, web editor, "
        "LangGraph server); more are refused as busy (HTTP 503 with Retry-After). Default: "
        "the number of CPU cores (`serve --ray`'s API replica: enough to keep the model "
        "deployments busy, `graphs.serving.served_edit_slots`).",
    )

    def edit_slots(self) -> int:
        """`max_concurrent_edits`, or the number of CPU cores when unset."""
        return self.max_concurrent_edits or os.cpu_count() or 1

    # `brushedit serve --ray`: the model deployments on Ray Serve (graphs.serving)
    serve_replicas: int = Field(
        default=1, ge=1, le=1024,
        description="Replicas of each model deployment (inpainter, segmenter); the initial "
        "count when serve_max_replicas sets autoscaling.",
    )
    serve_min_replicas: int = Field(
        default=1, ge=0, le=1024, description="Autoscaling's lower bound (0: scale to zero)."
    )
    serve_max_replicas: int | None = Field(
        default=None, ge=1, le=1024,
        description="Autoscaling's upper bound; unset, the deployments keep serve_replicas.",
    )
    serve_gpus_per_replica: float = Field(
        default=0.0, ge=0, le=64, allow_inf_nan=False, description="GPUs each replica holds."
    )
    serve_cpus_per_replica: float = Field(
        default=1.0, ge=0, le=1024, allow_inf_nan=False, description="CPUs each replica holds."
    )
    serve_max_ongoing_requests: int = Field(
        default=1, ge=1, le=1000,
        description="Calls a replica runs at once (1: a pipeline is not run twice at once on "
        "one GPU); more wait in Ray Serve's queue for a free replica.",
    )

    @field_validator("brushnet_subfolder")
    @classmethod
    def _empty_subfolder_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("ollama_host")
    @classmethod
    def _host_with_scheme(cls, value: str) -> str:
        from urllib.parse import urlsplit

        value = value.strip().rstrip("/")
        if "://" in value and not value.startswith(("http://", "https://")):
            raise ValueError(f"the Ollama address must be http:// or https://, got {value!r}")
        if not value.startswith(("http://", "https://")):
            value = "http://" + value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port that is not 0..65535
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a valid server address ({exc})") from None
        if not parts.hostname or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} is not a valid server address (no host name)")
        return value

    @field_validator("vlm_url", "vlm_model", "vlm_family", "vlm_api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("vlm_url")
    @classmethod
    def _openai_api_root(cls, value: str | None) -> str | None:
        """The API root the address means (`/v1` added when it has no path)."""
        if value is None:
            return None
        from agents.openai_vlm import openai_base_url

        try:
            return openai_base_url(value)
        except ValueError as exc:
            raise ValueError(f"{value.strip()[:80]!r} is not a server address ({exc})") from None

    @field_validator("vlm_family")
    @classmethod
    def _known_family(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from agents.families import family_named

        return family_named(value).name

    @property
    def vlm_server(self) -> str:
        """`openai` when `vlm_url` is set, else `ollama`: the kind of server the VLM is on."""
        return "openai" if self.vlm_url else "ollama"

    @property
    def planner_model(self) -> str:
        """The VLM's name on its server: `vlm_model`, else `ollama_model`."""
        return (self.vlm_model or self.ollama_model).strip()

    def resolved_device(self) -> str:
        """cuda > mps > cpu when `device` is auto (imports torch: call only when loading models)."""
        if self.device != "auto":
            return self.device
        import torch

        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"

    def resolved_dtype(self, device: str | None = None) -> str:
        """fp16 on cuda, fp32 elsewhere when `dtype` is auto."""
        if self.dtype != "auto":
            return self.dtype
        return "float16" if (device or self.resolved_device()) == "cuda" else "float32"

    def conductor_dtype(self, device: str) -> str:
        """The conductors' dtype: `dtype`, or when auto bfloat16 on a GPU (FLUX and Qwen-Image
        are trained in it; float16 overflows them) and float32 on the CPU."""
        if self.dtype != "auto":
            return self.dtype
        return "float32" if device.split(":")[0] == "cpu" else "bfloat16"

    def conductor_model(self, name: str) -> str:
        """Where conductor `name`'s weights are (`BRUSHEDIT_<NAME>_MODEL`)."""
        from tools.registry import model_setting

        setting = model_setting(name)
        if setting is None or setting not in type(self).model_fields:
            raise KeyError(f"{name!r} is not a conductor")
        return str(getattr(self, setting))

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "sessions.sqlite"


def load_settings(**overrides: object) -> Settings:
    """`Settings()`, with a bad `BRUSHEDIT_` variable reported as one `ConfigError` sentence."""
    from pydantic import ValidationError

    from tools.errors import ConfigError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{_env_name(e['loc'])}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid settings ({problems})") from None


def _env_name(loc: tuple) -> str:
    name = "_".join(map(str, loc)).upper()
    return name if name.startswith("BRUSHEDIT_") else f"BRUSHEDIT_{name}"
