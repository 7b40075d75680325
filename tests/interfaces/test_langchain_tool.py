"""The LangChain tool, invoked the way an agent's tool node would call it."""

from __future__ import annotations

import pytest

from interfaces.langchain_tool import EditImageArgs, make_edit_tool

pytest.importorskip("langchain_core")


def test_invoke_with_paths_then_continue(components, tmp_path, image_png, mask_png):
    from langchain_core.tools import BaseTool

    image = tmp_path / "in.png"
    image.write_bytes(image_png)
    mask = tmp_path / "mask.png"
    mask.write_bytes(mask_png)
    tool = make_edit_tool(components)
    assert isinstance(tool, BaseTool) and tool.name == "edit_image"
    assert tool.args_schema is EditImageArgs
    assert "instruction" in tool.args

    out = tool.invoke(
        {"instruction": "remove the dark square", "image": str(image), "mask": str(mask),
         "options": {"seed": 5}}
    )
    assert out["planner"] == "rules" and out["inpainter"] == "opencv"
    assert out["image_path"].endswith(".png")

    again = tool.invoke(
        {"instruction": "remove the dark square", "session_id": out["session_id"],
         "mask": out["mask"]}
    )
    assert again["turn"] == 2 and again["source_image"] == out["image"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"instruction": "remove it", "image": "/no/such/file.png"}, "not a file"),
        ({"instruction": "remove it", "image": "0" * 64}, "no artifact"),
        ({"instruction": "remove it"}, "send an image"),
    ],
)
def test_errors_come_back_as_tool_messages(components, args, words):
    tool = make_edit_tool(components)
    answer = tool.invoke(args)
    assert isinstance(answer, str) and words in answer


def test_schema_rejects_bad_options(components):
    from pydantic import ValidationError

    tool = make_edit_tool(components)
    with pytest.raises(ValidationError):
        tool.invoke({"instruction": "x", "image": "0" * 64, "options": {"steps": 0}})
