"""Each diffusers conductor driven by the graph, on tiny random-weight checkpoints loaded from
their `BRUSHEDIT_<NAME>_MODEL` folders exactly as real ones are (`build_components`).

What a user of the graph relies on: the background outside the blend zone is the photo's, bit for
bit; the trace names the conductor and the prompt it was given, in the style it wants (a caption
or an edit instruction); a global edit on an instruction editor runs without a mask and is judged
as one; bad setups and impossible edits are one sentence, before any weights load.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.graphs.helpers import object_mask, picture
from tests.tools.conductor_parts import conductor_env
from tools.conductors import blend_zone
from tools.errors import MissingWeightsError, UnsupportedEditError, WrongPipelineError
from tools.registry import CONDUCTOR_NAMES, INPAINTERS

EDITS = {
    "flux-fill": ("remove the dark square", "removal"),
    "flux-kontext": ("make the square red", "local"),
    "qwen-image-edit": ("replace the square with a red ball", "local"),
    "flux2-klein": ("turn the square into a ball", "local"),
    "sd-inpaint": ("replace the square with a red ball", "local"),
}


def _one_sentence(text: str) -> bool:
    return "\n" not in text and text.endswith(".") and text.count(". ") == 0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    photo, mask = tmp_path / "photo.png", tmp_path / "mask.png"
    picture().save(photo)
    Image.fromarray(object_mask()).save(mask)
    return photo, mask


def _session(monkeypatch, tmp_path, dirs, inpainter: str, **env: str):
    from graphs import EditSession, build_components
    from graphs.settings import load_settings

    for key, value in {**conductor_env(dirs), **env}.items():
        monkeypatch.setenv(key, value)
    components = build_components(load_settings(data_dir=tmp_path / "data"), inpainter=inpainter,
                                  planner="rules", segmenter=False, persist=False,
                                  max_attempts=1)
    return EditSession.open(components), components


def _event(session, node: str) -> dict:
    return [e for e in session.trace() if e.get("node") == node][-1]


@pytest.mark.parametrize("name", CONDUCTOR_NAMES)
def test_a_graph_edit_keeps_the_background_and_traces_the_conductor_and_its_prompt(
    name, monkeypatch, tmp_path, tiny_conductor_dirs, files
):
    photo, mask_file = files
    instruction, category = EDITS[name]
    session, components = _session(monkeypatch, tmp_path, tiny_conductor_dirs, name)
    try:
        result = session.edit(str(photo), instruction, mask=str(mask_file),
                              options={"steps": 2})
        source = np.asarray(Image.open(photo).convert("RGB"))
        out = np.asarray(Image.open(session.path(result.image)).convert("RGB"))
        mask = components.store.get_mask(result.mask)
        outside = ~blend_zone(mask)
        assert outside.any() and np.array_equal(out[outside], source[outside])
        assert np.abs(out[mask > 0].astype(int) - source[mask > 0]).mean() > 1.0
        assert result.inpainter == name and result.plan.category.value == category

        style = INPAINTERS[name].prompt_style
        caption, inpaint = _event(session, "caption"), _event(session, "inpaint")
        prompt = caption["outputs"]["prompt"]
        assert caption["outputs"]["prompt_style"] == caption["params"]["prompt_style"] == style
        record = inpaint["outputs"]["conductor"]
        assert (record["conductor"], record["prompt"], record["prompt_style"]) == (
            name, prompt, style)
        assert result.caption == prompt and record["model"] == str(tiny_conductor_dirs[name])
        if style == "instruction":  # what to change, and that the rest stays
            assert prompt.endswith("unchanged.") and prompt.split()[0] in ("Turn", "Remove")
        else:  # what the masked area shows afterwards
            assert prompt == caption["outputs"]["target_caption"] and "unchanged" not in prompt
        # steps as asked; guidance left unset: the model's own, and the trace says so
        assert (record["steps"], inpaint["params"]["model_defaults"]) == (2, ["guidance_scale"])
        assert record["guidance_scale"] == INPAINTERS[name].default_guidance
        (candidate,) = session.values()["candidates"]
        assert "aligned" in {check["name"] for check in candidate["checks"]}
    finally:
        components.close()


def test_a_global_edit_on_an_instruction_editor_runs_without_a_mask(
    monkeypatch, tmp_path, tiny_conductor_dirs, files
):
    photo, _ = files
    session, components = _session(monkeypatch, tmp_path, tiny_conductor_dirs, "flux2-klein")
    try:
        result = session.edit(str(photo), "make it winter", options={"steps": 1})
        record = _event(session, "inpaint")["outputs"]["conductor"]
        assert record["maskless"] and record["pipeline"] == "Flux2KleinPipeline"
        assert record["steps"] == 1 and record["prompt"].startswith("Make it winter")
        (candidate,) = session.values()["candidates"]
        checks = {check["name"]: check for check in candidate["checks"]}
        # judged as a global edit: the whole picture may change, nothing asks for a background
        assert "background_psnr" not in checks and checks["mask_full"]["passed"]
        assert checks["aligned"]["passed"] and result.accepted
    finally:
        components.close()


def test_a_wrong_folder_or_missing_weights_are_one_sentence(
    monkeypatch, tmp_path, tiny_conductor_dirs, files
):
    photo, mask = files
    fill = str(tiny_conductor_dirs["flux-fill"])
    absent = str(tmp_path / "weights" / "qwen")
    session, components = _session(
        monkeypatch, tmp_path, tiny_conductor_dirs, "flux-kontext",
        BRUSHEDIT_FLUX_KONTEXT_MODEL=fill, BRUSHEDIT_QWEN_IMAGE_EDIT_MODEL=absent)
    try:
        with pytest.raises(WrongPipelineError) as wrong:
            session.edit(str(photo), "make the square red", mask=str(mask))
        assert _one_sentence(str(wrong.value).replace(fill, "F"))
        assert "FluxFillPipeline" in str(wrong.value) and "flux-kontext" in str(wrong.value)
        assert wrong.value.suggested == "flux-fill"
        with pytest.raises(MissingWeightsError) as missing:
            session.edit(str(photo), "make the square red", mask=str(mask),
                         options={"inpainter": "qwen-image-edit"})
        error = missing.value
        assert error.env_var == "BRUSHEDIT_QWEN_IMAGE_EDIT_MODEL" and absent in error.fix_command
        assert _one_sentence(str(error).replace(absent, "F"))
    finally:
        components.close()


@pytest.mark.parametrize(("name", "instruction"), [
    ("flux-fill", "make it winter"), ("sd-inpaint", "make it winter"),
    ("opencv", "add a ball"),
])
def test_an_edit_the_inpainter_cannot_do_is_refused_before_its_weights_load(
    name, instruction, monkeypatch, tmp_path, tiny_conductor_dirs, files
):
    photo, _ = files
    session, components = _session(monkeypatch, tmp_path, tiny_conductor_dirs, name)
    try:
        with pytest.raises(UnsupportedEditError) as caught:
            session.edit(str(photo), instruction)
        assert _one_sentence(str(caught.value)) and caught.value.inpainter == name
        assert caught.value.alternatives and name not in caught.value.alternatives
        assert not components.inpainters[name].loaded  # nothing was loaded to say no
    finally:
        components.close()
