"""The MCP server (`brushedit mcp`): image editing as tools for agent platforms.

Tools: `edit_image` (the result as MCP image content, a resource link and a JSON summary with
hashes, plan and planner path), `plan_edit` (plan and proposed mask, no inpainting) and
`get_trace`. Images and masks come as base64, as a file path inside an allowed root (the
client's MCP roots or the server's configured folders) or as the hash of a stored artifact;
every stored image is readable as the resource `brushedit://artifacts/<hash>`.

Built by `create_mcp_server(components_factory, settings)`; stdio by default, streamable HTTP
on loopback at `/mcp` with `--transport http`. Every refusal is one sentence that names MCP
parameters (never CLI flags), including the arguments the SDK validates against the schema.
Arguments are checked as strict JSON (no `true` for a number, no `0` for a boolean), free text
carries no control characters, and a second edit on a session that is editing is refused
(the session facade's `ConflictError`, as the HTTP API does) rather than interleaving the two.
"""

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, Field, ValidationError

from graphs.cancel import CancelToken
from interfaces.common import (
    ComponentsFactory,
    LazyComponents,
    NotFoundError,
    SessionOpener,
    check_hash,
    check_session_id,
    decode_base64,
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
from interfaces.roots import FileRoots, parse_root_list, path_from_uri
from interfaces.wording import Wording, say, validation_sentences
from tools.errors import (
    BrushEditError,
    ConfigError,
    InternalError,
    InvalidRequestError,
    ModelLoadError,
)
from tools.images import DEFAULT_MAX_PIXELS
from tools.registry import WEIGHTLESS_INPAINTER
from tools.types import EditPlan, field_bounds, options_patch_model

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

logger = logging.getLogger(__name__)

ARTIFACT_SCHEME = "brushedit://artifacts/"
ARTIFACT_URI_TEMPLATE = ARTIFACT_SCHEME + "{digest}"

SERVER_INSTRUCTIONS = (
    "Edit images from plain-language instructions (remove, add, change, restyle the background). "
    "Give the image as base64 (`image`), as a file path inside the MCP roots (`image_path`), or "
    "by the hash of an earlier result (`image_hash`); optionally a mask (white = edit) the same "
    "three ways. Every stored image is the resource brushedit://artifacts/<hash>. Keep "
    "`session_id` from a result to chain edits and to read the trace."
)
MAX_HTTP_BODY_BYTES = 40 * 1024 * 1024


# --------------------------------------------------------------------------- parameters


def artifact_uri(digest: str) -> str:
    return ARTIFACT_SCHEME + digest


def artifact_ref(value: str, what: str) -> str:
    """A hash from a bare sha256 or a `brushedit://artifacts/<hash>` URI."""
    text = str(value).strip()
    if text.startswith(ARTIFACT_SCHEME):
        text = text.removeprefix(ARTIFACT_SCHEME)
    return check_hash(text, what)


def _bounds(info: Any) -> str:
    limits = field_bounds(info)
    low = limits.get("ge", limits.get("gt"))
    high = limits.get("le", limits.get("lt"))
    if low is not None and high is not None:
        return f"from {low} to {high}"
    if low is not None:
        return f"at least {low}" if "ge" in limits else f"above {low}"
    if high is not None:
        return f"at most {high}" if "le" in limits else f"below {high}"
    if get_origin(info.annotation) is Literal:
        return "one of " + ", ".join(json.dumps(v) for v in get_args(info.annotation))
    return ""


def _option_description(name: str, info: Any) -> str:
    text = (info.description or "").strip().rstrip(".")
    if not text:
        bounds = _bounds(info)
        text = name.replace("_", " ").capitalize() + (f", {bounds}" if bounds else "")
    if info.default is None:  # steps, guidance_scale: each inpainter's own (in the text)
        return f"{text}. Default: the inpainter's own."
    return f"{text}. Default: {json.dumps(info.default)}."


OptionsPatch = options_patch_model(_option_description)
"""`EditOptions` with every field optional, described with its default (derived, never copied)."""

def _optional_text(description: str) -> Any:
    """An optional text parameter, described in the schema the client reads."""
    return Annotated[str | None, Field(description=description)]


ImageB64 = _optional_text(
    "The image as base64 (or a data: URL): PNG, JPEG or WEBP. Give one of `image`, "
    "`image_path` or `image_hash`."
)
ImagePath = _optional_text(
    "Path (or file:// URI) of an image file inside the MCP roots the client shared or the "
    "server's configured root folders; a relative path is looked up in each root."
)
ImageHash = _optional_text(
    "sha256 hash of a stored image (from an earlier result), or its resource URI "
    "brushedit://artifacts/<hash>."
)
MaskB64 = _optional_text(
    "Optional mask as base64 PNG, white = area to edit, same size (or aspect ratio) as the "
    "image. Give at most one of `mask`, `mask_path` or `mask_hash`."
)
MaskPath = _optional_text(
    "Optional mask file path (or file:// URI) inside the allowed roots."
)
MaskHash = _optional_text(
    "Optional mask by hash (e.g. `mask` of an earlier result) or by its resource URI "
    "brushedit://artifacts/<hash>."
)


# --------------------------------------------------------------------------- results


class EditOut(BaseModel):
    """What `edit_image` answers besides the image itself."""

    session_id: str = Field(description="Session to pass back to chain edits or read the trace.")
    turn: int | None = Field(default=None, description="Turn number within the session.")
    image: str = Field(description="sha256 of the chosen result.")
    image_uri: str = Field(description="The result as a resource: brushedit://artifacts/<hash>.")
    source_image: str = Field(description="sha256 of the image this turn edited.")
    mask: str | None = Field(default=None, description="sha256 of the mask used.")
    mask_uri: str | None = Field(default=None, description="The mask as a resource URI.")
    candidates: list[str] = Field(default_factory=list, description="sha256 of every candidate.")
    accepted: bool = Field(description="Whether the verifier accepted the result.")
    attempts: int = Field(description="Verifier attempts used.")
    reason: str = Field(default="", description="The verifier's reason.")
    planner: str = Field(description="Who planned the edit: vlm, rules or user.")
    inpainter: str = Field(description="The inpainter that ran.")
    caption: str | None = Field(default=None, description="The target caption used.")
    plan: EditPlan = Field(description="The edit plan.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Verifier metrics.")


class PlanEditOut(BaseModel):
    """What `plan_edit` answers besides the mask image."""

    plan: EditPlan = Field(description="Category, object, target caption and rationale.")
    mask: str | None = Field(default=None, description="sha256 of the proposed mask.")
    mask_uri: str | None = Field(default=None, description="The proposed mask as a resource URI.")
    planner: str = Field(description="Who planned it: vlm, rules or user.")
    session_id: str = Field(description="The planning session; `get_trace` shows its steps.")


class TraceOut(BaseModel):
    """What `get_trace` answers."""

    session_id: str = Field(description="The session asked for.")
    events: list[dict[str, Any]] = Field(
        description="Every agent step, oldest first: node, status, inputs, outputs, params, "
        "verdict, image hashes and the VLM calls it made."
    )


# --------------------------------------------------------------------------- messages

MASK_ARGUMENTS = "`mask`, `mask_path` or `mask_hash`"
MCP_WORDING = Wording(inpainter='`options.inpainter` = "{name}"',
                      mask=f"give a mask as {MASK_ARGUMENTS}")
"""The tools' arguments, for the fixes typed errors point at (`interfaces.wording`)."""


def mcp_message(exc: BaseException) -> str:
    """An error's sentence in MCP terms: the tool arguments that fix it, never CLI flags."""
    if isinstance(exc, ModelLoadError):
        return model_missing_message(exc)
    return say(exc, MCP_WORDING)


def model_missing_message(exc: ModelLoadError) -> str:
    """A model that cannot load, as an MCP client can act on it (what to send instead, who
    fixes it)."""
    hints = []
    if exc.segmenter:
        hints.append(f"send a mask ({MASK_ARGUMENTS}) so no segmentation model is needed")
    if exc.inpainter not in (None, WEIGHTLESS_INPAINTER):
        hints.append(f'removals work with `options.inpainter` = "{WEIGHTLESS_INPAINTER}"')
    meanwhile = f" Meanwhile {' and '.join(hints)}." if hints else ""
    summary = " ".join(exc.summary.split()).rstrip(".")
    return (
        f"{summary} (on the server's machine).{meanwhile} To install the weights, whoever runs "
        "this server runs `brushedit doctor` there to see what is missing and how to fetch it, "
        "or sets BRUSHEDIT_ALLOW_DOWNLOADS=1 so models download on first use."
    )


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, BrushEditError):
        return f"{type(exc).__name__}: {mcp_message(exc)}"
    # Its text may hold a pydantic dump or a server path: the log has it, the client the one
    # sentence every surface gives for a bug.
    return f"{InternalError.__name__}: {InternalError.MESSAGE}"


# --------------------------------------------------------------------------- the server


def create_mcp_server(
    components_factory: ComponentsFactory,
    settings: Any = None,
    *,
    session_opener: SessionOpener | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    roots: Iterable[str | Path] | None = None,
    client_roots: bool = True,
) -> "MCPServer":
    """Build the MCP server object (transport-agnostic; tests call it in process).

    Args:
        components_factory: builds the components on first use.
        settings: `graphs.Settings`; its `mcp_roots` are allowed folders when `roots` is None.
        session_opener: opens sessions (the real facade by default).
        max_pixels: the largest image accepted.
        roots: folders whose files `image_path`/`mask_path` may name.
        client_roots: also allow the MCP roots the client shares (when it supports roots).
    """
    configured = list(roots) if roots is not None else parse_root_list(
        getattr(settings, "mcp_roots", None)
    )
    deps = _ToolDeps(
        lazy=LazyComponents(components_factory),
        opener=session_opener or default_session_opener,
        settings=settings, max_pixels=max_pixels, configured=configured,
        client_roots=client_roots,
    )
    server = _server_class()(
        name="brushedit", instructions=SERVER_INSTRUCTIONS, version=_version()
    )
    _add_edit_image(server, deps)
    _add_plan_edit(server, deps)
    _add_get_trace(server, deps)
    _add_artifact_resource(server, deps)
    _add_edit_prompt(server)
    _add_planner_resource(server, deps)
    _strict_arguments(server)
    server.recent_artifacts = lambda: recent_artifacts(deps.lazy.get())
    return server


@dataclass
class _ToolDeps:
    """What the tools share: the components, how sessions open, the limits and the roots."""

    lazy: LazyComponents
    opener: SessionOpener
    settings: Any
    max_pixels: int
    configured: list[Any]
    client_roots: bool

    def roots_parameter(self) -> Any:
        """The `listed_roots` parameter type: the client's MCP roots, asked for only when a
        path was given and the client has roots."""
        from mcp.server.mcpserver import Context, ListRoots, Resolve
        from mcp_types import ListRootsResult

        client_roots = self.client_roots

        def shared_roots(
            ctx: Context, image_path: str | None = None, mask_path: str | None = None
        ) -> ListRoots | None:
            """Ask the client for its MCP roots, only when a path was given and it has roots."""
            if not client_roots or (image_path is None and mask_path is None):
                return None
            capabilities = ctx.client_capabilities
            if capabilities is None or capabilities.roots is None:
                return None
            return ListRoots()

        return Annotated[ListRootsResult | None, Resolve(shared_roots)]

    def allowed_roots(self, listed: Any) -> FileRoots:
        shared: list[Path] = []
        for item in listed.roots if listed is not None else ():
            path = path_from_uri(str(item.uri))
            if path is not None:
                shared.append(path)
        return FileRoots(shared, hidden=self.configured)


    async def read_input(
        self, listed: Any, what: str, data: str | None, path: str | None, ref: str | None,
    ) -> bytes | str | None:
        """Bytes (base64 or a file in the roots), a hash, or None when nothing was given."""
        import anyio.to_thread

        given = [name for name, value in
                 ((what, data), (f"{what}_path", path), (f"{what}_hash", ref)) if value is not None]
        if len(given) > 1:
            names = " and ".join(f"`{n}`" for n in given)
            raise InvalidRequestError(
                f"send one of `{what}`, `{what}_path` or `{what}_hash`, not {names}"
            )
        if data is not None:
            return decode_base64(data, what)
        if path is not None:
            allowed = self.allowed_roots(listed)
            return await anyio.to_thread.run_sync(lambda: allowed.read(path, f"{what}_path"))
        if ref is not None:
            return artifact_ref(ref, f"{what}_hash")
        return None


@cache
def _server_class() -> type:
    """`MCPServer` answering the arguments its schema refuses in sentences (imported lazily)."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    class BrushEditMCPServer(MCPServer):
        """Arguments the schema refuses are answered in sentences, not pydantic's dump;
        `resources/list` lists the recent results and masks (`recent_artifacts`)."""

        recent_artifacts: Callable[[], list[Any]] | None = None

        async def list_resources(self) -> list[Any]:
            import anyio.to_thread

            listed = await super().list_resources()
            if self.recent_artifacts is None:
                return listed
            try:
                return [*listed, *await anyio.to_thread.run_sync(self.recent_artifacts)]
            except Exception:  # the store unusable: the templates still work
                logger.warning("could not list the recent artifacts", exc_info=True)
                return listed

        async def call_tool(self, name: str, arguments: dict[str, Any],
                            context: Any = None) -> Any:
            tool = self._tool_manager.get_tool(name)
            try:
                json.dumps(arguments or {})
            except (TypeError, ValueError):  # only in process: over a transport it is JSON
                raise ToolError(f"Error executing tool {name}: InvalidRequestError: the "
                                "arguments must be JSON values (text, numbers, true/false, "
                                "objects).") from None
            known = list((tool.parameters.get("properties") or {}) if tool else ())
            unknown = sorted(set(arguments or {}) - set(known))
            if tool is not None and unknown:  # a typo must not silently run the defaults
                raise ToolError(
                    f"Error executing tool {name}: InvalidRequestError: "
                    f"{', '.join(f'`{u}`' for u in unknown)} "
                    f"{'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of "
                    f"{name}; its parameters are {', '.join(known)}."
                )
            try:
                return await super().call_tool(name, arguments, context)
            except ToolError as exc:
                cause = exc.__cause__
                if type(exc) is ToolError and isinstance(cause, ValidationError):
                    raise ToolError(
                        f"Error executing tool {name}: InvalidRequestError: "
                        f"{validation_sentences(cause)}"
                    ) from cause
                raise

    return BrushEditMCPServer


def _strict_arguments(server: Any) -> None:
    """Validate every tool's arguments as JSON, strictly: `true` is not a step count, `0` or
    `"no"` not a boolean, and text stays text (the SDK would read `"null"` as no session)."""
    from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata

    class StrictArguments(FuncMetadata):
        def pre_parse_json(self, data: dict[str, Any]) -> dict[str, Any]:
            """Only a parameter that takes no text may come as JSON text (`options` as
            '{"seed": 3}', `include_image` as 'true'): clients send objects so."""
            parsed = dict(data)
            for name, value in data.items():
                info = self.arg_model.model_fields.get(name)
                if info is None or not isinstance(value, str) or str in _types(info.annotation):
                    continue
                try:
                    decoded = json.loads(value)
                except (ValueError, RecursionError):
                    continue
                if isinstance(decoded, dict | bool):
                    parsed[name] = decoded
            return parsed

        def validate_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
            text = json.dumps(self.pre_parse_json(arguments))  # JSON already: `call_tool` checks
            return self.arg_model.model_validate_json(text, strict=True).model_dump_one_level()

    for tool in server._tool_manager.list_tools():
        old = tool.fn_metadata
        tool.fn_metadata = StrictArguments(
            arg_model=old.arg_model, output_schema=old.output_schema,
            output_model=old.output_model, wrap_output=old.wrap_output,
        )


def _types(annotation: Any) -> set[Any]:
    """The types a parameter's annotation admits (`str | None` -> {str, NoneType})."""
    args = get_args(annotation)
    if get_origin(annotation) is Annotated:
        return _types(args[0])
    return set().union(*map(_types, args)) if args else {annotation}


def _image_content(data: bytes) -> Any:
    import base64

    from mcp_types import ImageContent

    return ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type="image/png")


def _link(digest: str, name: str, description: str) -> Any:
    from mcp_types import ResourceLink

    return ResourceLink(type="resource_link", uri=artifact_uri(digest), name=name,
                        description=description, mime_type="image/png")


def _hints(title: str, *, read_only: bool) -> Any:
    """A tool's MCP annotations: the reading tools are idempotent; none destroys or reaches out."""
    from mcp_types import ToolAnnotations

    return ToolAnnotations(title=title, read_only_hint=read_only, destructive_hint=False,
                           idempotent_hint=read_only, open_world_hint=False)


def _tool_error(exc: BaseException) -> Exception:
    from mcp.server.mcpserver.exceptions import ToolError

    if not isinstance(exc, BrushEditError):
        logger.exception("MCP tool failed unexpectedly", exc_info=exc)
    return ToolError(_error_text(exc))


PROGRESS_TOTAL = 100.0
"""Progress is reported as a percentage (`total` 100), so clients can show a bar."""
STAGE_PERCENT = {"start": 0.0, "classify": 3.0, "identify": 6.0, "mask": 10.0, "review": 14.0,
                 "caption": 16.0, "inpaint": 20.0, "verify": 90.0, "finish": 96.0}
"""Where each node starts within an attempt; the inpaint node's diffusion steps fill 20 to 90."""


class EditProgress:
    """A turn's events as a percentage that only increases (as MCP requires): each node and
    diffusion step has its place within an attempt, and a retry spreads over what is left."""

    def __init__(self) -> None:
        self.last, self.base, self.span, self.attempt = 0.0, 0.0, 100.0, 1

    def value(self, event: dict[str, Any]) -> tuple[float, str] | None:
        """(percent, message) for a `node` start or a `progress` event; None for the rest or
        when it would not move forward."""
        attempt = event.get("attempt")
        if isinstance(attempt, int) and attempt > self.attempt:  # a retry: fit in what is left
            self.attempt, self.base, self.span = attempt, self.last, 99.0 - self.last
        if event.get("type") == "node" and event.get("status") == "start":
            node = str(event.get("node"))
            percent = STAGE_PERCENT.get(node, 0.0)
            message = f"{node} (attempt {self.attempt})" if self.attempt > 1 else node
        elif event.get("type") == "progress":
            step, total = event.get("step"), event.get("total")
            if not isinstance(step, int) or not isinstance(total, int) or total < 1:
                return None
            done = min(max(step, 0), total) / total
            percent = STAGE_PERCENT["inpaint"] + (STAGE_PERCENT["verify"] - 20.0) * done
            message = f"inpaint step {step}/{total}"
        else:
            return None
        value = round(self.base + self.span * percent / 100.0, 3)
        if value <= self.last:
            return None
        self.last = value
        return value, message


def _progress_reporter(ctx: Any) -> Callable[[dict[str, Any]], None]:
    """An `on_event` callback (run in a worker thread) reporting steps as MCP progress."""
    import anyio.from_thread

    progress = EditProgress()

    def on_event(event: dict[str, Any]) -> None:
        reported = progress.value(event)
        if reported is None:
            return
        try:
            anyio.from_thread.run(ctx.report_progress, reported[0], PROGRESS_TOTAL, reported[1])
        except Exception:
            logger.debug("progress report failed", exc_info=True)

    return on_event


async def _cancellable(work: Callable[[CancelToken], Any]) -> Any:
    """`work(token)` in a worker thread, stopped by MCP cancellation: a client's
    `notifications/cancelled` cancels this task, which sets the turn's token (the edit stops
    within a diffusion step) and waits for the thread to finish before the task ends."""
    import threading

    import anyio
    import anyio.to_thread

    token, finished = CancelToken(), threading.Event()

    def run() -> Any:
        try:
            return work(token)
        finally:
            finished.set()

    try:
        return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        token.cancel("cancelled by the MCP client")
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(finished.wait, 120.0)
        raise


def _add_edit_image(server: Any, deps: _ToolDeps) -> None:
    import anyio.to_thread
    from mcp.server.mcpserver import Context
    from mcp_types import CallToolResult, TextContent

    ClientRoots = deps.roots_parameter()

    @server.tool(
        description=(
            "Edit an image following an instruction. Returns the edited image, its resource link "
            "(brushedit://artifacts/<hash>) and a JSON summary (session_id, turn, hashes of "
            "image/mask/candidates, plan, planner path, accepted)."
        ),
        title="Edit an image",
        annotations=_hints("Edit an image", read_only=False),
    )
    async def edit_image(
        instruction: Annotated[
            str, Field(description="What to change, in words, e.g. 'remove the dog'.")
        ],
        ctx: Context,
        image: ImageB64 = None,
        image_path: ImagePath = None,
        image_hash: ImageHash = None,
        mask: MaskB64 = None,
        mask_path: MaskPath = None,
        mask_hash: MaskHash = None,
        options: Annotated[
            OptionsPatch | None,  # type: ignore[valid-type]
            Field(description="Diffusion and verifier options; absent ones keep the defaults."),
        ] = None,
        session_id: Annotated[
            str | None,
            Field(description="Continue this session (from an earlier result); without an image "
                  "the edit starts from its latest result. None = a new session."),
        ] = None,
        caption: Annotated[
            str | None,
            Field(description="What the edited area should show; none = the agents write it."),
        ] = None,
        include_image: Annotated[
            bool,
            Field(description="Return the edited image inline as base64; false sends only its "
                  "resource link (a much smaller answer)."),
        ] = True,
        listed_roots: ClientRoots = None,
    ) -> Annotated[CallToolResult, EditOut]:
        try:
            source = await deps.read_input(listed_roots, "image", image, image_path, image_hash)
            if source is None and session_id is None:
                raise InvalidRequestError(
                    "send the image as `image`, `image_path` or `image_hash`, or a `session_id` "
                    "to continue from its latest result"
                )
            user_mask = await deps.read_input(listed_roots, "mask", mask, mask_path, mask_hash)
            patch = options.model_dump(exclude_none=True) if options is not None else None
            components = await anyio.to_thread.run_sync(deps.lazy.get)
            prepared = await anyio.to_thread.run_sync(
                lambda: prepare_edit(
                    components, deps.opener, instruction=instruction, image=source,
                    mask=user_mask, options=patch, session_id=session_id,
                    max_pixels=deps.max_pixels, caption=caption,
                )
            )
            on_event = _progress_reporter(ctx)
            # a second edit on a busy session: the facade's `ConflictError`, as a tool error
            result = await _cancellable(
                lambda token: run_prepared(components, deps.opener, prepared, on_event,
                                           cancel=token)
            )
            await ctx.report_progress(PROGRESS_TOTAL, PROGRESS_TOTAL, "done")
            data = None
            if include_image:
                data = await anyio.to_thread.run_sync(
                    lambda: png_bytes(load_artifact(components, result.image))
                )
        except Exception as exc:
            raise _tool_error(exc) from exc
        info = summary(result)
        info["image_uri"] = artifact_uri(result.image)
        info["mask_uri"] = artifact_uri(result.mask) if result.mask else None
        content: list[Any] = [_link(result.image, "result", "The edited image.")]
        if result.mask:
            content.append(_link(result.mask, "mask", "The mask that was edited."))
        if data is not None:
            content.insert(0, _image_content(data))
        content.append(TextContent(type="text", text=json.dumps(info)))
        return CallToolResult(content=content, structured_content=info)


def _add_plan_edit(server: Any, deps: _ToolDeps) -> None:
    import anyio.to_thread
    from mcp_types import CallToolResult, TextContent

    ClientRoots = deps.roots_parameter()

    @server.tool(
        description=(
            "Plan an edit without inpainting: the edit category, object, target caption and the "
            "proposed mask (returned as an image and a resource link, white = area that would "
            "change). Give your own mask to see the plan for it."
        ),
        title="Plan an edit",
        annotations=_hints("Plan an edit", read_only=True),
    )
    async def plan_edit(
        instruction: Annotated[str, Field(description="What to change, in words.")],
        image: ImageB64 = None,
        image_path: ImagePath = None,
        image_hash: ImageHash = None,
        mask: MaskB64 = None,
        mask_path: MaskPath = None,
        mask_hash: MaskHash = None,
        listed_roots: ClientRoots = None,
    ) -> Annotated[CallToolResult, PlanEditOut]:
        try:
            if image is None and image_path is None and image_hash is None:
                raise InvalidRequestError("send the image as `image`, `image_path` or `image_hash`")
            source = await deps.read_input(listed_roots, "image", image, image_path, image_hash)
            user_mask = await deps.read_input(listed_roots, "mask", mask, mask_path, mask_hash)
            components = await anyio.to_thread.run_sync(deps.lazy.get)

            def work() -> tuple[Any, Any, str | None, str, str]:
                plan, proposed, planner, session_id = plan_only(
                    components, source, instruction, mask=user_mask, max_pixels=deps.max_pixels
                )
                digest = components.store.put_mask(proposed) if proposed is not None else None
                return plan, proposed, digest, planner, session_id

            plan, proposed, digest, planner, session_id = await anyio.to_thread.run_sync(work)
        except Exception as exc:
            raise _tool_error(exc) from exc
        info = {"plan": plan.model_dump(mode="json"), "mask": digest,
                "mask_uri": artifact_uri(digest) if digest else None, "planner": planner,
                "session_id": session_id}
        content: list[Any] = [TextContent(type="text", text=json.dumps(info))]
        if proposed is not None and digest is not None:
            content[:0] = [_image_content(png_bytes(proposed)),
                           _link(digest, "mask", "The proposed mask.")]
        return CallToolResult(content=content, structured_content=info)


def _add_get_trace(server: Any, deps: _ToolDeps) -> None:
    import anyio.to_thread
    from mcp_types import CallToolResult, TextContent

    @server.tool(
        description=(
            "Every agent step of a session: node, inputs, outputs, VLM prompts and raw answers, "
            "image hashes (each readable as brushedit://artifacts/<hash>). Returns JSON."
        ),
        title="Read a session's trace",
        annotations=_hints("Read a session's trace", read_only=True),
    )
    async def get_trace(
        session_id: Annotated[
            str, Field(description="The session_id of an earlier edit or plan.")
        ],
    ) -> Annotated[CallToolResult, TraceOut]:
        try:
            check_session_id(session_id)
            components = await anyio.to_thread.run_sync(deps.lazy.get)

            def work() -> list[Any]:
                if not session_exists(components, session_id):
                    raise NotFoundError(f"no session {session_id!r}")
                return jsonable(deps.opener(components, session_id).trace())

            events = await anyio.to_thread.run_sync(work)
        except Exception as exc:
            raise _tool_error(exc) from exc
        info = {"session_id": session_id, "events": events}
        return CallToolResult(
            content=[TextContent(type="text", text=json.dumps(info))], structured_content=info
        )


def _add_artifact_resource(server: Any, deps: _ToolDeps) -> None:
    import anyio.to_thread
    from mcp.server.mcpserver.exceptions import ResourceNotFoundError

    @server.resource(
        ARTIFACT_URI_TEMPLATE,
        name="artifact",
        title="Stored image or mask",
        description="An image or mask the server stored (sources, results, candidates, masks), "
        "as PNG, by its sha256 hash.",
        mime_type="image/png",
    )
    async def read_artifact(digest: str) -> bytes:
        def work() -> bytes:
            from tools.images import content_hash

            try:
                check_hash(digest, "hash")
            except InvalidRequestError:
                raise ResourceNotFoundError(
                    f"{artifact_uri(digest[:80])!r} names no artifact: the part after "
                    f"{ARTIFACT_SCHEME} is a sha256 hash, 64 lowercase hex characters"
                ) from None
            try:
                stored = load_artifact(deps.lazy.get(), digest)
            except BrushEditError as exc:  # unknown, or damaged (set aside)
                raise ResourceNotFoundError(mcp_message(exc)) from None
            except OSError:  # its text would name the server's folder
                logger.exception("artifact %s cannot be read", digest)
                raise ResourceNotFoundError(
                    f"artifact {digest} cannot be read on the server; the server's log has why"
                ) from None
            if content_hash(stored) != digest:
                raise ResourceNotFoundError(
                    f"artifact {digest} is damaged on disk (its pixels no longer match its hash)"
                )
            return png_bytes(stored)

        return await anyio.to_thread.run_sync(work)


RECENT_SESSIONS = 10
"""`resources/list` lists the results, masks and sources of this many recent sessions."""


def recent_artifacts(components: Any, sessions: int = RECENT_SESSIONS) -> list[Any]:
    """The recent sessions' images as MCP resources, newest first: each turn's result, mask
    and source (`brushedit://artifacts/<hash>`), named by turn and instruction."""
    from mcp_types import Resource

    traces, seen, out = components.traces, set(), []
    for info in traces.sessions(limit=sessions):
        session_id = info["id"]
        for turn in reversed(traces.turns(session_id)):
            what = " ".join(str(turn["instruction"]).split())[:80]
            for role, digest in (("result", turn["result"]), ("mask", turn["mask"]),
                                 ("source", turn["source"])):
                if not digest or digest in seen:
                    continue
                seen.add(digest)
                out.append(Resource(
                    uri=artifact_uri(digest), name=f"{role}-{digest[:12]}",
                    title=f"{role.capitalize()} of turn {turn['turn']}: {what}",
                    description=f"Session {session_id}, turn {turn['turn']} "
                    f"({turn['status']}): the {role} image.",
                    mime_type="image/png",
                ))
    return out


EDIT_PROMPT = (
    "Edit the image {image} with the `edit_image` tool, following this instruction: "
    "{instruction}\n\nGive the image as `image_path` (a file in the shared folders), `image_hash` "
    "(an earlier result) or `image` (base64). When the answer says `accepted: false`, read its "
    "`reason` and try again with a mask (`mask_path`) or other `options`; keep `session_id` to "
    "edit the result further."
)


def _add_edit_prompt(server: Any) -> None:
    @server.prompt(name="edit_image", title="Edit an image",
                   description="Ask the assistant to edit an image with the edit_image tool.")
    def edit_prompt(
        instruction: Annotated[str, Field(description="What to change, e.g. 'remove the cat'.")],
        image: Annotated[str, Field(description="The image: a file path, or the hash of an "
                                    "earlier result.")] = "the user gives",
    ) -> str:
        return EDIT_PROMPT.format(image=image, instruction=instruction)


PLANNER_URI = "brushedit://planner"


def _add_planner_resource(server: Any, deps: _ToolDeps) -> None:
    import anyio.to_thread

    @server.resource(
        PLANNER_URI,
        name="planner",
        title="Who plans the edits",
        description="The planner mode and the vision model that plans edits: its server (ollama "
        "or an OpenAI-compatible one) and address, model, family and whether it can point at "
        "places (JSON).",
        mime_type="application/json",
    )
    async def read_planner() -> str:
        def work() -> str:
            from graphs.vlm_setup import planner_info

            return planner_info(deps.lazy.get()).model_dump_json()

        return await anyio.to_thread.run_sync(work)


def run_mcp(
    settings: Any,
    *,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8765,
    inpainter: str | None = None,
    planner: str | None = None,
    roots: Iterable[str | Path] | None = None,
) -> None:
    """Serve over stdio or streamable HTTP (loopback only: this transport has no auth)."""
    from interfaces.common import LOOPBACK_HOSTS, settings_components_factory

    folders = [*parse_root_list(getattr(settings, "mcp_roots", None)), *(roots or ())]
    for folder in folders:
        if not Path(folder).expanduser().is_dir():
            raise ConfigError(f"MCP root folder {str(folder)!r} is not a folder")
    server = create_mcp_server(
        settings_components_factory(settings, inpainter=inpainter, planner=planner), settings,
        roots=folders,
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
