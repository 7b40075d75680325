"""Instruction perturbations: the same request, phrased the way different people type it.

Each family is a small pure function `(instruction, rng) -> str` that keeps the request's meaning
(same edit, same object) while changing its surface. Randomness comes only from the
`random.Random` passed in, so a (seed, item, family, index) always yields the same text, in any
process. `make_variants` is what the runner calls; `FAMILIES` is the registry `--perturb` reads.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

Perturbation = Callable[[str, random.Random], str]
CANONICAL = "canonical"
"""Family name of the unperturbed instruction every variant is compared with."""

# --- a tiny parse of "<verb> <object> <rest>" ------------------------------------------------

_VERB_GROUPS: dict[str, tuple[str, ...]] = {
    "remove": ("remove", "erase", "delete", "get rid of", "take out", "eliminate", "wipe out"),
    "add": ("add", "put", "insert", "place", "draw"),
    "change": ("change", "turn", "transform", "convert", "replace", "swap"),
    "make": ("make", "render"),
}
_SYNONYMS: dict[str, tuple[str, ...]] = {
    # Only swaps that stay grammatical with the same rest of the sentence.
    "remove": ("erase", "delete", "get rid of", "take out", "eliminate", "wipe out", "remove"),
    "erase": ("remove", "delete", "get rid of", "take out", "wipe out"),
    "delete": ("remove", "erase", "get rid of", "take out"),
    "get rid of": ("remove", "erase", "delete", "eliminate"),
    "take out": ("remove", "erase", "delete", "get rid of"),
    "eliminate": ("remove", "erase", "delete"),
    "wipe out": ("remove", "erase", "delete"),
    "add": ("put", "insert", "place", "draw"),
    "put": ("add", "place", "insert"),
    "insert": ("add", "put", "place"),
    "place": ("add", "put", "insert"),
    "draw": ("add", "put", "paint"),
    "change": ("turn", "transform", "convert", "switch"),
    "turn": ("change", "transform", "convert"),
    "transform": ("change", "turn", "convert"),
    "convert": ("change", "turn", "transform"),
    "replace": ("swap", "substitute", "switch"),
    "swap": ("replace", "switch"),
    "make": ("render", "give me a version where you make"),
}
_ALL_VERBS = sorted({v for group in _VERB_GROUPS.values() for v in group}, key=len, reverse=True)
_DETERMINERS = ("the", "a", "an", "this", "that", "these", "those", "my", "his", "her", "its")
_STOP = {
    "to",
    "into",
    "with",
    "by",
    "on",
    "in",
    "from",
    "at",
    "near",
    "under",
    "over",
    "behind",
    "above",
    "below",
    "next",
    "of",
    "for",
    "and",
    "so",
    "as",
    "look",
    "looks",
    "like",
    "but",
}


@dataclass(frozen=True)
class Parsed:
    """An instruction split into its lead verb, object phrase and the rest ('' when absent)."""

    verb: str
    obj: str
    rest: str
    end: str  # trailing punctuation

    @property
    def noun(self) -> str:
        """The object phrase without its determiner ("the red car" -> "red car")."""
        words = self.obj.split()
        if words and words[0].lower() in _DETERMINERS:
            words = words[1:]
        return " ".join(words)

    @property
    def pronoun(self) -> str:
        head = self.noun.split()[-1] if self.noun else ""
        plural = head.endswith("s") and not head.endswith(("ss", "us", "is"))
        return "them" if plural else "it"


def parse(instruction: str) -> Parsed:
    """Best-effort split; an instruction without a known lead verb gets `verb=''`."""
    text = " ".join(instruction.strip().split())
    match = re.match(r"^(.*?)([.!?]*)$", text)
    body, end = (match.group(1), match.group(2)) if match else (text, "")
    lower = body.lower()
    verb = next((v for v in _ALL_VERBS if lower == v or lower.startswith(v + " ")), "")
    if not verb:
        return Parsed("", "", body, end)
    words = body[len(verb) :].split()
    obj: list[str] = []
    if words and words[0].lower() in ("it", "everything", "them"):
        obj = [words[0]]
    elif words:
        # Determiner plus words up to a preposition; for "make X Y" the last word is Y.
        limit = len(words) - 1 if verb in ("make", "render") and len(words) > 1 else len(words)
        for index, word in enumerate(words[:limit]):
            if index > 0 and word.lower().strip(",") in _STOP:
                break
            obj.append(word)
            if word.endswith(","):
                break
            if index >= 3:
                break
    rest = words[len(obj) :]
    return Parsed(verb, " ".join(obj).rstrip(","), " ".join(rest), end)


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part).strip()


def _object_words(instruction: str) -> set[str]:
    parsed = parse(instruction)
    return {word.lower().strip(",.") for word in parsed.noun.split()}


# --- the families --------------------------------------------------------------------------


def synonyms(instruction: str, rng: random.Random) -> str:
    """Swap the lead verb for another of the same meaning ("remove" -> "get rid of")."""
    parsed = parse(instruction)
    if not parsed.verb:
        return paraphrase(instruction, rng)
    options = [v for v in _SYNONYMS.get(parsed.verb.lower(), ()) if v != parsed.verb.lower()]
    if parsed.verb.lower() == "make" and parsed.rest.lower().startswith("look"):
        options = ["give me a version where you make", "I want you to make"]
    if not options:
        return instruction
    return _join(rng.choice(options), parsed.obj, parsed.rest) + parsed.end


_PARAPHRASE_ANY = (
    "can you {instr}?",
    "I want you to {instr}.",
    "I need you to {instr}.",
    "what I'd like is to {instr}.",
    "the task: {instr}.",
    "edit the photo: {instr}.",
)
_PARAPHRASE_REMOVE = (
    "make {obj} disappear",
    "I don't want {obj} in the picture, remove {pron}",
    "the picture would be better without {obj}, so remove {pron}",
    "remove {obj} from the image",
    "erase {obj} from this photo",
)
_PARAPHRASE_ADD = (
    "add {obj} {rest}, please",
    "I'd like you to add {obj} {rest}",
    "put {obj} {rest} in the picture",
)


def paraphrase(instruction: str, rng: random.Random) -> str:
    """Rewrite the whole request with a template that says the same thing."""
    parsed = parse(instruction)
    body = instruction.strip().rstrip(".!?")
    group = next((g for g, verbs in _VERB_GROUPS.items() if parsed.verb.lower() in verbs), "")
    templates: tuple[str, ...] = _PARAPHRASE_ANY
    if group == "remove" and parsed.obj and not parsed.rest:
        templates = _PARAPHRASE_REMOVE + _PARAPHRASE_ANY[:2]
    elif group == "add" and parsed.obj:
        templates = _PARAPHRASE_ADD + _PARAPHRASE_ANY[:2]
    template = rng.choice(templates)
    text = template.format(
        instr=_lower_first(body), obj=parsed.obj, rest=parsed.rest, pron=parsed.pronoun
    )
    return " ".join(text.split()).replace(" ,", ",")


_POLITE_PREFIX = (
    "please",
    "could you please",
    "would you kindly",
    "hi! please",
    "hey, could you",
    "pls",
    "if it's not too much trouble,",
)
_POLITE_SUFFIX = ("thanks!", "thank you.", "thanks a lot :)", "if you can.", "please.", "ty")
_FILLERS = ("just", "um,", "like,", "basically", "so,", "ok so")


def politeness(instruction: str, rng: random.Random) -> str:
    """Wrap the request in courtesy and filler words ("hey, could you just ... thanks!")."""
    body = _lower_first(instruction.strip().rstrip(".!?"))
    choice = rng.randrange(4)
    if choice == 0:
        return f"{rng.choice(_POLITE_PREFIX)} {body}"
    if choice == 1:
        return f"{body}, {rng.choice(_POLITE_SUFFIX)}"
    if choice == 2:
        return f"{rng.choice(_FILLERS)} {body}"
    return (
        f"{rng.choice(_POLITE_PREFIX)} {rng.choice(_FILLERS)} {body}, {rng.choice(_POLITE_SUFFIX)}"
    )


def typos(instruction: str, rng: random.Random) -> str:
    """One or two keyboard slips (swap, drop, double) inside words, never on a first letter.

    Only words of four letters or more are touched and never their first letter, so the word
    stays recognisable; the object noun gets at most one slip.
    """
    words = instruction.split(" ")
    protected = _object_words(instruction)
    candidates = [i for i, w in enumerate(words) if sum(c.isalpha() for c in w) >= 4]
    if not candidates:
        return instruction
    count = 1 if len(candidates) < 3 else rng.choice((1, 2))
    object_hit = False
    for index in rng.sample(candidates, min(count, len(candidates))):
        is_object = words[index].lower().strip(",.!?") in protected
        if is_object and object_hit:
            continue
        object_hit = object_hit or is_object
        words[index] = _slip(words[index], rng)
    return " ".join(words)


def _slip(word: str, rng: random.Random) -> str:
    letters = [i for i, c in enumerate(word) if c.isalpha() and i > 0]
    kind = rng.choice(("swap", "drop", "double"))
    if kind == "swap":
        pairs = [i for i in letters if i + 1 < len(word) and word[i + 1].isalpha()]
        pairs = [i for i in pairs if word[i] != word[i + 1]]
        if pairs:
            i = rng.choice(pairs)
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        kind = "double"
    if kind == "drop":
        i = rng.choice(letters)
        return word[:i] + word[i + 1 :]
    i = rng.choice(letters)
    return word[: i + 1] + word[i] + word[i + 1 :]


def casing(instruction: str, rng: random.Random) -> str:
    """Change capitalisation and punctuation: "REMOVE THE CAT!!!", "remove the cat...", etc."""
    body = instruction.strip().rstrip(".!?")
    case = rng.choice(("upper", "lower", "title", "capital", "random"))
    if case == "upper":
        body = body.upper()
    elif case == "lower":
        body = body.lower()
    elif case == "title":
        body = body.title()
    elif case == "capital":
        body = body[:1].upper() + body[1:]
    else:
        body = "".join(c.upper() if rng.random() < 0.3 else c.lower() for c in body)
    end = rng.choice(("", ".", "!", "!!!", "...", "?", " .", ";"))
    return body + end


def reorder(instruction: str, rng: random.Random) -> str:
    """Put the object first and refer back to it: "the cat, remove it"."""
    parsed = parse(instruction)
    body = _lower_first(instruction.strip().rstrip(".!?"))
    if not parsed.verb or not parsed.obj or parsed.obj.lower() in ("it", "everything", "them"):
        template = rng.choice(
            ("the whole picture: {b}", "this photo, {b}", "{b} - the whole image")
        )
        return template.format(b=body)
    obj, pron = parsed.obj, parsed.pronoun
    verb = parsed.verb.lower()
    template = rng.choice(
        (
            "{obj}, {verb} {pron} {rest}",
            "{obj}: {verb} {pron} {rest}",
            "as for {obj}, {verb} {pron} {rest}",
            "{obj} - {verb} {pron} {rest}",
        )
    )
    text = template.format(obj=obj, verb=verb, pron=pron, rest=parsed.rest)
    return " ".join(text.split()) + parsed.end


_DISTRACTORS = (
    "I took this photo last summer.",
    "This is for my blog.",
    "The lighting here is nice.",
    "My friend said it looks odd.",
    "It's a picture I really like.",
    "Keep the resolution the same.",
)


def distractor(instruction: str, rng: random.Random) -> str:
    """Add a clause that asks for nothing ("I took this photo last summer.")."""
    body = instruction.strip()
    if not body.endswith((".", "!", "?")):
        body += "."
    clause = rng.choice(_DISTRACTORS)
    return f"{clause} {body}" if rng.random() < 0.5 else f"{body} {clause}"


_OTHER_THINGS = ("sky", "person", "tree", "car", "dog", "wall", "table")


def negation(instruction: str, rng: random.Random) -> str:
    """A negated mention of something else: "don't touch the sky, just remove the cat"."""
    used = {w.lower().strip(",.!?'s") for w in instruction.split()}
    if "background" in used:
        used.add("sky")  # the sky is part of the background: not a safe thing to protect
    things = [t for t in _OTHER_THINGS if t not in used]
    thing = rng.choice(things)
    body = _lower_first(instruction.strip().rstrip(".!?"))
    template = rng.choice(
        (
            "don't touch the {thing}, just {body}",
            "leave the {thing} alone and {body}",
            "{body}, but do not change the {thing}",
            "without changing the {thing}, {body}",
            "the {thing} is fine as it is; {body}",
        )
    )
    return template.format(thing=thing, body=body)


_LONG = (
    "I have a photo here and I would really appreciate it if you could {body}, making sure the "
    "result looks natural and nothing else in the picture changes",
    "so here is what I'm after: I'd like you to {body}, and please keep the rest of the image "
    "exactly the way it is now",
    "Hello! A quick request about this picture, which I took a while ago and want to share: "
    "could you {body}? It would mean a lot, thanks in advance",
)
_TERSE = ("{verb} {noun} {rest}", "{noun}: {verb} {rest}", "{noun} -> {verb} {rest}")


def verbosity(instruction: str, rng: random.Random) -> str:
    """Either as terse as possible ("cat: remove") or a long-winded sentence."""
    parsed = parse(instruction)
    body = _lower_first(instruction.strip().rstrip(".!?"))
    if rng.random() < 0.5 and parsed.verb and parsed.noun:
        terse = rng.choice(_TERSE)
        return " ".join(
            terse.format(verb=parsed.verb.lower(), noun=parsed.noun, rest=parsed.rest).split()
        )
    return rng.choice(_LONG).format(body=body) + "."


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


FAMILIES: dict[str, Perturbation] = {
    "synonyms": synonyms,
    "paraphrase": paraphrase,
    "politeness": politeness,
    "typos": typos,
    "casing": casing,
    "reorder": reorder,
    "distractor": distractor,
    "negation": negation,
    "verbosity": verbosity,
}
"""Every perturbation family by name; `--perturb` takes a comma list of these keys."""


def resolve_families(spec: str | Iterable[str] | None) -> list[str]:
    """Turn "typos,casing" (or None / "all") into a checked list of family names."""
    if spec is None:
        return list(FAMILIES)
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [n for n in names if n]
    if not names or names == ["all"]:
        return list(FAMILIES)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(
            f"unknown perturbation famil{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(map(repr, unknown))}; choose from {', '.join(FAMILIES)}"
        )
    return list(dict.fromkeys(names))


class Variant(BaseModel):
    """One phrasing of an item's instruction; `family == "canonical"` is the original."""

    model_config = ConfigDict(frozen=True)

    family: str
    index: int
    text: str

    @property
    def key(self) -> str:
        return f"{self.family}/{self.index}"


def variant_rng(seed: int, item_id: str, family: str, index: int) -> random.Random:
    """A private generator per (seed, item, family, index): order- and process-independent."""
    return random.Random(f"{seed}:{item_id}:{family}:{index}")


def perturb(family: str, instruction: str, rng: random.Random) -> str:
    """Apply one family by name."""
    return FAMILIES[resolve_families([family])[0]](instruction, rng)


def make_variants(
    item_id: str, instruction: str, families: Iterable[str], n: int, seed: int
) -> list[Variant]:
    """The canonical instruction followed by `n` variants of each family, deterministically."""
    variants = [Variant(family=CANONICAL, index=0, text=instruction)]
    for family in resolve_families(list(families)):
        for index in range(n):
            rng = variant_rng(seed, item_id, family, index)
            variants.append(
                Variant(family=family, index=index, text=FAMILIES[family](instruction, rng))
            )
    return variants
