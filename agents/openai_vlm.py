"""`VisionLanguageModel` over any OpenAI-compatible chat server: vLLM, llama.cpp's server, LM Studio.

Through the maintained `openai` client, customised only through its public `http_client=` (a
bounded httpx client: one deadline per call and a size cap, `agents.http`) and read through
`with_raw_response`, so a body that is not the API's is described, not mistaken. Images go as
`image_url` data-URI content parts; the schema as `response_format={"type": "json_schema"}`,
falling back to `json_object` and then to the schema in the prompt when a server refuses it
(remembered for later calls). Faults map to the same `AgentError` classes as Ollama's, with
`server="openai"` and the URL as fields. Thinking models' reasoning arrives as
`reasoning_content` (or `reasoning`); the JSON is read from it when the answer is empty. A model
that thinks is asked with `chat_template_kwargs={"enable_thinking": true}` (vLLM's and llama.cpp's
switch), so that a server started with thinking off cannot make it drop the answer format; a
server that refuses the field is asked without it from then on.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from agents import errors
from agents.asking import ReAskingVLM, Said, check_options, parse_keeping_raw, with_schema_hint
from agents.errors import AgentError, VLMRequestError
from agents.families import FamilyMatch, ModelCard, resolve_family
from agents.http import (
    AnswerTooLarge,
    DeadlineExceeded,
    bounded_client,
    cut_mid_body,
    describe,
    error_text,
    parse_body,
)
from agents.imaging import data_url
from agents.ollama_vlm import DEFAULT_MAX_ANSWER_BYTES
from agents.parsing import answer_text, schema_name
from agents.status import VLMStatus

if TYPE_CHECKING:
    import httpx
    import openai
    from PIL import Image

    from agents.base import T

logger = logging.getLogger(__name__)

FormatMode = Literal["json_schema", "json_object", "prompt"]
FORMAT_MODES: tuple[FormatMode, ...] = ("json_schema", "json_object", "prompt")
_FORMAT_WORDS = re.compile(r"response_format|json_schema|json_object|grammar|schema", re.I)
_NO_IMAGES = re.compile(
    r"(image|vision|multimodal|mmproj).*(not (be )?support|unsupported|not a multimodal|mmproj)"
    r"|not a multimodal", re.I | re.S)
_MISSING = re.compile(r"not found|does not exist|unknown model|no such model|not loaded", re.I)
NO_KEY = "no-key"
"""Sent as the API key when none is set: local servers accept any, and the client needs one."""


def openai_base_url(url: str) -> str:
    """The API root an address means: `/v1` added when it has no path, a pasted
    `/chat/completions` taken off, no trailing slash. `ValueError` when it cannot be a URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("give an http:// or https:// address with a host name")
    _ = parts.port  # ValueError for a port out of range or not a number
    path = parts.path.rstrip("/").removesuffix("/chat/completions")
    return urlunsplit((parts.scheme, parts.netloc, path or "/v1", "", ""))


class _Retry(Exception):
    """A fault worth another try (connection refused, HTTP 5xx); `error` if none is left."""

    def __init__(self, error: AgentError, reason: str) -> None:
        self.error = error
        self.reason = reason


class _FormatRefused(Exception):
    """The server refused the answer format; the next mode is tried."""


class _SwitchRefused(Exception):
    """The server refused `chat_template_kwargs`; the thinking switch is no longer sent."""


_SWITCH_WORDS = re.compile(r"chat_template_kwargs|enable_thinking", re.I)


class OpenAIVLM(ReAskingVLM):
    """Ask a vision model behind an OpenAI-compatible server for schema-checked JSON.

    Args:
        model: the name the server serves the model under (vLLM: its `--served-model-name` or
            Hub id; LM Studio: the model key; llama.cpp's server takes any).
        base_url: the API root, e.g. http://127.0.0.1:8000/v1 (an address without a path gets
            `/v1`).
        api_key: sent as the bearer token; None uses `OPENAI_API_KEY`, else a placeholder.
        timeout: total seconds for each HTTP request, from connecting to the last byte.
        temperature, seed: sampling; the defaults make answers repeatable where servers can.
        max_tokens: a bound on the answer's length, when set (thinking models need room).
        max_image_side: images are downscaled so their longest side is at most this.
        transport_retries: extra tries after a connection failure or HTTP 5xx.
        invalid_answer_retries: re-asks after an answer that does not parse or validate.
        retry_base_delay: first back-off delay in seconds, doubled on each transport retry.
        max_answer_bytes: a reply body larger than this is refused (`errors.VLMBadResponseError`).
        check_vision: refuse a model the server lists as unable to see (`errors.VLMNoVisionError`).
        family: a family name from `agents.families` to use instead of finding it by name.
        http_client: an `httpx.Client` to use instead of the bounded one built here.
    """

    supports_images = True
    supports_schema = True
    server = "openai"

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        temperature: float = 0.0,
        seed: int | None = 42,
        max_tokens: int | None = None,
        max_image_side: int = 1024,
        transport_retries: int = 2,
        invalid_answer_retries: int = 2,
        retry_base_delay: float = 0.5,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        check_vision: bool = True,
        family: str | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        if not model:
            raise ValueError("`model` must name the model the server serves")
        check_options(timeout=timeout, transport_retries=transport_retries,
                      invalid_answer_retries=invalid_answer_retries,
                      max_answer_bytes=max_answer_bytes, max_image_side=max_image_side,
                      family=family)
        self.model = model
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout
        self.temperature = temperature
        self.seed = seed
        self.max_tokens = max_tokens
        self.max_image_side = max_image_side
        self.transport_retries = transport_retries
        self.invalid_answer_retries = invalid_answer_retries
        self.retry_base_delay = retry_base_delay
        self.max_answer_bytes = max_answer_bytes
        self.check_vision = check_vision
        self.family_override = family
        self.format_mode: FormatMode = "json_schema"
        self.thinking_switch = True
        """False once the server refused `chat_template_kwargs` (it is not sent again)."""
        self._http = http_client
        self._client: openai.OpenAI | None = None
        self._listing: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return f"openai:{self.model}"

    @property
    def _log_name(self) -> str:
        return self.model

    @property
    def url(self) -> str:
        """The API root requests go to (`base_url` normalised), or `base_url` if it cannot be."""
        try:
            return openai_base_url(self.base_url)
        except ValueError:
            return self.base_url

    def __repr__(self) -> str:
        return f"OpenAIVLM(model={self.model!r}, base_url={self.url!r})"

    def client(self) -> openai.OpenAI:
        """The `openai.OpenAI` client (retries off: they are counted here), built on first use."""
        if self._client is None:
            import openai

            try:
                url = openai_base_url(self.base_url)
            except ValueError as exc:
                raise VLMRequestError(
                    f"the OpenAI-compatible server address {self.base_url!r} is not a valid "
                    f"URL ({exc})", server="openai", url=self.base_url,
                ) from None
            http = self._http or bounded_client(url, self.timeout, self.max_answer_bytes)
            key = self.api_key or os.environ.get("OPENAI_API_KEY") or NO_KEY
            self._client = openai.OpenAI(base_url=url, api_key=key, timeout=self.timeout,
                                         max_retries=0, http_client=http)
        return self._client

    # --- what the server says about the model -------------------------------------------------

    def listing(self) -> dict[str, Any] | None:
        """The server's `/models` entry for this model (asked once), or None when it has none."""
        if self._listing is None:
            with self._lock:
                if self._listing is None:
                    try:
                        models = self._models()
                    except AgentError:
                        return None
                    self._listing = next((m for m in models if m.get("id") == self.model), {})
        return self._listing or None

    def card(self) -> ModelCard | None:
        """The model's capabilities, where the server lists them (`capabilities`, LM Studio's
        `type`); None when it does not say."""
        entry = self.listing() or {}
        capabilities = entry.get("capabilities")
        if isinstance(capabilities, list) and capabilities:
            caps = tuple(str(c) for c in capabilities)
            return ModelCard(capabilities=(*caps, "vision") if "multimodal" in caps else caps)
        if entry.get("type") in ("vlm", "llm"):
            return ModelCard(capabilities=("vision",) if entry["type"] == "vlm" else ("completion",))
        return None

    @property
    def family(self) -> FamilyMatch:  # type: ignore[override]
        """The model's family, by its name (or `family=`), with the capabilities listed; a
        served name that says nothing (`vllm serve ... --served-model-name vlm`) goes by the
        checkpoint the server says it serves (`root` in vLLM's `/models`)."""
        card = self.card()
        match = resolve_family(self.model, card, self.family_override)
        root = (self.listing() or {}).get("root") if match.source == "fallback" else None
        if isinstance(root, str) and root.strip() and root != self.model:
            served = resolve_family(root, card)
            if served.source == "name":
                return served.model_copy(update={
                    "model": self.model, "evidence": f"served from {root!r}"})
        return match

    def _think_for(self, match: FamilyMatch) -> bool | None:
        """`enable_thinking=true` for a model that thinks (so the format holds); else not sent."""
        return True if match.thinks and self.thinking_switch else None

    # --- asking ---------------------------------------------------------------------------------

    def _start(
        self, system: str, user: str, images: list[Image.Image], schema: type[T],
        match: FamilyMatch,
    ) -> tuple[list[Any], Callable[[list[Any]], Said[T]]]:
        if self.check_vision and match.capabilities and "vision" not in match.capabilities:
            raise errors.VLMNoVisionError(self.model, list(match.capabilities), server="openai",
                                   url=self.url)
        content: list[dict[str, Any]] = [{"type": "text", "text": user}]
        content += [{"type": "image_url", "image_url": {"url": data_url(i)}} for i in images]

        def reply(history: list[dict[str, Any]]) -> Said[T]:
            raw, from_thinking = self._chat(history, schema, match)
            return Said(parse_keeping_raw(raw, schema), raw, from_thinking)

        return [{"role": "system", "content": system}, {"role": "user", "content": content}], reply

    def _follow_up(self, raw: str, reask: str) -> list[dict[str, Any]]:
        return [{"role": "assistant", "content": raw}, {"role": "user", "content": reask}]

    def _chat(self, history: list[dict[str, Any]], schema: type[Any], match: FamilyMatch
              ) -> tuple[str, bool]:
        """One answer's text: retried after transport faults, the format stepped down when
        the server refuses it, the thinking switch dropped when it refuses that."""
        attempt = 0
        while True:
            mode = self.format_mode
            try:
                return self._complete(history, schema, mode, self._think_for(match))
            except _SwitchRefused:
                self.thinking_switch = False
                logger.info("%s refuses chat_template_kwargs; the thinking switch is left to "
                            "the server", self.url)
            except _FormatRefused:
                self.format_mode = FORMAT_MODES[FORMAT_MODES.index(mode) + 1]
                logger.info("%s refuses response_format %s; using %s", self.url, mode,
                            self.format_mode)
            except _Retry as retry:
                if attempt >= self.transport_retries:
                    raise retry.error from None
                delay = self.retry_base_delay * (2**attempt)
                logger.warning("OpenAI-compatible call failed (%s); retrying in %.2f s",
                               retry.reason, delay)
                time.sleep(delay)
                attempt += 1

    def _request(self, history: list[dict[str, Any]], schema: type[Any], mode: FormatMode,
                 think: bool | None = None) -> dict[str, Any]:
        """The chat-completions parameters for `mode` (and the thinking switch, unless None)."""
        messages = [dict(m) for m in history]
        if mode != "json_schema":
            messages[0]["content"] = with_schema_hint(messages[0]["content"], schema)
        params: dict[str, Any] = {"model": self.model, "messages": messages,
                                  "temperature": self.temperature}
        if self.seed is not None:
            params["seed"] = self.seed
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        if mode == "json_schema":
            params["response_format"] = {"type": "json_schema", "json_schema": {
                "name": schema_name(schema), "schema": schema.model_json_schema()}}
        elif mode == "json_object":
            params["response_format"] = {"type": "json_object"}
        if think is not None:
            params["extra_body"] = {"chat_template_kwargs": {"enable_thinking": think}}
        return params

    def _complete(self, history: list[dict[str, Any]], schema: type[Any], mode: FormatMode,
                  think: bool | None = None) -> tuple[str, bool]:
        import openai

        params = self._request(history, schema, mode, think)
        try:
            reply = self._call(lambda c: c.chat.completions.with_raw_response.create(**params))
        except openai.APIStatusError as exc:
            if think is not None and exc.status_code in (400, 422) and _SWITCH_WORDS.search(
                    exc.response.text):
                raise _SwitchRefused() from None
            raise self._status_error(exc, mode) from None
        return self._content(parse_body(reply.text))

    def _call(self, send: Callable[[openai.OpenAI], Any]) -> Any:
        """One request through the client, its transport faults as `AgentError`s (or `_Retry`)."""
        import openai

        client = self.client()
        try:
            return send(client)
        except (DeadlineExceeded, openai.APITimeoutError):
            raise errors.VLMTimeoutError(self.model, self.timeout, server="openai", url=self.url
                                  ) from None
        except AnswerTooLarge as exc:
            raise self._bad_body(f"the server at {self.url} sent {exc}; an answer is a small "
                                 "JSON object, so the call was cut off", f"over {exc.limit:,} "
                                 "bytes") from None
        except openai.APIConnectionError as exc:
            cause = type(exc.__cause__ or exc).__name__
            if cut_mid_body(exc):
                raise self._bad_body(
                    f"the OpenAI-compatible server at {self.url} cut its answer off mid-way "
                    f"({cause}); a server that crashes or restarts while answering does this",
                    "a body cut mid-way") from None
            raise _Retry(errors.VLMUnavailableError(self.url, cause, server="openai"), cause) from None

    def _status_error(self, exc: openai.APIStatusError, mode: FormatMode) -> Exception:
        """An HTTP error reply as the error it means (or `_FormatRefused`, `_Retry`)."""
        status = exc.status_code
        message = error_text(parse_body(exc.response.text))
        if mode != "prompt" and status in (400, 422, 500, 501) and _FORMAT_WORDS.search(message):
            return _FormatRefused()
        if _NO_IMAGES.search(message):
            return errors.VLMNoVisionError(self.model, server="openai", url=self.url, detail=message)
        if status in (400, 404) and (self.model.lower() in message.lower()
                                     or ("model" in message.lower() and _MISSING.search(message))):
            return errors.VLMModelNotFoundError(self.model, self.url, message, server="openai",
                                         available=self._available())
        refused = f"the OpenAI-compatible server at {self.url} refused the request (HTTP {status})"
        error = VLMRequestError(f"{refused}: {message}", server="openai", url=self.url,
                                status=status)
        if status == 404:
            error = VLMRequestError(
                f"{refused}: {message}; no chat API at {self.url}/chat/completions, and the "
                "address usually ends in /v1", server="openai", url=self.url, status=status)
        elif status in (401, 403):
            error = VLMRequestError(f"{refused}: {message}; the server wants an API key",
                                    server="openai", url=self.url, status=status)
        return _Retry(error, f"HTTP {status}: {message}") if status >= 500 else error

    def _content(self, data: Any) -> tuple[str, bool]:
        """The answer's text from a chat-completions body (the reasoning when the answer is
        empty), and whether it was the reasoning; or `errors.VLMBadResponseError`."""
        if not isinstance(data, dict):
            raise self._bad_body(
                f"the server at {self.url} answered /chat/completions with {describe(data)}, "
                "not the OpenAI chat API's JSON; check that the address points at an "
                "OpenAI-compatible server (it usually ends in /v1)", describe(data))
        if data.get("error"):
            raise VLMRequestError(f"the OpenAI-compatible server at {self.url} reported an "
                                  f"error: {error_text(data)}", server="openai", url=self.url)
        choices = data.get("choices")
        message = choices[0].get("message") if isinstance(choices, list) and choices and (
            isinstance(choices[0], dict)) else None
        message = message if isinstance(message, dict) else {}
        content = _text(message.get("content"))
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        reasoning = reasoning if isinstance(reasoning, str) else None
        if content is None and reasoning is None:
            raise self._bad_body(
                f"the server at {self.url} answered /chat/completions without a message "
                "holding text; check that the address points at an OpenAI-compatible server",
                "no message text")
        return answer_text(content, reasoning)

    def _bad_body(self, text: str, body: str) -> errors.VLMBadResponseError:
        return errors.VLMBadResponseError(text, server="openai", url=self.url, body=body)

    # --- the doctor's probe ---------------------------------------------------------------------

    def _models(self) -> list[dict[str, Any]]:
        """The server's `/models` entries, or an `AgentError` saying why there are none."""
        import openai

        try:
            reply = self._call(lambda c: c.models.with_raw_response.list())
        except _Retry as retry:
            raise retry.error from None
        except openai.APIStatusError as exc:
            message = error_text(parse_body(exc.response.text))
            raise VLMRequestError(
                f"the server at {self.url} answered /models with HTTP {exc.status_code} "
                f"({message}); an OpenAI-compatible address usually ends in /v1",
                server="openai", url=self.url, status=exc.status_code) from None
        data = parse_body(reply.text)
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise self._bad_body(f"the server at {self.url} answered /models with "
                                 f"{describe(data)}, not an OpenAI model list", describe(data))
        return [e for e in entries if isinstance(e, dict) and e.get("id")]

    def _available(self) -> list[str]:
        try:
            return [str(m["id"]) for m in self._models()]
        except AgentError:
            return []

    def check(self) -> VLMStatus:
        """Ask the server whether it answers, serves the model, and whether the model can see
        images: as its `/models` lists it, else by showing it a tiny picture."""
        status = VLMStatus(server="openai", host=self.url, model=self.model)
        try:
            models = self._models()
        except errors.VLMUnavailableError as exc:
            status.error = f"no answer at {self.url} ({exc.detail})"
            status.fix = "start the server, or correct its address (it usually ends in /v1)"
            return status
        except AgentError as exc:
            status.error = str(exc)
            status.fix = "check that the address points at an OpenAI-compatible server"
            return status
        status.reachable = True
        status.available_models = [str(m["id"]) for m in models]
        status.model_present = self.model in status.available_models
        if not status.model_present:
            status.error = f"the server does not serve {self.model!r}"
            status.fix = f"use one of: {', '.join(status.available_models) or '(none listed)'}"
            return status
        self._listing = next(m for m in models if m["id"] == self.model)
        card = self.card()
        status.capabilities = list(card.capabilities) if card else []
        status.vision = ("vision" in card.capabilities) if card else None
        if status.vision is None:  # vLLM and llama.cpp do not list it: show it a picture
            status.vision = self._sees_a_picture()
            status.vision_probed = status.vision is not None
        status.family = self.family
        if status.vision is False:
            refusal = errors.VLMNoVisionError(self.model, status.capabilities, server="openai",
                                       url=self.url)
            status.error = str(refusal).split(";")[0]
            status.fix = refusal.fix
        return status


    def _sees_a_picture(self) -> bool | None:
        """Whether the server takes a picture for the model: True when a one-token answer to a
        32-px picture comes back, False when the server refuses images (a text-only model,
        llama.cpp without its projector), None when the probe itself fails."""
        import openai
        from PIL import Image

        picture = data_url(Image.new("RGB", (32, 32), (255, 0, 0)))
        params = {"model": self.model, "max_tokens": 1, "temperature": 0.0, "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Answer with one word: which colour is this?"},
                {"type": "image_url", "image_url": {"url": picture}}]}]}
        try:
            self._call(lambda c: c.chat.completions.with_raw_response.create(**params))
        except openai.APIStatusError as exc:
            message = error_text(parse_body(exc.response.text))
            return False if _NO_IMAGES.search(message) else None
        except (AgentError, _Retry):
            return None
        return True


def _text(content: Any) -> str | None:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return None
