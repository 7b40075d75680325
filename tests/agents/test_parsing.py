from __future__ import annotations

import pytest
from pydantic import BaseModel

from agents.parsing import AnswerError, extract_json, parse_answer


class Thing(BaseModel):
    name: str
    size: int


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "cup", "size": 2}',
        'Here you go: {"name": "cup", "size": 2} -- done',
        '```json\n{"name": "cup", "size": 2}\n```',
        'I think {not json} but {"name": "cup", "size": 2}',
        '```\n{"name": "cup", "size": 2}\n```\n{"other": 1}',
    ],
)
def test_finds_the_first_balanced_object(text):
    assert parse_answer(text, Thing) == Thing(name="cup", size=2)


def test_braces_inside_strings_do_not_confuse_the_scanner():
    assert extract_json('x {"a": "}{", "b": {"c": 1}} y') == '{"a": "}{", "b": {"c": 1}}'


@pytest.mark.parametrize(
    ("text", "reason"),
    [("no json here", "JSON object"), ('{"name": "cup"}', "size"), ("{broken", "JSON object")],
)
def test_errors_are_short_and_name_the_problem(text, reason):
    with pytest.raises(AnswerError, match=reason):
        parse_answer(text, Thing)
