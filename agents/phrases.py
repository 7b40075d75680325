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
    "about",
)
NOUNS_ENDING_IN_ING = vocab("building painting clothing ceiling ring king wedding string evening morning swing wing "
    "sling pudding earring railing awning sibling icing lightning drawing thing something "
    "nothing everything anything ping spring bedding stuffing frosting sapling duckling "
    "darling dumpling filling siding flooring lighting carving ceiling")
NOUNS_ENDING_IN_ED = vocab("speed steed seed breed shred flowerbed seabed hundred riverbed hotbed sofabed bobsled "
    "homestead watershed")
_TRAILING_NOISE = re.compile(
    r"\b(please|pls|plz|thanks|thank you|for me|if possible|if you can|and nothing else|"
    r"nothing else|as well|too|entirely|completely|altogether|alone|intact|unchanged|untouched)\b"
)
_REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|sorry,|i apologi[sz]e|i cannot|i can'?t|i can not|i'?m unable|"
    r"i am unable|unable to (?:help|assist|comply)|as an ai|as a language model|"
    r"i'?m not able|i am not able|i won'?t|i will not)\b",
    re.IGNORECASE,
)


def words(text: str) -> list[str]:
    """Lower-case words (letters of any alphabet, digits, inner ' and -): "café" stays whole."""
    return re.findall(r"[^\W_](?:[^\W_]|['\-])*", text.lower().replace("’", "'"))


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


# --- a lexicon for typo repair ---------------------------------------------------------------
# Common nameable things in photos, by domain (COCO/LVIS-like coverage, not any eval suite's
# list). A word outside every lexicon that is one keyboard slip away from exactly one word in
# it is read as that word; see `correct_slip`.

OBJECT_NOUNS = vocab(
    # people and body
    "person people man men woman women boy girl child children kid kids baby toddler teenager "
    "adult guy lady gentleman bride groom couple family friend crowd tourist tourists player "
    "worker officer soldier police chef doctor nurse farmer runner rider driver pilot "
    "astronaut statue mannequin face head hair beard moustache mustache eyebrow eye eyes nose "
    "mouth lip lips teeth tooth tongue ear ears cheek chin forehead neck shoulder arm arms elbow "
    "hand hands finger fingers nail nails leg legs knee foot feet skin freckles wrinkles scar "
    "tattoo pimple mole smile frown body belly back "
    # clothing and accessories
    "shirt t-shirt blouse sweater hoodie jacket coat vest suit tie bowtie dress skirt jeans "
    "pants trousers shorts sock socks shoe shoes boot boots sneaker sneakers sandal sandals "
    "slipper hat cap helmet hood scarf glove gloves mitten belt buckle button pocket collar "
    "sleeve uniform costume apron bikini swimsuit robe pajamas glasses sunglasses goggles mask "
    "necklace bracelet earring earrings ring watch jewelry jewellery crown tiara veil wig "
    "headband headphones earphones backpack bag handbag purse wallet suitcase luggage umbrella "
    "badge patch logo label tag sticker name price "
    # animals
    "animal cat kitten dog puppy horse pony donkey cow calf bull ox sheep lamb goat pig "
    "chicken hen rooster duck duckling goose swan turkey bird birds pigeon dove seagull gull "
    "parrot owl eagle hawk crow raven sparrow robin penguin flamingo peacock ostrich fish "
    "shark whale dolphin seal octopus crab lobster shrimp turtle tortoise frog toad snake "
    "lizard crocodile alligator dinosaur elephant giraffe zebra lion tiger leopard cheetah "
    "bear panda koala kangaroo monkey gorilla ape deer moose fox wolf rabbit bunny squirrel "
    "mouse rat hamster bat camel butterfly bee wasp ant spider fly mosquito ladybug insect "
    "bug worm snail unicorn dragon corgi poodle tail wing wings paw paws fur feather feathers "
    "horn horns antlers collar leash "
    # vehicles and street
    "car cars truck van bus taxi jeep tractor trailer bicycle bike motorcycle motorbike scooter "
    "skateboard train tram subway airplane plane aeroplane jet helicopter rocket spaceship "
    "boat ship sailboat yacht canoe kayak ferry submarine wheel tire tyre license plate "
    "line lines road street sidewalk crosswalk lane highway bridge tunnel sign signpost stop "
    "traffic light lights cone barrier fence gate pole lamppost lamp post hydrant bench "
    "mailbox trash garbage bin can dumpster billboard poster graffiti wire wires cable cables "
    "antenna chimney roof tower crane scaffolding parking meter "
    # buildings and rooms
    "house home building skyscraper church temple castle palace tent barn shed hut cabin "
    "garage window windows door doors wall walls floor ceiling stairs staircase step steps "
    "balcony porch railing column pillar arch dome brick bricks tile tiles roof fireplace "
    "room kitchen bedroom bathroom office library shop store cafe restaurant "
    # furniture and household
    "table desk chair chairs stool sofa couch armchair bed pillow cushion blanket sheet "
    "mattress carpet rug curtain curtains blind blinds shelf shelves bookshelf cabinet drawer "
    "dresser wardrobe closet mirror frame painting picture photo poster clock vase plant "
    "plants pot flowerpot lamp candle candles chandelier fan heater radiator television tv "
    "screen monitor computer laptop keyboard mouse phone smartphone tablet camera tripod "
    "remote speaker radio microphone guitar piano violin drum drums trumpet book books "
    "notebook paper pen pencil newspaper magazine letter envelope box boxes basket bucket "
    "toy toys doll teddy ball balloon balloons kite game puzzle trophy medal flag flags "
    "banner map globe key keys lock sink faucet tap toilet bathtub shower towel soap "
    "toothbrush brush comb bottle bottles jar can cup cups mug glass glasses plate plates "
    "bowl bowls saucer spoon fork knife chopsticks pan pot kettle teapot oven stove "
    "microwave fridge refrigerator blender toaster tray napkin tablecloth "
    "cigarette lighter ashtray scissors hammer tool tools ladder rope chain hose shovel "
    "broom cart wheelbarrow "
    # food and drink
    "food apple apples banana bananas orange oranges lemon lime grape grapes strawberry "
    "cherry peach pear pineapple watermelon melon mango coconut tomato potato carrot onion "
    "pepper broccoli lettuce salad corn mushroom bread toast sandwich burger hamburger "
    "hotdog pizza pasta noodles rice soup egg eggs cheese butter meat steak chicken fish "
    "sushi cake cupcake cookie cookies donut doughnut pie candy chocolate ice cream "
    "dessert fruit coffee tea milk juice water wine beer drink soda cocktail straw "
    # nature and scenery
    "tree trees bush bushes shrub grass lawn leaf leaves branch branches trunk flower "
    "flowers rose roses tulip tulips daisy sunflower lily weed weeds mushroom rock rocks "
    "stone stones pebble sand beach shore sea ocean wave waves lake river pond waterfall "
    "stream puddle island mountain mountains hill hills cliff valley volcano desert forest "
    "jungle field meadow garden park sky cloud clouds sun moon star stars rainbow "
    "lightning rain snow snowman ice fog smoke fire flame flames shadow shadows reflection "
    "horizon sunset sunrise planet earth "
    # marks and defects
    "text watermark caption subtitle date timestamp stain stains spot spots dust scratch "
    "scratches crack cracks dirt mark marks blemish glare lens flare noise blur clutter "
    "trash litter debris junk "
    # materials and common describing words of objects
    "plastic metal wooden wood glass paper leather cotton wool silk stone steel iron concrete "
    "power electric ugly pretty dirty clean broken empty full open closed round square tall "
    "parked standing sitting"
)
FUNCTION_WORDS = vocab(
    "the a an this that these those my your his her its our their some any all both each it "
    "them him they we you i me to into onto in on at by for from with without of off out "
    "away over under above below behind beside besides near next between around across along "
    "inside outside up down left right top bottom front back middle center centre corner side "
    "look looks like as so and but or not only just please could would should can will "
    "make made give change turn let lets see want need like love more less very really "
    "background backdrop foreground picture image photo photograph scene everything whole "
    "entire color colour colors colours red orange yellow green blue purple pink brown black "
    "white grey gray gold golden silver blonde blond dark light bright big small large tiny "
    "huge tall short long old young new "
    # everyday words a slip must not turn into an object noun
    "there here where what which who whom whose when why how is are was were be been being am "
    "has have had do does did done doing can't don't won't isn't not no yes okay ok hello hey hi "
    "thanks thank sure about after before again also then than now still even ever never always "
    "same other another else nothing anything something someone anyone everyone none rest much "
    "many few lot lots bit little enough most least way thing things stuff kind sort while "
    "during until since because though although if unless whether maybe perhaps quite rather "
    "too well good great nice fine better best worse bad real really actually basically "
    "literally just only simply quick quickly slowly first last once twice one two three four "
    "five six seven eight nine ten part parts area place spot piece pieces set get got put "
    "take took took keep kept leave left show shown see seen seem seems looking want wanted "
    "wish hope think know mean means share shared ago appreciate appreciated natural result "
    "results request task edit edits version copy sure making made ensure possible visible "
    "rid go goes gone going come comes use used try tried"
)


def singular(word: str) -> str:
    """Light singular for vocabulary look-ups: "pigeons" -> "pigeon", "puppies" -> "puppy"."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _slips(typed: str, word: str) -> int | None:
    """How a typed word differs from `word` by one keyboard slip: 1 for a dropped, doubled or
    swapped letter (the usual slips), 2 for one wrong or extra letter, None otherwise."""
    if typed == word or typed[:1] != word[:1]:
        return None
    lt, lw = len(typed), len(word)
    if lt == lw:
        diffs = [i for i in range(lt) if typed[i] != word[i]]
        if len(diffs) == 2 and diffs[1] == diffs[0] + 1 and typed[diffs[0]] == word[diffs[1]] \
                and typed[diffs[1]] == word[diffs[0]]:
            return 1
        return 2 if len(diffs) == 1 else None
    if abs(lt - lw) != 1:
        return None
    longer, shorter = (typed, word) if lt > lw else (word, typed)
    for i in range(1, len(longer)):
        if longer[:i] + longer[i + 1 :] == shorter:
            if lt < lw:  # a letter dropped
                return 1
            doubled = longer[i] == longer[i - 1] or (i + 1 < len(longer) and longer[i] == longer[i + 1])
            return 1 if doubled else 2
    return None


def correct_slip(typed: str, lexicon: frozenset[str] | set[str], prefer: frozenset[str] = frozenset(),
                 wrong_letters: bool = False, nouns: frozenset[str] = OBJECT_NOUNS) -> str | None:
    """The one lexicon word `typed` is a single slip away from, or None (no match or a tie).

    The first letter must agree (people rarely mistype it); dropped/doubled/swapped letters win
    over wrong letters, which only count with `wrong_letters` (they turn too many real words
    into other real words: "lines" -> "likes"); among equally good matches `prefer` breaks the
    tie, else nothing does. A three-letter word is only read as a function word or verb
    ("ino" -> "into", "teh" -> "the"): too many short nouns are a slip from another ("kit",
    "kite"), and the lexicon cannot hold them all.
    """
    if typed in lexicon or singular(typed) in lexicon or len(typed) < 3 or not typed.isalpha():
        return None
    best: dict[int, list[str]] = {}
    for word in _by_initial(lexicon).get(typed[0], ()):
        rank = _slips(typed, word)
        if rank is None or (rank == 2 and (len(typed) < 5 or not wrong_letters)):
            continue  # a wrong letter in a short word too often makes another real word
        if len(typed) == 3 and word in nouns:
            continue
        if len(word) >= 4 or (len(word) == 3 and word not in nouns):
            best.setdefault(rank, []).append(word)
    for rank in (1, 2):
        found = best.get(rank, [])
        if len(found) > 1:
            found = [w for w in found if w in prefer] or found
        if len(set(found)) == 1:
            return found[0]
        if found:
            return None
    return None


_INITIALS: dict[int, dict[str, tuple[str, ...]]] = {}


def _by_initial(lexicon: frozenset[str] | set[str]) -> dict[str, tuple[str, ...]]:
    key = id(lexicon)
    if key not in _INITIALS:
        table: dict[str, list[str]] = {}
        for word in sorted(lexicon):
            table.setdefault(word[:1], []).append(word)
        _INITIALS[key] = {k: tuple(v) for k, v in table.items()}
    return _INITIALS[key]
