"""A wrapper that keeps every VLM exchange, so traces show the exact prompt and raw answer."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from agents.base import AskByQuestion, T, VisionLanguageModel, VLMAnswer, VLMQuestion
from tools.images import content_hash


class VLMCall(BaseModel):
    """One `ask`: what was sent, what came back, how long it took, and how it failed if it did."""

    model: str
    schema_name: str
    system: str
    user: str
    image_hashes: list[str] = Field(default_factory=list)
    raw: str | None = None
    parsed: dict[str, Any] | None = None
    attempts: int | None = None
    started_at: datetime
    duration_s: float = Field(ge=0.0)
    error: str | None = Field(default=None, description="`ErrorType: message` when the call failed.")
    family: str | None = Field(
        default=None, description="The model family (`agents.families`) the answer was read as."
    )
    from_thinking: bool = Field(
        default=False, description="The JSON came from the model's thinking text."
    )


class RecordingVLM(AskByQuestion):
    """Delegates to `inner` and appends a `VLMCall` to `.calls` for every question asked."""

    def __init__(self, inner: VisionLanguageModel) -> None:
        self.inner = inner
        self.calls: list[VLMCall] = []

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def __getattr__(self, name: str) -> Any:
        # Capability flags and settings (e.g. `max_image_side`) of the wrapped model stay visible.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def answer(self, question: VLMQuestion[T]) -> VLMAnswer[T]:
        system, user, images, schema = question
        started = datetime.now(UTC)
        clock = time.perf_counter()
        call = VLMCall(
            model=self.model_id,
            schema_name=schema.__name__,
            system=system,
            user=user,
            image_hashes=[content_hash(image) for image in images],
            started_at=started,
            duration_s=0.0,
        )
        try:
            answer = self.inner.ask(system=system, user=user, images=images, schema=schema)
        except Exception as exc:
            call.duration_s = time.perf_counter() - clock
            call.error = f"{type(exc).__name__}: {exc}"
            call.raw = getattr(exc, "raw", None)
            self.calls.append(call)
            raise
        call.duration_s = time.perf_counter() - clock
        call.raw = answer.raw
        call.parsed = answer.value.model_dump(mode="json")
        call.attempts = answer.attempts
        call.model = answer.model
        call.family = answer.family
        call.from_thinking = answer.from_thinking
        self.calls.append(call)
        return answer

    def drain(self) -> list[VLMCall]:
        """Return the calls recorded so far and forget them."""
        calls, self.calls = self.calls, []
        return calls
