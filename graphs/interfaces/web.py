"""The web editor (`brushedit ui`): a Gradio app over the session facade.

Upload an image, type an instruction, optionally paint a mask (the alpha of the editor's first
layer) or let the agents propose one and refine it with the mask tools, then run. Each kept
result becomes the editor's new image, so edits chain; undo steps back. The trace panel shows
every agent step with its prompt, answer and images. `build_ui(...)` returns the Blocks so tests
inject offline components; nothing lives at module level.
"""

from __future__ import annotations

import html
import json
import logging
import random
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from graphs.interfaces.common import (
    HASH_PATTERN,
    ComponentsFactory,
    LazyComponents,
    SessionOpener,
    artifact_path,
    check_instruction,
    default_options,
    default_session_opener,
    inpainter_names,
    jsonable,
    last_image,
    new_session,
    parse_options,
    plan_only,
    turn_out,
)
from tools.errors import BrushEditError, ConfigError, InvalidMaskError, InvalidRequestError
from tools.images import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    import gradio as gr
    from PIL import Image

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
TURN_HEADERS = ["turn", "instruction", "accepted", "kept", "undone", "result"]
MASK_TINT = np.array([255, 40, 40], np.float32)


def build_ui(
    source: ComponentsFactory | Any,
    settings: Any = None,
    *,
    session_opener: SessionOpener | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> gr.Blocks:
    """The editor's Blocks, from a components factory or from `Settings`.

    Args:
        source: a zero-argument callable returning `Components`, or a `Settings` (the real
            components are then built on first use).
        settings: optional `Settings`, for defaults such as `max_attempts`.
        session_opener: `(components, session_id | None) -> session`; the facade by default.
        max_pixels: uploads above this many pixels are refused.
    """
    import gradio as gr

    from graphs.interfaces.common import settings_components_factory

    if callable(source):
        factory = source
    else:
        settings = settings or source
        factory = settings_components_factory(source)
    lazy = LazyComponents(factory)
    opener = session_opener or default_session_opener
    actions = _Actions(lazy, opener, settings, max_pixels)

    with gr.Blocks(title="BrushEdit-Agents") as demo:
        session_state = gr.State(None)  # session id of this browser tab
        mask_state = gr.State(None)  # the proposed (and tool-edited) mask, uint8 (H, W)
        gr.Markdown(
            "## BrushEdit-Agents\nUpload an image, say what to change, and run. Paint over the "
            "area to edit to choose the region yourself, or press **Propose mask** and refine it."
        )
        with gr.Row():
            with gr.Column(scale=3):
                editor = gr.ImageEditor(
                    label="Image (paint the area to edit: optional)",
                    type="numpy",
                    image_mode="RGBA",
                    format="png",
                    sources=("upload", "clipboard"),
                    brush=gr.Brush(colors=["#ff3030"], color_mode="fixed", default_size=24),
                    layers=False,
                    transforms=(),
                    elem_id="editor",
                )
                mask_upload = gr.Image(
                    label="…or upload a mask (white = edit)",
                    type="numpy",
                    image_mode="L",
                    format="png",
                    sources=("upload",),
                    height=160,
                    elem_id="mask_upload",
                )
                instruction = gr.Textbox(
                    label="Instruction", placeholder="remove the dog", elem_id="instruction"
                )
                caption = gr.Textbox(
                    label="Target caption (what the edited area shows; filled by the planner)",
                    elem_id="caption",
                )
                with gr.Row():
                    propose_btn = gr.Button("Propose mask", elem_id="propose")
                    run_btn = gr.Button("Run edit", variant="primary", elem_id="run")
                with gr.Accordion("Advanced options", open=False):
                    with gr.Row():
                        steps = gr.Slider(1, 200, value=50, step=1, label="Steps")
                        guidance = gr.Slider(0.0, 30.0, value=7.5, step=0.5, label="Guidance")
                        cond_scale = gr.Slider(
                            0.0, 10.0, value=1.0, step=0.1, label="Conditioning scale"
                        )
                    with gr.Row():
                        seed = gr.Number(value=1234, precision=0, minimum=0, label="Seed")
                        randomise = gr.Checkbox(value=False, label="Randomise seed")
                        samples = gr.Slider(1, 8, value=1, step=1, label="Samples")
                        blending = gr.Checkbox(value=True, label="Blend into source")
                    with gr.Row():
                        inpainter = gr.Dropdown(
                            ["brushnet", "opencv"], value=None, label="Inpainter",
                            elem_id="inpainter",
                        )
                        planner = gr.Dropdown(
                            ["auto", "vlm", "rules"], value=None, label="Planner (this run)",
                            info="Set by the server's --planner; shown for reference.",
                            interactive=False,
                        )
            with gr.Column(scale=3):
                status = gr.Markdown("", elem_id="status")
                result = gr.Image(
                    label="Result", type="filepath", interactive=False, elem_id="result",
                    format="png",
                )
                gallery = gr.Gallery(
                    label="Candidates", columns=4, height=180, elem_id="candidates",
                    allow_preview=True,
                )
                with gr.Accordion("Mask", open=True):
                    mask_view = gr.Image(
                        label="Current mask (red = edit)", type="numpy", interactive=False,
                        elem_id="mask_view",
                    )
                    with gr.Row():
                        invert_btn = gr.Button("Invert", size="sm")
                        dilate_btn = gr.Button("Dilate", size="sm")
                        erode_btn = gr.Button("Erode", size="sm")
                        box_btn = gr.Button("Box", size="sm")
                        ellipse_btn = gr.Button("Ellipse", size="sm")
                        clear_btn = gr.Button("Clear", size="sm")
                    with gr.Row():
                        px = gr.Slider(1, 64, value=8, step=1, label="Pixels")
                        left_btn = gr.Button("←", size="sm")
                        right_btn = gr.Button("→", size="sm")
                        up_btn = gr.Button("↑", size="sm")
                        down_btn = gr.Button("↓", size="sm")
        with gr.Row():
            with gr.Column(scale=2):
                turns = gr.Dataframe(
                    headers=TURN_HEADERS, label="Turns", interactive=False, elem_id="turns",
                    wrap=True,
                )
                with gr.Row():
                    undo_turn = gr.Textbox(
                        value="", label="Undo to turn (empty = one back, 0 = original)",
                        elem_id="undo_turn",
                    )
                    undo_btn = gr.Button("Undo", elem_id="undo")
            with gr.Column(scale=3), gr.Accordion("Trace: every agent step", open=True):
                trace_md = gr.HTML(elem_id="trace")
                trace_gallery = gr.Gallery(
                    label="Trace images", columns=6, height=160, elem_id="trace_images"
                )

        options_inputs = [steps, guidance, cond_scale, seed, randomise, samples, blending, inpainter]
        outputs_after_edit = [
            status, result, gallery, editor, turns, trace_md, trace_gallery, session_state,
            mask_state, mask_view, seed, planner,
        ]
        def run_edit(
            editor_value, mask_upload_value, instruction_value, caption_value, session_id,
            mask_value, steps_v, guidance_v, cond_v, seed_v, randomise_v, samples_v,
            blending_v, inpainter_v, progress=gr.Progress(),
        ):
            return actions.run(
                editor_value, mask_upload_value, instruction_value, caption_value, session_id,
                mask_value, steps_v, guidance_v, cond_v, seed_v, randomise_v, samples_v,
                blending_v, inpainter_v, progress=progress,
            )

        run_btn.click(
            run_edit,
            inputs=[
                editor, mask_upload, instruction, caption, session_state, mask_state,
                *options_inputs,
            ],
            outputs=outputs_after_edit,
        )
        instruction.submit(
            run_edit,
            inputs=[
                editor, mask_upload, instruction, caption, session_state, mask_state,
                *options_inputs,
            ],
            outputs=outputs_after_edit,
        )
        propose_btn.click(
            actions.propose,
            inputs=[editor, instruction],
            outputs=[mask_state, mask_view, caption, status],
        )
        for button, op in (
            (invert_btn, "invert"), (dilate_btn, "dilate"), (erode_btn, "erode"),
            (box_btn, "box"), (ellipse_btn, "ellipse"), (clear_btn, "clear"),
            (left_btn, "left"), (right_btn, "right"), (up_btn, "up"), (down_btn, "down"),
        ):
            button.click(
                _bind(actions.mask_op, op),
                inputs=[editor, mask_state, px],
                outputs=[mask_state, mask_view],
            )
        undo_btn.click(
            actions.undo,
            inputs=[session_state, undo_turn],
            outputs=[status, editor, turns, trace_md, trace_gallery, result],
        )
        demo.load(actions.defaults, outputs=[inpainter, planner])
    return demo


def _bind(fn: Callable[..., Any], op: str) -> Callable[..., Any]:
    def bound(*args: Any) -> Any:
        return fn(op, *args)

    bound.__name__ = f"mask_{op}"
    return bound


class _Actions:
    """The event handlers, closed over one app's components (no module state)."""

    def __init__(
        self, lazy: LazyComponents, opener: SessionOpener, settings: Any, max_pixels: int
    ) -> None:
        self.lazy = lazy
        self.opener = opener
        self.settings = settings
        self.max_pixels = max_pixels

    # -- helpers -----------------------------------------------------------------------------

    @property
    def components(self) -> Any:
        return self.lazy.get()

    def _gr_error(self, exc: BrushEditError) -> Exception:
        import gradio as gr

        return gr.Error(" ".join(str(exc).split()), title=type(exc).__name__)

    def _background(self, editor_value: dict | None) -> Image.Image:
        from PIL import Image

        background = (editor_value or {}).get("background")
        if background is None:
            raise InvalidRequestError("upload an image first")
        array = np.asarray(background)
        if array.ndim == 2:
            image = Image.fromarray(array.astype(np.uint8), "L").convert("RGB")
        elif array.shape[2] == 4:
            image = Image.fromarray(array.astype(np.uint8), "RGBA").convert("RGB")
        else:
            image = Image.fromarray(array[..., :3].astype(np.uint8), "RGB")
        if image.size[0] * image.size[1] > self.max_pixels:
            raise InvalidRequestError(
                f"the image is {image.size[0]}x{image.size[1]}, over the limit of "
                f"{self.max_pixels:,} pixels; downscale it first"
            )
        return image

    @staticmethod
    def _painted(editor_value: dict | None, size: tuple[int, int]) -> np.ndarray | None:
        """The mask painted on the first layer (its alpha), or None when nothing is painted."""
        layers = (editor_value or {}).get("layers") or []
        if not layers or layers[0] is None:
            return None
        layer = np.asarray(layers[0])
        alpha = layer[..., 3] if layer.ndim == 3 and layer.shape[2] == 4 else layer
        if alpha.ndim == 3:
            alpha = alpha.max(axis=2)
        if not (alpha > 0).any():
            return None
        mask = np.where(alpha > 0, 255, 0).astype(np.uint8)
        if (mask.shape[1], mask.shape[0]) != size:
            from PIL import Image

            mask = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))
        return mask

    @staticmethod
    def _uploaded_mask(value: Any, size: tuple[int, int]) -> np.ndarray | None:
        if value is None:
            return None
        from tools.masks import as_mask

        mask = as_mask(np.asarray(value))
        if (mask.shape[1], mask.shape[0]) != size:
            raise InvalidMaskError(
                f"the uploaded mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                f"{size[0]}x{size[1]}"
            )
        return mask if mask.any() else None

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
        if not digest:
            return None
        try:
            return str(artifact_path(self.components, digest))
        except BrushEditError:
            return None

    def _trace(self, session: Any) -> tuple[str, list[tuple[str, str]]]:
        events = jsonable(session.trace())
        return render_trace(events), self._trace_images(events)

    def _trace_images(self, events: list[dict[str, Any]]) -> list[tuple[str, str]]:
        items: list[tuple[str, str]] = []
        seen: set[str] = set()
        for event in events:
            node = str(event.get("node", "step"))
            for label, digest in _hashes(event.get("images")):
                path = self._path(digest) if digest not in seen else None
                if path:
                    seen.add(digest)
                    items.append((path, f"{event.get('turn', '')}·{node}: {label}"))
        return items

    def _editor_value(self, path: str | None) -> dict[str, Any] | None:
        """The editor's next picture, as pixels (a file path would need Gradio's path allow-list)."""
        from PIL import Image

        if path is None:
            return None
        with Image.open(path) as stored:
            pixels = np.asarray(stored.convert("RGBA"))
        return {"background": pixels, "layers": [], "composite": pixels}

    # -- handlers ----------------------------------------------------------------------------

    def defaults(self) -> tuple[Any, Any]:
        import gradio as gr

        components = self.components
        names = inpainter_names(components)
        planner_mode = getattr(getattr(components, "settings", None), "planner", "auto")
        return gr.update(choices=names, value=names[0]), gr.update(value=planner_mode)

    def propose(self, editor_value: dict | None, instruction: str) -> tuple[Any, ...]:
        """Plan only: fill the caption and show the proposed mask, ready for the mask tools."""
        try:
            text = check_instruction(instruction)
            image = self._background(editor_value)
            plan, mask, planner, _session = plan_only(self.components, image, text)
        except BrushEditError as exc:
            raise self._gr_error(exc) from exc
        view = overlay(image, mask) if mask is not None else None
        note = (
            f"**Plan** ({planner}): {plan.category.value}"
            + (f" · object: *{html.escape(plan.object)}*" if plan.object else "")
        )
        return mask, view, plan.target_caption or "", note

    def mask_op(
        self, op: str, editor_value: dict | None, mask: np.ndarray | None, px: float
    ) -> tuple[Any, Any]:
        """Apply one mask tool to the current mask (proposed, or painted when none)."""
        from tools import masks

        try:
            image = self._background(editor_value)
            current = mask if mask is not None else self._painted(editor_value, image.size)
            if current is None:
                raise InvalidMaskError("no mask yet: paint one or press Propose mask")
            current = masks.check_mask(masks.as_mask(np.asarray(current)), image.size)
            step = int(px)
            if op == "clear":
                return None, None
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
            }[op](current)
        except BrushEditError as exc:
            raise self._gr_error(exc) from exc
        return new, overlay(image, new)

    def run(
        self,
        editor_value: dict | None,
        mask_upload: Any,
        instruction: str,
        caption: str,
        session_id: str | None,
        mask: np.ndarray | None,
        steps: float,
        guidance: float,
        cond_scale: float,
        seed: float | None,
        randomise: bool,
        samples: float,
        blending: bool,
        inpainter: str | None,
        progress: Any = None,
    ) -> tuple[Any, ...]:
        """Run one edit; the result becomes the editor's image for the next turn."""
        import gradio as gr

        progress = progress if progress is not None else gr.Progress()
        try:
            text = check_instruction(instruction)
            image = self._background(editor_value)
            user_mask = (
                self._painted(editor_value, image.size)
                if self._painted(editor_value, image.size) is not None
                else self._uploaded_mask(mask_upload, image.size)
            )
            if user_mask is None and mask is not None:
                user_mask = mask if mask.shape[::-1] == image.size else None
            seed_value = random.randrange(2**31) if randomise else int(seed or 0)
            components = self.components
            options = parse_options(
                {
                    "steps": int(steps), "guidance_scale": float(guidance),
                    "conditioning_scale": float(cond_scale), "seed": seed_value,
                    "samples": int(samples), "blending": bool(blending),
                    **({"inpainter": inpainter} if inpainter else {}),
                },
                defaults=default_options(components, self.settings),
            )
            session = self._session(session_id)
            tracker = _ProgressFeed(progress)
            result = session.edit(image, text, mask=user_mask, options=options,
                                  caption=caption or None, on_event=tracker)
        except BrushEditError as exc:
            raise self._gr_error(exc) from exc
        result_path = self._path(result.image)
        candidates = [
            (path, f"candidate {i + 1}")
            for i, path in enumerate(self._path(c) for c in result.candidates)
            if path
        ]
        verdict = "accepted" if result.accepted else "not accepted (best attempt kept)"
        status = (
            f"**Turn {result.turn}**: {verdict} after {result.attempts} attempt(s) · planner "
            f"`{result.planner}` · inpainter `{result.inpainter}` · "
            f"{result.plan.category.value}"
            + (f" · *{html.escape(result.caption)}*" if result.caption else "")
            + (f"\n\n{html.escape(result.reason)}" if result.reason else "")
        )
        trace_html, trace_images = self._trace(session)
        next_input = last_image(session)
        mask_path = self._path(result.mask)
        mask_view = None
        if mask_path:
            from PIL import Image

            with Image.open(mask_path) as used:
                mask_view = overlay(image, np.asarray(used.convert("L")))
        return (
            status,
            result_path,
            candidates,
            self._editor_value(self._path(next_input)) or gr.update(),
            self._turns_rows(session),
            trace_html,
            trace_images,
            session.id,
            None,
            mask_view,
            seed_value,
            gr.update(value=result.planner),
        )

    def undo(self, session_id: str | None, turn: str | None) -> tuple[Any, ...]:
        """Step back one turn (or to `turn`); the editor shows the image the next edit uses."""
        import gradio as gr

        try:
            if not session_id:
                raise InvalidRequestError("nothing to undo yet: run an edit first")
            session = self.opener(self.components, session_id)
            live = [t for t in (turn_out(x) for x in session.turns()) if not t.undone]
            if not live:
                raise InvalidRequestError("nothing left to undo in this session")
            text = (turn or "").strip()
            if text and not text.isdigit():
                raise InvalidRequestError(f"turn must be a whole number, got {text!r}")
            session.undo(turn=int(text) if text else None)
        except BrushEditError as exc:
            raise self._gr_error(exc) from exc
        remaining = [t for t in (turn_out(x) for x in session.turns()) if not t.undone]
        back_to = last_image(session) or (live[0].source if live else None)
        if remaining:
            note = f"Undone: back at turn {remaining[-1].turn}."
        else:
            note = "Undone: back at the original image."
        trace_html, trace_images = self._trace(session)
        path = self._path(back_to)
        return (
            note,
            self._editor_value(path) or gr.update(),
            self._turns_rows(session),
            trace_html,
            trace_images,
            self._path(last_image(session)),
        )


class _ProgressFeed:
    """Turns facade events into `gr.Progress` updates (node names, diffusion steps)."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.nodes = 0

    def __call__(self, event: dict[str, Any]) -> None:
        try:
            kind = event.get("type")
            if kind == "progress" and event.get("total"):
                self.progress(
                    (int(event.get("step", 0)), int(event["total"])),
                    desc=f"{event.get('node') or 'inpaint'}: step",
                )
            elif kind == "node" and event.get("status") == "start":
                self.nodes += 1
                self.progress(None, desc=f"{event.get('node')} (attempt {event.get('attempt', 1)})")
        except Exception:
            logger.debug("progress update failed", exc_info=True)


def overlay(image: Image.Image, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image with the mask's area tinted red, for showing a mask in context."""
    rgb = np.asarray(image.convert("RGB"), np.float32)
    marked = (np.asarray(mask) > 127)[..., None]
    tinted = rgb * (1 - alpha) + MASK_TINT * alpha
    return np.where(marked, tinted, rgb).astype(np.uint8)


def _box_mask(mask: np.ndarray) -> np.ndarray:
    from tools import masks

    box = masks.bounding_box(mask)
    if box is None:
        return mask.copy()
    return masks.from_box(box, (mask.shape[1], mask.shape[0]))


def _hashes(value: Any, label: str = "") -> list[tuple[str, str]]:
    """(label, hash) pairs found anywhere in a trace event's `images` field."""
    if isinstance(value, str):
        return [(label or "image", value)] if HASH_PATTERN.fullmatch(value) else []
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            out.extend(_hashes(item, f"{label}.{key}" if label else str(key)))
        return out
    if isinstance(value, (list, tuple)):
        out = []
        for i, item in enumerate(value):
            out.extend(_hashes(item, f"{label}[{i}]" if label else f"[{i}]"))
        return out
    return []


def render_trace(events: list[dict[str, Any]]) -> str:
    """Every node run as a collapsible block: status, timing, prompts, raw answers, outputs."""
    if not events:
        return "<p><em>No steps yet.</em></p>"
    parts = []
    for i, event in enumerate(events, 1):
        node = html.escape(str(event.get("node", "step")))
        status = html.escape(str(event.get("status", "")))
        ms = event.get("duration_ms")
        timing = f" · {ms:.0f} ms" if isinstance(ms, (int, float)) else ""
        head = (
            f"{i}. turn {event.get('turn', '?')} · attempt {event.get('attempt', '?')} · "
            f"<b>{node}</b> · {status}{timing}"
        )
        body = []
        for call in event.get("calls") or []:
            body.append(
                "<div class='trace-call'><b>model</b> "
                f"{html.escape(str(call.get('model') or ''))}"
                f"<pre>prompt: {html.escape(str(call.get('prompt') or ''))}</pre>"
                f"<pre>answer: {html.escape(str(call.get('raw') or ''))}</pre></div>"
            )
        for key in ("inputs", "params", "outputs", "verdict"):
            value = event.get(key)
            if value not in (None, {}, []):
                text = json.dumps(value, indent=1, default=str)
                if len(text) > 4000:
                    text = text[:4000] + " …"
                body.append(f"<b>{key}</b><pre>{html.escape(text)}</pre>")
        if event.get("error"):
            body.append(f"<b>error</b> <pre>{html.escape(str(event['error']))}</pre>")
        parts.append(
            f"<details class='trace-step' data-node='{node}'><summary>{head}</summary>"
            f"{''.join(body)}</details>"
        )
    return "<div class='trace'>" + "".join(parts) + "</div>"


def launch(
    source: ComponentsFactory | Any,
    settings: Any = None,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
) -> None:
    """Serve the editor (blocking). Off loopback it needs BRUSHEDIT_API_TOKEN as the password."""
    token = getattr(settings, "api_token", None)
    if host not in LOOPBACK_HOSTS and not token:
        raise ConfigError(
            f"refusing to serve the editor on {host} without a password; set "
            "BRUSHEDIT_API_TOKEN (log in as any user with it) or bind to 127.0.0.1"
        )
    auth = None
    if token:

        def auth(_user: str, password: str) -> bool:
            return secrets.compare_digest(password.encode(), token.encode())

    demo = build_ui(source, settings)
    data_dir = getattr(settings, "data_dir", None)
    demo.queue(default_concurrency_limit=1).launch(
        server_name=host, server_port=port, auth=auth, show_error=True,
        # results and trace images are served from the artifact store
        allowed_paths=[str(data_dir)] if data_dir is not None else None,
    )
