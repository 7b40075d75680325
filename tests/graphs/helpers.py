"""Small deterministic stand-ins for the graph tests: a picture, a segmenter, components."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from graphs.artifacts import ArtifactStore
from graphs.context import Context, GraphSettings
from graphs.traces import TraceStore
from tools.inpaint import OpenCVInpainter
from tools.inpainter import Inpainter
from tools.segment import Segmentation, Segmenter
from tools.types import EditCategory

SIZE = 64


def picture(seed: int = 0) -> Image.Image:
    """A textured 64x64 scene with a dark 'object' square at (20..40, 20..40)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    base = np.stack([120 + x, 140 + y, 160 + (x + y) // 2], axis=-1).astype(np.int16)
    base += rng.integers(-6, 7, base.shape, dtype=np.int16)
    base[20:40, 20:40] = 20
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def object_mask() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[18:42, 18:42] = 255
    return mask


class DarkSegmenter(Segmenter):
    """Finds whatever is darker than 60: the test picture's 'object'."""

    name = "dark"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def _segment(self, image, phrase, box_thresholds, text_threshold, union):
        self.calls.append({"phrase": phrase, "thresholds": tuple(box_thresholds), "union": union})
        array = np.asarray(image.convert("L"))
        mask = np.where(array < 60, 255, 0).astype(np.uint8)
        found = bool(mask.any())
        ys, xs = np.nonzero(mask)
        boxes = [(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))] \
            if found else []
        return Segmentation(phrase=phrase, mask=mask, found=found, boxes=boxes,
                            scores=[0.9] * len(boxes), labels=[phrase] * len(boxes),
                            chosen=list(range(len(boxes))),
                            threshold=box_thresholds[0] if found else None,
                            thresholds_tried=list(box_thresholds[:1]), union=union)


class SleepyInpainter(OpenCVInpainter):
    """OpenCV removal that first touches `marker` and sleeps (to be killed mid-node)."""

    def __init__(self, marker: Path, seconds: float) -> None:
        super().__init__()
        self.marker = Path(marker)
        self.seconds = seconds

    def _inpaint(self, *args: Any, **kwargs: Any):
        self.marker.write_text("inpainting")
        time.sleep(self.seconds)
        return super()._inpaint(*args, **kwargs)


def make_components(root: Path, *, vlm: Any = None, planner: str = "auto",
                    inpainters: dict[str, Any] | None = None, segmenter: Any = None,
                    max_attempts: int = 3, inpainter: str = "opencv",
                    database_url: str | None = None) -> Context:
    """A run context on `root` with the saver `build_components` would open.

    SQLite in `root` by default; PostgreSQL when `database_url` is a postgresql:// URL.
    """
    from graphs.components import open_checkpointer
    from graphs.settings import Settings

    root.mkdir(parents=True, exist_ok=True)
    saver = open_checkpointer(Settings(data_dir=root, database_url=database_url, _env_file=None))
    return Context(
        store=ArtifactStore(root / "artifacts"),
        traces=TraceStore(root / "traces.sqlite"),
        vlm=vlm,
        segmenter=segmenter,
        inpainters=inpainters or {"opencv": OpenCVInpainter()},
        settings=GraphSettings(planner=planner, max_attempts=max_attempts, inpainter=inpainter),
        checkpointer=saver,
    )


def nodes_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["node"] for e in events]


class SteppingInpainter(Inpainter):
    """A diffusion stand-in: `total` steps of `step_s` seconds, through the diffusers pipelines'
    own per-step hook (`tools.inpainter.StepWatch`: progress, then `cancel`, then the pipeline's
    `interrupt`). Counts the steps it ran, so a test sees how far work went after a cancel."""

    name = "brushnet"
    categories = frozenset(EditCategory)

    def __init__(self, total: int = 400, step_s: float = 0.01,
                 interrupt_at: int | None = None) -> None:
        self.total, self.step_s, self.interrupt_at = total, step_s, interrupt_at
        self.steps_run = 0
        self.started = threading.Event()

    def _inpaint(self, request: Any) -> list[Image.Image]:
        from types import SimpleNamespace

        from tools.inpainter import StepWatch

        watch = StepWatch(request.progress, request.cancel, self.total, self.name)
        pipe = SimpleNamespace(_interrupt=False, num_timesteps=self.total)
        self.started.set()
        for step in range(self.total):
            if pipe._interrupt:  # as diffusers' loops do: the remaining steps are skipped
                break
            time.sleep(self.step_s)
            self.steps_run += 1
            if self.interrupt_at is not None and self.steps_run == self.interrupt_at:
                raise KeyboardInterrupt  # what Ctrl-C does to the main thread mid-step
            watch(pipe, step, None, {})
        watch.raise_if_cancelled()
        filled = np.asarray(request.image).copy()
        filled[np.asarray(request.mask) > 0] = 128
        return [Image.fromarray(filled)] * request.options.samples


def wait_until(check: Any, timeout: float = 30.0) -> None:
    """Poll `check()` until it is true (a test's own thread watching another's progress)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.002)


def tiny_brushnet_env(root: Path) -> dict[str, str]:
    """A tiny random-weight SD1.5 base and its BrushNet saved to folders (once per `root`), as
    the `BRUSHEDIT_` variables that make a process (the CLI, `langgraph dev`) load them."""
    from tests.brushedit_inpaint.tiny_parts import SD15, save_tiny_base

    if not (root / "brushnet" / "config.json").is_file():
        save_tiny_base(SD15, root / "base").save_pretrained(root / "brushnet")
    return {"BRUSHEDIT_BASE_MODEL": str(root / "base"), "BRUSHEDIT_BRUSHNET": str(root / "brushnet"),
            "BRUSHEDIT_BRUSHNET_SUBFOLDER": "", "BRUSHEDIT_DEVICE": "cpu",
            "BRUSHEDIT_DTYPE": "float32", "HF_HUB_OFFLINE": "1"}


@contextmanager
def stepping_components(root: Path, *, total: int, step_s: float
                        ) -> Iterator[tuple[SteppingInpainter, Context]]:
    """A `SteppingInpainter` of `total` steps as the rules-planned, one-attempt context's
    brushnet, closed afterwards: what a test that stops a running edit drives."""
    inpainter = SteppingInpainter(total=total, step_s=step_s)
    components = make_components(root, planner="rules", max_attempts=1, inpainter="brushnet",
                                 inpainters={"brushnet": inpainter})
    try:
        yield inpainter, components
    finally:
        components.close()
