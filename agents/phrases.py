"""Small text utilities shared by the rule parser and the agents: noun phrases and refusals."""

from __future__ import annotations

import re

MAX_OBJECT_WORDS = 5


def vocab(text: str) -> frozenset[str]:
    """A word set written as one space-separated string (easier to read and extend)."""
    return frozenset(text.split())


DETERMINERS = vocab("a an the this that these those my your his her its our their some any all both each every "
    "another such")
PRONOUNS = vocab("it them this that him her these those they one")
PREPOSITIONS = (
    "on", "in", "at", "near", "next", "beside", "behind", "under", "underneath", "below",
    "above", "over", "from", "by", "with", "inside", "into", "onto", "to", "across", "along",
    "between", "around", "against", "among", "out", "off", "toward", "towards", "who", "which",
    "that", "so", "because", "for", "and", "but", "while", "as", "if", "without", "like",
)
NOUNS_ENDING_IN_ING = vocab("building painting clothing ceiling ring king wedding string evening morning swing wing "
    "sling pudding earring railing awning sibling icing lightning drawing thing something "
    "nothing everything anything ping spring bedding stuffing frosting sapling duckling "
    "darling dumpling filling siding flooring lighting carving ceiling")
NOUNS_ENDING_IN_ED = vocab("speed steed seed breed shred flowerbed seabed hundred riverbed hotbed sofabed bobsled "
    "homestead watershed")
_TRAILING_NOISE = re.compile(
    r"\b(please|pls|plz|thanks|thank you|for me|if possible|if you can|and nothing else|"
    r"nothing else|as well|too|entirely|completely|altogether)\b"
)
_REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|sorry,|i apologi[sz]e|i cannot|i can'?t|i can not|i'?m unable|"
    r"i am unable|unable to (?:help|assist|comply)|as an ai|as a language model|"
    r"i'?m not able|i am not able|i won'?t|i will not)\b",
    re.IGNORECASE,
)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9][a-z0-9'\-]*", text.lower().replace("’", "'"))


def normalise_noun_phrase(text: str | None, max_words: int = MAX_OBJECT_WORDS) -> str | None:
    """Lower-case noun phrase without articles, trailing clauses or location phrases; <= 5 words.

    "the white cat on the sofa" -> "white cat"; "those ugly wires" -> "ugly wires".
    Returns None when nothing nameable is left.
    """
    if not text:
        return None
    tokens = words(_TRAILING_NOISE.sub(" ", text.lower()))
    while tokens and (tokens[0] in DETERMINERS or tokens[0] == "of"):
        tokens = tokens[1:]
    kept: list[str] = []
    for index, token in enumerate(tokens):
        if index > 0 and token.endswith("ed") and len(token) >= 5 and token not in NOUNS_ENDING_IN_ED:
            break
        if index > 0 and token in PREPOSITIONS:
            break
        if index > 0 and token.endswith("ing") and token not in NOUNS_ENDING_IN_ING:
            break
        if token in DETERMINERS and index > 0:
            break
        kept.append(token)
    kept = [t.strip("'-") for t in kept if t.strip("'-")]
    if not kept:
        return None
    return " ".join(kept[:max_words])


def is_pronoun(text: str | None) -> bool:
    return bool(text) and text.strip().lower() in PRONOUNS


def looks_like_refusal(text: str) -> bool:
    """True for apologies and refusals ("I'm sorry", "I cannot", "as an AI") that are no caption."""
    return bool(_REFUSAL.search(text or ""))


def with_article(phrase: str) -> str:
    """'corgi' -> 'a corgi'; phrases that already start with a determiner or a number are kept."""
    tokens = phrase.split()
    if not tokens or tokens[0] in DETERMINERS or tokens[0].isdigit():
        return phrase
    if tokens[-1].endswith("s") and not tokens[-1].endswith("ss"):
        return phrase
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase
