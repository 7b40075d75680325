"""Free text from a person (instruction, caption, negative prompt): one normaliser for every surface.

What is stored, planned and shown in traces must be one and the same text, so `normalise_text`:

- refuses control characters (NUL, escape sequences, bells; tab, newline and carriage return
  are fine), lone surrogates (they cannot be stored as UTF-8), and bidirectional embeddings,
  overrides and isolates (RLO, LRO, RLE, LRE, PDF, LRI, RLI, FSI, PDI), which make text display
  as something other than what it says;
- composes it to Unicode NFC;
- strips invisible characters that change nothing a reader sees but break matching (a leading
  BOM or zero-width space turned "remove the shuttle" into a local edit): BOM, zero-width space,
  word joiner, soft hyphen, invisible operators, fillers, tag characters; zero-width joiners
  and non-joiners are kept only between letters of scripts that use them (and in emoji),
  left-to-right and right-to-left marks only in text that has right-to-left letters;
- turns other spaces (no-break, thin, ideographic...) into plain spaces, line and paragraph
  separators into newlines, and trims the ends;
- holds it to its field's limit (`MAX_INSTRUCTION_CHARS`, `MAX_CAPTION_CHARS`,
  `MAX_NEGATIVE_PROMPT_CHARS`: every limit on free text is defined here, once, and every surface
  applies it through `graphs.requests`).

`decode_text` does the same for bytes, refusing invalid UTF-8 instead of guessing an encoding.
"""

from __future__ import annotations

import re
import unicodedata

from tools.errors import InvalidRequestError, InvalidTextError

MAX_INSTRUCTION_CHARS = 2000
"""Longest instruction any surface accepts (after normalising); a longer one is refused, never cut."""
MAX_CAPTION_CHARS = 500
"""Longest target caption any surface accepts (CLIP reads 77 tokens anyway)."""
MAX_NEGATIVE_PROMPT_CHARS = 2000
"""Longest negative prompt any surface accepts."""
MAX_TEXT_CHARS = MAX_INSTRUCTION_CHARS
"""The longest free text of any field: `normalise_text`'s default limit."""

CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
BIDI_CONTROLS = {
    "\u202a": "left-to-right embedding", "\u202b": "right-to-left embedding",
    "\u202c": "pop directional formatting", "\u202d": "left-to-right override",
    "\u202e": "right-to-left override", "\u2066": "left-to-right isolate",
    "\u2067": "right-to-left isolate", "\u2068": "first strong isolate",
    "\u2069": "pop directional isolate",
}
JOINERS = frozenset("\u200c\u200d")  # zero-width non-joiner, zero-width joiner
DIRECTION_MARKS = frozenset("\u200e\u200f\u061c")  # LRM, RLM, Arabic letter mark
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u17b4\u17b5\u034f")
"""Hangul fillers, Khmer inherent vowels and the combining grapheme joiner: blank to a reader."""
VISIBLE_FORMAT = frozenset(
    [chr(c) for c in range(0x0600, 0x0606)]
    + ["\u06dd", "\u070f", "\u0890", "\u0891", "\u08e2", "\U000110bd", "\U000110cd"]
)
"""Format characters that print (Arabic and Syriac number signs...): kept."""
BLACK_FLAG = "\U0001f3f4"
TAGS = range(0xE0000, 0xE0080)


def normalise_text(
    value: str, name: str, *, max_chars: int = MAX_TEXT_CHARS, strip_bidi: bool = False
) -> str:
    """`value` as it will be stored and planned (see the module doc), or `InvalidTextError`.

    `strip_bidi` drops bidirectional controls instead of refusing them: for a reader of text
    that a surface has already accepted (the rule planner plans the logical text); what is
    stored must be refused by the surface instead.
    """
    if not isinstance(value, str):
        raise InvalidRequestError(f"`{name}` must be text, got {type(value).__name__}")
    found = CONTROL_CHARACTERS.search(value)
    if found:
        raise InvalidTextError(_control_message(name, found), field=name, reason="control",
                               character=_code(found.group()), position=found.start())
    for index, char in enumerate(value):
        if char in BIDI_CONTROLS and not strip_bidi:
            raise InvalidTextError(
                f"`{name}` contains a {BIDI_CONTROLS[char]} character ({_code(char)}) at "
                f"position {index}, which makes text display differently from what it says; "
                "send it without bidirectional controls",
                field=name, reason="bidi", character=_code(char), position=index,
            )
        if "\udc80" <= char <= "\udcff":  # a byte that was not UTF-8, kept by surrogateescape
            raise InvalidTextError(  # (how Python reads command-line arguments and file names)
                f"`{name}` is not valid UTF-8 (byte 0x{ord(char) - 0xDC00:02X} at position "
                f"{index}); send UTF-8 text",
                field=name, reason="utf8", position=index,
            )
        if "\ud800" <= char <= "\udfff":
            raise InvalidTextError(
                f"`{name}` contains a lone surrogate ({_code(char)}) at position {index}, which "
                "is not a character; send valid Unicode text",
                field=name, reason="surrogate", character=_code(char), position=index,
            )
    text = _visible(unicodedata.normalize("NFC", value)).strip()
    if len(text) > max_chars:
        raise InvalidTextError(
            f"`{name}` has {len(text):,} characters; the limit is {max_chars:,}",
            field=name, reason="too_long",
        )
    return text


def decode_text(data: bytes, name: str, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    """UTF-8 `data` normalised by `normalise_text`; anything that is not UTF-8 is refused, never
    read as Latin-1."""
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidTextError(
            f"`{name}` is not valid UTF-8 (byte 0x{exc.object[exc.start]:02X} at offset "
            f"{exc.start}); send UTF-8 text",
            field=name, reason="utf8", position=exc.start,
        ) from None
    return normalise_text(text, name, max_chars=max_chars)


def _control_message(name: str, found: re.Match[str]) -> str:
    return (f"`{name}` contains the control character {found.group()!r} at position "
            f"{found.start()}; send plain text")


def _visible(text: str) -> str:
    """`text` without the characters a reader cannot see, other spaces made plain."""
    right_to_left = any(unicodedata.bidirectional(c) in ("R", "AL") and c not in DIRECTION_MARKS
                        for c in text)
    out: list[str] = []
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if char in JOINERS:
            keep = _joins(text, index)
        elif char in DIRECTION_MARKS:
            keep = right_to_left
        elif ord(char) in TAGS:
            keep = bool(out) and (out[-1] == BLACK_FLAG or ord(out[-1]) in TAGS)
        elif char in INVISIBLE_LETTERS or char in BIDI_CONTROLS:
            keep = False
        elif category == "Cf":
            keep = char in VISIBLE_FORMAT
        else:
            keep = True
        if not keep:
            continue
        if category == "Zs":
            char = " "
        elif category in ("Zl", "Zp"):
            char = "\n"
        out.append(char)
    return "".join(out)


def _joins(text: str, index: int) -> bool:
    """A joiner matters only between two characters of scripts that use it (Arabic, Indic,
    emoji...): never at an end, nor next to ASCII or Latin letters, spaces or punctuation."""
    if index == 0 or index == len(text) - 1:
        return False
    return all(
        ord(c) > 0x24F and unicodedata.category(c)[0] in "LMS"
        for c in (text[index - 1], text[index + 1])
    )


def _code(char: str) -> str:
    return f"U+{ord(char):04X}"
