"""The docs' Python snippets run as written (docs/inpainting.md and the README's BrushNet section), on tiny models.

One subprocess runs every snippet (see `doc_snippets.py` for the mechanism: tiny models at the relative paths and
Hub ids the snippets name, an offline Hugging Face cache); each snippet is one test here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .doc_snippets import all_snippets, snippet_environment

pytestmark = pytest.mark.slow  # one subprocess runs every snippet on tiny models (about a minute)

SNIPPETS = all_snippets()


@pytest.fixture(scope="module")
def snippet_run(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """Run every snippet once; return the working directory they ran in and their results by snippet id."""
    root = tmp_path_factory.mktemp("doc_snippets")
    out = root / "results.json"
    runner = f"{__package__}.doc_snippets"
    proc = subprocess.run(
        [sys.executable, "-m", runner, str(root), str(out)],
        cwd=root, env={**os.environ, **snippet_environment(root)},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0 and out.is_file(), f"the snippet runner failed:\n{proc.stderr[-4000:]}"
    return root / "work", {result["id"]: result for result in json.loads(out.read_text())}


def test_the_docs_have_their_snippets():
    docs = {snippet.doc for snippet in SNIPPETS}
    assert docs == {"docs/inpainting.md", "README.md"}
    assert sum(s.doc == "README.md" for s in SNIPPETS) == 3 and len(SNIPPETS) >= 14
    assert all("/models/" not in s.code and "/loras/" not in s.code for s in SNIPPETS), "absolute paths can't run"


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_doc_snippet_runs_as_written(snippet, snippet_run):
    result = snippet_run[1].get(snippet.id)
    assert result is not None, f"{snippet.id} did not run"
    assert result["code"] == snippet.code
    assert result["ok"], f"{snippet.id} ({snippet.heading}) failed:\n{result['error']}"


def test_the_snippets_leave_what_they_say(snippet_run):
    """The first snippet saves its edit at the photo's size; save-and-reload writes a folder with its code file."""
    from PIL import Image

    work, _ = snippet_run
    with Image.open(work / "edited.png") as edited, Image.open(work / "photo.png") as photo:
        assert edited.size == photo.size
    assert (work / "my-brushnet-pipe" / "pipeline_brushnet_pipeline.py").is_file()
