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
        ({"instruction": "remove it", "image": "/no/such/file.png"}, "does not exist"),
        ({"instruction": "remove it", "image": "0" * 64}, "no artifact"),
        ({"instruction": "remove it"}, "send an image"),
    ],
)
def test_errors_come_back_as_tool_messages(components, args, words):
    tool = make_edit_tool(components)
    answer = tool.invoke(args)
    assert isinstance(answer, str) and words in answer


def test_a_data_uri_mask_is_taken_as_the_server_takes_it(components, tmp_path, image_png,
                                                          mask_png):
    import base64

    image = tmp_path / "in.png"
    image.write_bytes(image_png)
    uri = "data:image/png;base64," + base64.b64encode(mask_png).decode()
    out = make_edit_tool(components).invoke(
        {"instruction": "remove the dark square", "image": str(image), "mask": uri})
    assert isinstance(out, dict), out
    assert out["inpainter"] == "opencv" and len(out["mask"]) == 64


def _tool_call(args: dict) -> dict:
    """What an agent's tool node hands the tool: a `ToolCall`, answered with a `ToolMessage`."""
    return {"type": "tool_call", "id": "call-1", "name": "edit_image", "args": args}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"instruction": "x", "image": "0" * 64, "options": {"steps": 0}},
         "`options.steps` must be at least 1"),
        ({"instruction": "x", "image": "0" * 64, "options": {"sneaky": 1}},
         "`options.sneaky` is not a parameter"),
        ({"instruction": "", "image": "0" * 64}, "`instruction`"),
    ],
)
def test_bad_arguments_are_one_sentence_in_the_tool_message(components, args, words):
    from langchain_core.messages import ToolMessage

    tool = make_edit_tool(components)
    direct = tool.invoke(args)  # a direct invoke: no raw pydantic ValidationError
    assert isinstance(direct, str) and words in direct and "\n" not in direct, direct
    message = tool.invoke(_tool_call(args))
    assert isinstance(message, ToolMessage) and message.status == "error"
    assert words in message.content and "pydantic" not in message.content


@pytest.mark.parametrize("reference", [
    "/no/such/folder/" + "x" * 1400 + ".png",
    "data:image/png;base64," + "A" * 1340,
    "data:image/png;base64," + "%" * 1340,
])
def test_a_long_bad_reference_is_not_echoed(components, tmp_path, image_png, reference):
    image = tmp_path / "in.png"
    image.write_bytes(image_png)
    for args in ({"image": reference}, {"image": str(image), "mask": reference}):
        message = make_edit_tool(components).invoke(
            _tool_call({"instruction": "remove it", **args}))
        assert message.status == "error", message
        assert len(message.content) < 300 and "\n" not in message.content, message.content
        assert reference[:200] not in message.content
