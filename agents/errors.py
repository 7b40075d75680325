"""The agents' failures: typed, carrying their facts as fields, worded for the person at the keyboard.

Each error names the server it met (`server`: "ollama" or "openai", the OpenAI chat API that
vLLM, llama.cpp's server and LM Studio speak) and its address (`url`), so a surface can word its
own hint from the fields. The sentences here stay neutral: no command-line flags.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from agents.families import DEFAULT_OLLAMA_MODEL
from tools.errors import BrushEditError, InvalidRequestError

ServerKind = Literal["ollama", "openai"]
SERVER_NAMES: dict[str, str] = {"ollama": "Ollama server", "openai": "OpenAI-compatible server"}


def server_name(server: str | None) -> str:
    """"Ollama server", "OpenAI-compatible server", or "model server" when unknown."""
    return SERVER_NAMES.get(server or "", "model server")


class AgentError(BrushEditError):
    """Base class of every expected failure raised by `agents`."""


class VLMUnavailableError(AgentError):
    """The vision-language model server cannot be reached.

    Fields: `server` (kind), `url` (also `host`, its older name), `detail` (what failed).
    """

    def __init__(self, host: str, detail: str = "", *, server: ServerKind = "ollama") -> None:
        self.host = self.url = host
        self.server = server
        self.detail = detail
        reason = f" ({detail})" if detail else ""
        if server == "ollama":
            text = (f"cannot reach the Ollama server at {host}{reason}; start it with "
                    "`ollama serve` (or point OLLAMA_HOST at a running server)")
        else:
            text = (f"cannot reach the {server_name(server)} at {host}{reason}; start it (vLLM, "
                    "llama.cpp's llama-server and LM Studio serve this API) or correct its "
                    "address, which usually ends in /v1")
        super().__init__(text)


class VLMModelNotFoundError(AgentError):
    """The requested model is not available on the server.

    Fields: `model`, `server`, `url` (also `host`), `detail`, `available` (the models the server
    listed, when it did).
    """

    def __init__(self, model: str, host: str = "", detail: str = "", *,
                 server: ServerKind = "ollama", available: list[str] | tuple[str, ...] = ()
                 ) -> None:
        self.model = model
        self.host = self.url = host
        self.server = server
        self.detail = detail
        self.available = list(available)
        where = f" at {host}" if host else ""
        reason = f" ({detail})" if detail else ""
        if server == "ollama":
            pulled = (f" (pulled there: {', '.join(self.available[:8])})"
                      if self.available else "")
            text = (f"the Ollama server{where} has no model {model!r}{reason}; "
                    f"download it with `ollama pull {model}`{pulled}")
        else:
            served = (f"it serves {', '.join(repr(m) for m in self.available[:8])}"
                      if self.available else "use a model name the server lists under /models")
            text = f"the {server_name(server)}{where} has no model {model!r}{reason}; {served}"
        super().__init__(text)


class VLMTimeoutError(AgentError):
    """The model did not answer within the configured time. Fields: `model`, `timeout`,
    `server`, `url`."""

    def __init__(self, model: str, timeout: float | None, *, server: ServerKind | None = None,
                 url: str | None = None) -> None:
        self.model = model
        self.timeout = timeout
        self.server = server
        self.url = url
        limit = f"{timeout:g} s" if timeout is not None else "the time limit"
        super().__init__(
            f"{model} did not answer within {limit}; a first call may be loading the model: "
            "retry, raise the timeout, or use a smaller model"
        )


class VLMRequestError(AgentError):
    """The server refused the request for a reason other than a missing model.

    Fields: `server`, `url`, `status` (the HTTP status, when there was one).
    """

    def __init__(self, message: str, *, server: ServerKind | None = None, url: str | None = None,
                 status: int | None = None) -> None:
        self.server = server
        self.url = url
        self.status = status
        super().__init__(message)


class VLMBadResponseError(VLMRequestError):
    """The server's reply is not the API's: not JSON, the wrong shape, cut off, or far too large.

    Fields as `VLMRequestError`, plus `body`: a few words on what came instead.
    """

    def __init__(self, message: str, *, server: ServerKind | None = None, url: str | None = None,
                 status: int | None = None, body: str | None = None) -> None:
        self.body = body
        super().__init__(message, server=server, url=url, status=status)


class VLMNoVisionError(AgentError):
    """The model cannot see images, so it cannot plan or check an edit.

    Fields: `model`, `capabilities` (as the server listed them), `server`, `url`, `fix`.
    """

    SUGGESTED = DEFAULT_OLLAMA_MODEL

    def __init__(self, model: str, capabilities: list[str] | tuple[str, ...] = (), *,
                 server: ServerKind = "ollama", url: str | None = None, detail: str = "") -> None:
        self.model = model
        self.capabilities = list(capabilities)
        self.server = server
        self.url = url
        caps = f" (its capabilities: {', '.join(self.capabilities)})" if self.capabilities else ""
        if server == "ollama":
            self.fix = (
                f"ollama pull {self.SUGGESTED}   (then set BRUSHEDIT_OLLAMA_MODEL="
                f"{self.SUGGESTED}, or pick another vision model)"
            )
            text = (f"{model} has no vision capability{caps}, so it cannot look at the image; "
                    f"use a vision model: `ollama pull {self.SUGGESTED}` and choose it as the model")
        else:
            self.fix = "serve a vision model (llama.cpp also needs the model's multimodal projector)"
            reason = f" ({detail})" if detail else caps
            where = f" at {url}" if url else ""
            text = (f"{model} on the {server_name(server)}{where} cannot take images{reason}, so "
                    "it cannot look at the image; serve a vision model such as Qwen2.5-VL or "
                    "Qwen3-VL")
        super().__init__(text)


class VLMInvalidAnswerError(AgentError):
    """The model kept answering something that does not fit the requested schema.

    Fields: `model`, `schema`, `attempts`, `error` (the last problem), `raw` (the last answer),
    `family` (the model family's name, when known).
    """

    def __init__(self, model: str, schema: str, attempts: int, error: str, raw: str, *,
                 family: str | None = None) -> None:
        self.model = model
        self.schema = schema
        self.attempts = attempts
        self.error = error
        self.raw = raw
        self.family = family
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        return (f"{self.model} gave no valid {self.schema} answer in {self.attempts} attempt(s); "
                f"last problem: {_brief(self.error)}")


class VLMFormatIgnoredError(VLMInvalidAnswerError):
    """Every answer came without JSON (prose or nothing): the model ignores the answer format.

    Fields as `VLMInvalidAnswerError`, plus `family_label` and `think` (the thinking switch sent:
    True, False, or None when left to the server).
    """

    def __init__(self, model: str, schema: str, attempts: int, error: str, raw: str, *,
                 family: str | None = None, family_label: str | None = None,
                 think: bool | None = None) -> None:
        self.family_label = family_label or family
        self.think = think
        super().__init__(model, schema, attempts, error, raw, family=family)

    def _sentence(self) -> str:
        who = f"{self.model} ({self.family_label} family)" if self.family_label else self.model
        return (f"{who} ignored the requested JSON answer format: {self.attempts} attempt(s) "
                f"came back without JSON ({_brief(self.error, 80)}), so it cannot answer "
                f"{self.schema} questions on this server; use another model or a server "
                "version that honours structured output")


class BoxProposalError(AgentError):
    """The model's box for an addition is unusable (empty, or outside the image).

    Fields: `model` and `family` when known.
    """

    def __init__(self, message: str, *, model: str | None = None,
                 family: str | None = None) -> None:
        self.model = model
        self.family = family
        super().__init__(message)


class NoGroundingError(BoxProposalError):
    """The model's family cannot point at places in a picture, so it is not asked for a box.

    Fields: `model`, `family` (name), `family_label`.
    """

    def __init__(self, model: str, family: str, family_label: str | None = None) -> None:
        self.family_label = family_label or family
        super().__init__(
            f"{model} ({self.family_label} family) cannot point at places in a picture, so it "
            "is not asked where to add an object; an addition needs a mask or a box from the "
            "user marking where the new object goes",
            model=model, family=family,
        )


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
        language: str | None = None, vlm_failure: str | None = None,
    ) -> None:
        self.instruction = instruction
        self.reason = reason
        self.script = script
        self.language = language
        self.vlm_failure = vlm_failure
        if reason == "script":
            why = f"it is written in {script} script, and the rules read English"
        elif reason == "language" or (reason == "no_rule" and language):
            why = f"it reads as {language}, and the rules read English"
        else:
            why = self.WHY.get(reason, reason)
        if vlm_failure:
            fix = (f"the VLM planner, which could, failed ({_brief(vlm_failure, 300)}): retry "
                   "once it works")
        else:
            fix = "a VLM planner can read it"
        super().__init__(
            f"the rule planner cannot understand this instruction ({why}); {fix}, or rephrase "
            "it in English as an edit such as \"remove the cat\""
        )

    def after_vlm_failure(self, failure: str) -> InstructionNotUnderstoodError:
        """The same refusal, for rules that planned because the VLM planner failed (`failure`
        says how): "a VLM planner can read it" would mislead there."""
        return type(self)(self.instruction, self.reason, script=self.script,
                          language=self.language, vlm_failure=failure)


def _brief(text: str, limit: int = 200) -> str:
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
