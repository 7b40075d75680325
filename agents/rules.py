"""A deterministic instruction parser: the fallback when no VLM answers, and the eval baseline.

No model and no state: regular phrasings are matched clause by clause after politeness, filler
and negated clauses ("don't touch the sky") are set aside; typos in the leading verb and in
"background" are forgiven by fuzzy matching. It fills category, object and, where the wording
says, the target caption.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from agents.phrases import is_pronoun, normalise_noun_phrase, vocab, with_article, words
from tools.types import EditCategory, EditPlan

# --- vocabulary -------------------------------------------------------------------------------

REMOVE_VERBS = vocab("remove erase delete eliminate clear ditch lose wipe scrub omit hide crop")
REMOVE_PHRASES = (
    "get rid of", "take out", "take away", "take off", "cut out", "edit out", "rub out",
    "do away with", "wipe out", "wipe away", "clean up", "crop out", "paint out",
)
ADD_VERBS = vocab("add insert include put place draw paint sketch introduce attach stick plant "
                      "create position set move")
CHANGE_VERBS = vocab("change turn transform convert morph alter modify")
SWAP_VERBS = vocab("replace swap switch exchange substitute")
COLOR_VERBS = vocab("color colour recolor recolour paint dye tint")
MAKE_VERBS = frozenset(["make"])
GIVE_VERBS = frozenset(["give"])
ALL_VERBS = sorted(
    REMOVE_VERBS | ADD_VERBS | CHANGE_VERBS | SWAP_VERBS | COLOR_VERBS | MAKE_VERBS | GIVE_VERBS
)

WHOLE_IMAGE = vocab("it this image photo picture pic scene everything whole entire view shot photograph "
    "painting frame")
GLOBAL_ATTRIBUTES = vocab("season weather time day lighting light style mood atmosphere look tone colors colours "
    "color colour grading filter contrast brightness exposure saturation vibe")
GLOBAL_KEYWORDS = vocab(
    "winter summer autumn spring wintry snowy snowing rainy raining foggy misty stormy sunny "
    "cloudy overcast hazy night nighttime daytime sunset sunrise dawn dusk evening twilight "
    "midnight painting watercolor watercolour sketch pencil cartoon anime manga cyberpunk "
    "steampunk vintage retro sepia monochrome grayscale greyscale noir impressionist "
    "impressionism style filter cinematic polaroid hdr brighter darker warmer cooler lighting "
    "contrast saturation exposure brightness"
)
GLOBAL_PHRASES = (
    "black and white", "golden hour", "pixel art", "oil painting", "van gogh", "pop art",
    "3d render", "time of day", "in the style of", "look like a painting",
)
GLOBAL_ADDABLES = vocab("filter effect look tone grain vignette style glow tint")
SCENE_NOUNS = vocab("beach forest desert city skyline mountains mountain ocean sea space jungle garden office "
    "library street meadow field island landscape studio room park snow sky moon mars "
    "countryside village town underwater cave castle stadium")
BACKGROUND_WORDS = ("background", "backdrop", "backgrounds")
NEGATION_STARTS = (
    "don't", "dont", "do not", "never", "not ", "no need", "without changing", "without touching",
    "without altering", "without modifying", "without affecting", "leave", "keep", "preserve",
    "instead of", "but not", "avoid", "ignore",
)
FILLER_STARTS = (
    "please", "pls", "plz", "kindly", "could you", "can you", "would you", "will you", "could u",
    "can u", "i'd like you to", "i would like you to", "i want you to", "i need you to",
    "help me", "go ahead and", "try to", "just", "only", "simply", "now", "then", "also", "and",
    "but", "so", "ok", "okay", "hey", "hi", "let's", "lets", "let us", "i want to", "i'd like to",
    "i would like to", "we need to", "you should", "i need to", "maybe", "quickly",
)
THERE_IS = re.compile(r"^(?:there should be|there needs to be|there must be|i want|i'd like|"
                      r"i would like|i need|we need)\s+(?P<y>(?:a|an|some|two|three|\d+)\s.+)$")
PARTICLES = ("out", "away", "off")


@dataclass
class _Parse:
    category: EditCategory
    object: str | None = None
    target: str | None = None
    confidence: float = 0.8
    rationale: str = ""


# --- public API -------------------------------------------------------------------------------


def parse_instruction(text: str) -> EditPlan:
    """Rule-based `EditPlan` (source="rules") for the usual ways of asking for an edit."""
    clauses = _clauses(_normalise(text))
    topic, kept = None, None
    active: list[str] = []
    for clause in clauses:
        if _is_negated(clause):
            kept = kept or _kept_subject(clause)
            continue
        active.append(clause)
    result: _Parse | None = None
    for clause in active:
        result = _parse_clause(clause)
        if result is not None:
            break
        topic = topic or normalise_noun_phrase(clause)
    if result is None:
        result = _fallback(" ".join(active) or " ".join(clauses))
    if is_pronoun(result.object):
        result.object = topic
        local = result.category is EditCategory.LOCAL
        if local and topic and result.target and len(result.target.split()) == 1:
            result.target = _attribute_caption(topic, result.target)
        if result.object is None and result.category is EditCategory.LOCAL:
            result.category = EditCategory.GLOBAL
    elif topic and result.object is None and result.category is EditCategory.REMOVAL:
        result.object = topic
    if result.category is EditCategory.BACKGROUND and result.object is None:
        result.object = kept
    if result.category in (EditCategory.ADDITION, EditCategory.GLOBAL):
        result.object = None
    plan = EditPlan(
        instruction=text,
        category=result.category,
        object=result.object,
        target_caption=result.target,
        confidence=result.confidence,
        rationale=result.rationale or f"rule match: {result.category.value}",
        source="rules",
    )
    if plan.target_caption is None:
        plan.target_caption = caption_for_plan(plan)
    return plan


def caption_for_plan(plan: EditPlan) -> str:
    """A diffusion prompt derived from a plan without a model; never empty, never an apology."""
    if plan.target_caption and plan.target_caption.strip():
        return plan.target_caption.strip()
    category = plan.category
    if category is EditCategory.REMOVAL:
        return "background"
    if category is EditCategory.BACKGROUND:
        return "a plain background"
    if category is EditCategory.ADDITION:
        return with_article(plan.object) if plan.object else "an object"
    described = " ".join(_normalise(plan.instruction).split()[:12])
    if category is EditCategory.GLOBAL:
        return f"the scene, {described}" if described else "the scene"
    return f"{plan.object}, {described}" if plan.object else (described or "the object")


# --- normalisation and clauses ----------------------------------------------------------------


def _normalise(text: str) -> str:
    text = str(text).lower().replace("’", "'").replace("‘", "'").replace("“", '"')
    text = text.replace("”", '"').replace("`", "'")
    text = re.sub(r"[\"()\[\]{}*_]", " ", text)
    text = re.sub(r"\s+", " ", text)
    return text.strip()


def _clauses(text: str) -> list[str]:
    parts = re.split(r"[.!?;,\n]+|\s+[-–—]+\s+|\s+(?:but|then|and then|and also|and just|and only)\s+", text)
    clauses: list[str] = []
    for part in parts:
        pieces = re.split(r"\s+and\s+(?=(?:" + "|".join(ALL_VERBS) + r"|don't|do not)\b)", part)
        clauses += [_strip_filler(p) for p in pieces]
    return [c for c in clauses if c]


def _strip_filler(clause: str) -> str:
    clause = clause.strip(" '\"-:")
    changed = True
    while changed:
        changed = False
        for filler in FILLER_STARTS:
            if clause == filler:
                return ""
            if clause.startswith(filler + " "):
                clause = clause[len(filler) + 1 :].lstrip()
                changed = True
    # "i'd like the bike to be red": a wish about something named, not an addition.
    clause = re.sub(r"^(?:i'd like|i would like|i want|i need)\s+(?=(?:the|my|his|her|this|it)\b)",
                    "", clause)
    clause = re.sub(r"\s+(?:please|pls|plz|thanks|thank you|for me|if possible)$", "", clause)
    return clause.strip(" '\"-:")


def _is_negated(clause: str) -> bool:
    return clause.startswith(NEGATION_STARTS)


def _kept_subject(clause: str) -> str | None:
    """'keep the cat' / "don't change the person" name the subject a background edit keeps."""
    match = re.match(
        r"^(?:keep|leave|preserve|(?:don't|dont|do not|never)\s+(?:change|touch|alter|modify|edit)"
        r")\s+(?P<x>.+)$",
        clause,
    )
    if not match:
        return None
    phrase = normalise_noun_phrase(match.group("x"))
    if phrase is None or is_pronoun(phrase) or _mentions_background(phrase):
        return None
    return phrase


def _fix_typos(clause: str) -> str:
    tokens = clause.split()
    if not tokens:
        return clause
    first = tokens[0]
    known = first in ALL_VERBS or first in ("get", "take", "cut", "do", "there", "set", "move")
    if not known and len(first) >= 2 and first.isalpha():
        match = difflib.get_close_matches(first, ALL_VERBS, n=1, cutoff=0.75)
        if match:
            tokens[0] = match[0]
    for index, token in enumerate(tokens):
        bare = token.strip(":")
        if len(bare) >= 7 and bare not in BACKGROUND_WORDS and difflib.get_close_matches(
            bare, ["background", "backdrop"], n=1, cutoff=0.85
        ):
            tokens[index] = token.replace(bare, "background")
    return " ".join(tokens)


# --- clause grammar ---------------------------------------------------------------------------


def _parse_clause(clause: str) -> _Parse | None:
    clause = _fix_typos(clause)
    tokens = clause.split()
    if not tokens:
        return None
    if _mentions_background(clause):
        parsed = _background(clause)
        if parsed is not None:
            return parsed
    verb, rest = tokens[0], " ".join(tokens[1:])
    for phrase in REMOVE_PHRASES:
        if clause.startswith(phrase + " "):
            return _removal(clause[len(phrase) + 1 :])
    if verb in REMOVE_VERBS:
        return _removal(rest)
    match = re.match(r"^(?:take|wipe|cut|rub|edit|crop|paint|clear) (?P<x>.+) (?:out|away|off)$",
                     clause)
    if match:
        return _removal(match.group("x"))
    match = re.match(r"^make (?P<x>.+?) (?:disappear|vanish|go away)$", clause)
    if match:
        return _removal(match.group("x"))
    if verb in SWAP_VERBS:
        return _swap(verb, rest)
    if verb in CHANGE_VERBS:
        return _change(rest)
    if verb in MAKE_VERBS:
        return _make(rest)
    if verb in GIVE_VERBS:
        return _give(rest)
    if verb in COLOR_VERBS and _definite(rest):
        return _color(rest)
    if verb in ADD_VERBS:
        return _addition(verb, rest)
    match = THERE_IS.match(clause)
    if match:
        return _addition("add", match.group("y"))
    match = re.match(r"^(?P<x>.+?) (?:should|must|needs to|has to|to) (?:be|look|become) (?P<y>.+)$",
                     clause)
    if match and not match.group("x").startswith("there"):
        return _make_pair(match.group("x"), re.sub(r"^(?:made of|like)\s+", "", match.group("y")))
    match = re.search(r"\bwithout (?P<x>(?:the|any|those|these|all)\b.+)$", clause)
    if match:
        return _removal(match.group("x"))
    return None


def _mentions_background(text: str) -> bool:
    return any(re.search(rf"\b{w}\b", text) for w in BACKGROUND_WORDS)


def _background(clause: str) -> _Parse | None:
    tokens = clause.split()
    removal = tokens[0] in REMOVE_VERBS or clause.startswith(REMOVE_PHRASES)
    if removal:
        subject = re.sub(r"^(?:" + "|".join(REMOVE_PHRASES) + r"|\w+)\s+", "", clause)
        if normalise_noun_phrase(subject) not in BACKGROUND_WORDS:
            return None  # "remove the person in the background" is a removal
        return _Parse(EditCategory.BACKGROUND, None, "a plain white background", 0.8)
    subject = None
    match = re.search(r"\bbehind (?P<s>(?:the|my|his|her|this|that)\s.+?)(?:\s+(?:with|to|for)\s|$)",
                      clause)
    if match:
        subject = normalise_noun_phrase(match.group("s"))
    match = re.match(r"^(?:put|place|set|move)\s+(?P<s>.+?)\s+(?:on|in|into|onto|at|against)\s+",
                     clause)
    if match and not is_pronoun(match.group("s").strip()):
        subject = normalise_noun_phrase(match.group("s"))
    target = None
    for pattern in (
        r"\bbackground\s*(?:to|into|with|for|:|should be|to be|must be|is|as|becomes?)\s+(?P<y>.+)$",
        r"\b(?:to|with|for|into)\s+(?P<y>.+?)\s*$",
        r"^(?:put|place|set|move)\s+.+?\s+(?:on|in|into|onto|at|against)\s+(?P<y>.+?)$",
        r"^make (?:the )?background (?P<y>.+)$",
        r"^blur (?:the )?background$",
    ):
        match = re.search(pattern, clause)
        if match:
            target = match.groupdict().get("y") or "a blurred background"
            break
    if target:
        target = re.sub(r"\s+(?:background|backdrop)$", "", target).strip()
        if clause.startswith("make") and len(target.split()) == 1:
            target = f"a plain {target} background"
    return _Parse(EditCategory.BACKGROUND, subject, target or None, 0.85)


def _removal(rest: str) -> _Parse:
    rest = rest.strip()
    for particle in PARTICLES:
        if rest.startswith(particle + " "):
            rest = rest[len(particle) + 1 :]
        rest = re.sub(rf"\s+{particle}$", "", rest)
    obj = normalise_noun_phrase(rest)
    location = re.search(r"\b(?:from|on|off) (?:the|my|this|that|his|her) (?P<l>[a-z ]+)$", rest)
    target = "background"
    if location and not re.search(r"\b(?:photo|image|picture|pic|shot|scene)$", location["l"]):
        place = normalise_noun_phrase(location["l"])
        target = f"empty {place}" if place else target
    return _Parse(EditCategory.REMOVAL, obj, target, 0.85)


def _split_pair(rest: str, separators: str) -> tuple[str, str | None]:
    match = re.match(rf"^(?P<x>.+?)\s+(?:{separators})\s+(?P<y>.+)$", rest)
    if match:
        return match.group("x"), match.group("y")
    return rest, None


def _whole_image(phrase: str) -> bool:
    tokens = [t for t in words(phrase) if t not in ("the", "a", "an", "whole", "entire", "this")]
    return (not tokens) or all(t in WHOLE_IMAGE for t in tokens) or phrase.strip() in ("it", "this")


def _global_subject(phrase: str) -> bool:
    tokens = words(phrase)
    content = [t for t in tokens if t not in ("the", "a", "an", "of", "this", "whole", "entire")]
    return bool(content) and (
        all(t in GLOBAL_ATTRIBUTES or t in WHOLE_IMAGE for t in content)
        or (len(content) == 1 and content[0] in ("day", "night", "daytime", "nighttime"))
    )


def _categorise_change(x: str, y: str | None, confidence: float = 0.85) -> _Parse:
    x = re.sub(r"^(?:the )?(?:colou?r|shade|texture|material) of ", "", x.strip())
    if _mentions_background(x):
        return _Parse(EditCategory.BACKGROUND, None, y, confidence)
    if is_pronoun(x.strip()):
        # "make it X": local if "it" names an earlier topic, else the whole picture.
        return _Parse(EditCategory.LOCAL, x.strip(), y, confidence - 0.1)
    if _whole_image(x) or _global_subject(x):
        return _Parse(EditCategory.GLOBAL, None, y, confidence)
    return _Parse(EditCategory.LOCAL, normalise_noun_phrase(x), y, confidence)


def _swap(verb: str, rest: str) -> _Parse:
    if verb == "substitute":
        y, x = _split_pair(rest, "for")
        return _categorise_change(x or rest, y if x else None)
    x, y = _split_pair(rest, "with|for|by|to|into")
    return _categorise_change(x, y)


def _change(rest: str) -> _Parse:
    if rest.startswith(("to ", "into ")):  # "convert to black and white": the whole picture
        return _categorise_change("the whole image", rest.split(" ", 1)[1])
    x, y = _split_pair(rest, "into|to|in to|as|for")
    return _categorise_change(x, y)


def _make(rest: str) -> _Parse:
    match = re.match(r"^(?P<x>.+?)\s+(?:look|looks|seem|appear|become|into|like)\s+(?P<y>.+)$", rest)
    if match:
        x, y = match.group("x"), match.group("y")
        y = re.sub(r"^(?:like|as if it were|as though)\s+", "", y)
    else:
        x, y = _split_subject(rest)
    return _make_pair(x, y)


def _make_pair(x: str, y: str | None) -> _Parse:
    parsed = _categorise_change(x, y)
    short = y is not None and len(y.split()) <= 2
    local = parsed.category is EditCategory.LOCAL and parsed.object is not None
    if local and short and y and not is_pronoun(parsed.object):
        parsed.target = _attribute_caption(parsed.object, y)
    return parsed


def _split_subject(rest: str) -> tuple[str, str | None]:
    """'the car red' -> ('the car', 'red'); 'it winter' -> ('it', 'winter')."""
    whole = re.match(r"^(?:the |this |that )?(?:whole |entire )?(?:image|photo|picture|pic|scene|"
                     r"photograph|shot|view|frame|everything)\b", rest)
    if whole:
        return whole.group(0), rest[whole.end() :].strip() or None
    tokens = rest.split()
    if not tokens:
        return rest, None
    if tokens[0] in ("it", "this", "them", "everything", "him", "her"):
        return tokens[0], " ".join(tokens[1:]) or None
    if tokens[0] in ("the", "my", "his", "her", "their", "its", "this", "that", "these", "those",
                     "our", "your", "all"):
        # The subject runs through the head noun; the remaining words are the new attribute.
        cut = _head_length(tokens)
        return " ".join(tokens[:cut]), " ".join(tokens[cut:]) or None
    return rest, None


def _head_length(tokens: list[str]) -> int:
    """Where the subject ends in 'the old man younger': before more/less/a/an, else before the
    last word (the new attribute is usually one word)."""
    for index in range(2, len(tokens)):
        if tokens[index] in ("more", "less", "a", "an", "as", "so", "very", "really"):
            return index
    return max(2, len(tokens) - 1) if len(tokens) > 2 else len(tokens)


def _attribute_caption(obj: str, attribute: str) -> str:
    return f"{attribute} {obj}" if len(attribute.split()) == 1 else f"{obj}, {attribute}"


def _give(rest: str) -> _Parse:
    match = re.match(r"^(?P<x>it|this|the \w+(?: \w+)?|him|her|them|my \w+|his \w+)\s+"
                     r"(?P<y>(?:a|an|some|more)\b.+)$", rest)
    if not match:
        return _Parse(EditCategory.LOCAL, normalise_noun_phrase(rest), None, 0.5)
    x, y = match.group("x"), match.group("y")
    if is_pronoun(x) and any(w in GLOBAL_ADDABLES or w in GLOBAL_KEYWORDS for w in words(y)):
        return _Parse(EditCategory.GLOBAL, None, y, 0.8)
    parsed = _categorise_change(x, y, 0.75)
    if parsed.category is EditCategory.LOCAL and parsed.object:
        parsed.target = f"{parsed.object} with {y}"
    return parsed


def _color(rest: str) -> _Parse:
    x, y = _split_subject(rest)
    parsed = _categorise_change(x, y)
    if parsed.category is EditCategory.LOCAL and parsed.object and y and not is_pronoun(x):
        parsed.target = _attribute_caption(parsed.object, y)
    return parsed


def _definite(rest: str) -> bool:
    first = rest.split()[0] if rest.split() else ""
    return first in ("the", "my", "his", "her", "their", "its", "this", "that", "these", "those",
                     "it", "them", "our", "your", "all")


def _addition(verb: str, rest: str) -> _Parse:
    rest = re.sub(r"^(?:in|on)\s+", "", rest)
    thing = re.split(r"\s+(?:on|in|into|onto|at|to|next to|near|beside|behind|above|over|under|"
                     r"by|between|around|inside|across|along)\s+", rest, maxsplit=1)
    added = thing[0].strip()
    added_words = set(words(added))
    if added_words & GLOBAL_ADDABLES or (added_words and added_words <= set(GLOBAL_KEYWORDS)):
        return _Parse(EditCategory.GLOBAL, None, added, 0.75)
    if verb in ("put", "place", "set", "move", "position") and _definite(added) and len(thing) > 1:
        return _Parse(EditCategory.BACKGROUND, normalise_noun_phrase(added), thing[1], 0.7)
    if re.search(r"\bbehind\s+(?:the|my|his|her|this)\b", rest) and (
        set(words(added)) & SCENE_NOUNS
    ):
        subject = re.search(r"\bbehind\s+(?P<s>.+)$", rest)
        return _Parse(EditCategory.BACKGROUND, normalise_noun_phrase(subject["s"]), added, 0.7)
    return _Parse(EditCategory.ADDITION, None, with_article(added) if added else None, 0.85)


def _fallback(text: str) -> _Parse:
    """No verb pattern matched: global if the words name a style/season/time, else a guess."""
    if any(p in text for p in GLOBAL_PHRASES) or set(words(text)) & set(GLOBAL_KEYWORDS):
        return _Parse(EditCategory.GLOBAL, None, None, 0.6, "global keywords, no verb pattern")
    obj = normalise_noun_phrase(text)
    if obj:
        return _Parse(EditCategory.LOCAL, obj, None, 0.3, "no rule matched; guessed a local edit")
    return _Parse(EditCategory.GLOBAL, None, None, 0.2, "no rule matched")
