"""Text from users (instructions, paths, model answers) made safe to print on a terminal.

An instruction is data, not output formatting: control characters (ANSI escapes that move the
cursor or retitle the window, carriage returns that overwrite a line, bidi overrides that
reorder it) are shown as visible escapes, and Rich markup (`[red]`, `[link=...]`) is escaped so
it prints as typed.
"""

from __future__ import annotations

import unicodedata
from typing import Any

_BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
         "\u200e", "\u200f", "\u061c"}


def plain(text: Any) -> str:
    """`text` with every control, format (bidi) or line-breaking character as a visible escape."""
    out = []
    for char in str(text):
        if char in _BIDI or (unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")
                             and char not in " "):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def markup(text: Any) -> str:
    """`plain(text)` with Rich markup escaped, for strings embedded in a Rich markup template."""
    from rich.markup import escape

    return escape(plain(text))


def one_line(text: Any, limit: int | None = None) -> str:
    """Whitespace collapsed to single spaces, then `plain`, then cut to `limit` characters."""
    flat = plain(" ".join(str(text or "").split()))
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return flat


def console(*, stderr: bool = False, **options: Any) -> Any:
    """A Rich console for the command line: results go to stdout, messages to stderr.

    A pipe or a file gets lines as they are, never wrapped or cut at 80 columns (a script reads
    a result path whole); a terminal keeps its own width.
    """
    from rich.console import Console

    if Console(stderr=stderr).is_terminal:
        return Console(stderr=stderr, highlight=False, **options)
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=100_000, **options)
