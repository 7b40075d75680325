"""Perturbation families: deterministic under a seed, varied across seeds, meaning kept."""

from __future__ import annotations

import random
import re

import pytest

from evals.perturb import (
    CANONICAL,
    FAMILIES,
    make_variants,
    parse,
    perturb,
    resolve_families,
    variant_rng,
)

EXAMPLES = (
    ("remove the cat", "cat"),
    ("remove the helmet", "helmet"),
    ("make the eyes blue", "eyes"),
    ("turn the coffee into tea", "coffee"),
    ("add a cookie on the saucer", "cookie"),
    ("change the background to a beach", "background"),
)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_same_seed_gives_same_text(family):
    for instruction, _ in EXAMPLES:
        first = FAMILIES[family](instruction, random.Random(7))
        again = FAMILIES[family](instruction, random.Random(7))
        assert first == again


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_different_seeds_vary_and_change_the_text(family):
    outputs = {FAMILIES[family]("remove the helmet", random.Random(seed)) for seed in range(30)}
    assert len(outputs) >= 3, outputs
    assert "remove the helmet" not in outputs or len(outputs) > 3


@pytest.mark.parametrize("family", sorted(set(FAMILIES) - {"typos"}))
def test_object_noun_survives(family):
    for instruction, noun in EXAMPLES:
        for seed in range(10):
            text = FAMILIES[family](instruction, random.Random(seed))
            assert noun in text.lower(), (family, instruction, text)


def _distance_ok(original: str, typed: str) -> bool:
    """At most one swap, drop or doubled letter, and the first letter untouched."""
    if original == typed:
        return True
    if typed[:1] != original[:1]:
        return False
    if len(typed) == len(original):  # swap of two neighbours
        diffs = [i for i, (a, b) in enumerate(zip(original, typed, strict=True)) if a != b]
        return len(diffs) == 2 and diffs[1] == diffs[0] + 1
    longer, shorter = (typed, original) if len(typed) > len(original) else (original, typed)
    if len(longer) - len(shorter) != 1:
        return False
    return any(longer[:i] + longer[i + 1 :] == shorter for i in range(1, len(longer)))


def test_typos_are_small_and_keep_first_letters():
    for instruction, noun in EXAMPLES:
        for seed in range(25):
            text = FAMILIES["typos"](instruction, random.Random(seed))
            before, after = instruction.split(" "), text.split(" ")
            assert len(before) == len(after)
            changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
            assert 1 <= len(changed) <= 2, text
            assert all(_distance_ok(a, b) for a, b in changed), (instruction, text)
            # the object noun is still recognisable: its first letter and most of it remain
            word = next(w for w in after if w[:1] == noun[0] and abs(len(w) - len(noun)) <= 1)
            assert word


def test_rule_parser_reads_the_same_plan_through_simple_perturbations():
    from agents.rules import parse_instruction

    # families whose wording the rule parser documents it copes with (filler, politeness,
    # negated clauses, casing, other clauses)
    for family in ("casing", "distractor", "negation", "synonyms", "paraphrase"):
        for seed in range(6):
            for instruction, noun in (("remove the cat", "cat"), ("erase the dog", "dog")):
                text = perturb(family, instruction, variant_rng(seed, "x", family, 0))
                plan = parse_instruction(text)
                assert (plan.category.value, plan.object) == ("removal", noun), (family, text)


def test_negation_trap_names_something_else():
    for seed in range(20):
        text = FAMILIES["negation"]("change the background to a beach", random.Random(seed))
        assert re.search(r"\b(don't|do not|without|leave|is fine)\b", text)
        assert "sky" not in text  # the sky is part of the background: not a safe decoy


def test_reorder_puts_the_object_first():
    text = FAMILIES["reorder"]("remove the cat", random.Random(1))
    assert text.index("cat") < text.index("remove")
    assert "it" in text.split() or "it" in text


def test_parse_splits_verb_object_rest():
    assert parse("Remove the cat.") == parse("Remove the cat.")
    parsed = parse("turn the coffee into tea")
    assert (parsed.verb, parsed.obj, parsed.rest) == ("turn", "the coffee", "into tea")
    assert parse("make the eyes blue").pronoun == "them"
    assert parse("hello there").verb == ""


def test_variant_rng_is_independent_of_call_order():
    a = variant_rng(3, "item", "typos", 1).random()
    variant_rng(3, "item", "typos", 0).random()
    assert variant_rng(3, "item", "typos", 1).random() == a
    assert variant_rng(4, "item", "typos", 1).random() != a


def test_make_variants_is_deterministic_and_complete():
    variants = make_variants("i1", "remove the cat", ["typos", "casing"], 3, seed=5)
    assert [v.family for v in variants] == [CANONICAL] + ["typos"] * 3 + ["casing"] * 3
    assert variants[0].text == "remove the cat"
    assert variants == make_variants("i1", "remove the cat", ["typos", "casing"], 3, seed=5)
    assert variants != make_variants("i1", "remove the cat", ["typos", "casing"], 3, seed=6)
    assert len({v.key for v in variants}) == len(variants)


def test_resolve_families():
    assert resolve_families(None) == list(FAMILIES)
    assert resolve_families("all") == list(FAMILIES)
    assert resolve_families("typos, casing,typos") == ["typos", "casing"]
    with pytest.raises(ValueError, match=r"unknown perturbation family 'tpyos'; choose from"):
        resolve_families("tpyos")
