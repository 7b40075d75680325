"""Kind 8: the rule planner refuses, in one sentence, what it cannot understand, instead of
executing a confidence-0.2 "global" plan or a "local" guess; invisible characters never change
a plan; the refusal is a typed request error a graph can report (not an agent failure that a
VLM-to-rules fallback would swallow)."""

from __future__ import annotations

import pickle

import pytest

from agents.errors import AgentError, InstructionNotUnderstoodError
from agents.language import foreign_script, latin_language
from agents.rules import LEXICON, parse_instruction
from tools.errors import InvalidRequestError, InvalidTextError
from tools.types import EditCategory

FOREIGN_SCRIPTS = {
    "\u0623\u0632\u0644 \u0627\u0644\u0642\u0637\u0629 \u0645\u0646 \u0627\u0644\u0635\u0648\u0631\u0629": "Arabic",
    "\u5220\u9664\u56fe\u7247\u91cc\u7684\u732b": "Han (Chinese characters)",
    "\u628a\u5929\u7a7a\u53d8\u6210\u7d2b\u8272": "Han (Chinese characters)",
    "\u0443\u0434\u0430\u043b\u0438 \u043a\u043e\u0448\u043a\u0443 \u0441 \u0444\u043e\u0442\u043e": "Cyrillic",
    "\u0441\u0434\u0435\u043b\u0430\u0439 \u043d\u0435\u0431\u043e \u0441\u0438\u043d\u0438\u043c": "Cyrillic",
    "\u732b\u3092\u6d88\u3057\u3066\u304f\u3060\u3055\u3044": "Japanese (kana and Han)",
    "\uace0\uc591\uc774\ub97c \uc9c0\uc6cc \uc8fc\uc138\uc694": "Hangul (Korean)",
    "\u03b1\u03c6\u03b1\u03af\u03c1\u03b5\u03c3\u03b5 \u03c4\u03b7 \u03b3\u03ac\u03c4\u03b1": "Greek",
    "\u05d4\u05e1\u05e8 \u05d0\u05ea \u05d4\u05d7\u05ea\u05d5\u05dc": "Hebrew",
    "\u092c\u093f\u0932\u094d\u0932\u0940 \u0915\u094b \u0939\u091f\u093e\u0913": "Devanagari",
    "remove \u043a\u043e\u0448\u043a\u0443 \u0441 \u0444\u043e\u0442\u043e\u0433\u0440\u0430\u0444\u0438\u0438": "Cyrillic",
}
FOREIGN_LANGUAGES = {
    "Entferne die Katze aus dem Bild": "German",
    "Mach den Himmel blau": "German",
    "Ersetze den Hund durch eine Katze": "German",
    "Supprime le chat de l'image": "French",
    "Remplace le chien par un chat": "French",
    "Enlève la voiture rouge s'il vous plaît": "French",
    "Elimina el gato de la foto": "Spanish",
    "Cambia el cielo por un atardecer": "Spanish",
    "Rimuovi il gatto dalla foto": "Italian",
    "Verwijder de kat van de foto": "Dutch",
    "remove le chat de la photo": "French",
}
NO_WORDS = ["\U0001f431\u274c", "\U0001f525\U0001f525\U0001f525", "!!! ???", "42", "\u2764\ufe0f\u200d\U0001f525"]


@pytest.mark.parametrize("text", sorted(FOREIGN_SCRIPTS))
def test_another_script_is_refused_naming_it(text: str) -> None:
    with pytest.raises(InstructionNotUnderstoodError) as info:
        parse_instruction(text)
    error = info.value
    assert (error.reason, error.script) == ("script", FOREIGN_SCRIPTS[text])
    assert FOREIGN_SCRIPTS[text] in str(error) and "VLM planner" in str(error)


@pytest.mark.parametrize("text", sorted(FOREIGN_LANGUAGES))
def test_another_latin_script_language_is_refused_naming_it(text: str) -> None:
    with pytest.raises(InstructionNotUnderstoodError) as info:
        parse_instruction(text)
    assert info.value.language == FOREIGN_LANGUAGES[text]
    assert info.value.reason in ("language", "no_rule")
    assert f"reads as {FOREIGN_LANGUAGES[text]}" in str(info.value)


@pytest.mark.parametrize("text", NO_WORDS)
def test_symbols_only_are_refused(text: str) -> None:
    with pytest.raises(InstructionNotUnderstoodError) as info:
        parse_instruction(text)
    assert info.value.reason == "no_words"


@pytest.mark.parametrize(
    "text",
    ["the red car", "hello there", "don't touch the sky", "the sky is fine as it is",
     "what a lovely photo", "thanks"],
)
def test_english_without_an_edit_is_refused_not_guessed(text: str) -> None:
    with pytest.raises(InstructionNotUnderstoodError) as info:
        parse_instruction(text)
    assert info.value.reason == "no_rule" and info.value.language is None


@pytest.mark.parametrize(
    "invisible", ["\ufeff", "\u200b", "\u200d", "\u2060", "\u00ad", "\u200e", "\U000e0020"]
)
def test_invisible_characters_never_change_the_plan(invisible: str) -> None:
    clean = parse_instruction("remove the shuttle")
    for text in (f"{invisible}remove the shuttle", f"remove the shut{invisible}tle",
                 f"remove{invisible} the shuttle{invisible}"):
        plan = parse_instruction(text)
        assert (plan.category, plan.object) == (EditCategory.REMOVAL, "shuttle")
        assert plan.model_dump() == clean.model_dump()
        assert plan.instruction == "remove the shuttle"  # what is stored is what was planned


def test_a_bidirectional_override_is_dropped_and_the_logical_text_planned() -> None:
    """Surfaces refuse it before storing (`normalise_text`); the planner plans, and its plan
    shows, the logical text, never what an override makes it look like."""
    plan = parse_instruction("remove the \u202eelttuhs\u202c")
    assert (plan.object, plan.instruction) == ("elttuhs", "remove the elttuhs")


def test_text_no_surface_accepts_is_refused_by_the_planner_too() -> None:
    with pytest.raises(InvalidTextError) as info:
        parse_instruction("remove the \x1b[31mcat")
    assert info.value.reason == "control"


@pytest.mark.parametrize(
    ("text", "category", "obj"),
    [
        ("add a sign saying 'la vie est belle'", "addition", None),
        ('add a banner that says "Herzlich Willkommen und viel Spaß"', "addition", None),
        ("remove the croissant", "removal", "croissant"),
        ("turn it into a Van Gogh painting", "global", None),
        ("replace the sign with one that says \u00abbienvenue\u00bb", "local", "sign"),
        ("remove the caf\u00e9 sign", "removal", "caf\u00e9 sign"),
        ("remove the cat from the photo please \U0001f64f", "removal", "cat"),
    ],
)
def test_english_with_foreign_words_or_symbols_still_plans(text, category, obj) -> None:
    plan = parse_instruction(text)
    assert plan.category.value == category
    if obj is not None:
        assert plan.object == obj


def test_the_refusal_is_a_request_error_not_an_agent_failure() -> None:
    """The graph's `auto` planner turns `AgentError`s into a fallback to the rules; the rules'
    own refusal must reach the caller as a request problem instead (422 on HTTP)."""
    with pytest.raises(InstructionNotUnderstoodError) as info:
        parse_instruction("\u5220\u9664\u732b")
    error = info.value
    assert isinstance(error, InvalidRequestError) and not isinstance(error, AgentError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.script, str(copy)) == (error.reason, error.script, str(error))
    assert "--" not in str(error)  # no CLI flags: each surface words its own hint


def test_a_vlm_plans_caption_survives_an_instruction_the_rules_cannot_read() -> None:
    """The caption agent falls back to the rules' caption when the model fails; for a German
    instruction (planned by the VLM) it must build the caption from the VLM's plan."""
    from agents.caption import _rule_caption

    caption = _rule_caption("Entferne die Katze", EditCategory.REMOVAL, "Katze")
    assert caption == "background"


def test_the_language_guess_needs_evidence() -> None:
    assert latin_language("remove the dog from the picture", LEXICON) is None
    assert latin_language("entferne den hund", LEXICON) == "German"
    assert latin_language("hund", LEXICON) is None
    assert latin_language("hund", LEXICON, strict=False) == "German"
    assert foreign_script("remove the cat") is None
    assert foreign_script("remove the \u732b") is None  # one foreign letter in English


@pytest.mark.parametrize("text", ["ｒｅｍｏｖｅ ｔｈｅ ｃａｔ", "remove the cat\u2060", "re\u00admove the cat"])
def test_compatibility_and_invisible_forms_plan_as_what_they_show(text):
    """Fullwidth letters (an IME's output), a word joiner, a soft hyphen: "remove the cat"."""
    plan = parse_instruction(text)
    assert (plan.category, plan.object) == (EditCategory.REMOVAL, "cat")
