"""What a turn's request may hold: every check and every limit, in one place.

The session facade runs these once on everything a caller sends (`EditSession.prepare`), so the
CLI, the HTTP API, MCP, the web editor and the LangChain tool refuse the same request with the
same sentence. The graph's `start` node runs `check_turn_input` only on what the LangGraph
server hands it raw (any JSON a client sent); the facade's turns arrive checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graphs.artifacts import is_hash
from tools.errors import InvalidImageError, InvalidRequestError
from tools.text import (
    MAX_CAPTION_CHARS,
    MAX_INSTRUCTION_CHARS,
    MAX_NEGATIVE_PROMPT_CHARS,
    normalise_text,
)
from tools.types import EditOptions

MAX_SESSION_ID_CHARS = 64
MAX_TURN = 2**31 - 1
MAX_REVIEW_ANSWERS = 20
"""Unusable mask-review answers a paused turn asks again for before it gives up."""
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]+$")
"""The HTTP API's session-id pattern, so an id made anywhere can be used everywhere."""

__all__ = ["MAX_CAPTION_CHARS", "MAX_INSTRUCTION_CHARS", "MAX_NEGATIVE_PROMPT_CHARS",
           "MAX_REVIEW_ANSWERS",
           "MAX_SESSION_ID_CHARS", "MAX_TURN", "check_caption", "check_hash", "check_instruction",
           "check_mask", "check_options", "check_reference", "check_review_answer", "check_run_input",
           "check_session_name", "check_turn_input"]


def check_session_name(session_id: object) -> str:
    """A session id a person can type and a terminal shows as is: letters, digits, `_`, `-`."""
    if not isinstance(session_id, str) or not session_id.strip():
        raise InvalidRequestError("a session id cannot be empty", field="session_id")
    if len(session_id) > MAX_SESSION_ID_CHARS or not _SESSION_ID.fullmatch(session_id):
        raise InvalidRequestError(
            f"session id {session_id[:MAX_SESSION_ID_CHARS]!r} is not valid: use at most "
            f"{MAX_SESSION_ID_CHARS} letters, digits, '_' or '-'", field="session_id"
        )
    return session_id


def check_instruction(instruction: object) -> str:
    """The instruction as it is stored and planned (`tools.text.normalise_text`: NFC, invisible
    characters stripped, no control or bidirectional characters); empty or too long is
    refused, never cut."""
    if instruction is None:
        instruction = ""
    text = _normalised(instruction, "instruction", MAX_INSTRUCTION_CHARS)
    if not text:
        raise InvalidRequestError(
            "the instruction is empty; say what to change, e.g. 'remove the cat'",
            field="instruction",
        )
    return text


def check_caption(caption: object) -> str | None:
    """The target caption as it is stored (normalised like the instruction), or None when there
    is none."""
    if caption is None:
        return None
    return _normalised(caption, "caption", MAX_CAPTION_CHARS) or None


def check_hash(value: object, what: str = "artifact") -> str:
    """An artifact id: a lowercase sha256 hex digest, never a path or a URL."""
    text = value.strip() if isinstance(value, str) else ""
    if not is_hash(text):
        raise InvalidRequestError(
            f"the {what} must be a 64-character lowercase hex sha256 hash, got "
            f"{str(value)[:80]!r}", field=what
        )
    return text


def check_options(given: Mapping[str, Any] | EditOptions | None = None, *,
                  defaults: EditOptions | None = None) -> EditOptions:
    """`defaults` (or `EditOptions()`) with the fields `given` sets, checked.

    Unknown fields are refused rather than ignored, so a typo does not silently run defaults.
    """
    from pydantic import ValidationError

    if isinstance(given, EditOptions):
        given = given.model_dump()
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise InvalidRequestError(field="options", problem=(
            f"must be an object of edit options, got {_kind(given)}"))
    unknown = sorted(str(key)[:40] for key in given if key not in EditOptions.model_fields)
    if unknown:
        raise InvalidRequestError(
            f"unknown option(s) {', '.join(unknown[:5])}; known: "
            f"{', '.join(EditOptions.model_fields)}", field="options"
        )
    try:
        options = EditOptions.model_validate({**(defaults or EditOptions()).model_dump(),
                                              **given})
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidRequestError(field="options." + ".".join(map(str, error["loc"])),
                                  problem=_problem(error)) from None
    negative = _normalised(options.negative_prompt, "options.negative_prompt",
                           MAX_NEGATIVE_PROMPT_CHARS)
    if negative != options.negative_prompt:
        options = options.model_copy(update={"negative_prompt": negative})
    return options


CHECKED_TURN = "brushedit_checked_turn"
"""The run config key (`configurable`) by which the session facade says its turn was checked
(`EditSession.prepare`): only then does the `start` node trust the input. Any other run (a
LangGraph-server client, a parent graph embedding the editor) is checked by `start`; a server
client cannot claim it, because a server run brings no Python context."""


def check_turn_input(state: Mapping[str, Any], defaults: EditOptions) -> dict[str, Any]:
    """A raw turn request's instruction, caption and options, checked; every other field's type
    and range checked too. A wrong one is refused in one sentence naming it.

    The LangGraph server hands the graph whatever JSON a client sent (a `TypedDict` is not
    validated), so a number for `instruction` or a seed of 2**70 must be refused here, as an
    `InvalidRequestError` naming the field, not as a traceback from deep inside a node.
    """
    checked = {"instruction": check_instruction(state.get("instruction")),
               "caption": check_caption(state.get("caption"))}
    for name in ("image", "mask"):
        if state.get(name) is not None:
            check_reference(state[name], name)
    review = state.get("review_mask")
    if review is not None and not isinstance(review, bool):
        raise InvalidRequestError(field="review_mask",
                                  problem=f"must be true or false, got {_kind(review)}")
    turn = state.get("turn")
    if turn is not None and (isinstance(turn, bool) or not isinstance(turn, int)
                             or not 1 <= turn <= MAX_TURN):
        raise InvalidRequestError(field="turn", problem=(
            f"must be a whole number from 1 to {MAX_TURN:,}, got {_kind(turn, 40)}"))
    checked["options"] = check_options(state.get("options"), defaults=defaults)
    return checked


def check_mask(mask: Any, size: tuple[int, int], *, resize: bool = False) -> Any:
    """A user mask fitted to an image of (W, H) `size`: the one mask rule (`fit_user_mask`)."""
    from tools.mask_ops import fit_user_mask

    return fit_user_mask(mask, size, resize=resize)


def check_run_input(value: Any, paused: bool | None) -> None:
    """Refuse an input that is neither a turn's object, a command nor none, and a resume of a
    thread whose state holds no paused mask review (`paused` is False)."""
    from langgraph.types import Command

    if value is not None and not isinstance(value, (dict, Command)):
        raise InvalidRequestError(
            f"a run's input must be an object of the turn's fields (image, instruction, mask, "
            f"options, ...), got {_kind(value)}"
        )
    if paused is False:
        raise InvalidRequestError(
            "nothing on this thread waits for an answer (no mask review is paused): start a turn "
            "with an `input` instead of a resume command"
        )


def check_reference(value: Any, what: str = "image") -> None:
    """Refuse an image or mask reference of a kind no resolver reads (a number, a list...)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidImageError(f"the {what} reference contains a NUL character")
        return
    if isinstance(value, (Path, bytes, bytearray)) or hasattr(value, "shape") or (
        hasattr(value, "mode") and hasattr(value, "size")
    ):
        return
    raise InvalidRequestError(field=what, problem=(
        f"must be a path, an http(s) URL, a data: URI or a stored image's hash, got "
        f"{_kind(value)}"))


def check_review_answer(decision: Any) -> None:
    """Refuse a mask-review answer other than `{'approve': true}` or `{'mask': <reference>}`."""
    usage = "a mask review answer must be {'approve': true} or {'mask': <image reference>}"
    if not isinstance(decision, Mapping) or not decision:
        raise InvalidRequestError(usage)
    unknown = sorted(str(key)[:40] for key in decision if key not in ("approve", "mask"))
    if unknown:
        raise InvalidRequestError(f"{usage}; {', '.join(unknown[:5])} is not one of them")
    approve = decision.get("approve")
    if approve is not None and not isinstance(approve, bool):
        raise InvalidRequestError(f"{usage}; `approve` is {_kind(approve)}, not true or false")
    if decision.get("mask") is not None:
        check_reference(decision["mask"], "mask")


_BOUND_WORDS = {"greater_than_equal": "at least", "greater_than": "greater than",
                "less_than_equal": "at most", "less_than": "less than"}


def _problem(error: Any) -> str:
    """A pydantic error as what is wrong with the field, said after its name."""
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    got = f", got {_kind(error['input'])}" if "input" in error else ""
    if kind in _BOUND_WORDS:
        return f"must be {_BOUND_WORDS[kind]} {next(iter(ctx.values()), '?')}{got}"
    if kind == "finite_number":
        return f"must be a finite number{got}"
    if kind.startswith("int_"):
        return f"must be a whole number{got}"
    if kind.startswith("float_"):
        return f"must be a number{got}"
    if kind.startswith("bool_"):
        return f"must be true or false{got}"
    if kind == "string_too_long":
        return f"is too long (at most {ctx.get('max_length')} characters)"
    if kind.startswith("string_"):
        return f"must be text{got}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected', 'one of the allowed values')}{got}"
    message = str(error.get("msg", "is not valid"))
    return message[:1].lower() + message[1:]


def _normalised(value: object, name: str, limit: int) -> str:
    """Free text as every surface stores it, held to its field's one limit."""
    if not isinstance(value, str):
        raise InvalidRequestError(field=name, problem=f"must be text, got {_kind(value)}")
    return normalise_text(value, name, max_chars=limit)


def _kind(value: Any, limit: int = 0) -> str:
    """`a list`, `the number 5`...: what a wrong value was, without echoing a huge one."""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (int, float)):
        text = repr(value)
        return f"the number {text if len(text) <= 40 else text[:20] + '…'}"
    if isinstance(value, str):
        return f"the text {value[:limit or 40]!r}"
    names = {dict: "an object", list: "a list", tuple: "a list"}
    return names.get(type(value), f"a {type(value).__name__}")
