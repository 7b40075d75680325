"""`VisionLanguageModel` over a local Ollama server, through the official `ollama` client.

Structured output uses Ollama's `format=<JSON schema>`; answers are still validated here, because
small models drift from the schema and the server only constrains the grammar, not the meaning.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import socket
import threading
import time
from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agents.base import AskByQuestion, T, VLMAnswer, VLMQuestion
from agents.errors import (
    VLMBadResponseError,
    VLMInvalidAnswerError,
    VLMModelNotFoundError,
    VLMNoVisionError,
    VLMRequestError,
    VLMTimeoutError,
    VLMUnavailableError,
)
from agents.imaging import downscale, png_bytes
from agents.parsing import AnswerError, parse_answer, schema_name

if TYPE_CHECKING:
    import ollama
    from PIL import Image

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "qwen2.5vl:7b"
DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_MAX_ANSWER_BYTES = 1_000_000
"""1 MB: a structured answer here is a few hundred bytes; more is a runaway model or a wrong
server, and would only bloat the trace."""
REASK = (
    "Your previous answer could not be used: {error}. Answer again with only one JSON object "
    "that follows the requested schema exactly."
)


def parse_keeping_raw(raw: str, schema: type[T]) -> T:
    """`parse_answer`, but an `AnswerError` carries the text it rejected as `.raw`."""
    try:
        return parse_answer(raw, schema)
    except AnswerError as exc:
        exc.raw = raw  # type: ignore[attr-defined]
        raise


class ReAskingVLM(AskByQuestion):
    """A chat model asked in messages: images downscaled to `max_image_side`, and an invalid
    answer re-asked (with the reason) up to `invalid_answer_retries` times.

    A model says how a conversation starts (`_start`: the messages, and how to get
    `(value, raw)` for them or an `AnswerError` carrying the rejected text as `.raw`) and goes
    on after an invalid answer (`_follow_up`); `answer` is the same for all of them.
    """

    max_image_side: int
    invalid_answer_retries: int
    _log: logging.Logger = logger

    @property
    def _log_name(self) -> str:
        """How log lines and `VLMInvalidAnswerError` name the model."""
        return self.model_id

    def answer(self, question: VLMQuestion[T]) -> VLMAnswer[T]:
        """Ask; after each invalid answer re-ask with the reason, up to the retry bound."""
        system, user, images, schema = question
        prepared = [downscale(image, self.max_image_side) for image in images]
        messages, reply = self._start(system, user, prepared, schema)
        attempts = self.invalid_answer_retries + 1
        error, raw = "", ""
        for attempt in range(1, attempts + 1):
            try:
                value, raw = reply(messages)
            except AnswerError as exc:
                error = str(exc)
                raw = getattr(exc, "raw", raw)
                self._log.info("%s: invalid %s answer (%s)", self._log_name, schema.__name__,
                               error)
                messages = [*messages, *self._follow_up(raw, REASK.format(error=error))]
                continue
            return VLMAnswer[schema](  # type: ignore[valid-type]
                value=value,
                raw=raw,
                model=self.model_id,
                attempts=attempt,
                image_sizes=[image.size for image in prepared],
            )
        raise VLMInvalidAnswerError(self._log_name, schema_name(schema), attempts, error, raw)

    @abstractmethod
    def _start(
        self, system: str, user: str, images: list[Image.Image], schema: type[T]
    ) -> tuple[list[Any], Callable[[list[Any]], tuple[T, str]]]:
        """The first messages, and `reply(messages)`: `(value, raw)` or an `AnswerError`."""

    @abstractmethod
    def _follow_up(self, raw: str, reask: str) -> list[Any]:
        """The messages appended after the invalid answer `raw`, ending with `reask`."""


class OllamaStatus(BaseModel):
    """What `OllamaVLM.check` found: enough for a doctor command to print a fix."""

    host: str
    model: str
    reachable: bool = False
    version: str | None = None
    model_present: bool = False
    vision: bool | None = Field(default=None, description="None when the server does not say.")
    capabilities: list[str] = Field(default_factory=list)
    available_models: list[str] = Field(default_factory=list)
    error: str | None = None
    fix: str | None = None

    @property
    def ok(self) -> bool:
        return self.reachable and self.model_present and self.vision is not False


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
        client: an `ollama.Client` to use instead of building one (its host/timeout then apply).
        retry_base_delay: first back-off delay in seconds, doubled on each transport retry.
        max_answer_bytes: a reply body larger than this is refused (`VLMBadResponseError`).
        check_vision: ask the server once (`/api/show`) whether the model can see images, and
            refuse a model that says it cannot (`VLMNoVisionError`).
    """

    supports_images = True
    supports_schema = True

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
        client: ollama.Client | None = None,
        retry_base_delay: float = 0.5,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        check_vision: bool = True,
    ) -> None:
        if transport_retries < 0 or invalid_answer_retries < 0:
            raise ValueError("`transport_retries` and `invalid_answer_retries` must be >= 0")
        if not timeout or timeout <= 0:
            raise ValueError(f"`timeout` must be a positive number of seconds, got {timeout!r}")
        if max_answer_bytes < 1:
            raise ValueError(f"`max_answer_bytes` must be positive, got {max_answer_bytes}")
        if max_image_side < 28:
            raise ValueError(f"`max_image_side` must be at least 28, got {max_image_side}")
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
        self._client = client
        self._vision_error: VLMNoVisionError | None = None
        self._vision_checked = False

    @property
    def model_id(self) -> str:
        return f"ollama:{self.model}"

    def __repr__(self) -> str:
        return f"OllamaVLM(model={self.model!r}, host={self.host!r})"

    @property
    def options(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "seed": self.seed, "num_ctx": self.num_ctx}

    def client(self) -> ollama.Client:
        """The `ollama.Client`, built on first use (no client exists at import time)."""
        if self._client is None:
            import ollama

            try:
                self._client = ollama.Client(host=self.host, timeout=self.timeout)
            except ValueError as exc:  # the host does not parse (a bad port, no host name)
                raise VLMRequestError(
                    f"the Ollama address {self.host!r} is not a valid URL ({exc})"
                ) from None
        return self._client

    @property
    def _log_name(self) -> str:
        return self.model

    def _start(
        self, system: str, user: str, images: list[Image.Image], schema: type[T]
    ) -> tuple[list[Any], Callable[[list[Any]], tuple[T, str]]]:
        """Checks once that the model can see, then asks with `format=<the schema>`."""
        self._ensure_vision()
        user_message: dict[str, Any] = {"role": "user", "content": user}
        if images:
            user_message["images"] = [png_bytes(image) for image in images]
        json_schema = schema.model_json_schema()

        def reply(history: list[dict[str, Any]]) -> tuple[T, str]:
            raw = self._chat(history, json_schema)
            return parse_keeping_raw(raw, schema), raw

        return [{"role": "system", "content": system}, user_message], reply

    def _follow_up(self, raw: str, reask: str) -> list[dict[str, Any]]:
        return [{"role": "assistant", "content": raw}, {"role": "user", "content": reask}]

    def _chat(self, messages: list[dict[str, Any]], json_schema: dict[str, Any]) -> str:
        import httpx

        body = {
            "model": self.model,
            "messages": [_wire_message(m) for m in messages],
            "format": json_schema,
            "options": self.options,
            "keep_alive": self.keep_alive,
            "stream": False,
        }
        for attempt in range(self.transport_retries + 1):
            last_try = attempt == self.transport_retries
            try:
                status, data = self._request("POST", "/api/chat", body)
            except VLMTimeoutError:
                raise
            except (ConnectionError, httpx.TransportError) as exc:
                if last_try:
                    raise VLMUnavailableError(self.host, type(exc).__name__) from None
                self._back_off(attempt, type(exc).__name__)
                continue
            if status >= 400:
                error = _error_text(data)
                if status == 404:
                    raise VLMModelNotFoundError(self.model, self.host, error)
                if status >= 500 and not last_try:
                    self._back_off(attempt, f"HTTP {status}: {error}")
                    continue
                raise VLMRequestError(
                    f"the Ollama server at {self.host} refused the request (HTTP {status}): "
                    f"{error}"
                )
            return self._content(data)
        raise AssertionError("unreachable")  # pragma: no cover

    def _content(self, data: Any) -> str:
        """The assistant's text from a parsed `/api/chat` reply, or `VLMBadResponseError`."""
        if not isinstance(data, dict):
            raise VLMBadResponseError(
                f"the server at {self.host} answered /api/chat with {_describe(data)}, not "
                "Ollama's JSON; check that OLLAMA_HOST points at an Ollama server, not a proxy "
                "page or another service"
            )
        if data.get("error"):
            raise VLMRequestError(
                f"the Ollama server at {self.host} reported an error: {_error_text(data)}"
            )
        message = data.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise VLMBadResponseError(
                f"the server at {self.host} answered /api/chat without a `message` holding "
                "text; check that OLLAMA_HOST points at an Ollama server"
            )
        return content

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One HTTP call with a total deadline and a size cap: (status, parsed JSON or raw text).

        httpx's timeout applies to each read, so a server sending a byte every few seconds
        would never trip it; here a watchdog shuts the socket down when `timeout` seconds have
        passed since the call began, whatever the server is doing.
        """
        import httpx

        deadline = time.monotonic() + self.timeout
        http = self.client()._client
        fired = threading.Event()
        timer: threading.Timer | None = None
        chunks: list[bytes] = []
        size = 0
        try:
            with http.stream(method, path, json=body, timeout=httpx.Timeout(self.timeout)) as reply:
                sock = _socket_of(reply)

                def cut() -> None:
                    fired.set()
                    if sock is not None:
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)

                timer = threading.Timer(max(0.0, deadline - time.monotonic()), cut)
                timer.daemon = True
                timer.start()
                for chunk in reply.iter_bytes():
                    size += len(chunk)
                    if size > self.max_answer_bytes:
                        raise VLMBadResponseError(
                            f"the server at {self.host} sent over {self.max_answer_bytes:,} bytes "
                            f"for {path}; an answer is a small JSON object, so the call was cut "
                            "off (a runaway model, or OLLAMA_HOST points at something else)"
                        )
                    chunks.append(chunk)
                    if fired.is_set() or time.monotonic() > deadline:
                        raise VLMTimeoutError(self.model, self.timeout)
                status = reply.status_code
        except httpx.TimeoutException:
            raise VLMTimeoutError(self.model, self.timeout) from None
        except (httpx.TransportError, OSError):
            if fired.is_set() or time.monotonic() > deadline:
                raise VLMTimeoutError(self.model, self.timeout) from None
            raise
        except (httpx.TooManyRedirects, httpx.DecodingError) as exc:
            raise VLMBadResponseError(
                f"the server at {self.host} gave no usable answer for {path} ({exc}); check "
                "that OLLAMA_HOST points at an Ollama server"
            ) from None
        except httpx.InvalidURL as exc:
            raise VLMRequestError(f"the Ollama address {self.host!r} is not a valid URL ({exc})"
                                  ) from None
        finally:
            if timer is not None:
                timer.cancel()
        if fired.is_set():
            raise VLMTimeoutError(self.model, self.timeout)
        text = b"".join(chunks).decode("utf-8", errors="replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def _ensure_vision(self) -> None:
        """Refuse, once and for all, a model whose server says it has no vision capability."""
        if not self.check_vision:
            return
        if self._vision_error is not None:
            raise self._vision_error
        if self._vision_checked:
            return
        import httpx

        try:
            status, data = self._request("POST", "/api/show", {"model": self.model})
        except (VLMTimeoutError, VLMRequestError, ConnectionError, httpx.TransportError):
            return  # the chat call itself will report what is wrong with the server
        if status == 404:
            raise VLMModelNotFoundError(self.model, self.host, _error_text(data))
        self._vision_checked = True
        capabilities = data.get("capabilities") if isinstance(data, dict) else None
        if (status < 400 and isinstance(capabilities, list) and capabilities
                and "vision" not in capabilities):
            self._vision_error = VLMNoVisionError(self.model, [str(c) for c in capabilities])
            raise self._vision_error

    def _back_off(self, attempt: int, reason: str) -> None:
        delay = self.retry_base_delay * (2**attempt)
        logger.warning("Ollama call failed (%s); retrying in %.2f s", reason, delay)
        time.sleep(delay)

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
        except VLMRequestError as exc:  # includes a body that is not Ollama's
            status.error = str(exc)
            status.fix = "check that OLLAMA_HOST points at a working Ollama server"
            return status
        except VLMTimeoutError as exc:
            status.error = str(exc)
            status.fix = "check that OLLAMA_HOST points at a working Ollama server"
            return status
        models = listing.get("models") if isinstance(listing, dict) else None
        if code >= 400 or not isinstance(models, list):
            what = f"HTTP {code}" if code >= 400 else _describe(listing)
            status.error = f"{self.host} answered /api/tags with {what}, not Ollama's model list"
            status.fix = "check that OLLAMA_HOST points at an Ollama server"
            return status
        status.reachable = True
        status.version = self._version(self.client())
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
        try:
            code, shown = self._request("POST", "/api/show", {"model": self.model})
        except (ConnectionError, httpx.TransportError, VLMTimeoutError,
                VLMRequestError) as exc:
            status.error = f"could not read the model's details ({exc})"
            return status
        if code >= 400 or not isinstance(shown, dict):
            status.error = f"could not read the model's details ({_error_text(shown)})"
            return status
        status.capabilities = [str(c) for c in shown.get("capabilities") or []]
        if status.capabilities:
            status.vision = "vision" in status.capabilities
        if status.vision is False:
            refusal = VLMNoVisionError(self.model, status.capabilities)
            status.error = str(refusal).split(";")[0]
            status.fix = refusal.fix
        return status

    @staticmethod
    def _version(client: ollama.Client) -> str | None:
        http = getattr(client, "_client", None)
        if http is None:
            return None
        try:
            response = http.get("/api/version")
            response.raise_for_status()
            return str(response.json().get("version")) or None
        except Exception:  # the version is a nicety; its absence is not an error
            return None


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


def _socket_of(reply: Any) -> socket.socket | None:
    stream = reply.extensions.get("network_stream")
    try:
        sock = stream.get_extra_info("socket") if stream is not None else None
    except Exception:  # an unusual transport: the per-chunk deadline check still applies
        return None
    return sock if isinstance(sock, socket.socket) else None


def _error_text(data: Any) -> str:
    if isinstance(data, dict) and data.get("error"):
        return " ".join(str(data["error"]).split())[:300]
    return _describe(data)


def _describe(data: Any) -> str:
    """What a non-Ollama body looks like, in a few words (an HTML page, cut-off JSON...)."""
    if isinstance(data, str):
        head = " ".join(data.split())[:60]
        if not head:
            return "an empty body"
        if head.lstrip().lower().startswith(("<!doctype", "<html", "<")):
            return f"an HTML page ({head!r}…)"
        if head.lstrip().startswith(("{", "[")):
            return f"cut-off or invalid JSON ({head!r}…)"
        return f"text that is not JSON ({head!r}…)"
    return f"JSON of the wrong shape ({type(data).__name__})"
