"""BrushNetInpainter on an SDXL pipeline: native working size, validation; SD1.5 keeps the image's size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tools.inpaint import BrushNetInpainter, InpaintRequest
from tools.types import EditCategory, EditOptions


@pytest.fixture(scope="module")
def sdxl_inpainter(tmp_path_factory, torch_threads):
    pytest.importorskip("brushedit_inpaint")
    from tests.brushedit_inpaint.sdxl_helpers import make_tiny_sdxl_pipeline

    return BrushNetInpainter(make_tiny_sdxl_pipeline(tmp_path_factory.mktemp("xl_tok")))


def _inputs(width=120, height=80):
    image = Image.fromarray(np.full((height, width, 3), 128, np.uint8), "RGB")
    mask = np.zeros((height, width), np.uint8)
    mask[20:40, 30:60] = 255
    return image, mask


def _local_request(image, mask) -> InpaintRequest:
    return InpaintRequest(
        image, mask, "a cat", EditCategory.LOCAL, EditOptions(), seed=1, negative_prompt=""
    )


def test_sdxl_works_at_its_native_size_and_returns_the_input_size(sdxl_inpainter):
    image, mask = _inputs()
    assert sdxl_inpainter.is_sdxl and sdxl_inpainter.sdxl_working_side == 1024
    kwargs = sdxl_inpainter.pipeline_kwargs(_local_request(image, mask))
    h, w = kwargs["height"], kwargs["width"]
    assert h % 8 == 0 and w % 8 == 0
    assert abs(h * w / 1024**2 - 1) < 0.02 and abs(w / h - 1.5) < 0.01  # ~1024**2 pixels, 3:2 kept
    small = BrushNetInpainter(sdxl_inpainter.pipeline, sdxl_working_side=64)
    out = small.inpaint(image, mask, "a cat", category="local", options=EditOptions(steps=1))
    assert len(out) == 1 and out[0].size == (120, 80)


def test_sd15_pipelines_keep_the_image_size():
    pytest.importorskip("brushedit_inpaint")
    from tests.brushedit_inpaint.conftest import make_tiny_models

    unet, _, _ = make_tiny_models()

    class Sd15Like:
        def __init__(self):
            self.unet = unet

        def __call__(self, **kwargs):
            raise AssertionError("not called")

    inpainter = BrushNetInpainter(Sd15Like())
    image, mask = _inputs()
    kwargs = inpainter.pipeline_kwargs(_local_request(image, mask))
    assert not inpainter.is_sdxl and "height" not in kwargs and "width" not in kwargs


@pytest.mark.parametrize("side", [0, 32, 4096, True, 512.0])
def test_bad_working_side_is_refused(side):
    with pytest.raises(ValueError, match="sdxl_working_side"):
        BrushNetInpainter(lambda **kw: None, sdxl_working_side=side)
