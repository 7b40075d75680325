"""`VisionLanguageModel` over a local Ollama server, on its REST API through plain httpx.

Structured output uses Ollama's `format=<JSON schema>`; answers are still validated here, because
small models drift from the schema and the server only constrains the grammar, not the meaning.
Every call has one deadline and a size cap (`agents.http.BoundedTransport`); `/api/show` bodies
are read through the `ollama` package's public `ShowResponse` type (`agents.families.ModelCard`),
which gives the model's family and capabilities: `vision` is checked once, and a model that
thinks is asked with `think=true`, so that the answer format is honoured (with `think=false`
some models ignore it, ollama #14645) and the JSON is read from the thinking text when the
answer itself is empty (ollama #12831).
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from agents.asking import ReAskingVLM, Said, check_options, parse_keeping_raw
from agents.errors import (
    VLMBadResponseError,
    VLMModelNotFoundError,
    VLMNoVisionError,
    VLMRequestError,
    VLMTimeoutError,
    VLMUnavailableError,
)
from agents.families import DEFAULT_OLLAMA_MODEL, FamilyMatch, ModelCard, resolve_family
from agents.http import (
    AnswerTooLarge,
    DeadlineExceeded,
    bounded_client,
    cut_mid_body,
    describe,
    parse_body,
)
from agents.http import error_text as _error_text
from agents.imaging import png_bytes
from agents.parsing import answer_text
from agents.status import VLMStatus

if TYPE_CHECKING:
    import httpx
    from PIL import Image

    from agents.base import T

logger = logging.getLogger(__name__)

DEFAULT_MODEL = DEFAULT_OLLAMA_MODEL
DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434
_NO_THINKING = "does not support thinking"
"""Ollama's refusal of `think` for a model whose template has no thinking switch."""
DEFAULT_MAX_ANSWER_BYTES = 1_000_000
"""1 MB: a structured answer here is a few hundred bytes; more is a runaway model or a wrong
server, and would only bloat the trace."""

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_ANSWER_BYTES",
    "DEFAULT_MODEL",
    "OllamaStatus",
    "OllamaVLM",
    "ReAskingVLM",
    "ollama_base_url",
    "parse_keeping_raw",
]


class OllamaStatus(VLMStatus):
    """What `OllamaVLM.check` found: enough for a doctor command to print a fix."""

    server: str = "ollama"  # type: ignore[assignment]


def ollama_base_url(host: str) -> str:
    """The server URL an Ollama address means, as the `ollama` client reads `OLLAMA_HOST`:
    `http://` when no scheme is given, port 11434 when none is given without a scheme (80 or
    443 with one), no trailing slash. `ValueError` for an address that cannot be a URL."""
    text = host.strip() or DEFAULT_HOST
    with_scheme = text if "://" in text else f"http://{text}"
    parts = urlsplit(with_scheme)
    port = parts.port  # ValueError for a port out of range or not a number
    if port is None:
        port = DEFAULT_PORT if "://" not in text else (443 if parts.scheme == "https" else 80)
    hostname = parts.hostname or "127.0.0.1"
    netloc = f"[{hostname}]:{port}" if ":" in hostname else f"{hostname}:{port}"
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"the scheme must be http or https, not {parts.scheme!r}")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class OllamaVLM(ReAskingVLM):
    """Ask an Ollama vision model for schema-checked JSON, with bounded retries and clear errors.

    Args:
        model: an Ollama model tag; a vision model (see docs/agents.md).
        host: server URL; None uses `OLLAMA_HOST`, else http://127.0.0.1:11434.
        timeout: total seconds allowed for each HTTP request, from connecting to the last byte
            (a server trickling bytes cannot stretch it).
        temperature, seed, num_ctx: sent as Ollama `options`; the defaults make answers repeatable.
        max_image_side: images are downscaled so their longest side is at most this.
        transport_retries: extra tries after a connection failure or HTTP 5xx (not after a timeout:
            a model that was too slow once will very likely be too slow again).
        invalid_answer_retries: re-asks after an answer that does not parse or validate.
        keep_alive: how long the server keeps the model loaded after a call.
        http_client: an `httpx.Client` whose base URL is the server, used instead of building
            one (its own timeout and limits then apply).
        retry_base_delay: first back-off delay in seconds, doubled on each transport retry.
        max_answer_bytes: a reply body larger than this is refused (`VLMBadResponseError`).
        check_vision: refuse a model whose server says it cannot see (`VLMNoVisionError`).
        family: a family name from `agents.families` to use instead of finding it.
    """

    supports_images = True
    supports_schema = True
    server = "ollama"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        host: str | None = None,
        timeout: float = 120.0,
        temperature: float = 0.0,
        seed: int = 42,
        max_image_side: int = 1024,
        transport_retries: int = 2,
        invalid_answer_retries: int = 2,
        num_ctx: int = 8192,
        keep_alive: str | float = "5m",
        http_client: httpx.Client | None = None,
        retry_base_delay: float = 0.5,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        check_vision: bool = True,
        family: str | None = None,
    ) -> None:
        check_options(timeout=timeout, transport_retries=transport_retries,
                      invalid_answer_retries=invalid_answer_retries,
                      max_answer_bytes=max_answer_bytes, max_image_side=max_image_side,
                      family=family)
        self.model = model
        self.host = host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST
        self.timeout = timeout
        self.temperature = temperature
        self.seed = seed
        self.max_image_side = max_image_side
        self.transport_retries = transport_retries
        self.invalid_answer_retries = invalid_answer_retries
        self.num_ctx = num_ctx
        self.keep_alive = keep_alive
        self.retry_base_delay = retry_base_delay
        self.max_answer_bytes = max_answer_bytes
        self.check_vision = check_vision
        self.family_override = family
        self.thinking_switch = True
        """False once the server said the model does not support thinking (not sent again)."""
        self._http = http_client
        self._card: ModelCard | None = None
        self._card_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return f"ollama:{self.model}"

    def __repr__(self) -> str:
        return f"OllamaVLM(model={self.model!r}, host={self.host!r})"

    @property
    def options(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "seed": self.seed, "num_ctx": self.num_ctx}

    def http(self) -> httpx.Client:
        """The bounded `httpx.Client` on the server, built on first use."""
        if self._http is None:
            try:
                base_url = ollama_base_url(self.host)
            except ValueError as exc:  # the host does not parse (a bad port, no host name)
                raise VLMRequestError(
                    f"the Ollama address {self.host!r} is not a valid URL ({exc})",
                    server="ollama", url=self.host,
                ) from None
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if os.environ.get("OLLAMA_API_KEY"):  # as the `ollama` client sends it
                headers["Authorization"] = f"Bearer {os.environ['OLLAMA_API_KEY']}"
            self._http = bounded_client(base_url, self.timeout, self.max_answer_bytes, headers)
        return self._http

    @property
    def _log_name(self) -> str:
        return self.model

    # --- the model's family and capabilities --------------------------------------------------

    def card(self) -> ModelCard | None:
        """What `/api/show` says about the model (asked once; None while the server is down).

        Raises `VLMModelNotFoundError` when the server says it has no such model.
        """
        if self._card is not None:
            return self._card
        import httpx

        with self._card_lock:
            if self._card is None:
                try:
                    status, data = self._request("POST", "/api/show", {"model": self.model})
                except (VLMTimeoutError, VLMRequestError, httpx.TransportError):
                    return None  # the chat call itself will report what is wrong
                if status == 404:
                    raise self._missing(_error_text(data))
                if status >= 400 or not isinstance(data, dict):
                    return None
                self._card = ModelCard.from_ollama_show(data)
        return self._card

    @property
    def family(self) -> FamilyMatch:  # type: ignore[override]
        """The model's family: from the server's `/api/show` when it answers, else the name."""
        try:
            card = self.card()
        except VLMModelNotFoundError:
            card = None
        return resolve_family(self.model, card, self.family_override)

    def _think_for(self, match: FamilyMatch) -> bool | None:
        """`think=true` for a model that thinks (so `format` holds); otherwise not sent."""
        return True if match.thinks and self.thinking_switch else None

    def _ensure_vision(self, match: FamilyMatch) -> None:
        """Refuse a model whose server says it has no vision capability."""
        if self.check_vision and match.capabilities and "vision" not in match.capabilities:
            raise VLMNoVisionError(self.model, list(match.capabilities), url=self.host)

    # --- asking ---------------------------------------------------------------------------------

    def _start(
        self, system: str, user: str, images: list[Image.Image], schema: type[T],
        match: FamilyMatch,
    ) -> tuple[list[Any], Callable[[list[Any]], Said[T]]]:
        """Checks that the model can see, then asks with `format=<the schema>`."""
        self._ensure_vision(match)
        user_message: dict[str, Any] = {"role": "user", "content": user}
        if images:
            user_message["images"] = [png_bytes(image) for image in images]
        json_schema = schema.model_json_schema()

        def reply(history: list[dict[str, Any]]) -> Said[T]:
            raw, from_thinking = self._chat(history, json_schema, self._think_for(match))
            return Said(parse_keeping_raw(raw, schema), raw, from_thinking)

        return [{"role": "system", "content": system}, user_message], reply

    def _follow_up(self, raw: str, reask: str) -> list[dict[str, Any]]:
        return [{"role": "assistant", "content": raw}, {"role": "user", "content": reask}]

    def _chat(self, messages: list[dict[str, Any]], json_schema: dict[str, Any],
              think: bool | None = None) -> tuple[str, bool]:
        import httpx

        body: dict[str, Any] = {
            "model": self.model,
            "messages": [_wire_message(m) for m in messages],
            "format": json_schema,
            "options": self.options,
            "keep_alive": self.keep_alive,
            "stream": False,
        }
        if think is not None:
            body["think"] = think
        attempt = 0
        while True:
            last_try = attempt >= self.transport_retries
            try:
                status, data = self._request("POST", "/api/chat", body)
            except VLMTimeoutError:
                raise
            except (ConnectionError, httpx.TransportError) as exc:
                if cut_mid_body(exc):
                    raise self._bad_body(
                        f"the Ollama server at {self.host} cut its answer to /api/chat off "
                        f"mid-way ({type(exc).__name__}); a server that crashes or restarts "
                        "while answering does this", "a body cut mid-way") from None
                if last_try:
                    raise VLMUnavailableError(self.host, type(exc).__name__) from None
                self._back_off(attempt, type(exc).__name__)
                attempt += 1
                continue
            if status == 400 and "think" in body and _NO_THINKING in _error_text(data):
                logger.info("%s does not support thinking; asking without the switch",
                            self.model)
                self.thinking_switch = False
                body.pop("think")
                continue
            if status >= 400:
                error = _error_text(data)
                if status == 404:
                    raise self._missing(error)
                if status >= 500 and not last_try:
                    self._back_off(attempt, f"HTTP {status}: {error}")
                    attempt += 1
                    continue
                raise VLMRequestError(
                    f"the Ollama server at {self.host} refused the request (HTTP {status}): "
                    f"{error}", server="ollama", url=self.host, status=status,
                )
            return self._content(data)

    def _content(self, data: Any) -> tuple[str, bool]:
        """The answer's text from a parsed `/api/chat` reply (the thinking text when the answer
        is empty), and whether it was the thinking; or `VLMBadResponseError`."""
        if not isinstance(data, dict):
            raise self._bad_body(
                f"the server at {self.host} answered /api/chat with {describe(data)}, not "
                "Ollama's JSON; check that OLLAMA_HOST points at an Ollama server, not a proxy "
                "page or another service", describe(data),
            )
        if data.get("error"):
            raise VLMRequestError(
                f"the Ollama server at {self.host} reported an error: {_error_text(data)}",
                server="ollama", url=self.host,
            )
        message = data.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise self._bad_body(
                f"the server at {self.host} answered /api/chat without a `message` holding "
                "text; check that OLLAMA_HOST points at an Ollama server", "no message text",
            )
        thinking = message.get("thinking") if isinstance(message, dict) else None
        return answer_text(content, thinking if isinstance(thinking, str) else None)

    def _bad_body(self, text: str, body: str) -> VLMBadResponseError:
        return VLMBadResponseError(text, server="ollama", url=self.host, body=body)

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One HTTP call with a total deadline and a size cap: (status, parsed JSON or raw text)."""
        import httpx

        try:
            reply = self.http().request(method, path, json=body)
        except (httpx.TimeoutException, DeadlineExceeded):
            raise VLMTimeoutError(self.model, self.timeout, server="ollama", url=self.host
                                  ) from None
        except AnswerTooLarge as exc:
            raise self._bad_body(
                f"the server at {self.host} sent {exc}; an answer is a small JSON object, so "
                "the call was cut off (a runaway model, or OLLAMA_HOST points at something else)",
                f"over {exc.limit:,} bytes",
            ) from None
        except (httpx.TooManyRedirects, httpx.DecodingError) as exc:
            raise self._bad_body(
                f"the server at {self.host} gave no usable answer for {path} ({exc}); check "
                "that OLLAMA_HOST points at an Ollama server", str(exc),
            ) from None
        except httpx.InvalidURL as exc:
            raise VLMRequestError(f"the Ollama address {self.host!r} is not a valid URL ({exc})",
                                  server="ollama", url=self.host) from None
        return reply.status_code, parse_body(reply.text)

    def _missing(self, detail: str) -> VLMModelNotFoundError:
        """The server has no such model: the error lists the models it has (as OpenAI-compatible
        servers' errors do), when `/api/tags` answers."""
        import httpx

        try:
            code, listing = self._request("GET", "/api/tags")
        except (ConnectionError, httpx.TransportError, VLMTimeoutError, VLMRequestError):
            listing = None
        models = listing.get("models") if isinstance(listing, dict) and code < 400 else None
        pulled = [str(m.get("model") or m.get("name")) for m in models or ()
                  if isinstance(m, dict) and (m.get("model") or m.get("name"))]
        return VLMModelNotFoundError(self.model, self.host, detail, available=pulled)

    def _back_off(self, attempt: int, reason: str) -> None:
        delay = self.retry_base_delay * (2**attempt)
        logger.warning("Ollama call failed (%s); retrying in %.2f s", reason, delay)
        time.sleep(delay)

    # --- the doctor's probe ---------------------------------------------------------------------

    def check(self) -> OllamaStatus:
        """Ask the server whether it answers, has the model, and the model can see images."""
        import httpx

        status = OllamaStatus(host=self.host, model=self.model)
        try:
            code, listing = self._request("GET", "/api/tags")
        except (ConnectionError, httpx.TransportError) as exc:
            status.error = f"no answer at {self.host} ({type(exc).__name__})"
            status.fix = "start it with `ollama serve` (or set OLLAMA_HOST)"
            return status
        except (VLMRequestError, VLMTimeoutError) as exc:  # includes a body that is not Ollama's
            status.error = str(exc)
            status.fix = "check that OLLAMA_HOST points at a working Ollama server"
            return status
        models = listing.get("models") if isinstance(listing, dict) else None
        if code >= 400 or not isinstance(models, list):
            what = f"HTTP {code}" if code >= 400 else describe(listing)
            status.error = f"{self.host} answered /api/tags with {what}, not Ollama's model list"
            status.fix = "check that OLLAMA_HOST points at an Ollama server"
            return status
        status.reachable = True
        status.version = self._version()
        status.available_models = [
            str(m.get("model") or m.get("name")) for m in models
            if isinstance(m, dict) and (m.get("model") or m.get("name"))
        ]
        wanted = {self.model, self.model if ":" in self.model else f"{self.model}:latest"}
        status.model_present = bool(wanted & set(status.available_models))
        if not status.model_present:
            status.error = f"model {self.model!r} is not pulled"
            status.fix = f"ollama pull {self.model}"
            return status
        return self._check_model(status)

    def _check_model(self, status: OllamaStatus) -> OllamaStatus:
        """The model's capabilities and family, from `/api/show`."""
        import httpx

        try:
            code, shown = self._request("POST", "/api/show", {"model": self.model})
        except (ConnectionError, httpx.TransportError, VLMTimeoutError,
                VLMRequestError) as exc:
            status.error = f"could not read the model's details ({exc})"
            return status
        if code >= 400 or not isinstance(shown, dict):
            status.error = f"could not read the model's details ({_error_text(shown)})"
            return status
        card = ModelCard.from_ollama_show(shown)
        status.capabilities = list(card.capabilities)
        status.family = resolve_family(self.model, card, self.family_override)
        if status.capabilities:
            status.vision = "vision" in status.capabilities
        if status.vision is False:
            refusal = VLMNoVisionError(self.model, status.capabilities)
            status.error = str(refusal).split(";")[0]
            status.fix = refusal.fix
        return status

    def _version(self) -> str | None:
        try:
            code, data = self._request("GET", "/api/version")
        except Exception:  # the version is a nicety; its absence is not an error
            return None
        version = data.get("version") if code < 400 and isinstance(data, dict) else None
        return str(version) if version else None


def _wire_message(message: dict[str, Any]) -> dict[str, Any]:
    """A chat message as Ollama's JSON wants it: images as base64 text."""
    out = dict(message)
    if out.get("images"):
        out["images"] = [
            base64.b64encode(bytes(i)).decode("ascii") if isinstance(i, (bytes, bytearray))
            else str(i)
            for i in out["images"]
        ]
    return out
