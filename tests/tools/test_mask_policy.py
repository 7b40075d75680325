"""`propose_mask` / `mask_for_plan`: every per-category branch of the mask policy."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from tools.errors import InvalidMaskError, InvalidRequestError
from tools.masks import (
    MaskPolicy,
    MaskProposal,
    bounding_box,
    dilate,
    empty_mask,
    from_box,
    invert,
    mask_for_plan,
    propose_mask,
    scaled_px,
)
from tools.segment import (
    DEFAULT_BOX_THRESHOLDS,
    DEFAULT_TEXT_THRESHOLD,
    Segmentation,
    Segmenter,
    normalize_phrase,
)
from tools.types import Box, EditCategory, EditPlan

SIZE = (64, 48)  # W, H


def object_mask() -> np.ndarray:
    """The 'cat' sits in a 10x8 block."""
    mask = empty_mask(SIZE)
    mask[20:28, 30:40] = 255
    return mask


class KnownSegmenter(Segmenter):
    """A test double of the protocol: fixed masks for known phrases, nothing for the rest."""

    name = "known"

    def __init__(self, known: dict[str, np.ndarray]) -> None:
        self.known = {normalize_phrase(k): v for k, v in known.items()}
        self.calls: list[dict] = []

    def _segment(self, image, prompt, box_thresholds, text_threshold, union):
        self.calls.append({"phrase": prompt, "thresholds": tuple(box_thresholds), "union": union})
        mask = self.known.get(prompt)
        if mask is None:
            return Segmentation(
                phrase=prompt,
                mask=empty_mask(image.size),
                found=False,
                thresholds_tried=list(box_thresholds),
                union=union,
            )
        box = bounding_box(mask)
        return Segmentation(
            phrase=prompt,
            mask=mask.copy(),
            found=True,
            boxes=[box.as_tuple()],
            scores=[0.9],
            labels=[prompt.rstrip(".")],
            chosen=[0],
            threshold=box_thresholds[0],
            thresholds_tried=[box_thresholds[0]],
            union=union,
        )


@pytest.fixture
def image() -> Image.Image:
    return Image.new("RGB", SIZE, (10, 20, 30))


@pytest.fixture
def segmenter() -> KnownSegmenter:
    return KnownSegmenter({"cat": object_mask()})


def plan(category: EditCategory, obj: str | None = None, box: Box | None = None) -> EditPlan:
    return EditPlan(instruction="test", category=category, object=obj, box=box)


def test_removal_dilates_the_object_mask_scaled_with_size(image, segmenter):
    proposal = propose_mask(plan(EditCategory.REMOVAL, "cat"), image, segmenter)
    assert isinstance(proposal, MaskProposal)
    px = scaled_px(15, SIZE)
    assert px == 2  # 15 px at 512 on a 64x48 image
    np.testing.assert_array_equal(proposal.mask, dilate(object_mask(), px))
    assert proposal.source == "segmentation" and proposal.found
    assert proposal.segmentations[0].phrase == "cat."
    assert segmenter.calls[0]["thresholds"] == MaskPolicy().box_thresholds
    assert segmenter.calls[0]["union"] is False


def test_local_uses_a_slight_dilation(image, segmenter):
    policy = MaskPolicy(local_dilation_px=16)
    proposal = propose_mask(plan(EditCategory.LOCAL, "cat"), image, segmenter, policy=policy)
    np.testing.assert_array_equal(proposal.mask, dilate(object_mask(), scaled_px(16, SIZE)))
    zero = propose_mask(
        plan(EditCategory.LOCAL, "cat"), image, segmenter, policy=MaskPolicy(local_dilation_px=0)
    )
    np.testing.assert_array_equal(zero.mask, object_mask())


@pytest.mark.parametrize("category", [EditCategory.REMOVAL, EditCategory.LOCAL])
def test_nothing_found_gives_an_empty_mask_and_found_false(image, segmenter, category):
    proposal = propose_mask(plan(category, "dog"), image, segmenter)
    assert not proposal.found and proposal.source == "segmentation"
    assert proposal.mask.shape == (48, 64) and not proposal.mask.any()
    assert "nothing found" in proposal.notes[0]


def test_a_plan_without_an_object_finds_nothing_without_calling_the_segmenter(image, segmenter):
    proposal = propose_mask(plan(EditCategory.REMOVAL, None), image, segmenter)
    assert not proposal.found and not proposal.mask.any()
    assert segmenter.calls == []


def test_retry_policy_is_passed_to_the_segmenter(image, segmenter):
    relaxed = MaskPolicy().relaxed()
    assert relaxed.box_thresholds[-1] == 0.0 and relaxed.union_boxes
    assert relaxed.removal_dilation_px > MaskPolicy().removal_dilation_px
    propose_mask(plan(EditCategory.REMOVAL, "cat"), image, segmenter, policy=relaxed)
    assert segmenter.calls[0] == {
        "phrase": "cat.", "thresholds": relaxed.box_thresholds, "union": True,
    }  # fmt: skip


def test_background_inverts_the_united_foreground(image, segmenter):
    proposal = propose_mask(plan(EditCategory.BACKGROUND, "cat"), image, segmenter)
    np.testing.assert_array_equal(proposal.mask, invert(object_mask()))
    assert proposal.source == "inverted_foreground" and proposal.found
    assert segmenter.calls[0]["union"] is True


def test_background_falls_back_to_a_generic_foreground_phrase(image):
    generic = KnownSegmenter({"person. animal. object.": object_mask()})
    proposal = propose_mask(plan(EditCategory.BACKGROUND, "unicorn"), image, generic)
    np.testing.assert_array_equal(proposal.mask, invert(object_mask()))
    assert [c["phrase"] for c in generic.calls] == ["unicorn.", "person. animal. object."]
    assert any("no foreground found for 'unicorn.'" in note for note in proposal.notes)


def test_background_with_no_foreground_at_all_says_so_and_edits_everything(image):
    nothing = KnownSegmenter({})
    proposal = propose_mask(plan(EditCategory.BACKGROUND, None), image, nothing)
    assert proposal.source == "full" and not proposal.found
    assert proposal.mask.all()
    assert any("falling back to the whole image" in note for note in proposal.notes)
    assert len(proposal.segmentations) == 1  # only the fallback phrase was tried


def test_global_is_the_full_image(image, segmenter):
    proposal = propose_mask(plan(EditCategory.GLOBAL), image, segmenter)
    assert proposal.source == "full" and proposal.found and proposal.mask.all()
    assert segmenter.calls == []


@pytest.mark.parametrize("shape", ["rect", "ellipse"])
def test_addition_draws_the_agents_box(image, shape):
    box = Box(x0=10, y0=5, x1=30, y1=25)
    proposal = propose_mask(
        plan(EditCategory.ADDITION, box=Box(x0=0, y0=0, x1=5, y1=5)),
        image,
        None,
        box=box,
        policy=MaskPolicy(addition_shape=shape),
    )  # the `box` argument wins over plan.box
    np.testing.assert_array_equal(proposal.mask, from_box(box, SIZE, shape))
    assert proposal.source == "box" and proposal.found


def test_addition_uses_plan_box_and_clamps_it(image):
    proposal = propose_mask(
        plan(EditCategory.ADDITION, box=Box(x0=50, y0=40, x1=100, y1=90)), image, None
    )
    assert bounding_box(proposal.mask) == Box(x0=50, y0=40, x1=64, y1=48)
    assert any("clamped" in note for note in proposal.notes)


def test_addition_without_a_box_is_a_clear_error(image):
    with pytest.raises(InvalidRequestError, match="an addition needs a box"):
        propose_mask(plan(EditCategory.ADDITION), image, None)


def test_user_mask_always_wins_and_is_resized(image, segmenter):
    painted = np.zeros((24, 32), bool)
    painted[:12, :16] = True  # top-left quarter, at half size
    for category in EditCategory:
        proposal = propose_mask(plan(category, "cat"), image, segmenter, user_mask=painted)
        assert proposal.source == "user" and proposal.found
        assert proposal.mask.shape == (48, 64)
        assert bounding_box(proposal.mask) == Box(x0=0, y0=0, x1=32, y1=24)
    assert segmenter.calls == []
    assert any("resized" in note for note in proposal.notes)


def test_an_all_black_user_mask_is_refused(image, segmenter):
    with pytest.raises(InvalidMaskError, match="marks no pixels"):
        propose_mask(plan(EditCategory.LOCAL, "cat"), image, segmenter, user_mask=empty_mask(SIZE))


def test_segmenting_categories_need_a_segmenter(image):
    with pytest.raises(InvalidRequestError, match="needs a segmenter"):
        propose_mask(plan(EditCategory.REMOVAL, "cat"), image, None)


def test_mask_for_plan_returns_the_proposals_mask(image, segmenter):
    mask = mask_for_plan(plan(EditCategory.REMOVAL, "cat"), image, segmenter)
    np.testing.assert_array_equal(
        mask, propose_mask(plan(EditCategory.REMOVAL, "cat"), image, segmenter).mask
    )


def test_summary_is_json_friendly(image, segmenter):
    summary = propose_mask(plan(EditCategory.REMOVAL, "cat"), image, segmenter).summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["source"] == "segmentation" and summary["category"] == "removal"
    assert summary["segmentations"][0]["phrase"] == "cat."


def test_policy_validates_thresholds():
    with pytest.raises(ValueError, match="box_thresholds"):
        MaskPolicy(box_thresholds=())
    with pytest.raises(ValueError, match="box_thresholds"):
        MaskPolicy(box_thresholds=(0.5, 1.5))


def test_real_tiny_grounded_segmenter_through_the_policy(tiny_segmenter, rgb_image):
    policy = MaskPolicy(box_thresholds=(0.0,))
    proposal = propose_mask(
        plan(EditCategory.REMOVAL, "cat"), rgb_image, tiny_segmenter, policy=policy
    )
    seg = proposal.segmentations[0]
    assert proposal.found and seg.found
    np.testing.assert_array_equal(proposal.mask, dilate(seg.mask, scaled_px(15, rgb_image.size)))
    background = propose_mask(
        plan(EditCategory.BACKGROUND, "cat"), rgb_image, tiny_segmenter, policy=policy
    )
    assert background.segmentations[0].union


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"box_thresholds": ()}, "needs at least one threshold"),
        ({"box_thresholds": (1.5,)}, "must lie in [0, 1]"),
        ({"text_threshold": -0.1}, "`text_threshold` must lie in [0, 1]"),
        ({"box_thresholds": "0.3"}, "`box_thresholds` must be a list of numbers, got str"),
        ({"box_thresholds": (0.3, "x")}, "`box_thresholds` must be numbers"),
        ({"box_thresholds": (float("nan"),)}, "must lie in [0, 1]"),
        ({"text_threshold": None}, "`text_threshold` must be a number, got None"),
        ({"phrase": "  . "}, "must name something to find"),
        ({"phrase": None}, "`phrase` must be a string"),
        ({"image": np.zeros((8, 8, 3), np.uint8)}, "must be a PIL image"),
    ],
)
def test_every_segmenter_gets_its_arguments_checked_by_the_protocol(image, kwargs, message):
    """A backend implements only `_segment`; `Segmenter.segment` refuses bad input for all."""
    segmenter = KnownSegmenter({"cat": object_mask()})
    call = {"image": image, "phrase": "cat", **kwargs}
    with pytest.raises(InvalidRequestError, match=re.escape(message)):
        segmenter.segment(call.pop("image"), call.pop("phrase"), **call)
    assert segmenter.calls == []


def test_a_backend_receives_a_normalized_prompt_and_an_rgb_image(image):
    seen = []

    class Recording(KnownSegmenter):
        def _segment(self, image, prompt, box_thresholds, text_threshold, union):
            seen.append((image.mode, prompt, box_thresholds, text_threshold))
            return super()._segment(image, prompt, box_thresholds, text_threshold, union)

    found = Recording({"cat": object_mask()}).segment(image.convert("L"), "  A  Cat. ")
    assert seen == [("RGB", "a cat.", list(DEFAULT_BOX_THRESHOLDS), DEFAULT_TEXT_THRESHOLD)]
    assert found.phrase == "a cat."
