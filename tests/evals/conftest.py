"""A tiny suite built from the shipped one: three items over two images, copied to tmp_path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

SHIPPED = Path(__file__).resolve().parents[2] / "evals" / "suites"
TINY_IDS = ("coffee-spoon", "astronaut-helmet", "coffee-tea")


def write_tiny_suite(folder: Path, ids: tuple[str, ...] = TINY_IDS) -> Path:
    """Copy the chosen shipped items (and their files) into `folder`; returns the suite path."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for line in (SHIPPED / "basic.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["id"] not in ids:
            continue
        for field in ("image", "mask"):
            name = Path(record[field]).name
            shutil.copyfile(SHIPPED / record[field], folder / name)
            record[field] = name
        lines.append(json.dumps(record))
    suite = folder / "tiny.jsonl"
    suite.write_text("\n".join(lines) + "\n")
    return suite


def run_args(suite: Path, out: Path, *extra: str) -> list[str]:
    """`run SUITE --out OUT --perturb casing --variants 1` and then `extra`: a small eval run."""
    return ["run", str(suite), "--out", str(out), "--perturb", "casing", "--variants", "1", *extra]


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    return write_tiny_suite(tmp_path / "suite")


@pytest.fixture(autouse=True)
def _no_ollama(monkeypatch):
    """Point the VLM at a closed port unless a test starts the fake server."""
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    monkeypatch.delenv("BRUSHEDIT_OLLAMA_HOST", raising=False)
