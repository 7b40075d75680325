"""What the batch tests share: a manifest of good and bad rows, and workers slow enough to kill.

Module-level functions only: the batch engine pickles its components builder to spawned
processes and Ray actors, which import this module by name.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.graphs.helpers import SIZE, picture
from tools.inpaint import OpenCVInpainter

REPO = Path(__file__).resolve().parents[2]

GOOD_ROWS = 5
"""Rows of `write_manifest` that edit: the rest fail, each for its own reason."""


def small_mask() -> np.ndarray:
    """An 8 px hole: quick for the OpenCV fill (the whole object's hole takes ~0.5 s)."""
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[26:34, 26:34] = 255
    return mask


def write_manifest(folder: Path, *, brushnet_row: bool = False) -> Path:
    """8 rows: 5 that edit (one with its own seed, one with a caption) and 3 bad ones: a missing
    image, a mask of the wrong size and an empty instruction. With `brushnet_row`, the last good
    row asks for the BrushNet inpainter (2 steps) instead."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(3):
        picture(seed).save(folder / f"pic{seed}.png")
    Image.fromarray(small_mask()).save(folder / "mask.png")
    Image.fromarray(np.full((10, 12), 255, np.uint8)).save(folder / "tiny-mask.png")
    rows: list[dict[str, Any]] = [
        {"id": "a", "image": "pic0.png", "mask": "mask.png", "instruction": "remove the square"},
        {"id": "b", "image": "pic1.png", "mask": "mask.png", "instruction": "remove the square",
         "seed": 7},
        {"id": "missing", "image": "nowhere.png", "mask": "mask.png",
         "instruction": "remove the square"},
        {"id": "c", "image": "pic2.png", "mask": "mask.png", "instruction": "erase the square",
         "caption": "smooth background"},
        {"id": "wrong-mask", "image": "pic0.png", "mask": "tiny-mask.png",
         "instruction": "remove the square"},
        {"id": "d", "image": str(folder / "pic0.png"), "mask": "mask.png",
         "instruction": "remove the dark square"},
        {"id": "empty", "image": "pic1.png", "mask": "mask.png", "instruction": "   "},
        {"id": "e", "image": "pic1.png", "mask": "mask.png", "instruction": "delete the square",
         "max_attempts": 2},
    ]
    if brushnet_row:
        rows[-1] = {"id": "e", "image": "pic1.png", "mask": "mask.png",
                    "instruction": "replace the square with a red ball", "inpainter": "brushnet",
                    "steps": 2, "max_attempts": 1}
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_slow_manifest(folder: Path, rows: int) -> Path:
    """`rows` removals of the same picture (each with its own id)."""
    folder.mkdir(parents=True, exist_ok=True)
    picture().save(folder / "pic.png")
    Image.fromarray(small_mask()).save(folder / "mask.png")
    path = folder / "slow.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i}", "image": "pic.png", "mask": "mask.png",
                                        "instruction": "remove the square"}) + "\n"
                            for i in range(rows)))
    return path


class MarkingInpainter(OpenCVInpainter):
    """The OpenCV fill, which first leaves `<pid>-<n>.running` in `folder` and sleeps, so a test
    can find a worker in the middle of a row and kill it."""

    def __init__(self, folder: str, seconds: float) -> None:
        super().__init__()
        self.folder, self.seconds = Path(folder), seconds

    def _inpaint(self, request: Any) -> Any:
        marker = self.folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.running"
        marker.write_text("inpainting")
        time.sleep(self.seconds)
        try:
            return super()._inpaint(request)
        finally:
            marker.unlink(missing_ok=True)


def slow_components(folder: str, seconds: float, settings: Any, config: Any) -> Any:
    """A batch worker's context whose OpenCV inpainter is a `MarkingInpainter`."""
    from graphs.batch import default_components

    context = default_components(settings, config)
    context.inpainters["opencv"] = MarkingInpainter(folder, seconds)
    return context


def wait_for_marker(folder: Path, timeout: float = 120.0) -> int:
    """The pid of a worker that is in the middle of a row."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for marker in folder.glob("*.running"):
            return int(marker.name.split("-")[0])
        time.sleep(0.05)
    raise AssertionError(f"no worker started a row within {timeout} s")


def read_lines(out: Path) -> list[dict[str, Any]]:
    """Every line of a run's results.jsonl (no de-duplication: tests count them)."""
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()
            if line.strip()]


def output_bytes(out: Path) -> dict[str, bytes]:
    """Each done row's image file, by id."""
    return {row["id"]: (out / row["output"]).read_bytes() for row in read_lines(out)
            if row["status"] == "done"}


def repo_pythonpath() -> dict[str, str]:
    """The environment a Ray worker needs to import `tests` (as the test process does)."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                        os.environ.get("PYTHONPATH")]))}

