"""The agents' failures, each worded so the person at the keyboard knows what to do next."""

from __future__ import annotations

from typing import ClassVar

from tools.errors import BrushEditError, InvalidRequestError


class AgentError(BrushEditError):
    """Base class of every expected failure raised by `agents`."""


class VLMUnavailableError(AgentError):
    """The vision-language model server cannot be reached."""

    def __init__(self, host: str, detail: str = "") -> None:
        self.host = host
        reason = f" ({detail})" if detail else ""
        super().__init__(
            f"cannot reach the Ollama server at {host}{reason}; start it with `ollama serve` "
            "(or point OLLAMA_HOST at a running server)"
        )


class VLMModelNotFoundError(AgentError):
    """The requested model is not available on the server."""

    def __init__(self, model: str, host: str = "", detail: str = "") -> None:
        self.model = model
        where = f" at {host}" if host else ""
        reason = f" ({detail})" if detail else ""
        super().__init__(
            f"the Ollama server{where} has no model {model!r}{reason}; "
            f"download it with `ollama pull {model}`"
        )


class VLMTimeoutError(AgentError):
    """The model did not answer within the configured time."""

    def __init__(self, model: str, timeout: float | None) -> None:
        self.model = model
        self.timeout = timeout
        limit = f"{timeout:g} s" if timeout is not None else "the time limit"
        super().__init__(
            f"{model} did not answer within {limit}; a first call may be loading the model: "
            "retry, raise the timeout, or use a smaller model"
        )


class VLMRequestError(AgentError):
    """The server refused the request for a reason other than a missing model."""


class VLMBadResponseError(VLMRequestError):
    """The server's reply is not Ollama's: not JSON, no `message`, or far too large."""


class VLMNoVisionError(AgentError):
    """The model cannot see images, so it cannot plan or check an edit."""

    SUGGESTED = "qwen2.5vl:7b"

    def __init__(self, model: str, capabilities: list[str] | tuple[str, ...] = ()) -> None:
        self.model = model
        self.capabilities = list(capabilities)
        self.fix = (
            f"ollama pull {self.SUGGESTED}   (then set BRUSHEDIT_OLLAMA_MODEL={self.SUGGESTED}, "
            "or pick another vision model)"
        )
        caps = f" (its capabilities: {', '.join(self.capabilities)})" if self.capabilities else ""
        super().__init__(
            f"{model} has no vision capability{caps}, so it cannot look at the image; use a "
            f"vision model: `ollama pull {self.SUGGESTED}` and choose it as the model"
        )


class VLMInvalidAnswerError(AgentError):
    """The model kept answering something that does not fit the requested schema."""

    def __init__(self, model: str, schema: str, attempts: int, error: str, raw: str) -> None:
        self.model = model
        self.schema = schema
        self.attempts = attempts
        self.error = error
        self.raw = raw
        super().__init__(
            f"{model} gave no valid {schema} answer in {attempts} attempt(s); last problem: "
            f"{_brief(error)}"
        )


class BoxProposalError(AgentError):
    """The model's box for an addition is unusable (empty, or outside the image)."""


class InstructionNotUnderstoodError(InvalidRequestError):
    """The rule planner cannot read the instruction, so it plans nothing rather than guess.

    Deliberately not an `AgentError`: it is a fact about the request (each surface answers it
    as the client's to fix, 422 on HTTP), and a VLM-to-rules fallback must not swallow it.
    `reason` is `empty`, `no_words` (only emoji, digits or punctuation), `script` (`script`
    names it), `language` (`language` names it) or `no_rule` (English, but no edit wording the
    rules know; `language` is set when a foreign word was seen).
    """

    WHY: ClassVar[dict[str, str]] = {
        "empty": "it is empty",
        "no_words": "it has no words, only symbols",
        "no_rule": "no edit wording the rules know matched it",
    }

    def __init__(
        self, instruction: str, reason: str, *, script: str | None = None,
        language: str | None = None,
    ) -> None:
        self.instruction = instruction
        self.reason = reason
        self.script = script
        self.language = language
        if reason == "script":
            why = f"it is written in {script} script, and the rules read English"
        elif reason == "language" or (reason == "no_rule" and language):
            why = f"it reads as {language}, and the rules read English"
        else:
            why = self.WHY.get(reason, reason)
        super().__init__(
            f"the rule planner cannot understand this instruction ({why}); a VLM planner can "
            "read it, or rephrase it in English as an edit such as \"remove the cat\""
        )


def _brief(text: str, limit: int = 200) -> str:
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
