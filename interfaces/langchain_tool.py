"""A LangChain tool that edits images, for agents built on LangChain or LangGraph.

`make_edit_tool(components)` returns a `StructuredTool` whose pydantic args schema the model sees;
the tool runs in process (a trusted caller), so it takes the references the server takes (a
`data:` URI, an http(s) URL, an artifact hash) and local file paths, and answers with a JSON-able
summary (hashes, plan, planner path, result file path). Bad arguments, a direct `invoke`'s
included, come back as one sentence that quotes at most a few dozen characters of them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from interfaces.common import (
    EditOptionsPatch,
    SessionOpener,
    artifact_path,
    default_session_opener,
    prepare_edit,
    run_prepared,
    summary,
)
from interfaces.wording import Wording, say, validation_sentences
from tools.images import DEFAULT_MAX_PIXELS
from tools.types import MAX_INSTRUCTION_CHARS

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

TOOL_NAME = "edit_image"
TOOL_DESCRIPTION = (
    "Edit an image from a plain-language instruction (remove, add or change an object, change "
    "the background or the whole style). Give `image` as a file path or the hash of an earlier "
    "result; pass `session_id` from an earlier answer to continue editing that result. Returns "
    "the result's hash and file path, the plan and whether the verifier accepted it."
)

logger = logging.getLogger(__name__)


class EditImageArgs(BaseModel):
    """What the model fills in to call the tool."""

    instruction: str = Field(
        min_length=1, max_length=MAX_INSTRUCTION_CHARS, description="What to change."
    )
    image: str | None = Field(
        default=None,
        description="Path to an image file, an http(s) URL, a data: URI, or the sha256 hash of "
        "an earlier result. Omit to continue from the session's last result.",
    )
    mask: str | None = Field(
        default=None,
        description="Optional mask (white = area to edit), in the same forms as `image`."
    )
    options: EditOptionsPatch | None = Field(default=None, description="Diffusion options.")
    session_id: str | None = Field(default=None, description="Continue this session.")


def make_edit_tool(
    components: Any,
    *,
    settings: Any = None,
    session_opener: SessionOpener | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str = TOOL_NAME,
) -> BaseTool:
    """Wrap the session facade as a LangChain `StructuredTool` (errors become tool messages)."""
    from langchain_core.tools import StructuredTool, ToolException

    from tools.errors import BrushEditError, InternalError

    opener = session_opener or default_session_opener

    def edit_image(
        instruction: str,
        image: str | None = None,
        mask: str | None = None,
        options: EditOptionsPatch | dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        try:
            prepared = prepare_edit(
                components, opener, instruction=instruction, image=image, mask=mask,
                options=options, session_id=session_id,
                max_pixels=max_pixels,
            )
            result = run_prepared(components, opener, prepared)
        except BrushEditError as exc:
            raise ToolException(f"{type(exc).__name__}: {say(exc, TOOL_WORDING)}") from exc
        except Exception as exc:  # a bug: the agent reads one sentence, the log the details
            logger.error("the edit_image tool failed unexpectedly", exc_info=exc)
            raise ToolException(f"{InternalError.__name__}: {InternalError.MESSAGE}") from exc
        info = summary(result)
        info["image_path"] = str(artifact_path(components, result.image))
        return info

    return StructuredTool.from_function(
        func=edit_image,
        name=name,
        description=TOOL_DESCRIPTION,
        args_schema=EditImageArgs,
        handle_tool_error=True,
        handle_validation_error=lambda exc: f"InvalidRequestError: {validation_sentences(exc)}",
    )


TOOL_WORDING = Wording(inpainter='`options.inpainter` = "{name}"',
                       mask="give a mask as `mask` (a mask file's path or a stored mask's hash)")
"""The tool's arguments, for the fixes typed errors point at (`interfaces.wording`)."""

