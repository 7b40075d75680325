"""Each surface words the fix of a typed error in its own terms, from the error's fields."""

from __future__ import annotations

import re

import pytest

from interfaces.api.errors import api_error
from interfaces.cli_errors import cli_message
from interfaces.langchain_tool import TOOL_WORDING
from interfaces.mcp_server import mcp_message
from interfaces.web import web_message
from interfaces.wording import say
from tools.errors import InvalidRequestError, MaskNeededError, ModelLoadError, UnsupportedEditError

CLI_FLAG = re.compile(r"(?<![\w-])--[a-z]")


def unsupported() -> UnsupportedEditError:
    return UnsupportedEditError("The opencv inpainter only removes objects and cannot do a "
                                "global edit", inpainter="opencv", category="global")


def surfaces(exc: Exception) -> dict[str, str]:
    return {"cli": cli_message(exc), "api": api_error(exc)[1].message, "mcp": mcp_message(exc),
            "web": web_message(exc), "tool": say(exc, TOOL_WORDING)}


def test_the_core_message_names_no_surface_and_each_surface_names_its_own_control():
    from tools.registry import INPAINTERS

    exc = unsupported()
    able = tuple(n for n, spec in INPAINTERS.items() if "global" in spec.categories and n != "opencv")
    assert exc.alternatives == able and "brushnet" in able and "--" not in str(exc)
    said = surfaces(exc)

    def choices(form: str) -> str:
        return "use " + " or ".join(form.format(n) for n in able) + "."

    assert said["cli"].endswith(choices("`--inpainter {}`"))
    assert said["api"].endswith(choices("`inpainter={}`"))
    assert said["mcp"].endswith(choices('`options.inpainter` = "{}"'))
    assert said["web"].endswith(choices("the {} inpainter (Advanced options)"))
    assert said["tool"].endswith(choices('`options.inpainter` = "{}"'))
    assert all(text.startswith("The opencv inpainter only removes objects") for text in said.values())


@pytest.mark.parametrize("load_error", [None, "no weights here"])
def test_no_segmenter_says_how_to_give_a_mask_on_each_surface(load_error):
    exc = MaskNeededError.no_segmenter("“the dog”", load_error=load_error)
    assert exc.segmenter_missing and exc.looked_for == "“the dog”"
    said = surfaces(exc)
    assert "`--mask MASK.png`" in said["cli"]
    assert "`mask` file" in said["api"] and api_error(exc)[0] == 503
    assert "`mask_path`" in said["mcp"] and "paint over the area" in said["web"]
    for surface, text in said.items():
        assert text.startswith("no segmentation model is available to find “the dog”"), surface
        assert (load_error or "") in text and "brushedit doctor" in text
        assert surface == "cli" or not CLI_FLAG.search(text), (surface, text)


def test_a_mask_not_found_is_a_client_fault_with_each_surfaces_hint():
    exc = MaskNeededError("could not find “the dog” in the image; give a mask of the area to edit",
                          looked_for="“the dog”")
    assert api_error(exc)[0] == 422 and not exc.segmenter_missing
    said = surfaces(exc)
    assert "--mask" in said["cli"] and "`mask` file" in said["api"]
    assert "`mask_hash`" in said["mcp"] and "upload a mask" in said["web"]


def test_a_field_error_names_the_editor_control():
    exc = InvalidRequestError(field="options.seed", problem="must be at most 4294967295, got -")
    assert str(exc) == "`options.seed` must be at most 4294967295, got -"
    assert web_message(exc) == "Seed must be at most 4294967295, got -"
    assert api_error(exc)[1].message == str(exc)


def test_missing_weights_keep_shell_commands_verbatim():
    """The old regex tables turned `hf download ... --include` into "the include setting"."""
    exc = ModelLoadError("the BrushNet inpainter cannot load. BrushNet: fix: hf download x "
                         "--include 'brushnetX/*'.", inpainter="brushnet",
                         summary="the BrushNet inpainter cannot load")
    said = surfaces(exc)
    assert "--include 'brushnetX/*'" in said["cli"] and "--include 'brushnetX/*'" in said["web"]
    assert "`inpainter=opencv`" in said["api"] and api_error(exc)[0] == 503
    assert said["mcp"].startswith("the BrushNet inpainter cannot load (on the server's machine)")
    assert '`options.inpainter` = "opencv"' in said["mcp"]
