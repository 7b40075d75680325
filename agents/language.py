"""Which script, and roughly which language, an instruction is written in.

Enough for the rule planner to know what it cannot read: its rules are English, so an
instruction in another script, or in a Latin-script language such as German or French, is
refused with the script or language named (a VLM planner reads them). The language guess counts
words that are common in that language and never English (articles, edit verbs, a few nouns);
quoted text ("add a sign saying 'la vie est belle'") is left out, since it is content.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from agents.phrases import vocab

SCRIPT_NAMES = {
    "CJK": "Han (Chinese characters)", "HIRAGANA": "Japanese kana", "KATAKANA": "Japanese kana",
    "HANGUL": "Hangul (Korean)",
}
LANGUAGE_WORDS = {
    "German": vocab(
        "der das dem des ein eine einen einem einer und oder nicht mit von vom zum zur ist bitte "
        "entferne entfernen lösche löschen ersetze ersetzen füge hinzufügen hinzu mache mach "
        "ändere ändern färbe durch aus auf dem bild foto hintergrund himmel katze hund auto baum "
        "mann frau kind haus rot blau grün gelb schwarz weiß weg"
    ),
    "French": vocab(
        "le la les un une des du et avec par sur dans est cette ces supprime supprimer enlève "
        "enlever enlevez retire retirer remplace remplacer ajoute ajouter rends rendre mets "
        "mettre fais faire fond ciel chat chien voiture arbre homme femme rouge bleu vert jaune "
        "noir blanc s'il vous plaît au aux en"
    ),
    "Spanish": vocab(
        "el los las una unos unas del y por favor con quita quitar elimina eliminar borra borrar "
        "reemplaza reemplazar cambia cambiar añade añadir agrega agregar pon poner haz hacer "
        "fondo cielo gato perro coche árbol hombre mujer rojo azul verde amarillo negro blanco "
        "al en la de que"
    ),
    "Italian": vocab(
        "il lo gli della delle dello degli per favore rimuovi rimuovere elimina cancella "
        "sostituisci aggiungi metti fai rendi sfondo cielo gatto cane macchina albero uomo donna "
        "rosso blu verde giallo nero bianco una con di da la"
    ),
    "Portuguese": vocab(
        "os um uma uns umas da dos das por favor remova remover apague substitua adicione "
        "coloque faça fundo céu gato cachorro carro árvore homem mulher vermelho azul verde "
        "amarelo preto branco com não de que"
    ),
    "Dutch": vocab(
        "de het een van en met op verwijder verwijderen vervang vervangen voeg toe maak "
        "alsjeblieft achtergrond lucht kat hond boom man vrouw rood blauw groen geel zwart wit "
        "niet"
    ),
}
QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”|«[^»]*»|„[^“”]*[“”]|(?<!\w)'[^']*'(?!\w)")
WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def letters_by_script(text: str) -> Counter[str]:
    """How many letters of each script `text` holds (`LATIN`, `CYRILLIC`, `ARABIC`, `CJK`...)."""
    counts: Counter[str] = Counter()
    for char in text:
        if unicodedata.category(char).startswith("L"):
            counts[unicodedata.name(char, "UNKNOWN").split()[0]] += 1
    return counts


def foreign_script(text: str) -> str | None:
    """The script most of the letters are in, in words, when it is not the Latin alphabet."""
    counts = letters_by_script(text)
    if not counts:
        return None
    script, count = counts.most_common(1)[0]
    if script == "LATIN" or count <= counts.get("LATIN", 0):
        return None
    if "HIRAGANA" in counts or "KATAKANA" in counts:
        return "Japanese (kana and Han)" if "CJK" in counts else SCRIPT_NAMES[script]
    return SCRIPT_NAMES.get(script, script.title())


def has_words(text: str) -> bool:
    """Whether `text` holds any letter at all (emoji, digits and punctuation are not words)."""
    return any(unicodedata.category(char).startswith("L") for char in text)


def latin_language(text: str, english: frozenset[str], *, strict: bool = True) -> str | None:
    """The non-English language a Latin-script `text` reads as, or None.

    `english` is the reader's English vocabulary. A language is named when at least two of its
    words appear and they outnumber the English ones; with `strict=False` (nothing English was
    understood anyway) one such word and no English is enough.
    """
    tokens = [t.lower() for t in WORD.findall(QUOTED.sub(" ", text))]
    if not tokens:
        return None
    english_hits = sum(t in english for t in tokens)
    scores = {name: sum(t in words for t in tokens) for name, words in LANGUAGE_WORDS.items()}
    language, best = max(scores.items(), key=lambda item: item[1])
    if best >= 2 and best > english_hits:
        return language
    if not strict and best >= 1 and english_hits == 0:
        return language
    return None
