"""The web editor (`brushedit ui`): a Gradio app over the session facade.

Upload an image, type an instruction, optionally paint a mask (the alpha of the editor's first
layer), upload one, or let the agents propose one and refine it with the mask tools, then run.
Each kept result becomes the editor's new image, so edits chain; undo steps back. One status
panel shows the run's progress (node, diffusion step) and, when something is wrong, the one
error; the trace panel is a timeline of every agent step. `build_ui(...)` returns the Blocks so
tests inject offline components; nothing lives at module level.

Why the editor is wired through JavaScript: Gradio 6's frontend re-reads ("get_data") every
component that has a loading status on every status message of every event, and for
`gr.ImageEditor` that read uploads the whole canvas again and flips its spinner on. An editor
that is an output of a server event therefore re-uploads itself on each progress message and
can stay spinning. Here the visible editor is only ever read and written by browser-side (js)
events: a snapshot copies it into a hidden editor that the server reads, and a hidden image that
the server writes is copied into it, so it never gets a loading status.
"""

from __future__ import annotations

import html
import io
import logging
import math
import queue
import random
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graphs.cancel import CancelToken
from graphs.http_guard import split_list
from graphs.session import EditSession
from interfaces.common import (
    LOOPBACK_HOSTS,
    ComponentsFactory,
    LazyComponents,
    SessionOpener,
    artifact_path,
    default_options,
    default_session_opener,
    inpainter_names,
    jsonable,
    last_image,
    new_session,
    plan_only,
    turn_out,
)
from interfaces.wording import Wording, say
from tools.errors import (
    BrushEditError,
    ConfigError,
    EditCancelledError,
    InternalError,
    InvalidImageError,
    InvalidMaskError,
    InvalidRequestError,
    MaskNeededError,
    ModelLoadError,
    UnsupportedEditError,
)
from tools.images import DEFAULT_MAX_PIXELS
from tools.registry import INPAINTER_NAMES
from tools.types import EditOptions

if TYPE_CHECKING:
    import gradio as gr
    from PIL import Image

logger = logging.getLogger(__name__)

TURN_HEADERS = ["turn", "instruction", "accepted", "kept", "undone", "result"]
MASK_TINT = np.array([255, 40, 40], np.float32)

SNAPSHOT_JS = "(value) => value"
"""Browser-side copy of the visible editor into the hidden one the server reads."""
SHOW_JS = "(f) => (f ? {background: f, layers: [], composite: f} : null)"
"""Browser-side copy of the server's next picture into the visible editor (strokes cleared)."""

OPTION_LABELS = {
    "seed": "Seed",
    "steps": "Steps",
    "guidance_scale": "Guidance scale",
    "conditioning_scale": "Conditioning scale",
    "samples": "Samples",
    "blending": "Blend into source",
    "max_attempts": "Attempts",
    "inpainter": "Inpainter",
    "negative_prompt": "Negative prompt",
}
"""Labels of `EditOptions` fields; a field without one is labelled from its name."""

SLIDER_STEPS = {int: 1, float: 0.1}
ERROR_STYLE = ("border:1px solid #d33;background:#fff1f0;color:#8a1f11;padding:8px 12px;"
               "border-radius:6px")
PROGRESS_CSS = ".be-progress progress {width: 100%}"
MAX_SHOWN_FILES = 256
"""Copies of shown images kept in the editor's folder (Gradio keeps its own in its cache)."""


def option_label(name: str) -> str:
    return OPTION_LABELS.get(name) or name.replace("_", " ").capitalize()


# --------------------------------------------------------------------------- messages

def web_message(exc: BaseException) -> str:
    """An error's sentence in the editor's words: its controls, never CLI flags or field names."""
    return say(exc, WEB_WORDING)


def _control(name: str) -> str:
    """What the editor calls a request field (`options.seed` is its Seed option)."""
    name = name.removeprefix("options.")
    if name in EditOptions.model_fields:
        return option_label(name)
    return {"instruction": "the instruction", "mask": "the mask", "image": "the image",
            "caption": "the target caption"}.get(name, name.replace("_", " "))


WEB_WORDING = Wording(inpainter="the {name} inpainter (Advanced options)",
                      mask="paint over the area to edit or upload a mask",
                      installer="whoever runs this editor installs", field=_control,
                      weights="whoever runs this editor fetches them{licence} with `{command}` "
                      "and sets {env} to that folder")
"""The editor's controls, for the fixes typed errors point at (`interfaces.wording`)."""


ERROR_TITLES: tuple[tuple[type[BaseException], str], ...] = (
    (MaskNeededError, "A mask is needed"),
    (InvalidMaskError, "Mask problem"),
    (InvalidImageError, "Image problem"),
    (UnsupportedEditError, "Not possible with this inpainter"),
    (ModelLoadError, "Models missing"),
    (ConfigError, "Setup problem"),
    (InvalidRequestError, "Check the request"),
)


def user_message(exc: BaseException) -> tuple[str, str]:
    """(title, sentence) for an expected failure, in the editor's words."""
    title = next((t for kind, t in ERROR_TITLES if isinstance(exc, kind)), "Cannot edit")
    return title, web_message(exc) or type(exc).__name__


def error_html(title: str, text: str, kind: str) -> str:
    return (
        f"<div class='be-error' role='alert' style='{ERROR_STYLE}' "
        f"data-error-type='{html.escape(kind)}'>"
        f"<strong>{html.escape(title)}:</strong> {html.escape(text)}</div>"
    )


def option_widget_spec(name: str, model: type = EditOptions) -> dict[str, Any]:
    """How to show one option: kind, bounds, default and help, all read from the model's field.

    Bounds and descriptions live once, on the pydantic field (`Field(ge=, le=, description=)`);
    the sliders follow them, so a changed bound changes the editor too.
    """
    info = model.model_fields[name]
    low = high = None
    for item in info.metadata:
        low = getattr(item, "ge", None) if getattr(item, "ge", None) is not None else low
        high = getattr(item, "le", None) if getattr(item, "le", None) is not None else high
    annotation, optional = _unwrap_optional(info.annotation)
    default = info.get_default(call_default_factory=True)
    spec: dict[str, Any] = {"name": name, "label": option_label(name), "default": default,
                            "info": info.description or "", "minimum": low, "maximum": high,
                            "optional": optional}
    if annotation is bool:
        spec["kind"] = "checkbox"
    elif annotation in (int, float) and optional:
        # None means "the inpainter's own": an empty box, which a slider cannot show
        spec.update(kind="number", precision=0 if annotation is int else None)
    elif annotation in (int, float) and low is not None and high is not None and (
        high - low <= 1000
    ):
        spec.update(kind="slider", step=SLIDER_STEPS[annotation])
    elif annotation in (int, float):
        spec.update(kind="number", precision=0 if annotation is int else None)
    elif name == "inpainter":  # the registry's names, the one list of inpainters
        spec.update(kind="dropdown", choices=list(INPAINTER_NAMES))
    elif getattr(annotation, "__args__", None) and all(
        isinstance(a, str) for a in annotation.__args__
    ):
        spec.update(kind="dropdown", choices=list(annotation.__args__))
    else:
        spec["kind"] = "text"
    return spec


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """`int | None` -> (int, True): an option whose None means "the inpainter's own"."""
    import types

    args = getattr(annotation, "__args__", ())
    if isinstance(annotation, types.UnionType) and type(None) in args and len(args) == 2:
        return next(a for a in args if a is not type(None)), True
    return annotation, False


def _help(text: str) -> str | None:
    """A field description as help for a person: clauses naming code (`tools.x`) left out."""
    parts = [p for p in re.split(r";\s*", text or "") if "`" not in p]
    shown = "; ".join(parts).strip()
    return (shown if shown.endswith(".") or not shown else shown + ".") or None


def _number_help(spec: dict[str, Any], inpainter: str | None = None) -> str:
    """A number box's help: what it does, its range, and for an option left empty by default
    what the chosen inpainter uses then ("empty: flux2-klein's own, 4")."""
    text = _help(spec["info"]) or ""
    if spec.get("optional"):
        text = text.split(";")[0].rstrip(".") + "."
        if inpainter:
            from tools.option_specs import model_default

            own = model_default(spec["name"], inpainter)
            text += f" Empty: {inpainter}'s own ({own:g})."
        else:
            text += " Empty: the inpainter's own."
    return f"{text} ({spec['minimum']} to {spec['maximum']})"


def _option_component(spec: dict[str, Any]) -> Any:
    import gradio as gr

    kind, name = spec["kind"], spec["name"]
    common = {"label": spec["label"], "info": _help(spec["info"]),
              "elem_id": f"option_{name}"}
    if kind == "slider":
        return gr.Slider(spec["minimum"], spec["maximum"], value=spec["default"],
                         step=spec["step"], **common)
    if kind == "number":
        # No minimum/maximum here: out-of-range values get our sentence in the status panel,
        # not Gradio's error badge. The range is in the help text.
        if spec["minimum"] is not None and spec["maximum"] is not None:
            common["info"] = _number_help(spec)
        return gr.Number(value=spec["default"], precision=spec["precision"], **common)
    if kind == "checkbox":
        return gr.Checkbox(value=bool(spec["default"]), **common)
    if kind == "dropdown":
        return gr.Dropdown(spec["choices"], value=spec["default"], **common)
    return gr.Textbox(value=spec["default"] or "", **common)


# --------------------------------------------------------------------------- the app


def build_ui(
    source: ComponentsFactory | Any,
    settings: Any = None,
    *,
    session_opener: SessionOpener | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> gr.Blocks:
    """The editor's Blocks, from a components factory or from `Settings`.

    Args:
        source: a zero-argument callable returning a `Context`, or a `Settings` (the real
            components are then built on first use).
        settings: optional `Settings`, for defaults such as `max_attempts`.
        session_opener: `(components, session_id | None) -> session`; the facade by default.
        max_pixels: uploads above this many pixels are refused.
    """
    import gradio as gr

    from interfaces.common import settings_components_factory

    if callable(source):
        factory = source
    else:
        settings = settings or source
        factory = settings_components_factory(source)
    actions = _Actions(LazyComponents(factory), session_opener or default_session_opener,
                       settings, max_pixels)
    with gr.Blocks(title="BrushEdit-Agents") as demo:
        ui = _layout()
        _wire(demo, ui, actions)
    return demo


# --------------------------------------------------------------------------- layout


def _layout() -> dict[str, Any]:
    """Every component of the page, by name; built inside the Blocks context."""
    import gradio as gr

    ui: dict[str, Any] = {
        "session_state": gr.State(None),  # session id of this browser tab
        "mask_state": gr.State(None),  # the current mask (MaskChoice): uploaded, proposed, kept
    }
    gr.Markdown(
        "## BrushEdit-Agents\nUpload an image, say what to change, and run. Paint over the "
        "area to edit to choose the region yourself, upload a mask, or press **Propose "
        "mask** and refine it."
    )
    with gr.Row():
        with gr.Column(scale=3):
            _input_column(ui)
        with gr.Column(scale=3):
            _output_column(ui)
    with gr.Row():
        _history_row(ui)
    return ui


def _editor_kwargs() -> dict[str, Any]:
    """What the visible editor and its hidden snapshot share."""
    import gradio as gr

    return dict(
        type="numpy", image_mode="RGBA", format="png", layers=False, transforms=(),
        brush=gr.Brush(colors=["#ff3030"], color_mode="fixed", default_size=24),
    )


def _input_column(ui: dict[str, Any]) -> None:
    """The picture, the mask upload, the instruction and caption, the buttons, the options."""
    import gradio as gr

    editor_kwargs = _editor_kwargs()
    ui["editor"] = gr.ImageEditor(
        label="Image (paint the area to edit: optional)",
        sources=("upload", "clipboard"), elem_id="editor", **editor_kwargs,
    )
    # What the server reads (a snapshot of the editor, as files: nothing decodes an upload
    # before its header is checked) and writes (its next picture).
    ui["snapshot"] = pass_files(gr.ImageEditor(visible=False, **editor_kwargs))
    ui["next_image"] = gr.Image(visible=False, type="filepath", format="png",
                                interactive=False)
    ui["mask_upload"] = pass_files(gr.Image(
        label="…or upload a mask (white = edit)", type="filepath",
        format="png", sources=("upload",), height=160, elem_id="mask_upload",
    ))
    ui["instruction"] = gr.Textbox(
        label="Instruction", placeholder="remove the dog", elem_id="instruction"
    )
    ui["caption"] = gr.Textbox(
        label="Target caption (what the edited area shows; filled by the planner)",
        elem_id="caption",
    )
    ui["keep_mask"] = gr.Checkbox(
        value=False, label="Keep the mask for the next turn",
        info="Off: each run's mask is used once, then cleared.", elem_id="keep_mask",
    )
    with gr.Row():
        ui["propose_btn"] = gr.Button("Propose mask", elem_id="propose")
        ui["run_btn"] = gr.Button("Run edit", variant="primary", elem_id="run")
        ui["stop_btn"] = gr.Button("Stop edit", variant="stop", elem_id="stop")
    with gr.Accordion("Advanced options", open=False):
        ui["option_inputs"] = [_option_component(option_widget_spec(name))
                               for name in EditOptions.model_fields]
        ui["randomise"] = gr.Checkbox(value=False, label="Randomise seed")
        ui["planner"] = gr.Textbox(
            label="Planner", interactive=False, elem_id="planner",
            info="Chosen when the editor was started (the mode, and the vision model's server "
            "and family); shown for reference.",
        )


def _output_column(ui: dict[str, Any]) -> None:
    """The status panel, the result, the candidates and the current mask with its tools."""
    import gradio as gr

    ui["status"] = gr.HTML("", elem_id="status")
    ui["result"] = gr.Image(
        label="Result", type="filepath", interactive=False, elem_id="result", format="png",
    )
    ui["gallery"] = gr.Gallery(
        label="Candidates", columns=4, height=180, elem_id="candidates", allow_preview=True,
    )
    with gr.Accordion("Mask", open=True):
        ui["mask_view"] = gr.Image(
            label="Current mask (red = edit; used by the next run)", type="numpy",
            interactive=False, elem_id="mask_view",
        )
        with gr.Row():
            tool_buttons = {
                op: gr.Button(text, size="sm", elem_id=f"mask_{op}")
                for op, text in (("invert", "Invert"), ("dilate", "Dilate"),
                                 ("erode", "Erode"), ("box", "Box"),
                                 ("ellipse", "Ellipse"), ("clear", "Clear"))
            }
        with gr.Row():
            ui["px"] = gr.Slider(1, 64, value=8, step=1, label="Pixels")
            for op, text in (("left", "← Shift left"), ("right", "Shift right →"),
                             ("up", "↑ Shift up"), ("down", "↓ Shift down")):
                tool_buttons[op] = gr.Button(text, size="sm", elem_id=f"mask_{op}")
    ui["tool_buttons"] = tool_buttons


def _history_row(ui: dict[str, Any]) -> None:
    """The turns table with undo, and the trace panel with its images."""
    import gradio as gr

    with gr.Column(scale=2):
        ui["turns"] = gr.Dataframe(
            headers=TURN_HEADERS, label="Turns", interactive=False, elem_id="turns", wrap=True,
        )
        with gr.Row():
            ui["undo_turn"] = gr.Textbox(
                value="", label="Undo to turn (empty = one back, 0 = original)",
                elem_id="undo_turn",
            )
            # "Undo turn": the editor's own "Undo" takes back a brush stroke
            ui["undo_btn"] = gr.Button("Undo turn", elem_id="undo")
    with gr.Column(scale=3), gr.Accordion("Trace: every agent step", open=True):
        ui["trace"] = gr.HTML(elem_id="trace")
        ui["trace_gallery"] = gr.Gallery(
            label="Trace images", columns=6, height=160, elem_id="trace_images"
        )


# --------------------------------------------------------------------------- event wiring


def _snapshot_then(trigger: Any, ui: dict[str, Any]) -> Any:
    """A browser-side copy of the visible editor into the hidden one, before a server event."""
    return trigger(None, [ui["editor"]], [ui["snapshot"]], js=SNAPSHOT_JS, queue=False,
                   api_visibility="private")


INTERNAL = {"api_visibility": "private"}
"""Events the page needs but an API client does not (they are not listed in "Use via API")."""


def _wire(demo: gr.Blocks, ui: dict[str, Any], actions: _Actions) -> None:
    """Connect the components to the handlers (see the module docstring for the js steps)."""
    options = ui["option_inputs"]
    after_edit = [ui[name] for name in (
        "status", "result", "gallery", "next_image", "turns", "trace", "trace_gallery",
        "session_state", "mask_state", "mask_view", "mask_upload")]
    after_edit += [options[_index("seed")], ui["caption"]]
    run_inputs = [ui[name] for name in (
        "snapshot", "mask_upload", "instruction", "caption", "session_state", "mask_state",
        "keep_mask", "randomise")] + options
    for trigger, visibility in ((ui["run_btn"].click, {"api_name": "edit"}),
                                (ui["instruction"].submit, INTERNAL)):  # one `/edit` endpoint
        _snapshot_then(trigger, ui).then(
            actions.run, inputs=run_inputs, outputs=after_edit,
            show_progress="hidden", concurrency_id="edit", **visibility,
        )
    # Not queued behind the edit it stops; the edit's own handler then says it stopped.
    ui["stop_btn"].click(actions.stop, inputs=[ui["session_state"]], outputs=[ui["status"]],
                         queue=False, api_name="stop_edit")
    _snapshot_then(ui["propose_btn"].click, ui).then(
        actions.propose, inputs=[ui["snapshot"], ui["instruction"], ui["mask_upload"]],
        outputs=[ui["mask_state"], ui["mask_view"], ui["caption"], ui["status"]],
        concurrency_id="edit", api_name="propose_mask",
    )
    mask_outputs = [ui["mask_state"], ui["mask_view"], ui["status"]]
    for op, button in ui["tool_buttons"].items():
        _snapshot_then(button.click, ui).then(
            _bind(actions.mask_op, op), inputs=[ui["snapshot"], ui["mask_state"], ui["px"]],
            outputs=mask_outputs, show_progress="hidden", api_name=f"mask_{op}",
        )
    _snapshot_then(ui["mask_upload"].upload, ui).then(
        actions.preview_upload, inputs=[ui["snapshot"], ui["mask_upload"]],
        outputs=mask_outputs, show_progress="hidden", api_name="preview_mask",
    )
    ui["mask_upload"].clear(actions.clear_upload, outputs=mask_outputs, **INTERNAL)
    ui["undo_btn"].click(
        actions.undo, inputs=[ui["session_state"], ui["undo_turn"]],
        outputs=[ui[name] for name in ("status", "next_image", "turns", "trace",
                                       "trace_gallery", "result", "gallery")],
        concurrency_id="edit", api_name="undo_turn",
    )
    ui["next_image"].change(None, [ui["next_image"]], [ui["editor"]], js=SHOW_JS, queue=False)
    inpainter_box = options[_index("inpainter")]
    inpainter_box.change(actions.option_states, inputs=[inpainter_box], outputs=options,
                         show_progress="hidden", **INTERNAL)
    demo.load(actions.defaults, outputs=[ui["planner"], *options], **INTERNAL)


def _index(name: str) -> int:
    return list(EditOptions.model_fields).index(name)


def _bind(fn: Callable[..., Any], op: str) -> Callable[..., Any]:
    def bound(*args: Any) -> Any:
        return fn(op, *args)

    bound.__name__ = f"mask_{op}"
    return bound


@dataclass(frozen=True)
class MaskChoice:
    """The mask the next run uses (unless one is painted), and where it came from."""

    mask: np.ndarray
    origin: str  # "uploaded", "proposed", "edited with the mask tools", "kept from turn N"


class _Actions:
    """The event handlers, closed over one app's components (no module state)."""

    def __init__(
        self, lazy: LazyComponents, opener: SessionOpener, settings: Any, max_pixels: int
    ) -> None:
        self.lazy = lazy
        self.opener = opener
        self.settings = settings
        self.max_pixels = max_pixels
        self._thumbs: dict[str, str] = {}
        self._running: dict[str, CancelToken] = {}  # session id -> the Stop switch of its turn
        # the copies the page shows; removed when the app goes or the process exits
        self._shown_folder = tempfile.TemporaryDirectory(prefix="brushedit-web-")
        self._shown_dir = Path(self._shown_folder.name)
        self._shown_count = 0

    # -- helpers -----------------------------------------------------------------------------

    @property
    def components(self) -> Any:
        return self.lazy.get()

    def _refused(self, exc: BaseException, what: str) -> str:
        """The status panel for a failure; expected ones log one line, bugs a traceback."""
        if isinstance(exc, BrushEditError):
            title, text = user_message(exc)
            logger.info("web %s refused: %s: %s", what, type(exc).__name__, text)
        else:  # a bug: its text may hold server paths; the log has it, the page one sentence
            logger.exception("web %s failed unexpectedly", what)
            title, text = "Internal error", InternalError.MESSAGE[:1].upper() + \
                InternalError.MESSAGE[1:] + "."
            return error_html(title, text, InternalError.__name__)
        return error_html(title, text, type(exc).__name__)

    def _background(self, editor_value: dict | None) -> Image.Image:
        """The photo as the edit's working image: its upload's header checked first
        (`tools.images.probe_image`), then read by the one loader at the working size."""
        from tools.images import probe_image, read_image

        background = (editor_value or {}).get("background")
        if background is None:
            raise InvalidImageError("upload an image first (drop it on the editor)")
        probe_image(background, max_pixels=self.max_pixels)
        side = self.components.settings.max_image_side
        return read_image(background, max_pixels=self.max_pixels, max_side=side).image

    def _painted(self, editor_value: dict | None, size: tuple[int, int]) -> np.ndarray | None:
        """The mask painted on the first layer (its alpha) at `size`, or None when nothing is
        painted; the layer's header is checked before it is decoded."""
        layers = (editor_value or {}).get("layers") or []
        if not layers or layers[0] is None:
            return None
        alpha = _alpha(layers[0], self.max_pixels)
        if alpha is None or not (alpha > 0).any():
            return None
        mask = np.where(alpha > 0, 255, 0).astype(np.uint8)
        if (mask.shape[1], mask.shape[0]) != size:
            from tools.masks import fit_mask

            mask = fit_mask(mask, size, resize=True)
        return mask

    def _uploaded_mask(self, value: Any, size: tuple[int, int] | None) -> np.ndarray | None:
        """The uploaded mask (its file's header checked before decoding, read by the one mask
        loader), fitted to the image with the shared rule: another aspect ratio is refused."""
        if value is None:
            return None
        from tools.images import load_mask, probe_image

        if not isinstance(value, np.ndarray):
            probe_image(value, max_pixels=self.max_pixels, what="mask")
        mask = load_mask(value, max_pixels=self.max_pixels)
        if size is not None:
            from tools.masks import fit_mask

            mask = fit_mask(mask, size, resize=True)
        if not mask.any():
            raise InvalidMaskError("the uploaded mask is empty: white marks the area to edit")
        return mask

    def _options(self, values: tuple[Any, ...], randomise: bool) -> dict[str, Any]:
        """The option controls' values as fields (numbers from a Number box made whole); the
        facade checks them (`EditSession.prepare`)."""
        data: dict[str, Any] = {}
        for name, value in zip(EditOptions.model_fields, values, strict=False):
            if value is None or (isinstance(value, str) and not value.strip()
                                 and name != "negative_prompt"):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidRequestError(f"{option_label(name)} must be a finite number")
            annotation, _ = _unwrap_optional(EditOptions.model_fields[name].annotation)
            if annotation is int and isinstance(value, float):
                if value != int(value):
                    raise InvalidRequestError(
                        f"{option_label(name)} must be a whole number (got {value})"
                    )
                value = int(value)
            data[name] = value
        if randomise:
            data["seed"] = random.randrange(2**31)
        return data

    def _session(self, session_id: str | None) -> Any:
        if session_id:
            return self.opener(self.components, session_id)
        return new_session(self.opener, self.components)

    def _turns_rows(self, session: Any) -> list[list[Any]]:
        rows = []
        for turn in (turn_out(t) for t in session.turns()):
            rows.append(
                [turn.turn, turn.instruction, turn.accepted, turn.kept, turn.undone,
                 (turn.image or "")[:12]]
            )
        return rows

    def _path(self, digest: str | None) -> str | None:
        """The stored file of an artifact, for the server's own reading (never handed to
        Gradio: its file route would then serve the data folder)."""
        if not digest:
            return None
        try:
            return str(artifact_path(self.components, digest))
        except BrushEditError:
            return None

    def _public(self, digest: str | None) -> str | None:
        """A copy of an artifact the page shows, in this editor's own folder: the only files
        Gradio is handed, so its file route serves what the page shows and nothing else."""
        path = self._path(digest)
        if path is None:
            return None
        target = self._shown_dir / f"{digest}.png"
        if not target.exists():
            import shutil

            shown = sorted(self._shown_dir.glob("*.png"), key=lambda p: p.stat().st_mtime)
            for old in shown[:max(0, len(shown) - MAX_SHOWN_FILES)]:
                old.unlink(missing_ok=True)
            partial = target.with_suffix(".part")
            shutil.copyfile(path, partial)
            partial.replace(target)
        return str(target)

    def _thumb(self, digest: str) -> str | None:
        """A small inline PNG of an artifact (data URI), for the trace timeline."""
        if digest in self._thumbs:
            return self._thumbs[digest]
        path = self._path(digest)
        if path is None:
            return None
        import base64

        from PIL import Image

        with Image.open(path) as stored:
            small = stored.convert("RGB")
            small.thumbnail((96, 96))
        buffer = io.BytesIO()
        small.save(buffer, format="PNG")
        uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        if len(self._thumbs) > 512:
            self._thumbs.clear()
        self._thumbs[digest] = uri
        return uri

    def _trace(self, session: Any) -> tuple[str, list[tuple[str, str]]]:
        from interfaces.trace_view import render_panel

        events = jsonable(session.trace())
        return render_panel(events, thumb=self._thumb), self._trace_images(events)

    def _trace_images(self, events: list[dict[str, Any]]) -> list[tuple[str, str]]:
        from interfaces.trace_view import images

        items: list[tuple[str, str]] = []
        seen: set[str] = set()
        for event in events:
            node = str(event.get("node", "step"))
            for label, digest in images(event.get("images") or {}):
                path = self._public(digest) if digest not in seen else None
                if path:
                    seen.add(digest)
                    items.append((path, f"{event.get('turn', '')}·{node}: {label}"))
        return items

    def _shown(self, digest: str | None) -> str | None:
        """The editor's next picture as a fresh file, so the browser sees a change every time.

        A text chunk makes each copy's bytes (and so Gradio's cache name) unique; the pixels
        are the artifact's. Only the latest copy is kept on disk.
        """
        path = self._path(digest)
        if path is None:
            return None
        from PIL import Image, PngImagePlugin

        self._shown_count += 1
        for old in self._shown_dir.glob("shown-*.png"):
            old.unlink(missing_ok=True)
        target = self._shown_dir / f"shown-{self._shown_count}.png"
        info = PngImagePlugin.PngInfo()
        info.add_text("brushedit-shown", f"{digest}:{self._shown_count}:{time.time()}")
        with Image.open(path) as stored:
            stored.convert("RGBA").save(target, format="PNG", pnginfo=info)
        return str(target)

    # -- handlers ----------------------------------------------------------------------------

    def defaults(self) -> tuple[Any, ...]:
        import gradio as gr

        components = self.components
        names = inpainter_names(components)
        planner = _planner_text(components)
        defaults = default_options(components, self.settings)
        values = [gr.update(value=getattr(defaults, n)) for n in EditOptions.model_fields]
        values[_index("inpainter")] = gr.update(choices=names, value=names[0])
        states = self.option_states(names[0])
        merged = [gr.update(**{**v, **s}) for v, s in zip(values, states, strict=True)]
        return (gr.update(value=planner), *merged)

    def option_states(self, inpainter: str | None) -> list[Any]:
        """Options the chosen inpainter does not read are shown, greyed, with why."""
        import gradio as gr

        from interfaces.trace_view import unused_options

        not_read = unused_options(inpainter)
        out = []
        for name in EditOptions.model_fields:
            unused = name in not_read
            spec = option_widget_spec(name)
            info = (_number_help(spec, inpainter) if spec["kind"] == "number"
                    and spec["minimum"] is not None and spec["maximum"] is not None
                    else _help(spec["info"]))
            out.append(gr.update(interactive=not unused,
                                 info=f"Not used by {inpainter}." if unused else info))
        return out

    def propose(
        self, editor_value: dict | None, instruction: str, mask_upload: Any = None
    ) -> tuple[Any, ...]:
        """Plan only: fill the caption and show the proposed mask, ready for the mask tools."""
        import gradio as gr

        try:
            image = self._background(editor_value)
            given = self._painted(editor_value, image.size)
            if given is None:
                given = self._uploaded_mask(mask_upload, image.size)
            plan, mask, planner, _session = plan_only(self.components, image, instruction,
                                                      mask=given)
        except Exception as exc:  # shown in the status panel, logged once
            return gr.update(), gr.update(), gr.update(), self._refused(exc, "propose")
        view = overlay(image, mask) if mask is not None else None
        note = (
            f"<div class='be-done'><b>Plan</b> ({html.escape(planner)}): "
            f"{html.escape(plan.category.value)}"
            + (f" · object: <i>{html.escape(plan.object)}</i>" if plan.object else "")
            + " · the proposed mask is used by the next run (refine it with the mask tools)"
            "</div>"
        )
        choice = MaskChoice(mask, "proposed") if mask is not None else None
        return choice, view, plan.target_caption or "", note

    def preview_upload(self, editor_value: dict | None, value: Any) -> tuple[Any, Any, str]:
        """Show an uploaded mask on the photo at once; it becomes the current mask."""
        if value is None:
            return None, None, ""
        try:
            background = (editor_value or {}).get("background")
            image = self._background(editor_value) if background is not None else None
            mask = self._uploaded_mask(value, image.size if image is not None else None)
        except Exception as exc:  # shown in the status panel, logged once
            return None, None, self._refused(exc, "mask upload")
        if image is None:
            view = overlay_on_black(mask)
            note = "Mask uploaded; upload the photo to see it in place."
        else:
            view = overlay(image, mask)
            note = "Mask uploaded: the red area is what the next run edits."
        return MaskChoice(mask, "uploaded"), view, f"<div class='be-done'>{note}</div>"

    def clear_upload(self) -> tuple[None, None, str]:
        return None, None, ""

    def mask_op(
        self, op: str, editor_value: dict | None, current: MaskChoice | None, px: float
    ) -> tuple[Any, Any, str]:
        """Apply one mask tool to the current mask (uploaded or proposed, else the painted)."""
        import gradio as gr

        from tools import masks

        try:
            image = self._background(editor_value)
            mask = current.mask if current is not None else self._painted(
                editor_value, image.size
            )
            if op == "clear":
                return None, None, "<div class='be-done'>Mask cleared.</div>"
            if mask is None:
                raise InvalidMaskError(
                    "there is no mask yet: paint one, upload one or press Propose mask"
                )
            mask = masks.fit_mask(masks.as_mask(np.asarray(mask)), image.size)
            step = int(px)
            new = {
                "invert": lambda m: masks.invert(m),
                "dilate": lambda m: masks.dilate(m, step),
                "erode": lambda m: masks.erode(m, step),
                "box": lambda m: _box_mask(m),
                "ellipse": lambda m: masks.bounding_ellipse(m),
                "left": lambda m: masks.shift(m, -step, 0),
                "right": lambda m: masks.shift(m, step, 0),
                "up": lambda m: masks.shift(m, 0, -step),
                "down": lambda m: masks.shift(m, 0, step),
            }[op](mask)
        except Exception as exc:  # shown in the status panel, logged once
            return gr.update(), gr.update(), self._refused(exc, "mask tool")
        return (MaskChoice(new, "edited with the mask tools"), overlay(image, new),
                f"<div class='be-done'>Mask: {html.escape(op)} applied.</div>")

    def run(
        self,
        editor_value: dict | None,
        mask_upload: Any,
        instruction: str,
        caption: str,
        session_id: str | None,
        current: MaskChoice | None,
        keep_mask: bool,
        randomise: bool,
        *option_values: Any,
    ) -> Iterator[tuple[Any, ...]]:
        """Run one edit, showing its progress; the result becomes the editor's next picture.

        A generator: it yields the status panel while the graph runs (node, attempt, diffusion
        step), then every output once. A failure changes nothing but the status panel.
        """
        import gradio as gr

        keep = gr.update()
        n_outputs = 13

        def only_status(html_text: str, **extra: Any) -> tuple[Any, ...]:
            out = [keep] * n_outputs
            out[0] = html_text
            for index, value in extra.items():
                out[int(index[1:])] = value
            return tuple(out)

        try:
            image = self._background(editor_value)
            user_mask, origin = self._painted(editor_value, image.size), "painted"
            if user_mask is None and mask_upload is not None:
                user_mask, origin = self._uploaded_mask(mask_upload, image.size), "uploaded"
            if user_mask is None and current is not None:
                from tools.masks import fit_mask

                user_mask, origin = fit_mask(current.mask, image.size), current.origin
            checker = (self.opener(self.components, session_id) if session_id
                       else EditSession.open(self.components))
            turn = checker.prepare(image, instruction, mask=user_mask,
                                   options=self._options(option_values, randomise),
                                   caption=caption or None)
            session = self._session(session_id)  # a new one is recorded once the request passed
        except Exception as exc:  # shown in the status panel, logged once
            yield only_status(self._refused(exc, "edit"))
            return

        feed = ProgressFeed()
        events: queue.Queue[dict[str, Any]] = queue.Queue()
        outcome: dict[str, Any] = {}
        token = self._running[session.id] = CancelToken()

        def work() -> None:
            try:
                outcome["result"] = session.run(turn, on_event=events.put, cancel=token)
            except BaseException as exc:  # handed to the handler thread
                outcome["error"] = exc

        worker = threading.Thread(target=work, name="brushedit-web-edit", daemon=True)
        worker.start()
        # clears the last error at once, and tells the page which session Stop stops
        yield only_status(feed.html(), _7=session.id)
        shown = time.monotonic()
        try:
            while worker.is_alive() or not events.empty():
                try:
                    event = events.get(timeout=0.1)
                except queue.Empty:
                    continue
                changed_node = feed.update(event)
                if changed_node or time.monotonic() - shown > 0.2:
                    shown = time.monotonic()
                    yield only_status(feed.html())
            worker.join()
        finally:
            if self._running.get(session.id) is token:
                del self._running[session.id]
        if "error" in outcome:
            trace_html, trace_images = self._trace(session)
            error = outcome["error"]
            status = (f"<div class='be-done'>Stopped: turn {feed.turn or ''} was cancelled and "
                      "nothing of it was kept.</div>"
                      if isinstance(error, EditCancelledError) else self._refused(error, "edit"))
            yield only_status(
                status, _4=self._turns_rows(session),
                _5=trace_html, _6=trace_images, _7=session.id,
            )
            return
        result = outcome["result"]
        yield self._after_edit(session, result, image, user_mask, origin, keep_mask,
                               turn.options)

    def stop(self, session_id: str | None) -> str:
        """The Stop button: the running turn stops within a diffusion step (or at the next
        node); its own handler then shows that it stopped."""
        token = self._running.get(session_id or "")
        if token is None:
            return "<div class='be-done'>Nothing is running to stop.</div>"
        token.cancel("stopped with the Stop button")
        return "<div class='be-done'>Stopping the edit…</div>"

    def _after_edit(
        self, session: Any, result: Any, image: Image.Image, user_mask: np.ndarray | None,
        origin: str, keep_mask: bool, options: EditOptions,
    ) -> tuple[Any, ...]:
        from PIL import Image

        result_path = self._public(result.image)
        candidates = [
            (path, f"candidate {i + 1}")
            for i, path in enumerate(self._public(c) for c in result.candidates)
            if path
        ]
        verdict = "accepted" if result.accepted else "not accepted (best attempt kept)"
        growth = mask_growth(jsonable(session.trace()), result.turn)
        used = f"{origin} mask" if user_mask is not None else "mask found by the agents"
        status = (
            f"<div class='be-done'><b>Turn {result.turn}</b>: {verdict} after "
            f"{result.attempts} attempt(s) · planner <code>{html.escape(result.planner)}</code>"
            f" · inpainter <code>{html.escape(result.inpainter)}</code> · "
            f"{html.escape(result.plan.category.value)} · {html.escape(used)}"
            + (f" · <i>{html.escape(result.caption)}</i>" if result.caption else "")
            + (f"<br>{html.escape(result.reason)}" if result.reason else "")
            + (f"<br>{html.escape(growth)}" if growth else "")
            + ("<br>The mask is kept for the next turn." if keep_mask else "")
            + "</div>"
        )
        trace_html, trace_images = self._trace(session)
        next_input = last_image(session)
        kept, mask_view = None, None
        mask_path = self._path(result.mask)
        if keep_mask and mask_path:
            with Image.open(mask_path) as used_mask:
                mask = np.asarray(used_mask.convert("L")).copy()
            kept = MaskChoice(mask, f"kept from turn {result.turn}")
            base = self._path(next_input)
            with Image.open(base or mask_path) as shown_on:
                mask_view = overlay(shown_on.convert("RGB"), mask) if base else None
        return (
            status,
            result_path,
            candidates,
            self._shown(next_input),
            self._turns_rows(session),
            trace_html,
            trace_images,
            session.id,
            kept,
            mask_view,
            None,  # the uploaded mask is used once; keeping it is the checkbox's job
            options.seed,
            "",  # the caption was this instruction's; the next one gets its own
        )

    def undo(self, session_id: str | None, turn: str | None) -> tuple[Any, ...]:
        """Step back one turn (or to `turn`); the editor shows the image the next edit uses."""
        import gradio as gr

        unchanged = (gr.update(),) * 6
        try:
            if not session_id:
                raise InvalidRequestError("nothing to undo yet: run an edit first")
            session = self.opener(self.components, session_id)
            live = [t for t in (turn_out(x) for x in session.turns()) if not t.undone]
            if not live:
                raise InvalidRequestError("nothing left to undo in this session")
            text = (turn or "").strip()
            if text and not text.isdigit():
                raise InvalidRequestError(f"the turn must be a whole number, got {text[:20]!r}")
            session.undo(turn=int(text) if text else None)
        except Exception as exc:  # shown in the status panel, logged once
            return (self._refused(exc, "undo"), *unchanged)
        remaining = [t for t in (turn_out(x) for x in session.turns()) if not t.undone]
        back_to = last_image(session) or (live[0].source if live else None)
        if remaining:
            note = f"Undone: back at turn {remaining[-1].turn}."
        else:
            note = "Undone: back at the original image."
        trace_html, trace_images = self._trace(session)
        return (
            f"<div class='be-done'>{note}</div>",
            self._shown(back_to) or gr.update(),
            self._turns_rows(session),
            trace_html,
            trace_images,
            self._public(last_image(session)),
            [],  # the candidates were the undone turn's
        )


def mask_growth(events: list[dict[str, Any]], turn: int) -> str | None:
    """A sentence when the turn's retries grew the mask (the verifier blamed it), with how much
    of the image it covered at the first and the last attempt; None when it did not grow."""
    coverage = [(e.get("attempt") or 0, e["outputs"]["coverage"]) for e in events
                if e.get("turn") == turn and e.get("node") == "mask"
                and isinstance((e.get("outputs") or {}).get("coverage"), (int, float))]
    if len(coverage) < 2:
        return None
    (_, first), (last_attempt, last) = min(coverage), max(coverage)
    if last <= first + 1e-4:
        return None
    return (f"The verifier blamed the mask, so the retries grew it: from {first:.1%} of the "
            f"image to {last:.1%} by attempt {last_attempt}.")


class ProgressFeed:
    """Facade events folded into what the status panel shows: node, attempt, diffusion step."""

    def __init__(self) -> None:
        self.node: str | None = None
        self.attempt: int | None = None
        self.turn: int | None = None
        self.step: tuple[int, int] | None = None
        self.done: list[tuple[str, float | None]] = []
        self.note: str | None = None
        self.coverage: float | None = None  # of the turn's first mask

    def update(self, event: dict[str, Any]) -> bool:
        """Fold one event in; True when worth showing at once (a new node, first or last step)."""
        kind = event.get("type")
        if kind == "turn":
            self.turn = event.get("turn")
        elif kind == "node" and event.get("status") == "start":
            self.node, self.attempt, self.step = event.get("node"), event.get("attempt"), None
            self.turn = event.get("turn", self.turn)
            return True
        elif kind == "node":
            coverage = (event.get("summary") or {}).get("coverage")
            if event.get("node") == "mask" and isinstance(coverage, (int, float)):
                if self.coverage is not None and coverage > self.coverage + 1e-4:
                    self.note = (f"the mask grew from {self.coverage:.1%} to {coverage:.1%} "
                                 "of the image")
                self.coverage = self.coverage if self.coverage is not None else coverage
            ms = event.get("duration_ms")
            self.done.append((str(event.get("node")), ms if isinstance(ms, (int, float))
                              else None))
        elif kind == "progress" and event.get("total"):
            first = self.step is None
            self.step = (int(event.get("step", 0)), int(event["total"]))
            self.node = event.get("node") or self.node
            return first or self.step[0] >= self.step[1]
        elif kind == "load":
            what = str(event.get("component", "model")).replace("inpainter:", "inpainter ")
            self.note = f"loading {what}" if event.get("status") == "start" else None
        elif kind == "retry":
            self.note = f"retrying: {event.get('reason', '')}"
        elif kind == "fallback":
            self.note = f"fallback: {event.get('reason', '')}"
        return False

    def html(self) -> str:
        where = [f"turn {self.turn}"] if self.turn else []
        if self.attempt:
            where.append(f"attempt {self.attempt}")
        node = html.escape(str(self.node)) if self.node else "starting"
        step = f" · step {self.step[0]}/{self.step[1]}" if self.step else ""
        bar = (f"<progress value='{self.step[0]}' max='{self.step[1]}'></progress>"
               if self.step else "<progress></progress>")
        done = " → ".join(
            f"{html.escape(n)}{f' {ms:.0f} ms' if ms is not None else ''}" for n, ms in self.done
        )
        return (
            f"<style>{PROGRESS_CSS}</style><div class='be-progress' data-node='{node}'>"
            f"<b>Running</b> {' · '.join(where)} · <b class='be-node'>{node}</b>"
            f"<span class='be-step'>{step}</span>"
            + (f" · {html.escape(self.note)}" if self.note else "")
            + bar
            + (f"<div class='be-trail'>done: {done}</div>" if done else "")
            + "</div>"
        )


def _alpha(layer: Any, max_pixels: int) -> np.ndarray | None:
    """A painted layer's alpha channel (None when it has none): an array as given, a file or
    upload after its header is checked (`tools.images.probe_image`)."""
    if isinstance(layer, np.ndarray):
        alpha = layer[..., 3] if layer.ndim == 3 and layer.shape[2] == 4 else layer
        return alpha.max(axis=2) if alpha.ndim == 3 else alpha
    from PIL import Image

    from tools.images import probe_image

    probe_image(layer, max_pixels=max_pixels, what="mask")
    source = io.BytesIO(layer) if isinstance(layer, (bytes, bytearray)) else layer
    with Image.open(source) as opened:
        if "A" not in opened.getbands():
            return None
        return np.asarray(opened.getchannel("A"))


def pass_files(component: Any) -> Any:
    """`component` (a `gr.ImageEditor` or `gr.Image`) handing the server its uploads as files
    (a path, or the bytes the browser sent) instead of decoding them first: Gradio's own
    decoding would run before any size check (a 164 KB mask cost 1.85 GB; over Pillow's limit,
    a traceback). The instance's public conversion method is replaced, not subclassed: a
    subclass of a Gradio component writes a `.pyi` file beside its module."""
    from gradio.data_classes import FileData

    def as_file(file: Any, flatten_on_white: bool = False) -> Any:
        if file is None:
            return None
        return file.path if isinstance(file, FileData) else bytes(file)

    def as_path(payload: Any) -> Any:
        return None if payload is None else payload.path

    if hasattr(component, "convert_and_format_image"):
        component.convert_and_format_image = as_file
    else:
        component.preprocess = as_path
    return component


def overlay(image: Image.Image, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image with the mask's area tinted red, for showing a mask in context."""
    rgb = np.asarray(image.convert("RGB"), np.float32)
    marked = (np.asarray(mask) > 127)[..., None]
    tinted = rgb * (1 - alpha) + MASK_TINT * alpha
    return np.where(marked, tinted, rgb).astype(np.uint8)


def overlay_on_black(mask: np.ndarray) -> np.ndarray:
    """A mask alone (no photo yet): red = edit on black."""
    marked = (np.asarray(mask) > 127)[..., None]
    return np.where(marked, MASK_TINT, 0).astype(np.uint8)


def _planner_text(components: Any) -> str:
    """Who plans: the VLM's model, family and server, or the rules (`graphs.vlm_setup`)."""
    from graphs.context import Context
    from graphs.vlm_setup import planner_info

    if isinstance(components, Context):
        return planner_info(components).summary
    return str(getattr(getattr(components, "settings", None), "planner", "auto"))


def _box_mask(mask: np.ndarray) -> np.ndarray:
    from tools import masks

    box = masks.bounding_box(mask)
    if box is None:
        return mask.copy()
    return masks.from_box(box, (mask.shape[1], mask.shape[0]))


def launch(
    source: ComponentsFactory | Any,
    settings: Any = None,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    block: bool = True,
) -> Any:
    """Serve the editor (blocking unless `block` is False: then it returns the running
    `gr.Blocks`, for its caller to `close()`). Off loopback it needs BRUSHEDIT_API_TOKEN as the
    password."""
    token = getattr(settings, "api_token", None)
    token = token.strip() if isinstance(token, str) else token
    if host not in LOOPBACK_HOSTS and not token:
        raise ConfigError(
            f"refusing to serve the editor on {host} without a password; set "
            "BRUSHEDIT_API_TOKEN (log in as any user with it) or bind to 127.0.0.1"
        )
    auth = None
    if token:

        def auth(_user: str, password: str) -> bool:
            return secrets.compare_digest(password.encode(), token.encode())

    from starlette.middleware import Middleware

    from graphs.http_guard import RequestGuard

    demo = build_ui(source, settings)
    # No `allowed_paths`: the page's images are copies in the editor's own folder, so Gradio's
    # file route never reaches the data folder (sessions.sqlite and its log included). Without
    # a password, only loopback's host names (or BRUSHEDIT_ALLOWED_HOSTS) are answered.
    hosts = getattr(settings, "allowed_hosts", None)
    guard = Middleware(RequestGuard, hosts=split_list(hosts),
                       origins=split_list(getattr(settings, "cors_origins", None)),
                       check_host=not token or bool(split_list(hosts)))
    demo.queue(default_concurrency_limit=1).launch(
        server_name=host, server_port=port, auth=auth, show_error=True,
        app_kwargs={"middleware": [guard]}, prevent_thread_lock=not block,
    )
    return demo
