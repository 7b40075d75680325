"""The vision-language model contract and its implementations, in one import path."""

from agents.base import VisionLanguageModel, VLMAnswer
from agents.langchain_vlm import LangChainVLM
from agents.ollama_vlm import DEFAULT_HOST, DEFAULT_MODEL, OllamaStatus, OllamaVLM
from agents.recording import RecordingVLM, VLMCall

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MODEL",
    "LangChainVLM",
    "OllamaStatus",
    "OllamaVLM",
    "RecordingVLM",
    "VLMAnswer",
    "VLMCall",
    "VisionLanguageModel",
]
