"""Kind 8: one normaliser for instruction, caption and negative-prompt text.

What is stored and shown must be what is planned: NFC, invisible characters stripped,
bidirectional controls and invalid UTF-8 refused in one sentence, one length limit.
"""

from __future__ import annotations

import pickle
import unicodedata

import pytest

from tools.errors import InvalidRequestError, InvalidTextError
from tools.text import (
    BIDI_CONTROLS,
    MAX_TEXT_CHARS,
    decode_text,
    normalise_text,
)

INVISIBLE = {
    "BOM": "\ufeff", "zero-width space": "\u200b", "zero-width joiner": "\u200d",
    "zero-width non-joiner": "\u200c", "word joiner": "\u2060", "soft hyphen": "\u00ad",
    "invisible times": "\u2062", "Hangul filler": "\u3164", "Mongolian vowel separator": "\u180e",
    "left-to-right mark": "\u200e", "right-to-left mark": "\u200f", "tag letter": "\U000e0041",
    "combining grapheme joiner": "\u034f", "interlinear annotation": "\ufff9",
}


@pytest.mark.parametrize("name", sorted(INVISIBLE))
@pytest.mark.parametrize("where", ["start", "inside a word", "between words", "end"])
def test_invisible_characters_are_stripped(name: str, where: str) -> None:
    char = INVISIBLE[name]
    text = {
        "start": f"{char}remove the shuttle",
        "inside a word": f"re{char}move the shut{char}tle",
        "between words": f"remove{char} the shuttle",
        "end": f"remove the shuttle{char}",
    }[where]
    assert normalise_text(text, "instruction") == "remove the shuttle"


@pytest.mark.parametrize(("char", "label"), sorted(BIDI_CONTROLS.items()))
def test_bidirectional_controls_are_refused_in_one_sentence(char: str, label: str) -> None:
    text = f"remove the {char}elttuhs"
    with pytest.raises(InvalidTextError) as info:
        normalise_text(text, "instruction")
    error = info.value
    assert (error.field, error.reason, error.position) == ("instruction", "bidi", 11)
    assert error.character == f"U+{ord(char):04X}"
    assert label in str(error) and "`instruction`" in str(error) and "\n" not in str(error)
    assert isinstance(error, InvalidRequestError)


def test_a_reader_of_accepted_text_may_drop_bidirectional_controls() -> None:
    text = "remove the \u202eelttuhs\u202c \u2067x\u2069"
    assert normalise_text(text, "instruction", strip_bidi=True) == "remove the elttuhs x"


def test_text_is_composed_to_nfc() -> None:
    decomposed = "make the cafe\u0301 sign red"
    assert normalise_text(decomposed, "instruction") == "make the caf\u00e9 sign red"
    assert unicodedata.is_normalized("NFC", normalise_text(decomposed, "caption"))


def test_other_spaces_become_plain_and_the_ends_are_trimmed() -> None:
    text = "\u3000remove\u00a0the\u2009shuttle\u2028now "
    assert normalise_text(text, "instruction") == "remove the shuttle\nnow"


@pytest.mark.parametrize(
    "text",
    [
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian: the non-joiner is spelling
        "\u0915\u094d\u200d\u0937",  # Devanagari conjunct control
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # family emoji
        "\u2764\ufe0f\u200d\U0001f525",  # heart on fire
        "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # Scotland flag
        "\u05d4\u05e1\u05e8 \u200fabc\u200f",  # Hebrew with right-to-left marks
        "\u0661\u0662\u0663 \u0600\u0661",  # an Arabic number sign prints
    ],
)
def test_characters_that_carry_meaning_are_kept(text: str) -> None:
    assert normalise_text(text, "caption") == text


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x07", "\x7f", "\x85"])
def test_control_characters_are_refused(char: str) -> None:
    with pytest.raises(InvalidTextError, match="control character") as info:
        normalise_text(f"remove{char} the cat", "options.negative_prompt")
    assert info.value.reason == "control" and info.value.position == 6
    assert normalise_text("tabs\tand\nnewlines\r", "caption") == "tabs\tand\nnewlines"


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(InvalidTextError, match="surrogate") as info:
        normalise_text("remove the \ud800cat", "instruction")
    assert info.value.reason == "surrogate"


def test_one_length_limit_counted_after_normalising() -> None:
    assert len(normalise_text("a" * MAX_TEXT_CHARS, "caption")) == MAX_TEXT_CHARS
    assert normalise_text("\u200b" * 5000 + "remove it", "instruction") == "remove it"
    with pytest.raises(InvalidTextError, match="2,001 characters; the limit is 2,000") as info:
        normalise_text("a" * (MAX_TEXT_CHARS + 1), "caption")
    assert info.value.reason == "too_long"


@pytest.mark.parametrize(
    ("data", "offset"),
    [(b"remove the caf\xe9", 14), (b"\xff\xferemove", 0), (b"remove \xc3", 7),
     (b"remove \xed\xa0\x80", 7)],  # Latin-1, UTF-16 BOM, cut sequence, encoded surrogate
)
def test_invalid_utf8_is_refused_not_read_as_latin1(data: bytes, offset: int) -> None:
    with pytest.raises(InvalidTextError, match="not valid UTF-8") as info:
        decode_text(data, "instruction")
    assert (info.value.reason, info.value.position) == ("utf8", offset)


def test_valid_utf8_bytes_are_normalised() -> None:
    data = "\ufeffmake the caf\u00e9 sign red".encode()
    assert decode_text(data, "instruction") == "make the caf\u00e9 sign red"


def test_the_error_keeps_its_fields_across_processes() -> None:
    with pytest.raises(InvalidTextError) as info:
        normalise_text("a\u202eb", "caption")
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.field, copy.reason, copy.character, str(copy)) == (
        "caption", "bidi", "U+202E", str(info.value))


def test_non_text_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="must be text"):
        normalise_text(42, "instruction")  # type: ignore[arg-type]
