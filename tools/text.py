"""Free text from a person (instruction, caption, negative prompt): plain text only.

Control characters (NUL, escape sequences, bells; tab, newline and carriage return are fine) are
never part of what someone asks for, yet they would reach the prompts, the captions and every
trace verbatim. One check, used by the session facade and the LangGraph server's input check, so
every surface refuses the same text with the same sentence.
"""

from __future__ import annotations

import re

from tools.errors import InvalidRequestError

CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def check_plain_text(value: str | None, name: str) -> str | None:
    """`value` unchanged, or `InvalidRequestError` naming the first control character in it."""
    found = CONTROL_CHARACTERS.search(value) if isinstance(value, str) else None
    if found:
        raise InvalidRequestError(
            f"`{name}` contains the control character {found.group()!r} at position "
            f"{found.start()}; send plain text"
        )
    return value
