"""The vision-language model contract and its implementations, in one import path, and the one
constructor configuration code calls (`make_vlm`)."""

from __future__ import annotations

from typing import Any

from agents.base import VisionLanguageModel, VLMAnswer
from agents.families import FamilyMatch, family_of
from agents.langchain_vlm import LangChainVLM
from agents.ollama_vlm import DEFAULT_HOST, DEFAULT_MODEL, OllamaStatus, OllamaVLM
from agents.openai_vlm import OpenAIVLM
from agents.recording import RecordingVLM, VLMCall
from agents.status import VLMStatus

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MODEL",
    "FamilyMatch",
    "LangChainVLM",
    "OllamaStatus",
    "OllamaVLM",
    "OpenAIVLM",
    "RecordingVLM",
    "VLMAnswer",
    "VLMCall",
    "VLMStatus",
    "VisionLanguageModel",
    "family_of",
    "make_vlm",
]


def make_vlm(
    model: str | None = None,
    *,
    url: str | None = None,
    host: str | None = None,
    timeout: float = 120.0,
    api_key: str | None = None,
    family: str | None = None,
    **options: Any,
) -> OllamaVLM | OpenAIVLM:
    """The model a configuration names: an OpenAI-compatible server when `url` is given
    (vLLM, llama.cpp's server, LM Studio), else Ollama at `host` (None: `OLLAMA_HOST`, else
    the local default).

    Args:
        model: the model's name on that server; Ollama defaults to `DEFAULT_MODEL`, an
            OpenAI-compatible server needs it (its served name).
        url: the OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1.
        host: the Ollama server (ignored when `url` is given).
        timeout: total seconds for each HTTP request.
        api_key: the OpenAI-compatible server's key (None: `OPENAI_API_KEY`, else none).
        family: a family name (`agents.families`) to use instead of finding it.
        options: passed on to `OllamaVLM` or `OpenAIVLM` (retries, image size, sampling...).
    """
    if url:
        if not model:
            raise ValueError("`model` must name the model the OpenAI-compatible server serves")
        return OpenAIVLM(model, url, api_key=api_key, timeout=timeout, family=family, **options)
    if api_key is not None:
        raise ValueError("`api_key` is for an OpenAI-compatible `url`; Ollama reads "
                         "OLLAMA_API_KEY")
    return OllamaVLM(model or DEFAULT_MODEL, host=host, timeout=timeout, family=family, **options)
