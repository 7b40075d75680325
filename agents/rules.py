"""A deterministic instruction parser: the fallback when no VLM answers, and the eval baseline.

No model and no state: regular phrasings are matched clause by clause after politeness, filler
and negated clauses ("don't touch the sky") are set aside. It fills category, object and, where
the wording says, the target caption. What it forgives:

- typos: a word outside the edit vocabulary (verbs, function words, about 750 common object
  nouns in `agents.phrases.OBJECT_NOUNS`) that is one keyboard slip (a dropped, doubled or
  swapped letter; a wrong letter in longer words) from exactly one vocabulary word is read as
  that word, first letter kept ("remvoe the hemlet" -> "remove the helmet");
- the object named first: "the cat, remove it", "as for the cat, ...", "the cat - get rid of
  it", "cat: remove", "cat -> make blue" refer the verb back to that noun phrase;
- long requests: the edit is found after "could you", "if you could", "I'd like you to",
  "is to", "where you" inside a clause, and "give me a version where you ..." is unwrapped;
- "I don't want the X in the picture" and "the X has to go" are removals.

What it refuses, in one sentence (`InstructionNotUnderstoodError`, naming the script or the
language when it can), instead of guessing: text in another script (Arabic, Chinese, Russian...),
text in another Latin-script language (German, French...; `agents.language`), text with no
words (emoji only), and English with no edit wording it knows (a bare "the cat": what should
happen to it?). A VLM planner reads all of these. The text is first normalised as every surface
stores it (`tools.text.normalise_text`: NFC, invisible characters such as a leading BOM or a
zero-width space stripped; bidirectional controls, which the surfaces refuse, dropped), so
"\ufeffremove the shuttle" plans as "remove the shuttle". The perturbation families never drop the verb (the terse form keeps
it: "cat: remove"), so nothing is lost by refusing to guess.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from agents.errors import InstructionNotUnderstoodError
from agents.language import foreign_script, has_words, latin_language
from agents.phrases import (
    DETERMINERS,
    FUNCTION_WORDS,
    OBJECT_NOUNS,
    PREPOSITIONS,
    correct_slip,
    is_pronoun,
    normalise_noun_phrase,
    vocab,
    with_article,
    words,
)
from tools.registry import PromptStyle
from tools.text import normalise_text
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
MAKE_VERBS = frozenset(["make", "render"])
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
    "basically", "actually", "um", "uh", "well", "hello", "greetings", "ok so", "okay so",
)
WHOLE_CLAUSE_FILLERS = vocab("like um uh hmm so well hello hi hey thanks ty cheers yes yeah please")
TOPIC_MARKERS = re.compile(r"^(?:as for|as to|regarding|concerning|about|speaking of|re|"
                           r"with respect to|when it comes to)\s+")
# Words that make a clause a sentence rather than a bare noun phrase ("the sky is fine").
FINITE_WORDS = vocab("is are was were be been being am has have had do does did could would "
                     "should must might shall took take said says want wants need needs "
                     "like likes love looks seems think know got i'm it's that's there's i've i'd "
                     "i'll you're we're isn't doesn't don't")
SUBJECT_WORDS = vocab("i we you he she they it there here what which who when where why how")
META_NOUNS = vocab("request task question favor favour job thing idea note problem issue help edit "
                   "change point")
IMAGE_PROPERTIES = vocab("resolution size dimensions quality format aspect ratio rest composition "
                         "framing colors colours color colour lighting exposure contrast "
                         "brightness sharpness style")
EMBEDDED_REQUEST = re.compile(
    r"\b(?:(?:could|can|would|will)\s+(?:you|u)|(?:you|u)\s+to|(?:is|was)\s+to|where\s+you|"
    r"if\s+you(?:\s+(?:could|can|would))?|please|(?:like|love|want|need|wish)\s+to)\s+"
)
META_REQUEST = re.compile(
    r"^(?:give|show|send) me (?:a |an |one )?(?:new |different )?(?:version|variant|copy|edit|"
    r"image|picture|photo|result)(?: of (?:it|this|the (?:image|photo|picture)))?\s+"
    r"(?:where|in which|that|so that|with)\s+(?:you\s+)?"
)
REFERRING_WORDS = ("it", "them", "him", "her")
AFTER_OBJECT = vocab("look looks seem appear become disappear vanish go") | frozenset(PREPOSITIONS)
THERE_IS = re.compile(r"^(?:there should be|there needs to be|there must be|i want|i'd like|"
                      r"i would like|i need|we need)\s+(?P<y>(?:a|an|some|two|three|\d+)\s.+)$")
PARTICLES = ("out", "away", "off")
UNWANTED = re.compile(r"^(?:i|we) (?:don't|dont|do not) (?:want|need|like)(?: to see)? (?P<x>.+?)"
                      r"(?: (?:in|on) (?:the|this|my) (?:picture|photo|image|shot|scene|pic))?$")


VERB_SET = frozenset(ALL_VERBS) | {"get", "take", "cut", "rub", "wipe"}
# "leave the sky alone and could you remove the cat": a new clause starts after "and" here
AND_OPENERS = sorted(
    VERB_SET | {"don't", "do not", "could", "can", "would", "will", "please", "pls", "kindly",
                "just", "i'd", "i want", "i would", "i need", "there should", "there must"},
    key=len, reverse=True,
)
LEXICON = (
    OBJECT_NOUNS | FUNCTION_WORDS | VERB_SET | WHOLE_IMAGE | GLOBAL_ATTRIBUTES | GLOBAL_KEYWORDS
    | GLOBAL_ADDABLES | SCENE_NOUNS | FINITE_WORDS | SUBJECT_WORDS | META_NOUNS | IMAGE_PROPERTIES
    | WHOLE_CLAUSE_FILLERS | frozenset(w for f in FILLER_STARTS + NEGATION_STARTS for w in f.split())
    | vocab("rid disappear vanish kindly thank thanks could would")
)


@dataclass
class _Parse:
    category: EditCategory
    object: str | None = None
    target: str | None = None
    confidence: float = 0.8
    rationale: str = ""


# --- public API -------------------------------------------------------------------------------


def parse_instruction(text: str) -> EditPlan:
    """Rule-based `EditPlan` (source="rules") for the usual ways of asking for an edit.

    Raises `InstructionNotUnderstoodError` for what the rules cannot read (see the module doc)
    and `tools.errors.InvalidTextError` for text no surface accepts (control characters, over
    `MAX_TEXT_CHARS`). Bidirectional controls, which each surface refuses before storing, are
    dropped here: the plan is made from, and shows, the logical text.
    """
    import unicodedata

    text = normalise_text(text, "instruction", strip_bidi=True)
    # compatibility forms are read as what they show (fullwidth "ｒｅｍｏｖｅ", ligatures)
    shown = unicodedata.normalize("NFKC", text)
    check_readable(shown)
    clauses = _clauses(_normalise(shown))
    kept = None
    active: list[str] = []
    for clause in clauses:
        if _is_negated(clause):
            kept = kept or _kept_subject(clause)
            continue
        active.append(clause)
    result: _Parse | None = None
    # the last clause that only names something: (as written, normalised or None for "it")
    named: tuple[str, str | None] | None = None
    for clause in active:
        result = _parse_with_topic(clause, named[0] if named else None)
        if result is not None:
            break
        named = _topic(clause) or _embedded_topic(clause) or named
    topic = named[1] if named else None
    if result is None:
        result = _fallback(" ".join(active) or " ".join(clauses))
    if result is None:
        raise InstructionNotUnderstoodError(
            text, "no_rule", language=latin_language(text, LEXICON, strict=False))
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
    plan.negative_prompt = negative_for_plan(plan)
    return plan


def check_readable(text: str) -> None:
    """Refuse (normalised) text the rules cannot read: `InstructionNotUnderstoodError` saying
    whether it is empty, has no words, or is in another script or language."""
    if not text.strip():
        raise InstructionNotUnderstoodError(text, "empty")
    script = foreign_script(text)
    if script is not None:
        raise InstructionNotUnderstoodError(text, "script", script=script)
    if not has_words(text):
        raise InstructionNotUnderstoodError(text, "no_words")
    language = latin_language(text, LEXICON)
    if language is not None:
        raise InstructionNotUnderstoodError(text, "language", language=language)


def caption_for_plan(plan: EditPlan, style: PromptStyle = "caption") -> str:
    """A diffusion prompt derived from a plan without a model; never empty, never an apology.

    `style` is what the inpainter wants (`tools.registry.BackendSpec.prompt_style`): a
    `caption` of what the edited area shows afterwards (fill models: "a corgi"), or an
    `instruction` saying what to change (instruction editors: `instruction_for_plan`).
    """
    if style == "instruction":
        return instruction_for_plan(plan)
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


KEEP_THE_REST = "keep everything else unchanged"
MAX_INSTRUCTION_WORDS = 40
"""An instruction editor's prompt is cut to this many words of the user's own request."""


def instruction_for_plan(plan: EditPlan, caption: str | None = None) -> str:
    """An edit instruction for instruction editors (FLUX.1 Kontext, Qwen-Image-Edit, FLUX.2
    klein), from a plan without a model: what to change, with `caption` (default: the plan's
    caption, `caption_for_plan`) as what the marked area becomes, and that the rest stays. A
    removal says what should be there instead; a global edit is the user's own request."""
    caption = " ".join((caption or caption_for_plan(plan)).split()).rstrip(".")
    caption = with_article(caption) if caption[:1].islower() else caption
    thing = f"the {plan.object.strip()}" if plan.object and plan.object.strip() else None
    category = plan.category
    if category is EditCategory.REMOVAL:
        instead = ("the background around it" if caption.lower() in ("a background", "")
                   else caption)
        return f"Remove {thing or 'the marked object'} and fill its place with {instead}; " \
               f"{KEEP_THE_REST}."
    if category is EditCategory.ADDITION:
        return f"Add {caption} in the marked area; {KEEP_THE_REST}."
    if category is EditCategory.BACKGROUND:
        return f"Replace the background with {caption}; keep {thing or 'the main subject'} " \
               "exactly as it is."
    if category is EditCategory.LOCAL:
        return f"Turn {thing or 'the marked area'} into {caption}; {KEEP_THE_REST}."
    request = " ".join(str(plan.instruction).split()[:MAX_INSTRUCTION_WORDS]).rstrip(".!?")
    return f"{request[:1].upper()}{request[1:]}; keep the composition and every object in place."


def negative_for_plan(plan: EditPlan) -> str | None:
    """What the inpainter must not paint: a removal's object (BrushNet's advice for removal is
    a background caption with the object in the negative prompt); None for other edits."""
    if plan.category is EditCategory.REMOVAL and plan.object and plan.object.strip():
        return plan.object.strip()
    return plan.negative_prompt


# --- normalisation and clauses ----------------------------------------------------------------


def _normalise(text: str) -> str:
    text = str(text).lower().replace("’", "'").replace("‘", "'").replace("“", '"')
    text = text.replace("”", '"').replace("`", "'")
    text = re.sub(r"[\"()\[\]{}*_]", " ", text)
    text = re.sub(r"\s+", " ", text)
    return text.strip()


def _clauses(text: str) -> list[str]:
    text = _fix_words(text)
    parts = re.split(
        r"[.!?;,\n]+|\s*(?:->|=>|→)\s*|(?<!background)(?<!backdrop):\s+|\s+[-–—]+\s+"
        r"|\s+(?:but|then|and then|and also|and just|and only)\s+"
        r"|\s+(?=(?:leave|keep|don't|do not)\s+(?:the|my|this|his|her|everything|it)\b)",
        text,
    )
    clauses: list[str] = []
    for part in parts:
        pieces = re.split(r"\s+and\s+(?=(?:" + "|".join(AND_OPENERS) + r")\b)", part)
        clauses += [_strip_filler(p) for p in pieces]
    return [c for c in clauses if c]


def _strip_filler(clause: str) -> str:
    clause = clause.strip(" '\"-:")
    if clause in WHOLE_CLAUSE_FILLERS:
        return ""
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
    # "give me a version where you make the hair blonde": the request is the inner clause.
    meta = META_REQUEST.match(clause)
    if meta and _starts_with_verb(clause[meta.end() :]):
        clause = clause[meta.end() :]
    return clause.strip(" '\"-:")


def _is_negated(clause: str) -> bool:
    if clause.startswith(NEGATION_STARTS):
        return True
    # "the sky is fine as it is": something to keep, not an edit.
    return bool(re.search(r"\b(?:is|are|looks|seems)\s+(?:fine|good|great|ok|okay|perfect|nice)\b",
                          clause)) and not _starts_with_verb(clause)


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
    if phrase.split()[0] in IMAGE_PROPERTIES or phrase.split()[-1] in IMAGE_PROPERTIES:
        return None  # "keep the resolution the same" keeps no subject
    return phrase


def _starts_with_verb(clause: str) -> bool:
    first = clause.split()[0] if clause.split() else ""
    return first in VERB_SET or clause.startswith(REMOVE_PHRASES)


def _topic(clause: str) -> tuple[str, str | None] | None:
    """A clause that only names something ("the cat", "as for the red car") -> (text, phrase).

    "it", "everything" and the whole picture ("this photo, make it warmer") are topics with no
    phrase: the edit they head is global. Sentences ("I took this photo", "the sky is fine"),
    greetings and meta nouns ("a quick request") name no topic.
    """
    clause = TOPIC_MARKERS.sub("", clause).strip()
    tokens = words(clause)
    if clause in ("it", "this", "everything", "all") or (tokens and _whole_image(clause)):
        return clause, None
    if not tokens or len(tokens) > 8 or tokens[0] in SUBJECT_WORDS:
        return None
    if any(t in FINITE_WORDS for t in tokens) or _starts_with_verb(clause):
        return None
    phrase = normalise_noun_phrase(clause)
    if phrase is None or is_pronoun(phrase) or phrase.split()[-1] in META_NOUNS:
        return None
    return clause, phrase


def _embedded_topic(clause: str) -> tuple[str, str | None] | None:
    """'... if you could the scooter' (then 'delete it'): a named thing where a verb was due."""
    for tail in _embedded_tails(clause):
        opener = tail.split()[0]
        if opener in DETERMINERS or TOPIC_MARKERS.match(tail):
            topic = _topic(tail)
            if topic and topic[1]:
                return topic
    return None


def _refer_back(clause: str, topic: str) -> str | None:
    """'remove it' after 'the cat' -> 'remove the cat'; also 'make blue', 'change to a dog'."""
    verb = next((p for p in REMOVE_PHRASES if clause == p or clause.startswith(p + " ")), None)
    if verb is None:
        verb = clause.split()[0] if clause.split() else ""
        if verb not in VERB_SET:
            return None
    rest = clause[len(verb) :].split()
    bare = topic.split()[0] not in DETERMINERS and not topic.split()[0].isdigit()
    if bare and not _whole_image(topic) and topic not in ("it", "everything", "all"):
        # a bare noun: "cookie: add" adds a cookie, "helmet: remove" removes the helmet
        topic = with_article(topic) if verb in ADD_VERBS else "the " + topic
    if not rest:
        return f"{verb} {topic}"
    if rest[0] in REFERRING_WORDS or (
        rest[0] in ("this", "that", "these", "those") and (len(rest) == 1 or rest[1] in AFTER_OBJECT)
    ):
        return " ".join([verb, topic, *rest[1:]])
    if rest[0] in AFTER_OBJECT:
        return " ".join([verb, topic, *rest])
    if verb in MAKE_VERBS | COLOR_VERBS and rest[0] not in DETERMINERS:
        return " ".join([verb, topic, *rest])  # "hair: make blonde"
    return None


def _parse_with_topic(clause: str, topic: str | None) -> _Parse | None:
    """Parse a clause, referring it back to a named topic, else finding a request inside it
    ("I have a photo and would love it if you could remove the flag")."""
    for candidate in _request_candidates(clause):
        rewritten = _refer_back(candidate, topic) if topic else None
        parsed = _parse_clause(rewritten or candidate)
        if parsed is not None:
            return parsed
    return None


def _request_candidates(clause: str) -> list[str]:
    """The clause, and what follows each 'could you'/'you to'/... inside it; when the clause
    does not open with a verb, the inner requests come first ("I'd really appreciate it if you
    could remove the person in the background" is a removal, not a background edit)."""
    tails = [tail for tail in _embedded_tails(clause)
             if _starts_with_verb(_fix_typos(tail)) or tail.startswith(("i ", "i'd ", "we ", "there "))]
    return [clause, *tails] if _starts_with_verb(_fix_typos(clause)) else [*tails, clause]


def _embedded_tails(clause: str) -> list[str]:
    tails = [_strip_filler(clause[match.end() :]) for match in EMBEDDED_REQUEST.finditer(clause)]
    return [tail for tail in tails if tail]


def _fix_words(text: str) -> str:
    """Repair one-slip typos word by word against the edit vocabulary (see the module doc)."""
    tokens = text.split(" ")
    out: list[str] = []
    for token in tokens:
        match = re.match(r"^([a-z]+)([^a-z]*)$", token)
        if match and match.group(1) not in LEXICON:
            # ties go to what the position expects: a verb where a clause starts, a noun after
            # a determiner, else a function word ("lok" after "it" is "look", not "lock")
            previous = out[-1] if out else ""
            starts = (not previous or previous[-1:] in ",.:;!?>" or
                      previous in ("to", "you", "u", "please", "just", "and", "then", "pls"))
            prefer = (VERB_SET | FUNCTION_WORDS) if starts or previous not in DETERMINERS \
                else OBJECT_NOUNS
            fixed = correct_slip(match.group(1), LEXICON, prefer, wrong_letters=starts)
            if fixed:
                token = fixed + match.group(2)
        out.append(token)
    return " ".join(out)


def _fix_typos(clause: str) -> str:
    tokens = clause.split()
    if not tokens:
        return clause
    first = tokens[0]
    known = first in ALL_VERBS or first in ("get", "take", "cut", "do", "there", "set", "move")
    if not known and len(first) >= 2 and first.isalpha() and first not in LEXICON:
        # several slips in the leading verb ("delte", "ad"): the closest verb, same first letter
        match = difflib.get_close_matches(first, ALL_VERBS, n=1, cutoff=0.75)
        if match and match[0][0] == first[0]:
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
    match = re.match(r"^(?:make|render) (?P<x>.+?) (?:disappear|vanish|go away)$", clause)
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
    match = UNWANTED.match(clause)
    if match and not re.match(r"^(?:anything|everything|nothing|any|to|it|them|changes)\b",
                              match.group("x")) and not re.search(
            r"\b(?:changed|altered|touched|modified|edited|affected|moved|different)\b",
            match.group("x")):
        return _removal(match.group("x"))
    match = re.match(r"^(?P<x>.+?) (?:has to|have to|needs to|need to|must|should|has got to|"
                     r"gotta) (?:go|go away|disappear|vanish|be removed|be deleted|be erased|"
                     r"be gone)$", clause)
    if match:
        return _removal(match.group("x"))
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
    global_words = set(tokens) & set(GLOBAL_KEYWORDS) or any(p in rest for p in GLOBAL_PHRASES)
    if len(tokens) >= 2 and not global_words:
        # terse "make eyes blue": the last word is the new attribute
        return " ".join(tokens[:-1]), tokens[-1]
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


def _fallback(text: str) -> _Parse | None:
    """No verb pattern matched: global if the words name a style/season/time, else None (the
    caller refuses rather than guess)."""
    if any(p in text for p in GLOBAL_PHRASES) or set(words(text)) & set(GLOBAL_KEYWORDS):
        return _Parse(EditCategory.GLOBAL, None, None, 0.6, "global keywords, no verb pattern")
    return None
