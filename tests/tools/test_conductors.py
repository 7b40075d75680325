"""The diffusers conductors on tiny random-weight checkpoints, loaded as real ones are.

Each conductor's tiny pipeline is saved with `save_pretrained` (tests/tools/conductor_parts.py)
and loaded back through `load_conductor`; the edits run the real diffusers pipelines.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tools.conductors import blend_zone, raw_output, run_record
from tools.errors import (
    ConductorLoadError,
    ConfigError,
    EditCancelledError,
    InvalidRequestError,
    MissingWeightsError,
    UnsupportedEditError,
    WrongPipelineError,
)
from tools.registry import CONDUCTOR_NAMES, INPAINTERS
from tools.types import EditCategory, EditOptions

MASKLESS = ("flux-kontext", "qwen-image-edit", "flux2-klein")


def photo(width: int = 72, height: int = 56, seed: int = 3) -> tuple[Image.Image, np.ndarray]:
    """A smooth random photo and a mask (255 = edit) over a box in its middle."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    image = Image.fromarray(small, "RGB").resize((width, height), Image.BICUBIC)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 3 : 2 * height // 3, width // 3 : 2 * width // 3] = 255
    return image, mask


def one_sentence(message: str) -> bool:
    return "\n" not in message and message.endswith(".") and ". " not in message


def test_each_conductor_has_a_complete_registry_entry():
    import diffusers

    from tools.conductors import CONDUCTORS
    from tools.registry import model_setting, prompt_style

    assert model_setting("brushnet") is None and prompt_style("brushnet") == "caption"
    assert CONDUCTOR_NAMES == ("flux-fill", "flux-kontext", "qwen-image-edit", "flux2-klein",
                               "sd-inpaint")
    for name in CONDUCTOR_NAMES:
        spec, cls = INPAINTERS[name], CONDUCTORS[name]
        assert spec.model_env == "BRUSHEDIT_" + name.upper().replace("-", "_") + "_MODEL"
        assert model_setting(name) == name.replace("-", "_") + "_model"
        assert prompt_style(name) == spec.prompt_style
        assert spec.default_model.split("/")[0] in (
            "black-forest-labs", "Qwen", "stable-diffusion-v1-5")
        assert hasattr(diffusers, spec.pipeline_class)
        assert all(hasattr(diffusers, found) for found in spec.accepts_pipelines)
        assert spec.maskless == (cls.maskless_pipeline is not None) == ("global" in spec.categories)
        assert spec.prompt_style == ("instruction" if spec.maskless else "caption")
        assert spec.native_side and spec.size_multiple and spec.licence and spec.weights_gb
        assert {"seed", "steps", "samples", "blending"} <= set(spec.uses_options)
        assert set(spec.uses_options) <= set(EditOptions.model_fields)
    assert INPAINTERS["flux2-klein"].default_steps == 4
    assert (INPAINTERS["flux-fill"].native_side, INPAINTERS["flux-fill"].size_multiple) == (1024, 16)
    assert not INPAINTERS["brushnet"].is_conductor and not INPAINTERS["opencv"].is_conductor


@pytest.mark.parametrize("name", CONDUCTOR_NAMES)
def test_a_conductor_loaded_from_its_folder_repaints_only_the_blend_zone(
    name, tiny_conductor_dirs, tiny_conductors
):
    conductor = tiny_conductors[name]
    image, mask = photo()
    events: list[tuple[int, int]] = []
    prompt = "replace the box with a red ball" if name in MASKLESS else "a red ball"
    (result,) = conductor.inpaint(
        image, mask, prompt, category=EditCategory.LOCAL,
        options=EditOptions(steps=2, seed=7), progress=lambda done, total: events.append((done, total)),
    )  # fmt: skip
    source, out = np.asarray(image), np.asarray(result)
    assert result.size == image.size and result.mode == "RGB"
    outside = ~blend_zone(mask)
    assert outside.any() and np.array_equal(out[outside], source[outside])
    assert np.abs(out[mask > 0].astype(int) - source[mask > 0]).mean() > 1.0
    assert events == [(1, 2), (2, 2)]
    run = run_record(result)
    spec = INPAINTERS[name]
    assert (run.conductor, run.prompt, run.prompt_style) == (name, prompt, spec.prompt_style)
    expected = {"sd-inpaint": "StableDiffusionInpaintPipeline"}.get(name, spec.pipeline_class)
    assert run.model == str(tiny_conductor_dirs[name]) and run.pipeline == expected
    assert (run.steps, run.seed, run.maskless, run.category) == (2, 7, False, "local")
    assert raw_output(result).size == image.size
    from tools.metrics import conductor_checks

    (aligned,) = conductor_checks("local", image, result, mask)
    assert aligned.name == "aligned" and aligned.passed  # a 72x56 photo is too small to judge
    assert conductor_checks("local", image, image, mask) == []


@pytest.mark.parametrize("name", MASKLESS)
def test_an_instruction_editor_does_a_global_edit_without_a_mask(name, tiny_conductors):
    image, _ = photo()
    full = np.full((image.size[1], image.size[0]), 255, np.uint8)
    (result,) = tiny_conductors[name].inpaint(
        image, full, "make it winter", category="global", options=EditOptions(steps=1)
    )
    run = run_record(result)
    assert run.maskless and run.pipeline == type(tiny_conductors[name]).maskless_pipeline
    assert result.size == image.size
    assert np.abs(np.asarray(result).astype(int) - np.asarray(image)).mean() > 1.0


@pytest.mark.parametrize("name", ["flux-fill", "sd-inpaint"])
def test_a_fill_model_refuses_a_global_edit_in_one_sentence(name, tiny_conductors):
    image, _ = photo()
    full = np.full((image.size[1], image.size[0]), 255, np.uint8)
    with pytest.raises(UnsupportedEditError) as caught:
        tiny_conductors[name].inpaint(image, full, "winter", category="global",
                                      options=EditOptions(steps=1))
    error = caught.value
    assert one_sentence(str(error)) and name in str(error) and "global" in str(error)
    assert (error.inpainter, error.category) == (name, "global")
    assert error.supported == ("addition", "background", "local", "removal")


def test_a_folder_of_another_pipeline_is_one_sentence_naming_both(tiny_conductor_dirs):
    from tools.conductors import load_conductor

    fill = str(tiny_conductor_dirs["flux-fill"])
    with pytest.raises(WrongPipelineError) as caught:
        load_conductor("flux-kontext", fill)
    error = caught.value
    assert one_sentence(str(error))
    assert "FluxFillPipeline" in str(error) and "FluxKontextInpaintPipeline" in str(error)
    assert (error.conductor, error.model, error.found, error.expected, error.suggested) == (
        "flux-kontext", fill, "FluxFillPipeline", "FluxKontextInpaintPipeline", "flux-fill")


def test_missing_weights_with_downloads_off_say_how_to_fetch_them(tmp_path):
    from tools.conductors import load_conductor

    with pytest.raises(MissingWeightsError) as caught:
        load_conductor("flux-fill", local_files_only=True)
    error = caught.value
    assert one_sentence(str(error))
    assert "`hf download black-forest-labs/FLUX.1-Fill-dev --local-dir <folder>`" in str(error)
    assert error.env_var == "BRUSHEDIT_FLUX_FILL_MODEL" and error.gated
    assert error.fix_command == "hf download black-forest-labs/FLUX.1-Fill-dev --local-dir <folder>"
    folder = tmp_path / "weights" / "klein"
    with pytest.raises(MissingWeightsError) as caught:
        load_conductor("flux2-klein", str(folder))
    assert f"--local-dir {folder}" in str(caught.value) and not caught.value.gated
    assert one_sentence(str(caught.value).replace(str(folder), "F"))


def test_unusable_model_settings_are_one_sentence_each(tmp_path, tiny_conductor_dirs):
    from tools.conductors import load_conductor

    empty = tmp_path / "empty"
    empty.mkdir()
    single = tmp_path / "model.safetensors"
    single.write_bytes(b"x")
    cases = [
        ("flux-fill", str(empty), ConductorLoadError, "no model_index.json"),
        ("qwen-image-edit", str(single), ConductorLoadError, "cannot load the file"),
        ("flux-fill", "not a repo id!", ConductorLoadError, "Hub repository id"),
    ]
    for name, model, kind, words in cases:
        with pytest.raises(kind, match=words) as caught:
            load_conductor(name, model)
        assert "\n" not in str(caught.value) and caught.value.conductor == name
    with pytest.raises(InvalidRequestError, match="Unknown conductor 'brushnet'"):
        load_conductor("brushnet")
    folder = str(tiny_conductor_dirs["flux-fill"])
    with pytest.raises(ConfigError, match="CPU offload"):
        load_conductor("flux-fill", folder, offload="model")
    with pytest.raises(ConfigError, match="'banana' is not a device name"):
        load_conductor("flux-fill", folder, device="banana")
    with pytest.raises(ConfigError, match="cannot run in 'float8'"):
        load_conductor("flux-fill", folder, dtype="float8")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device cuda is not available on this machine"):
            load_conductor("flux-fill", folder, device="cuda")


def test_weights_status_reports_what_the_doctor_shows(tiny_conductor_dirs):
    from tools.conductors import weights_status

    here = weights_status("flux-kontext", str(tiny_conductor_dirs["flux-kontext"]))
    assert here.found and here.pipeline_class == "FluxKontextInpaintPipeline" and here.fix is None
    missing = weights_status("qwen-image-edit")
    assert not missing.found and missing.fix == "hf download Qwen/Qwen-Image-Edit --local-dir <folder>"
    wrong = weights_status("sd-inpaint", str(tiny_conductor_dirs["flux2-klein"]))
    assert not wrong.found and wrong.pipeline_class == "Flux2KleinInpaintPipeline"


def test_a_hub_id_resolves_through_the_local_cache(tmp_path, monkeypatch, tiny_conductor_dirs):
    """A Hub id already downloaded is found in the Hugging Face cache, its pipeline checked."""
    import shutil

    from huggingface_hub import constants

    from tools.conductors import locate_weights
    from tools.registry import INPAINTERS as SPECS

    snapshot = tmp_path / "hub" / "models--acme--tiny-fill" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_conductor_dirs["flux-fill"], snapshot)
    (tmp_path / "hub" / "models--acme--tiny-fill" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--tiny-fill" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    where = locate_weights(SPECS["flux-fill"], "acme/tiny-fill")
    assert (where.kind, where.pipeline_class, where.cached) == ("hub", "FluxFillPipeline", True)
    with pytest.raises(WrongPipelineError, match="acme/tiny-fill holds a FluxFillPipeline"):
        locate_weights(SPECS["flux2-klein"], "acme/tiny-fill")


def test_knobs_default_to_the_models_own_unless_set():
    from tools.conductors import resolve_knobs

    klein, fill = INPAINTERS["flux2-klein"], INPAINTERS["flux-fill"]
    unset = resolve_knobs(klein, EditOptions(), 5, "ugly")
    assert (unset.steps, unset.guidance_scale, unset.negative_prompt) == (4, 1.0, None)
    assert resolve_knobs(fill, EditOptions(), 5, None).guidance_scale == 30.0
    chosen = resolve_knobs(klein, EditOptions(steps=8, guidance_scale=3.0), 5, None)
    assert (chosen.steps, chosen.guidance_scale) == (8, 3.0)
    qwen = resolve_knobs(INPAINTERS["qwen-image-edit"], EditOptions(), 5, "blurry")
    assert qwen.negative_prompt == "blurry" and qwen.guidance_scale == 4.0
    # unset survives JSON (a checkpoint, an HTTP body): still "its own"
    round_trip = EditOptions.model_validate_json(EditOptions().model_dump_json())
    assert resolve_knobs(klein, round_trip, 5, None).steps == 4
    # asked for exactly BrushNet's numbers, a conductor gets them (no more "50 means unset")
    exact = resolve_knobs(klein, EditOptions(steps=50, guidance_scale=7.5), 5, None)
    assert (exact.steps, exact.guidance_scale) == (50, 7.5)
    assert EditOptions().resolved("brushnet").steps == 50
    assert EditOptions(inpainter="flux-fill").resolved().guidance_scale == 30.0
    assert EditOptions(steps=9).resolved("flux2-klein").steps == 9


def test_retries_turn_each_conductors_own_knob():
    from tools.conductors import retry_changes

    options = EditOptions()
    assert retry_changes(INPAINTERS["flux-fill"], options, 0) == {}
    assert retry_changes(INPAINTERS["flux-fill"], options, 1) == {"guidance_scale": 25.0}
    assert retry_changes(INPAINTERS["qwen-image-edit"], options, 2) == {"guidance_scale": 6.0}
    assert retry_changes(INPAINTERS["flux-kontext"], options, 1) == {"guidance_scale": 3.5}
    assert retry_changes(INPAINTERS["flux2-klein"], options, 1) == {"steps": 6}
    assert retry_changes(INPAINTERS["sd-inpaint"], EditOptions(guidance_scale=29.0), 3) == {
        "guidance_scale": 30.0}  # within the options' bounds


def test_a_seed_reproduces_an_edit_and_samples_differ(tiny_conductors):
    conductor = tiny_conductors["flux-fill"]
    image, mask = photo()
    options = EditOptions(steps=1, samples=2, seed=11)
    first = conductor.inpaint(image, mask, "a ball", category="removal", options=options)
    again = conductor.inpaint(image, mask, "a ball", category="removal", options=options)
    other = conductor.inpaint(image, mask, "a ball", category="removal", options=options, seed=12)
    arrays = [np.asarray(im) for im in first]
    assert len(first) == 2 and not np.array_equal(*arrays)
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(arrays, again, strict=True))
    assert not np.array_equal(arrays[0], np.asarray(other[0]))


def test_a_large_photo_is_edited_through_a_crop_around_the_mask(tiny_conductors):
    conductor = tiny_conductors["flux-fill"]
    image, _ = photo(400, 304)
    mask = np.zeros((304, 400), np.uint8)
    mask[20:40, 30:50] = 255
    (result,) = conductor.inpaint(image, mask, "a ball", category="addition",
                                  options=EditOptions(steps=1))
    run = run_record(result)
    assert run.crop_box is not None and result.size == image.size
    x0, y0, x1, y1 = run.crop_box
    assert x0 <= 30 and y0 <= 20 and x1 >= 50 and y1 >= 40 and (x1 - x0) < 400
    outside = ~blend_zone(mask)
    assert np.array_equal(np.asarray(result)[outside], np.asarray(image)[outside])


def test_without_blending_only_the_mask_changes(tiny_conductors):
    image, mask = photo()
    (result,) = tiny_conductors["flux-kontext"].inpaint(
        image, mask, "make it red", category="local", options=EditOptions(steps=1, blending=False)
    )
    keep = mask == 0
    assert np.array_equal(np.asarray(result)[keep], np.asarray(image)[keep])
    assert not np.array_equal(blend_zone(mask, blending=False), blend_zone(mask))


def test_cancel_stops_the_edit_after_the_step_it_answered(tiny_conductors):
    image, mask = photo()
    events: list[tuple[int, int]] = []
    with pytest.raises(EditCancelledError) as caught:
        tiny_conductors["flux-fill"].inpaint(
            image, mask, "a ball", category="local", options=EditOptions(steps=3),
            progress=lambda d, t: events.append((d, t)), cancel=lambda: len(events) >= 1,
        )  # fmt: skip
    assert (caught.value.step, caught.value.total, caught.value.inpainter) == (2, 3, "flux-fill")
    assert events == [(1, 3)] and one_sentence(str(caught.value))


def test_the_native_side_is_the_models_own(tiny_conductors):
    """The registry's native side, or the pipeline's own default size when smaller (tiny models
    paint at 128 px, SD at its UNet's size), so tests need no size setting."""
    sides = {name: type(c)(c.pipeline).working_side for name, c in tiny_conductors.items()}
    assert sides == {"flux-fill": 128, "flux-kontext": 128, "qwen-image-edit": 1024,
                     "flux2-klein": 128, "sd-inpaint": 32}


def test_get_inpainter_builds_a_conductor_by_its_registry_name(tiny_conductor_dirs, tiny_conductors):
    from tools.conductors import FluxKontextConductor
    from tools.inpaint import get_inpainter

    built = get_inpainter("flux-kontext", model=str(tiny_conductor_dirs["flux-kontext"]))
    assert isinstance(built, FluxKontextConductor) and built.working_side == 128
    wrapped = get_inpainter("flux-kontext", pipeline=tiny_conductors["flux-kontext"].pipeline)
    assert wrapped.pipeline is tiny_conductors["flux-kontext"].pipeline
    assert built.variant(2) is built  # a retry changes the seed and knobs, not the conductor


def test_default_dtype_is_bfloat16_on_a_gpu_and_float32_on_the_cpu():
    import torch

    from tools.conductors import default_dtype

    assert default_dtype("cpu") is torch.float32
    assert default_dtype("cuda:1") is torch.bfloat16 and default_dtype("mps") is torch.bfloat16


def test_a_single_file_inpainting_checkpoint_loads_its_configs_from_the_hub_cache(
    tmp_path, monkeypatch, torch_threads
):
    """`BRUSHEDIT_SD_INPAINT_MODEL=model.safetensors` (an original-format SD1.5 inpainting file):
    diffusers reads the weights from the file and the pipeline's configuration from the
    official repository in the cache; without that repository it is one sentence naming it."""
    import huggingface_hub.constants as hub
    import torch

    from tests.brushedit_inpaint.doc_snippets import hub_snapshot
    from tests.brushedit_inpaint.single_file_parts import save_sd15_single_file
    from tests.tools.conductor_parts import TINY_BUILDERS
    from tools.conductors import load_conductor

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    pipe = TINY_BUILDERS["sd-inpaint"](tmp_path / "tokenizer")
    single = tmp_path / "inpainting.safetensors"
    save_sd15_single_file(single, pipe.unet, pipe.vae, pipe.text_encoder)
    with pytest.raises(ConductorLoadError) as caught:
        load_conductor("sd-inpaint", str(single))
    message = str(caught.value)
    assert one_sentence(message.replace(str(single), "F")) and caught.value.model == str(single)
    assert "hf download stable-diffusion-v1-5/stable-diffusion-inpainting`" in message

    # the cache holds the repository (configs and all); the file's own weights must win
    pipe.save_pretrained(hub_snapshot(tmp_path / "hub",
                                      "stable-diffusion-v1-5/stable-diffusion-inpainting"))
    with torch.no_grad():
        pipe.unet.conv_in.weight.add_(0.25)
    save_sd15_single_file(single, pipe.unet, pipe.vae, pipe.text_encoder)
    conductor = load_conductor("sd-inpaint", str(single), working_side=64)
    assert torch.equal(conductor.pipeline.unet.conv_in.weight, pipe.unet.conv_in.weight)
    image, mask = photo()
    (result,) = conductor.inpaint(image, mask, "a red ball", category="local",
                                  options=EditOptions(steps=1))
    outside = ~blend_zone(mask)
    assert np.array_equal(np.asarray(result)[outside], np.asarray(image)[outside])
    assert run_record(result).model == str(single)
