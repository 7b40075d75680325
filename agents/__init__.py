"""Vision-language agents that plan an edit and judge its result.

Names are imported on first use (PEP 562), so `import agents` stays cheap: no ollama client,
no langchain-core, no model until one is asked for.
"""

from __future__ import annotations

from tools.lazy import lazy_exports

_EXPORTS = {
    "VisionLanguageModel": "agents.base",
    "VLMAnswer": "agents.base",
    "OllamaVLM": "agents.ollama_vlm",
    "OllamaStatus": "agents.ollama_vlm",
    "OpenAIVLM": "agents.openai_vlm",
    "VLMStatus": "agents.status",
    "make_vlm": "agents.vlm",
    "FamilyMatch": "agents.families",
    "ModelFamily": "agents.families",
    "BoxConvention": "agents.families",
    "family_of": "agents.families",
    "resolve_family": "agents.families",
    "Anchor": "agents.anchors",
    "find_anchor": "agents.anchors",
    "place_by_anchor": "agents.anchors",
    "BoxPlacement": "agents.box",
    "locate_box": "agents.box",
    "LangChainVLM": "agents.langchain_vlm",
    "RecordingVLM": "agents.recording",
    "VLMCall": "agents.recording",
    "Classification": "agents.classify",
    "classify_edit": "agents.classify",
    "IdentifiedObject": "agents.identify",
    "identify_object": "agents.identify",
    "TargetCaption": "agents.caption",
    "caption_target": "agents.caption",
    "EditInstruction": "agents.caption",
    "instruction_for_plan": "agents.rules",
    "BoxProposal": "agents.box",
    "propose_box": "agents.box",
    "to_pixel_box": "agents.box",
    "Verdict": "agents.verify",
    "verify_edit": "agents.verify",
    "parse_instruction": "agents.rules",
    "caption_for_plan": "agents.rules",
    "negative_for_plan": "agents.rules",
    "RemovalPrompt": "agents.caption",
    "describe_removal": "agents.caption",
    "AgentError": "agents.errors",
    "BoxProposalError": "agents.errors",
    "InstructionNotUnderstoodError": "agents.errors",
    "NoGroundingError": "agents.errors",
    "VLMFormatIgnoredError": "agents.errors",
    "VLMBadResponseError": "agents.errors",
    "VLMInvalidAnswerError": "agents.errors",
    "VLMNoVisionError": "agents.errors",
    "VLMModelNotFoundError": "agents.errors",
    "VLMRequestError": "agents.errors",
    "VLMTimeoutError": "agents.errors",
    "VLMUnavailableError": "agents.errors",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
