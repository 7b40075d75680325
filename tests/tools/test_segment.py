"""GroundedSegmenter on tiny random-weight GroundingDINO + SAM loaded from local folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tools.errors import InvalidRequestError, ModelLoadError
from tools.masks import bounding_box
from tools.segment import (
    SEGMENTERS,
    GroundedSegmenter,
    Segmentation,
    Segmenter,
    get_segmenter,
    normalize_phrase,
    select_boxes,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("A Cat", "a cat."), ("  the   RED car.. ", "the red car."), ("dog.", "dog."),
     ("person. animal. object.", "person. animal. object.")],
)  # fmt: skip
def test_phrase_is_lower_cased_and_ends_with_one_dot(raw, expected):
    assert normalize_phrase(raw) == expected


@pytest.mark.parametrize("raw", ["", "  ", " . ", None])
def test_empty_phrase_is_refused(raw):
    with pytest.raises(InvalidRequestError, match="`phrase`"):
        normalize_phrase(raw)


def test_select_boxes_keeps_the_highest_score_not_the_first():
    # the reference kept query order's first box (index 0); the best one is index 2
    assert select_boxes([0.4, 0.3, 0.9, 0.5], ["cat", "cat", "cat", "cat"], "cat.") == [2]


def test_select_boxes_ties_keep_the_earlier_detection():
    assert select_boxes([0.5, 0.7, 0.7], ["cat"] * 3, "cat.") == [1]


def test_select_boxes_union_keeps_every_box_whose_label_matches_the_phrase():
    labels = ["white cat", "dog", "cat", ""]
    assert select_boxes([0.9, 0.8, 0.4, 0.3], labels, "white cat.", union=True) == [0, 2]


def test_select_boxes_union_without_matching_labels_keeps_everything():
    assert select_boxes([0.9, 0.8], ["", ""], "cat.", union=True) == [0, 1]


def test_select_boxes_of_nothing_is_nothing():
    assert select_boxes([], [], "cat.") == []
    assert select_boxes([], [], "cat.", union=True) == []


def test_segment_runs_end_to_end_and_picks_the_best_box(tiny_segmenter, rgb_image):
    seg = tiny_segmenter.segment(rgb_image, "A Cat", box_thresholds=(0.0,))
    assert isinstance(seg, Segmentation)
    assert seg.phrase == "a cat."
    assert seg.found and seg.threshold == 0.0 and seg.thresholds_tried == [0.0]
    assert seg.mask.dtype == np.uint8 and seg.mask.shape == (48, 80)
    assert set(np.unique(seg.mask)) <= {0, 255}
    assert len(seg.boxes) == len(seg.scores) == len(seg.labels) > 0
    assert seg.chosen == [int(np.argmax(seg.scores))]
    assert len(seg.mask_scores) == 1
    for x0, y0, x1, y1 in seg.boxes:
        assert 0 <= x0 <= x1 <= 80 and 0 <= y0 <= y1 <= 48
    assert all("[SEP]" not in label for label in seg.labels)
    summary = seg.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["chosen"] == seg.chosen and summary["size"] == [80, 48]


def test_segment_tries_thresholds_in_order(tiny_segmenter, rgb_image):
    seg = tiny_segmenter.segment(rgb_image, "cat", box_thresholds=(1.0, 0.999999, 0.0))
    assert seg.found
    assert seg.thresholds_tried[-1] == seg.threshold
    assert seg.thresholds_tried == [1.0, 0.999999, 0.0][: len(seg.thresholds_tried)]
    assert all(score > seg.threshold for score in seg.scores)


def test_nothing_found_is_a_normal_result(tiny_segmenter, rgb_image):
    seg = tiny_segmenter.segment(rgb_image, "dog", box_thresholds=(1.0,))
    assert not seg.found
    assert seg.threshold is None and seg.thresholds_tried == [1.0]
    assert seg.boxes == [] and seg.chosen == []
    assert seg.mask.shape == (48, 80) and not seg.mask.any()


def test_union_unites_the_masks_of_every_matching_box(tiny_segmenter, rgb_image):
    best = tiny_segmenter.segment(rgb_image, "cat", box_thresholds=(0.0,))
    united = tiny_segmenter.segment(rgb_image, "cat", box_thresholds=(0.0,), union=True)
    assert united.union and len(united.chosen) >= 1
    assert set(united.chosen) >= set(select_boxes(united.scores, united.labels, "cat.", union=True))
    masks, _ = tiny_segmenter.masks_for_boxes(rgb_image, [united.boxes[i] for i in united.chosen])
    np.testing.assert_array_equal(united.mask, np.where(masks.any(axis=0), 255, 0))
    if best.chosen[0] in united.chosen:
        assert np.all(united.mask[best.mask > 0] > 0)


def fresh(segmenter: GroundedSegmenter, cache_size: int = 4) -> GroundedSegmenter:
    """A new segmenter (empty cache) on the already loaded tiny models."""
    return GroundedSegmenter(
        segmenter.detector,
        segmenter.detector_processor,
        segmenter.sam,
        segmenter.sam_processor,
        cache_size=cache_size,
    )


def test_same_image_skips_the_sam_image_encoder(tiny_segmenter, rgb_image):
    segmenter = fresh(tiny_segmenter)
    calls = []
    handle = segmenter.sam.vision_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        first = segmenter.segment(rgb_image, "cat", box_thresholds=(0.0,))
        assert len(calls) == 1
        again = segmenter.segment(rgb_image.copy(), "a dog", box_thresholds=(0.0,))
        assert len(calls) == 1  # same pixels: cached embedding, encoder not run
        np.testing.assert_array_equal(
            first.mask,
            segmenter.segment(rgb_image, "cat", box_thresholds=(0.0,)).mask,
        )
        assert len(calls) == 1
        other = rgb_image.copy()
        other.putpixel((0, 0), (1, 2, 3))
        segmenter.segment(other, "cat", box_thresholds=(0.0,))
        assert len(calls) == 2  # different pixels: encoded
        assert segmenter.cache_misses == 2 and segmenter.cache_hits == 2
        assert again.found
    finally:
        handle.remove()


def test_cache_is_a_bounded_lru_per_instance(tiny_segmenter):
    from PIL import Image

    segmenter = fresh(tiny_segmenter, cache_size=2)
    calls = []
    handle = segmenter.sam.vision_encoder.register_forward_hook(lambda *a: calls.append(1))
    images = [Image.new("RGB", (32, 32), (i * 40, 0, 0)) for i in range(3)]
    try:
        for image in [*images, images[2], images[0]]:
            segmenter.image_embedding(image)
        # 3 misses, a hit on the newest, then image 0 was evicted (cache of 2) and re-encoded
        assert len(calls) == 4
        segmenter.clear_cache()
        segmenter.image_embedding(images[2])
        assert len(calls) == 5
    finally:
        handle.remove()


def test_missing_weights_raise_model_load_error_saying_how_to_fix(tmp_path, tiny_model_dirs):
    missing = tmp_path / "no-such-detector"
    with pytest.raises(ModelLoadError) as info:
        GroundedSegmenter.from_pretrained(
            str(missing), str(tiny_model_dirs["sam"]), local_files_only=True
        )
    message = str(info.value)
    assert str(missing) in message
    assert "hf download" in message and "BRUSHEDIT_DETECTOR" in message


def test_missing_sam_names_the_sam_setting(tmp_path, tiny_model_dirs):
    with pytest.raises(ModelLoadError, match="BRUSHEDIT_SAM"):
        GroundedSegmenter.from_pretrained(
            str(tiny_model_dirs["detector"]), str(tmp_path / "nope"), local_files_only=True
        )


def test_bad_arguments_are_refused(tiny_segmenter, rgb_image):
    with pytest.raises(InvalidRequestError, match="`box_thresholds`"):
        tiny_segmenter.segment(rgb_image, "cat", box_thresholds=())
    with pytest.raises(InvalidRequestError, match="`box_thresholds` must lie in"):
        tiny_segmenter.segment(rgb_image, "cat", box_thresholds=(1.5,))
    with pytest.raises(InvalidRequestError, match="PIL image"):
        tiny_segmenter.segment(np.zeros((8, 8, 3), np.uint8), "cat")


def test_registry_knows_the_grounded_segmenter():
    assert SEGMENTERS["grounded_sam"] is GroundedSegmenter
    assert issubclass(GroundedSegmenter, Segmenter)
    with pytest.raises(
        InvalidRequestError, match=r"Unknown segmenter 'x'\. Available: grounded_sam"
    ):
        get_segmenter("x")


def test_empty_sam_masks_fall_back_to_the_chosen_boxes(tiny_segmenter, rgb_image):
    import copy

    import torch

    blind_sam = copy.deepcopy(tiny_segmenter.sam)
    with torch.no_grad():  # a SAM whose mask head outputs zeros: every mask is empty
        for param in blind_sam.mask_decoder.output_hypernetworks_mlps.parameters():
            param.zero_()
    segmenter = GroundedSegmenter(
        tiny_segmenter.detector, tiny_segmenter.detector_processor, blind_sam,
        tiny_segmenter.sam_processor,
    )  # fmt: skip
    masks, _ = segmenter.masks_for_boxes(rgb_image, [(10.0, 5.0, 30.0, 20.0)])
    assert not masks.any()
    seg = segmenter.segment(rgb_image, "cat", box_thresholds=(0.0,))
    assert seg.found and seg.mask_from == "box"
    (box,) = seg.chosen_boxes
    assert bounding_box(seg.mask) == box
