"""`VisionLanguageModel` over a local Ollama server, through the official `ollama` client.

Structured output uses Ollama's `format=<JSON schema>`; answers are still validated here, because
small models drift from the schema and the server only constrains the grammar, not the meaning.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError

from agents.base import T, VLMAnswer
from agents.errors import (
    VLMInvalidAnswerError,
    VLMModelNotFoundError,
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


def ask_until_valid(
    messages: list[Any],
    answer: Callable[[list[Any]], tuple[T, str]],
    follow_up: Callable[[str, str], list[Any]],
    *,
    schema: type[T],
    retries: int,
    name: str,
    model_id: str,
    image_sizes: list[tuple[int, int]],
    log: logging.Logger,
) -> VLMAnswer[T]:
    """Ask, and after each invalid answer re-ask (with the reason) up to `retries` more times.

    `answer(messages)` returns `(value, raw)` or raises `AnswerError` (with the rejected text as
    `.raw` when it has one); `follow_up(raw, reask)` gives the messages appended before re-asking.
    `name` labels the log line and the `VLMInvalidAnswerError` raised when every attempt failed.
    """
    attempts = retries + 1
    error, raw = "", ""
    for attempt in range(1, attempts + 1):
        try:
            value, raw = answer(messages)
        except AnswerError as exc:
            error = str(exc)
            raw = getattr(exc, "raw", raw)
            log.info("%s: invalid %s answer (%s)", name, schema.__name__, error)
            messages = [*messages, *follow_up(raw, REASK.format(error=error))]
            continue
        return VLMAnswer[schema](  # type: ignore[valid-type]
            value=value,
            raw=raw,
            model=model_id,
            attempts=attempt,
            image_sizes=image_sizes,
        )
    raise VLMInvalidAnswerError(name, schema_name(schema), attempts, error, raw)


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


class OllamaVLM:
    """Ask an Ollama vision model for schema-checked JSON, with bounded retries and clear errors.

    Args:
        model: an Ollama model tag; a vision model (see docs/agents.md).
        host: server URL; None uses `OLLAMA_HOST`, else http://127.0.0.1:11434.
        timeout: seconds allowed for each HTTP request.
        temperature, seed, num_ctx: sent as Ollama `options`; the defaults make answers repeatable.
        max_image_side: images are downscaled so their longest side is at most this.
        transport_retries: extra tries after a connection failure or HTTP 5xx (not after a timeout:
            a model that was too slow once will very likely be too slow again).
        invalid_answer_retries: re-asks after an answer that does not parse or validate.
        keep_alive: how long the server keeps the model loaded after a call.
        client: an `ollama.Client` to use instead of building one (its host/timeout then apply).
        retry_base_delay: first back-off delay in seconds, doubled on each transport retry.
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
    ) -> None:
        if transport_retries < 0 or invalid_answer_retries < 0:
            raise ValueError("`transport_retries` and `invalid_answer_retries` must be >= 0")
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
        self._client = client

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

            self._client = ollama.Client(host=self.host, timeout=self.timeout)
        return self._client

    def ask(
        self,
        *,
        system: str,
        user: str,
        images: Sequence[Image.Image] = (),
        schema: type[T],
    ) -> VLMAnswer[T]:
        """One structured question; re-asks on invalid answers, retries on transport failures."""
        prepared = [downscale(image, self.max_image_side) for image in images]
        user_message: dict[str, Any] = {"role": "user", "content": user}
        if prepared:
            user_message["images"] = [png_bytes(image) for image in prepared]
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}, user_message]
        json_schema = schema.model_json_schema()

        def answer(history: list[dict[str, Any]]) -> tuple[T, str]:
            raw = self._chat(history, json_schema)
            return parse_keeping_raw(raw, schema), raw

        def follow_up(raw: str, reask: str) -> list[dict[str, Any]]:
            return [{"role": "assistant", "content": raw}, {"role": "user", "content": reask}]

        return ask_until_valid(
            messages,
            answer,
            follow_up,
            schema=schema,
            retries=self.invalid_answer_retries,
            name=self.model,
            model_id=self.model_id,
            image_sizes=[image.size for image in prepared],
            log=logger,
        )

    def _chat(self, messages: list[dict[str, Any]], json_schema: dict[str, Any]) -> str:
        import httpx
        import ollama

        for attempt in range(self.transport_retries + 1):
            last_try = attempt == self.transport_retries
            try:
                response = self.client().chat(
                    model=self.model,
                    messages=messages,
                    format=json_schema,
                    options=self.options,
                    keep_alive=self.keep_alive,
                    stream=False,
                )
                return response.message.content or ""
            except ollama.ResponseError as exc:
                if exc.status_code == 404:
                    raise VLMModelNotFoundError(self.model, self.host, exc.error) from None
                if exc.status_code >= 500 and not last_try:
                    self._back_off(attempt, f"HTTP {exc.status_code}: {exc.error}")
                    continue
                raise VLMRequestError(
                    f"the Ollama server at {self.host} refused the request "
                    f"(HTTP {exc.status_code}): {exc.error}"
                ) from None
            except httpx.TimeoutException:
                raise VLMTimeoutError(self.model, self.timeout) from None
            except (ConnectionError, httpx.TransportError) as exc:
                if last_try:
                    raise VLMUnavailableError(self.host, type(exc).__name__) from None
                self._back_off(attempt, type(exc).__name__)
        raise AssertionError("unreachable")  # pragma: no cover

    def _back_off(self, attempt: int, reason: str) -> None:
        delay = self.retry_base_delay * (2**attempt)
        logger.warning("Ollama call failed (%s); retrying in %.2f s", reason, delay)
        time.sleep(delay)

    def check(self) -> OllamaStatus:
        """Ask the server whether it answers, has the model, and the model can see images."""
        import httpx
        import ollama

        status = OllamaStatus(host=self.host, model=self.model)
        client = self.client()
        try:
            listing = client.list()
        except (ConnectionError, httpx.TransportError) as exc:
            status.error = f"no answer at {self.host} ({type(exc).__name__})"
            status.fix = "start it with `ollama serve` (or set OLLAMA_HOST)"
            return status
        except ollama.ResponseError as exc:
            status.error = f"HTTP {exc.status_code} from {self.host}: {exc.error}"
            status.fix = "check that OLLAMA_HOST points at an Ollama server"
            return status
        status.reachable = True
        status.version = self._version(client)
        status.available_models = [m.model for m in listing.models if m.model]
        wanted = {self.model, self.model if ":" in self.model else f"{self.model}:latest"}
        status.model_present = bool(wanted & set(status.available_models))
        if not status.model_present:
            status.error = f"model {self.model!r} is not pulled"
            status.fix = f"ollama pull {self.model}"
            return status
        try:
            shown = client.show(self.model)
        except (ConnectionError, httpx.TransportError, ollama.ResponseError, ValidationError) as exc:
            status.error = f"could not read the model's details ({exc})"
            return status
        status.capabilities = list(shown.capabilities or [])
        if status.capabilities:
            status.vision = "vision" in status.capabilities
        if status.vision is False:
            status.error = f"{self.model} has no vision capability ({status.capabilities})"
            status.fix = "choose a vision model, e.g. qwen2.5vl:7b"
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
