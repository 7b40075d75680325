"""The MCP server (`brushedit mcp`): image editing as tools for agent platforms.

Tools: `edit_image` (returns the result as MCP image content plus a JSON summary with hashes,
plan and planner path), `plan_edit` (plan and proposed mask, no inpainting) and `get_trace`.
Built by `create_mcp_server(components_factory, settings)`; stdio by default, streamable HTTP
on loopback at `/mcp` with `--transport http`.
"""

import json
import logging
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from graphs.interfaces.common import (
    ComponentsFactory,
    EditOptionsPatch,
    LazyComponents,
    NotFoundError,
    SessionOpener,
    check_hash,
    check_instruction,
    check_session_id,
    decode_base64,
    decode_image,
    default_session_opener,
    jsonable,
    load_artifact,
    plan_only,
    png_bytes,
    prepare_edit,
    run_prepared,
    session_exists,
    summary,
)
from tools.errors import BrushEditError, ConfigError, InvalidRequestError
from tools.images import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

logger = logging.getLogger(__name__)

SERVER_INSTRUCTIONS = (
    "Edit images from plain-language instructions (remove, add, change, restyle the background). "
    "Send the image as base64 (`image`) or reuse a result by its hash (`image_hash`); optionally "
    "a mask (white = edit). Keep `session_id` from a result to chain edits and to read the trace."
)
MAX_HTTP_BODY_BYTES = 40 * 1024 * 1024

ImageB64 = Annotated[
    str | None, Field(description="The image as base64 (or a data: URL). PNG, JPEG or WEBP.")
]
ImageHash = Annotated[
    str | None, Field(description="sha256 hash of an image returned earlier (instead of `image`).")
]


def create_mcp_server(
    components_factory: ComponentsFactory,
    settings: Any = None,
    *,
    session_opener: SessionOpener | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> "MCPServer":
    """Build the MCP server object (transport-agnostic; tests call it in process)."""
    import anyio.from_thread
    import anyio.to_thread
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp_types import CallToolResult, ImageContent, TextContent

    lazy = LazyComponents(components_factory)
    opener = session_opener or default_session_opener
    server = MCPServer(
        name="brushedit", instructions=SERVER_INSTRUCTIONS, version=_version()
    )

    def image_content(data: bytes) -> ImageContent:
        import base64

        return ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type="image/png")

    def as_tool_error(exc: BrushEditError) -> ToolError:
        return ToolError(f"{type(exc).__name__}: {' '.join(str(exc).split())}")

    @server.tool(
        description=(
            "Edit an image following an instruction. Returns the edited image and a JSON summary "
            "(session_id, turn, hashes of image/mask/candidates, plan, planner path, accepted)."
        )
    )
    async def edit_image(
        instruction: Annotated[str, Field(description="What to change, e.g. 'remove the dog'.")],
        ctx: Context,
        image: ImageB64 = None,
        image_hash: ImageHash = None,
        mask: Annotated[
            str | None, Field(description="Optional mask as base64 PNG, white = area to edit.")
        ] = None,
        mask_hash: Annotated[str | None, Field(description="Optional mask by hash.")] = None,
        options: Annotated[
            EditOptionsPatch | None, Field(description="Diffusion and verifier options.")
        ] = None,
        session_id: Annotated[
            str | None, Field(description="Continue this session; none = a new one.")
        ] = None,
        caption: Annotated[
            str | None,
            Field(description="What the edited area should show; none = the agents write it."),
        ] = None,
    ) -> CallToolResult:
        try:
            if image is not None and image_hash is not None:
                raise InvalidRequestError("send `image` or `image_hash`, not both")
            if mask is not None and mask_hash is not None:
                raise InvalidRequestError("send `mask` or `mask_hash`, not both")
            source = decode_base64(image, "image") if image is not None else image_hash
            user_mask = decode_base64(mask, "mask") if mask is not None else mask_hash
            components = await anyio.to_thread.run_sync(lazy.get)
            prepared = await anyio.to_thread.run_sync(
                lambda: prepare_edit(
                    components, opener, instruction=instruction, image=source, mask=user_mask,
                    options=options, session_id=session_id, settings=settings,
                    max_pixels=max_pixels, caption=caption,
                )
            )
            steps = {"n": 0}

            def on_event(event: dict[str, Any]) -> None:
                if event.get("type") == "node" and event.get("status") == "start":
                    steps["n"] += 1
                    message = f"{event.get('node')}"
                elif event.get("type") == "progress":
                    message = f"step {event.get('step')}/{event.get('total')}"
                else:
                    return
                try:
                    anyio.from_thread.run(ctx.report_progress, steps["n"], None, message)
                except Exception:
                    logger.debug("progress report failed", exc_info=True)

            result = await anyio.to_thread.run_sync(
                lambda: run_prepared(components, opener, prepared, on_event)
            )
            data = (await anyio.to_thread.run_sync(
                lambda: png_bytes(load_artifact(components, result.image))
            ))
        except BrushEditError as exc:
            raise as_tool_error(exc) from exc
        info = summary(result)
        return CallToolResult(
            content=[image_content(data), TextContent(type="text", text=json.dumps(info))],
            structured_content=info,
        )

    @server.tool(
        description=(
            "Plan an edit without inpainting: the edit category, object, target caption and the "
            "proposed mask (returned as an image, white = area that would change)."
        )
    )
    async def plan_edit(
        instruction: Annotated[str, Field(description="What to change.")],
        image: ImageB64 = None,
        image_hash: ImageHash = None,
    ) -> CallToolResult:
        try:
            text = check_instruction(instruction)
            if (image is None) == (image_hash is None):
                raise InvalidRequestError("send exactly one of `image` or `image_hash`")
            components = await anyio.to_thread.run_sync(lazy.get)

            def work() -> tuple[Any, Any, str | None, str, str]:
                if image is not None:
                    picture = decode_image(decode_base64(image, "image"), max_pixels=max_pixels)
                else:
                    picture = load_artifact(components, check_hash(image_hash, "image_hash"))
                plan, mask, planner, session_id = plan_only(components, picture, text)
                mask_hash = components.store.put_mask(mask) if mask is not None else None
                return plan, mask, mask_hash, planner, session_id

            plan, mask, mask_hash, planner, session_id = await anyio.to_thread.run_sync(work)
        except BrushEditError as exc:
            raise as_tool_error(exc) from exc
        info = {"plan": plan.model_dump(mode="json"), "mask": mask_hash, "planner": planner,
                "session_id": session_id}
        content: list[Any] = [TextContent(type="text", text=json.dumps(info))]
        if mask is not None:
            content.insert(0, image_content(png_bytes(mask)))
        return CallToolResult(content=content, structured_content=info)

    @server.tool(
        description=(
            "Every agent step of a session: node, inputs, outputs, VLM prompts and raw answers, "
            "image hashes. Returns JSON."
        )
    )
    async def get_trace(
        session_id: Annotated[str, Field(description="The session_id of an earlier edit.")],
    ) -> CallToolResult:
        try:
            check_session_id(session_id)
            components = await anyio.to_thread.run_sync(lazy.get)

            def work() -> list[Any]:
                if not session_exists(components, session_id):
                    raise NotFoundError(f"no session {session_id!r}")
                return jsonable(opener(components, session_id).trace())

            events = await anyio.to_thread.run_sync(work)
        except BrushEditError as exc:
            raise as_tool_error(exc) from exc
        info = {"session_id": session_id, "events": events}
        return CallToolResult(
            content=[TextContent(type="text", text=json.dumps(info))], structured_content=info
        )

    return server


def run_mcp(
    settings: Any,
    *,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8765,
    inpainter: str | None = None,
    planner: str | None = None,
) -> None:
    """Serve over stdio or streamable HTTP (loopback only: this transport has no auth)."""
    from graphs.interfaces.api import LOOPBACK_HOSTS
    from graphs.interfaces.common import settings_components_factory

    server = create_mcp_server(
        settings_components_factory(settings, inpainter=inpainter, planner=planner), settings
    )
    if transport == "stdio":
        server.run("stdio")
        return
    if host not in LOOPBACK_HOSTS:
        raise ConfigError(
            f"refusing to serve MCP over HTTP on {host}: it has no authentication; bind to "
            "127.0.0.1 and put an authenticating proxy in front if it must be reachable"
        )
    server.run(
        "streamable-http",
        host=host,
        port=port,
        streamable_http_path="/mcp",
        max_request_body_size=MAX_HTTP_BODY_BYTES,
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("brushedit-agents")
    except PackageNotFoundError:
        return "0.0.0"
