"""Suite files: the shipped suite is sound, and bad lines are reported by number."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from evals.suite import SuiteError, load_suite
from tests.evals.conftest import SHIPPED


def test_shipped_basic_suite_is_complete_and_small():
    suite = load_suite(SHIPPED / "basic.jsonl")
    assert len(suite.items) >= 10
    assert len({item.image for item in suite.items}) >= 5
    categories = Counter(item.category.value for item in suite.items)
    assert set(categories) == {"addition", "removal", "local", "global", "background"}
    assert categories["removal"] + categories["local"] > len(suite.items) / 2
    for item in suite.items:
        with Image.open(item.image) as image, Image.open(item.mask) as mask:
            assert max(image.size) <= 256
            assert mask.size == image.size
            assert mask.getextrema()[1] == 255  # something to edit
    total = sum(p.stat().st_size for p in (SHIPPED / "basic").iterdir())
    assert total < 1_000_000


def _write(tmp_path: Path, *lines: str) -> Path:
    Image.new("RGB", (32, 32)).save(tmp_path / "img.png")
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_paths_are_relative_to_the_suite_and_ids_default(tmp_path):
    path = _write(
        tmp_path, '{"image": "img.png", "instruction": "remove it", "category": "remove"}'
    )
    suite = load_suite(path)
    assert suite.items[0].id == "line1"
    assert suite.items[0].image == str(tmp_path / "img.png")
    assert suite.items[0].category.value == "removal"
    assert len(suite.sha256) == 64


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"s.jsonl:2: not valid JSON"),
        ('{"image": "img.png"}', r"s.jsonl:2: `instruction`: Field required"),
        ('{"image": "img.png", "instruction": "x", "category": "zoom"}', r"s.jsonl:2: `category`"),
        ('{"image": "img.png", "instruction": "x", "colour": 1}', r"s.jsonl:2: `colour`"),
        (
            '{"image": "nope.png", "instruction": "x"}',
            r"s.jsonl:2: `image` file nope.png not found",
        ),
        ('{"id": "a", "image": "img.png", "instruction": "x"}', r"s.jsonl:2: duplicate id 'a'"),
        ("[1, 2]", r"s.jsonl:2: expected a JSON object"),
    ],
)
def test_bad_lines_name_the_line(tmp_path, line, message):
    path = _write(tmp_path, '{"id": "a", "image": "img.png", "instruction": "remove it"}', line)
    with pytest.raises(SuiteError, match=message):
        load_suite(path)


def test_missing_and_empty_suites(tmp_path):
    with pytest.raises(SuiteError, match="does not exist"):
        load_suite(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n# only a comment\n")
    with pytest.raises(SuiteError, match="holds no items"):
        load_suite(tmp_path / "empty.jsonl")
