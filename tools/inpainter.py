"""The inpainting protocol every backend follows: an image, a mask (255 = repaint) and a prompt in,
`options.samples` RGB images of the input size out.

`Inpainter` checks the call once for every backend (image, mask, prompt, options, seed,
category) and hands a checked `InpaintRequest` to the backend's `_inpaint`. The backends live in
`tools.inpaint` (BrushNet, the OpenCV fill) and `tools.conductors` (today's diffusers editors).
Cheap to import: numpy only.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tools.errors import EditCancelledError, InvalidRequestError, UnsupportedEditError
from tools.mask_ops import Mask, check_mask
from tools.option_specs import SEED_MAX
from tools.types import EditCategory, EditOptions

if TYPE_CHECKING:
    from PIL import Image

Progress = Callable[[int, int], None]
"""Called as progress(step_done, total_steps)."""

Cancel = Callable[[], bool]
"""Asked after each denoising step; True stops the edit (`EditCancelledError`)."""


@dataclass(frozen=True)
class InpaintRequest:
    """One checked `inpaint` call, as backends receive it: RGB image, mask of its size, resolved seed."""

    image: Image.Image
    mask: Mask
    prompt: str
    category: EditCategory
    options: EditOptions
    seed: int
    negative_prompt: str
    progress: Progress | None = None
    cancel: Cancel | None = None


WORKING_SIDE = 1024
"""Longest side the BrushNet pipelines generate at (their `max_side` default)."""
CROP_PADDING = 64
"""Context in pixels kept around the mask when a large photo is edited through a crop."""


def crop_padding(size: tuple[int, int], mask: Mask, working_side: int = WORKING_SIDE) -> int | None:
    """`padding_mask_crop` for the pipeline, or None to edit the whole image.

    A photo larger than the working size would be shrunk as a whole; when its mask (plus `CROP_PADDING` on each
    side) spans at most half of the photo's longer side, editing a crop around it keeps more detail.
    """
    if max(size) <= working_side:
        return None
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    box = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) + 2 * CROP_PADDING
    return CROP_PADDING if box <= max(size) / 2 else None


def _check_arguments(image: Any, mask: Mask, prompt: Any, options: Any, seed: Any) -> None:
    """Raise a clear error for anything no backend can use."""
    if not (hasattr(image, "mode") and hasattr(image, "size")):
        raise InvalidRequestError(f"`image` must be a PIL image, got {type(image).__name__}")
    check_mask(mask, image.size)
    if not mask.any():
        raise InvalidRequestError("`mask` marks no pixels: there is nothing to inpaint")
    if not isinstance(prompt, str):
        raise InvalidRequestError(f"`prompt` must be a string, got {type(prompt).__name__}")
    if not isinstance(options, EditOptions):
        raise InvalidRequestError(f"`options` must be an EditOptions, got {type(options).__name__}")
    if seed is not None and not _is_seed(seed):
        raise InvalidRequestError(f"`seed` must be an integer from 0 to {SEED_MAX}, got {seed!r}")


def _is_seed(value: Any) -> bool:
    """A whole number a generator takes (numpy integers too; not bools, floats or strings)."""
    if isinstance(value, bool):
        return False
    try:
        return 0 <= operator.index(value) <= SEED_MAX
    except TypeError:
        return False


class Inpainter(ABC):
    """One inpainting backend: `name` in the registry and the edit categories it can do."""

    name: ClassVar[str]
    categories: ClassVar[frozenset[EditCategory]]

    def supports(self, category: EditCategory | str) -> bool:
        """Whether this backend can perform an edit of `category`."""
        return _category(category) in self.categories

    def inpaint(
        self,
        image: Image.Image,
        mask: Mask,
        prompt: str,
        *,
        category: EditCategory,
        options: EditOptions,
        seed: int | None = None,
        negative_prompt: str | None = None,
        progress: Progress | None = None,
        cancel: Cancel | None = None,
    ) -> list[Image.Image]:
        """Repaint `image` where `mask` is 255; `options.samples` images at the input size.

        `seed` overrides `options.seed` and `negative_prompt` overrides `options.negative_prompt`.
        `cancel` is asked after each step; when it answers True the edit stops with
        `EditCancelledError`. Raises `UnsupportedEditError` when the backend cannot do `category`.
        """
        category = _category(category)
        _check_arguments(image, mask, prompt, options, seed)
        if cancel is not None and not callable(cancel):
            raise InvalidRequestError(f"`cancel` must be callable, got {type(cancel).__name__}")
        self.check_category(category)
        return self._inpaint(
            InpaintRequest(
                image=image.convert("RGB") if image.mode != "RGB" else image,
                mask=mask,
                prompt=prompt,
                category=category,
                options=options,
                seed=options.seed if seed is None else operator.index(seed),
                negative_prompt=(
                    options.negative_prompt if negative_prompt is None else negative_prompt
                ),
                progress=progress,
                cancel=cancel,
            )
        )

    @classmethod
    def check_category(cls, category: EditCategory | str) -> None:
        """`UnsupportedEditError` when this backend cannot do `category`: a class method, so
        the graph asks before loading any weights."""
        category = _category(category)
        if category not in cls.categories:
            raise UnsupportedEditError(
                cls.unsupported_message(category),
                inpainter=cls.name,
                category=category.value,
                supported=tuple(sorted(c.value for c in cls.categories)),
            )

    @classmethod
    def unsupported_message(cls, category: EditCategory) -> str:
        """Why this backend refuses `category`, and what to use instead."""
        allowed = ", ".join(sorted(c.value for c in cls.categories))
        return f"The {cls.name} inpainter cannot do {category.value} edits (only: {allowed})."

    @classmethod
    def create(cls, **kwargs: Any) -> Inpainter:
        """Build the backend from settings; `get_inpainter` calls this."""
        return cls(**kwargs)

    def variant(self, retry: int) -> Inpainter:
        """The backend to use for the `retry`-th inpaint retry (0 = the first try).

        Generative backends retry with another seed and stay themselves; a deterministic one
        returns a different method, since the same call would give the same image.
        """
        return self

    @abstractmethod
    def _inpaint(self, request: InpaintRequest) -> list[Image.Image]:
        """Do the work on a checked request (RGB image, mask of the image's size, resolved seed)."""


class StepWatch:
    """diffusers' `callback_on_step_end` for one pipeline call: progress after each step, and a
    stop (diffusers' `pipe._interrupt`) once `cancel` answers True.

    After the call, `raise_if_cancelled()` turns a stop into `EditCancelledError`: an
    interrupted pipeline still returns its half-denoised images, which must not pass as a result.
    """

    def __init__(self, progress: Progress | None, cancel: Cancel | None, steps: int, what: str):
        self.progress, self.cancel, self.steps, self.what = progress, cancel, steps, what
        self.stopped_at: int | None = None
        self.total = steps

    def __call__(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        self.total = int(getattr(pipe, "num_timesteps", None) or self.steps)
        if self.stopped_at is None and self.cancel is not None and self.cancel():
            self.stopped_at = step + 1
            pipe._interrupt = True  # diffusers' documented way to end the denoising loop early
        if self.stopped_at is None and self.progress is not None:
            self.progress(step + 1, self.total)
        return callback_kwargs

    def raise_if_cancelled(self) -> None:
        if self.stopped_at is not None:
            raise EditCancelledError(
                f"The {self.what} edit was cancelled after step {self.stopped_at} of "
                f"{self.total}.",
                inpainter=self.what,
                step=self.stopped_at,
                total=self.total,
            )


def _accepts(pipeline: Any, argument: str) -> bool:
    import inspect

    try:
        return argument in inspect.signature(pipeline.__call__).parameters
    except (TypeError, ValueError):
        return False


def _category(category: EditCategory | str) -> EditCategory:
    if isinstance(category, EditCategory):
        return category
    try:
        return EditCategory.parse(category)
    except ValueError:
        choices = ", ".join(c.value for c in EditCategory)
        raise InvalidRequestError(
            f"`category` must be one of {choices}, got {category!r}"
        ) from None
