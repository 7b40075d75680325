"""Text-prompted segmentation: a phrase in, a mask of that thing out.

`GroundedSegmenter` is BrushEdit's recipe through transformers: GroundingDINO finds boxes for the
phrase, SAM turns the chosen box(es) into a mask (box prompts, one mask per box). It fixes the
reference's bugs: the best-scoring box is kept (not the first in query order) and boxes can be
united. "Nothing found" is a normal `Segmentation` with `found=False`, never an exception.

torch and transformers are imported only when a model is loaded or run.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from tools.errors import InvalidRequestError, ModelLoadError
from tools.images import content_hash
from tools.mask_ops import (
    Mask,
    area_fraction,
    bounding_box,
    empty_mask,
    from_box,
)
from tools.mask_ops import union as unite_masks
from tools.types import Box, resolve_dtype

if TYPE_CHECKING:
    import torch
    from PIL import Image

DEFAULT_BOX_THRESHOLDS = (0.3, 0.25, 0.2, 0.15, 0.1, 0.05)
"""GroundingDINO box thresholds tried in turn until something is found (the reference's list)."""

logger = logging.getLogger(__name__)

DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-tiny"
DEFAULT_SAM = "facebook/sam-vit-huge"
DEFAULT_TEXT_THRESHOLD = 0.25


@dataclass
class Segmentation:
    """What a segmenter found for one phrase on one image.

    `boxes`, `scores` and `labels` are every detection kept at `threshold` (the first box
    threshold that found something; None when nothing was found), in the detector's order;
    `chosen` indexes the ones whose SAM masks make up `mask`.
    """

    phrase: str
    mask: Mask
    found: bool
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    chosen: list[int] = field(default_factory=list)
    threshold: float | None = None
    thresholds_tried: list[float] = field(default_factory=list)
    union: bool = False
    mask_scores: list[float] = field(default_factory=list)
    """SAM's predicted IoU for each chosen box's mask, in `chosen` order."""
    mask_from: Literal["sam", "box"] = "sam"
    """"box" when SAM returned an empty mask and the chosen boxes were filled instead."""

    @property
    def chosen_boxes(self) -> list[Box]:
        """The chosen boxes as integer `Box`es clamped to the image."""
        height, width = self.mask.shape
        return _int_boxes(self.boxes, self.chosen, width, height)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description for traces: everything but the mask's pixels."""
        box = bounding_box(self.mask)
        return {
            "phrase": self.phrase,
            "found": self.found,
            "threshold": self.threshold,
            "thresholds_tried": list(self.thresholds_tried),
            "union": self.union,
            "boxes": [[round(float(v), 2) for v in b] for b in self.boxes],
            "scores": [round(float(s), 4) for s in self.scores],
            "labels": list(self.labels),
            "chosen": list(self.chosen),
            "mask_scores": [round(float(s), 4) for s in self.mask_scores],
            "mask_from": self.mask_from,
            "mask_area_fraction": round(area_fraction(self.mask), 6),
            "mask_bbox": list(box.as_tuple()) if box is not None else None,
            "size": [int(self.mask.shape[1]), int(self.mask.shape[0])],
        }


class Segmenter(ABC):
    """Anything that turns (image, phrase) into a `Segmentation`; the graph injects one."""

    name: ClassVar[str]

    def segment(
        self,
        image: Image.Image,
        phrase: str,
        *,
        box_thresholds: Sequence[float] = DEFAULT_BOX_THRESHOLDS,
        text_threshold: float = DEFAULT_TEXT_THRESHOLD,
        union: bool = False,
    ) -> Segmentation:
        """Find `phrase` in `image`; return an all-zero mask with `found=False` if absent.

        The arguments are checked here, once for every backend: the image must be a PIL image
        (converted to RGB), the phrase is normalized, thresholds lie in [0, 1].
        """
        thresholds = _check_thresholds(box_thresholds, text_threshold)
        return self._segment(
            _as_rgb(image), normalize_phrase(phrase), thresholds, float(text_threshold), union
        )

    @abstractmethod
    def _segment(
        self,
        image: Image.Image,
        prompt: str,
        thresholds: list[float],
        text_threshold: float,
        union: bool,
    ) -> Segmentation:
        """What a backend does: `segment` with checked arguments and a normalized prompt."""


def normalize_phrase(phrase: str) -> str:
    """Lower-case, single-spaced, ending in exactly one "." (what GroundingDINO was trained on)."""
    if not isinstance(phrase, str):
        raise InvalidRequestError(f"`phrase` must be a string, got {type(phrase).__name__}")
    text = re.sub(r"\s+", " ", phrase).strip().lower().rstrip(". ").strip()
    if not text:
        raise InvalidRequestError(f"`phrase` must name something to find, got {phrase!r}")
    return text + "."


def select_boxes(
    scores: Sequence[float], labels: Sequence[str], phrase: str, *, union: bool = False
) -> list[int]:
    """Indices of the detections to segment: the best score, or every match with `union`.

    With `union`, a detection matches when its label shares a word with the phrase; if no label
    does (GroundingDINO labels can be empty below the text threshold) every detection counts.
    Ties on score keep the earlier detection. Returns [] when there are no detections.
    """
    if len(scores) != len(labels):
        raise ValueError(f"got {len(scores)} scores but {len(labels)} labels")
    if not len(scores):
        return []
    if not union:
        return [int(np.argmax(np.asarray(scores, dtype=np.float64)))]
    words = set(_words(phrase))
    matching = [i for i, label in enumerate(labels) if words & set(_words(label))]
    return matching or list(range(len(scores)))


def _int_boxes(
    boxes: Sequence[Sequence[float]], indices: Sequence[int], width: int, height: int
) -> list[Box]:
    out = []
    for i in indices:
        try:
            out.append(Box.clamped(*boxes[i], width=width, height=height))
        except ValueError:  # a degenerate box (under a pixel) has no integer form
            continue
    return out


def _clean_label(label: str) -> str:
    """Drop the special tokens ([SEP], [CLS] ...) GroundingDINO's decoded labels carry."""
    return re.sub(r"\s+", " ", re.sub(r"\[[A-Z]+\]", " ", label)).strip()


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP_WORDS]


_STOP_WORDS = frozenset({"a", "an", "the", "of", "and", "sep", "cls", "pad"})


def _check_thresholds(box_thresholds: Sequence[float], text_threshold: float) -> list[float]:
    numbers = (int, float, np.integer, np.floating)
    if isinstance(box_thresholds, (str, bytes)) or not isinstance(
        box_thresholds, (Sequence, np.ndarray)
    ):
        raise InvalidRequestError(
            f"`box_thresholds` must be a list of numbers, got {type(box_thresholds).__name__}"
        )
    if any(isinstance(t, bool) or not isinstance(t, numbers) for t in box_thresholds):
        raise InvalidRequestError(f"`box_thresholds` must be numbers, got {list(box_thresholds)!r}")
    if isinstance(text_threshold, bool) or not isinstance(text_threshold, numbers):
        raise InvalidRequestError(f"`text_threshold` must be a number, got {text_threshold!r}")
    thresholds = [float(t) for t in box_thresholds]
    if not thresholds:
        raise InvalidRequestError("`box_thresholds` needs at least one threshold")
    if any(not 0.0 <= t <= 1.0 for t in thresholds):
        raise InvalidRequestError(f"`box_thresholds` must lie in [0, 1], got {thresholds}")
    if not 0.0 <= float(text_threshold) <= 1.0:
        raise InvalidRequestError(f"`text_threshold` must lie in [0, 1], got {text_threshold}")
    return thresholds


@dataclass
class _Embedding:
    """SAM's image embedding plus the sizes its processor reported for that image."""

    embeddings: torch.Tensor
    original_sizes: torch.Tensor
    reshaped_input_sizes: torch.Tensor


class GroundedSegmenter(Segmenter):
    """GroundingDINO boxes + SAM box-prompted masks, with SAM's image embedding cached.

    The cache is a small LRU on this instance keyed by `tools.images.content_hash`, so asking
    for a second phrase on the same image (or retrying with other thresholds) skips SAM's
    image encoder, by far the most expensive step. `cache_size=0` disables it.
    """

    name: ClassVar[str] = "grounded_sam"

    def __init__(
        self,
        detector: Any,
        detector_processor: Any,
        sam: Any,
        sam_processor: Any,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
        cache_size: int = 4,
    ) -> None:
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"`cache_size` must be an integer >= 0, got {cache_size!r}")
        torch_dtype = resolve_dtype(dtype)
        self.device = device
        self.dtype = torch_dtype
        self.detector = detector.to(device=device, dtype=torch_dtype).eval()
        self.detector_processor = detector_processor
        self.sam = sam.to(device=device, dtype=torch_dtype).eval()
        self.sam_processor = sam_processor
        self.cache_size = cache_size
        self._cache: OrderedDict[str, _Embedding] = OrderedDict()
        self._lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0

    @classmethod
    def from_pretrained(
        cls,
        detector: str = DEFAULT_DETECTOR,
        sam: str = DEFAULT_SAM,
        *,
        device: str = "cpu",
        dtype: torch.dtype | str | None = None,
        local_files_only: bool = False,
        cache_size: int = 4,
    ) -> GroundedSegmenter:
        """Load both models from Hub ids or local folders in transformers format.

        Raises `ModelLoadError` naming what was tried and how to get the weights.
        """
        from transformers import (
            AutoProcessor,
            GroundingDinoForObjectDetection,
            SamModel,
            SamProcessor,
        )

        torch_dtype = resolve_dtype(dtype)
        detector, sam = _expand_home(detector), _expand_home(sam)
        kwargs: dict[str, Any] = {"local_files_only": local_files_only}
        model_kwargs = dict(kwargs, **({"dtype": torch_dtype} if torch_dtype is not None else {}))
        det_model = _load("GroundingDINO detector", detector, "BRUSHEDIT_DETECTOR",
                          GroundingDinoForObjectDetection, **model_kwargs)
        det_processor = _load("GroundingDINO processor", detector, "BRUSHEDIT_DETECTOR",
                              AutoProcessor, **kwargs)
        if not hasattr(det_processor, "post_process_grounded_object_detection"):
            raise ModelLoadError(
                f"{detector!r} holds a {type(det_processor).__name__}, not a GroundingDINO "
                "processor; point BRUSHEDIT_DETECTOR at a GroundingDINO checkpoint such as "
                f"{DEFAULT_DETECTOR}", segmenter=True
            )
        sam_model = _load("SAM model", sam, "BRUSHEDIT_SAM", SamModel, **model_kwargs)
        sam_processor = _load("SAM processor", sam, "BRUSHEDIT_SAM", SamProcessor, **kwargs)
        return cls(
            det_model,
            det_processor,
            sam_model,
            sam_processor,
            device=device,
            dtype=torch_dtype,
            cache_size=cache_size,
        )

    def _segment(
        self,
        image: Image.Image,
        prompt: str,
        thresholds: list[float],
        text_threshold: float,
        union: bool,
    ) -> Segmentation:
        """Detect `prompt`, lowering the box threshold in turn, then mask the chosen box(es)."""
        width, height = image.size
        boxes, scores, labels = self.detect(image, prompt, min(thresholds), text_threshold)
        tried: list[float] = []
        for threshold in thresholds:
            tried.append(threshold)
            keep = [i for i, s in enumerate(scores) if s > threshold]
            if not keep:
                continue
            kept_boxes = [boxes[i] for i in keep]
            kept_scores = [scores[i] for i in keep]
            kept_labels = [labels[i] for i in keep]
            chosen = select_boxes(kept_scores, kept_labels, prompt, union=union)
            mask, ious, mask_from = self._united_mask(image, [kept_boxes[i] for i in chosen])
            return Segmentation(
                phrase=prompt,
                mask=mask,
                found=bool(mask.any()),
                mask_from=mask_from,
                boxes=kept_boxes,
                scores=kept_scores,
                labels=kept_labels,
                chosen=chosen,
                threshold=threshold,
                thresholds_tried=tried,
                union=union,
                mask_scores=ious,
            )
        logger.info("nothing found for %r at box thresholds %s", prompt, tried)
        return Segmentation(
            phrase=prompt,
            mask=empty_mask((width, height)),
            found=False,
            thresholds_tried=tried,
            union=union,
        )

    def _united_mask(
        self, image: Image.Image, boxes: list[tuple[float, float, float, float]]
    ) -> tuple[Mask, list[float], Literal["sam", "box"]]:
        """Union of SAM's masks for `boxes`; the boxes themselves if SAM marks nothing."""
        masks, ious = self.masks_for_boxes(image, boxes)
        mask = np.where(masks.any(axis=0), 255, 0).astype(np.uint8)
        if mask.any():
            return mask, ious, "sam"
        size = image.size
        filled = [from_box(b, size) for b in _int_boxes(boxes, range(len(boxes)), *size)]
        return unite_masks(empty_mask(size), *filled), ious, "box"

    def detect(
        self, image: Image.Image, prompt: str, box_threshold: float, text_threshold: float
    ) -> tuple[list[tuple[float, float, float, float]], list[float], list[str]]:
        """GroundingDINO detections scoring above `box_threshold`, in pixel xyxy coordinates.

        One forward pass serves every threshold: callers filter the scores further.
        """
        import torch

        inputs = self.detector_processor(images=image, text=prompt, return_tensors="pt")
        inputs = {k: self._to_device(v) for k, v in inputs.items()}
        with torch.inference_mode():
            outputs = self.detector(**inputs)
        outputs.logits = outputs.logits.float()
        outputs.pred_boxes = outputs.pred_boxes.float()
        result = _post_process_detections(
            self.detector_processor,
            outputs,
            inputs["input_ids"],
            box_threshold,
            text_threshold,
            (image.size[1], image.size[0]),
        )
        boxes = [tuple(float(v) for v in b) for b in result["boxes"].cpu().tolist()]
        scores = [float(s) for s in result["scores"].cpu().tolist()]
        labels = result.get("text_labels", None)
        if labels is None:
            labels = result.get("labels", [""] * len(scores))
        return boxes, scores, [_clean_label(str(label)) for label in labels]

    def masks_for_boxes(
        self, image: Image.Image, boxes: Sequence[Sequence[float]]
    ) -> tuple[np.ndarray, list[float]]:
        """SAM masks for box prompts: bool (n, H, W) at the image's size, and predicted IoUs."""
        import torch

        width, height = image.size
        if not boxes:
            return np.zeros((0, height, width), bool), []
        embedding = self.image_embedding(image)
        prompt = self.sam_processor(
            images=image, input_boxes=[[list(map(float, b)) for b in boxes]], return_tensors="pt"
        )
        input_boxes = self._to_device(prompt["input_boxes"].float())
        with torch.inference_mode():
            out = self.sam(
                image_embeddings=embedding.embeddings,
                input_boxes=input_boxes,
                multimask_output=False,
            )
        masks = self.sam_processor.post_process_masks(
            out.pred_masks.float().cpu(),
            embedding.original_sizes.cpu(),
            embedding.reshaped_input_sizes.cpu(),
        )[0]  # (n_boxes, 1, H, W) bool
        ious = [float(v) for v in out.iou_scores.float().cpu().reshape(-1).tolist()]
        return masks[:, 0].numpy().astype(bool), ious

    def image_embedding(self, image: Image.Image) -> _Embedding:
        """SAM's image embedding, from the cache when this exact picture was seen recently."""
        import torch

        key = content_hash(image)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.cache_hits += 1
                return cached
            self.cache_misses += 1
        inputs = self.sam_processor(images=image, return_tensors="pt")
        pixel_values = self._to_device(inputs["pixel_values"])
        with torch.inference_mode():
            embeddings = self.sam.get_image_embeddings(pixel_values)
        entry = _Embedding(
            embeddings=embeddings,
            original_sizes=torch.as_tensor(inputs["original_sizes"]),
            reshaped_input_sizes=torch.as_tensor(inputs["reshaped_input_sizes"]),
        )
        if self.cache_size:
            with self._lock:
                self._cache[key] = entry
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return entry

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """Move to the models' device; floating tensors also take the models' dtype."""
        if tensor.is_floating_point() and self.dtype is not None:
            return tensor.to(self.device, self.dtype)
        return tensor.to(self.device)

    def clear_cache(self) -> None:
        """Forget every cached image embedding."""
        with self._lock:
            self._cache.clear()


SEGMENTERS: dict[str, type[Segmenter]] = {GroundedSegmenter.name: GroundedSegmenter}
"""Segmenter classes by name; `get_segmenter` loads one."""


def get_segmenter(name: str = GroundedSegmenter.name, **kwargs: Any) -> Segmenter:
    """Load the segmenter registered as `name` (its `from_pretrained(**kwargs)` if it has one)."""
    try:
        cls = SEGMENTERS[name]
    except KeyError:
        raise InvalidRequestError(
            f"Unknown segmenter {name!r}. Available: {', '.join(sorted(SEGMENTERS))}"
        ) from None
    loader = getattr(cls, "from_pretrained", None)
    return loader(**kwargs) if loader is not None else cls(**kwargs)


def _post_process_detections(
    processor: Any,
    outputs: Any,
    input_ids: Any,
    box_threshold: float,
    text_threshold: float,
    size_hw: tuple[int, int],
) -> dict[str, Any]:
    """`post_process_grounded_object_detection` across transformers versions.

    transformers < 4.51 calls the box threshold `box_threshold`; later versions `threshold`.
    """
    import inspect
    import warnings

    method = processor.post_process_grounded_object_detection
    name = "threshold" if "threshold" in inspect.signature(method).parameters else "box_threshold"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the deprecated `labels` key
        results = method(
            outputs,
            input_ids,
            text_threshold=text_threshold,
            target_sizes=[size_hw],
            **{name: box_threshold},
        )
        return dict(results[0])


def _load(what: str, source: str, setting: str, loader: Any, **kwargs: Any) -> Any:
    """`loader.from_pretrained(source, **kwargs)`; a failure says how to get the weights."""
    try:
        return loader.from_pretrained(source, **kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:  # any failure to load is a missing or wrong checkpoint
        raise ModelLoadError(
            f"Could not load the {what} from {source!r} ({type(exc).__name__}: {exc}). "
            f"Download it with `hf download {source} --local-dir <folder>` (or copy "
            f"a transformers-format folder) and set {setting}=<folder>; offline runs need "
            "HF_HUB_OFFLINE=1 and a local folder.", segmenter=True
        ) from exc


def _expand_home(source: str) -> str:
    """`~/models/sam` from a settings file means the home folder, as in a shell."""
    return os.path.expanduser(source) if str(source).startswith("~") else str(source)


def _as_rgb(image: Image.Image) -> Image.Image:
    if not (hasattr(image, "mode") and hasattr(image, "size")):
        raise InvalidRequestError(f"`image` must be a PIL image, got {type(image).__name__}")
    return image if image.mode == "RGB" else image.convert("RGB")
