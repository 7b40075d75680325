"""`brushedit edit`, `resume`, `chat` and `demo` (registered by `interfaces.cli`).

Only typer is imported at module level; sessions, LangGraph and models load when a command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from interfaces.cli_errors import cli_message
from interfaces.terminal import markup, one_line, plain
from interfaces.vlm_options import VlmModelOpt, VlmUrlOpt
from tools.errors import InvalidRequestError
from tools.option_specs import OPTION_SPECS, option_bounds
from tools.registry import DEFAULT_INPAINTER, INPAINTER_NAMES, WEIGHTLESS_INPAINTER, inpainter_help

if TYPE_CHECKING:
    from graphs.context import Context
    from graphs.session import EditSession
    from graphs.settings import Settings

INPAINTERS = INPAINTER_NAMES
PLANNERS = ("auto", "vlm", "rules")

InpainterOpt = Annotated[
    str, typer.Option("--inpainter", help=inpainter_help() + ".")
]
PlannerOpt = Annotated[
    str, typer.Option("--planner", help="auto: VLM with rule fallback; vlm; rules (no VLM).")
]
SessionOpt = Annotated[
    str | None, typer.Option("--session", help="Continue this session (a new one if omitted).")
]


def edit_option(flag: str, name: str, help: str | None = None) -> Any:
    """A typer option whose bounds and help are `EditOptions.<name>`'s (never copied here).

    `help` words it for another command (evals); the bounds stay the field's.
    """
    low, high = option_bounds(name)
    return typer.Option(flag, min=low, max=high, help=help or OPTION_SPECS[name].description)


SeedOpt = Annotated[int | None, edit_option("--seed", "seed")]
StepsOpt = Annotated[int | None, edit_option("--steps", "steps")]
SamplesOpt = Annotated[int | None, edit_option("--samples", "samples")]
GuidanceOpt = Annotated[float | None, edit_option("--guidance", "guidance_scale")]
ConditioningOpt = Annotated[float | None, edit_option("--conditioning", "conditioning_scale")]
MaxAttemptsOpt = Annotated[int | None, edit_option("--max-attempts", "max_attempts")]
"""The edit knobs as `edit` and `batch` take them (None: the inpainter's or the row's own)."""


def _choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise typer.BadParameter(f"must be one of {', '.join(allowed)} (got {value!r})",
                                 param_hint=name)
    return value


def _settings() -> Settings:
    from graphs.settings import load_settings

    return load_settings()


def _components(inpainter: str, planner: str, max_attempts: int | None = None, *,
                vlm_url: str | None = None, vlm_model: str | None = None) -> Context:
    from graphs.components import build_components
    from interfaces.vlm_options import settings_with

    return build_components(settings_with(vlm_url, vlm_model), inpainter=inpainter,
                            planner=planner, max_attempts=max_attempts)  # type: ignore[arg-type]


def _console(stderr: bool = True) -> Any:
    """stderr for messages and progress, stdout for results; never wrapped in a pipe."""
    from interfaces.terminal import console

    return console(stderr=stderr)


JsonOpt = Annotated[bool, typer.Option(
    "--json", help="Print the result as one JSON object on stdout (errors too).")]


def _result_json(result: Any, out: Path | None, session: EditSession) -> str:
    """What `--json` prints for a finished edit: where it is, and what happened."""
    return json.dumps({
        "path": str(Path(out).resolve()) if out else str(session.path(result.image)),
        "session_id": session.id, "turn": result.turn, "image": result.image,
        "accepted": result.accepted, "attempts": result.attempts, "reason": result.reason,
        "planner": result.planner, "inpainter": result.inpainter,
    })


def _run_edit(session: EditSession, json_output: bool, work: Any) -> Any:
    """`work(view)` with progress on stderr; Ctrl-C stops it within a diffusion step and says
    how to finish the turn later (`brushedit resume`)."""
    from interfaces.cli_errors import CANCELLED_EXIT

    try:
        with EventView(_console()) as view:
            return work(view)
    except KeyboardInterrupt:
        hint = f"`brushedit resume {session.id} -o OUT` finishes it"
        if json_output:
            typer.echo(json.dumps({"cancelled": True, "session_id": session.id}))
        typer.echo(f"Cancelled: the edit stopped (session {session.id}); {hint}.", err=True)
        raise typer.Exit(CANCELLED_EXIT) from None


class EventView:
    """Rich progress bars for model loading and diffusion steps, one line per retry."""

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

        self.console = console
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), console=console, transient=True)
        self.node_task = None
        self.step_task = None
        self.load_tasks: dict[str, Any] = {}

    def __enter__(self) -> EventView:
        self.progress.start()
        self.node_task = self.progress.add_task("starting", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "node" and event.get("status") == "start":
            self.progress.update(self.node_task, description=f"{markup(event['node'])} "
                                 f"(attempt {event.get('attempt', 1)})")
        elif kind == "progress":
            if self.step_task is None:
                self.step_task = self.progress.add_task("diffusion", total=event["total"])
            self.progress.update(self.step_task, completed=event["step"], total=event["total"])
            if event["step"] >= event["total"]:
                self.progress.remove_task(self.step_task)
                self.step_task = None
        elif kind == "load":
            name = event.get("component", "model")
            if event.get("status") == "start":
                self.load_tasks[name] = self.progress.add_task(f"loading {markup(name)}",
                                                               total=None)
            elif name in self.load_tasks:
                self.progress.remove_task(self.load_tasks.pop(name))
                self.console.print(f"loaded {plain(name)}", markup=False)
        elif kind == "retry":
            self.console.print(f"[yellow]retry[/] attempt {event.get('attempt')} blamed "
                               f"{markup(event.get('stage'))}: "
                               f"{markup(one_line(event.get('reason'), 300))}")
        elif kind == "fallback":
            self.console.print(f"[dim]VLM unavailable at {markup(event.get('step'))} "
                               f"({markup(one_line(event.get('reason'), 300))}); "
                               "planning with the rule parser[/]")


def _check_output(out: Path, *inputs: Path | str | None) -> Path:
    """Refuse, before any work, an output that would overwrite an input or the store, or
    cannot be written (`graphs.artifacts.check_output_path`)."""
    from graphs.artifacts import check_output_path
    from graphs.components import checkpointer_target

    settings = _settings()
    kind, target = checkpointer_target(settings.database_url, settings.sqlite_path)
    database = Path(target) if kind == "sqlite" else None  # a sqlite file outside the data folder
    return check_output_path(out, inputs=(*inputs, database),
                             data_dir=Path(settings.data_dir).expanduser())


def _save(components: Context, digest: str, out: Path) -> Path:
    from graphs.artifacts import write_image_atomic

    return write_image_atomic(components.store.get_image(digest), out)


def _stdin_lines() -> Any:
    """stdin's lines as bytes when it has them (each read by `_text`), else as text."""
    return getattr(sys.stdin, "buffer", None) or sys.stdin


def _text(line: bytes | str) -> str:
    """A line of stdin as text; one that is not UTF-8 is refused (`tools.text.decode_text`'s
    sentence), never guessed at or replaced."""
    if isinstance(line, str):
        return line
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        from tools.text import decode_text

        decode_text(line, "instruction")  # raises the one sentence for text that is not UTF-8
        raise


def _stdin_review(console: Any) -> Any:
    """Ask on stdin; a replacement mask that cannot be used is explained and asked for again."""
    from tools.errors import BrushEditError
    from tools.images import load_mask

    def review(pending: Any) -> dict[str, Any]:
        console.print(f"Proposed mask ({plain(pending.mask_source)}): "
                      f"{plain(pending.mask_path)}", markup=False)
        while True:
            console.print("Approve it? [Y/n], or type the path of a replacement mask:",
                          markup=False)
            try:
                answer = _text(next(iter(_stdin_lines()), "")).strip()
            except BrushEditError as exc:
                console.print(f"Error: {cli_message(exc)}", markup=False)
                continue
            if answer.lower() in ("", "y", "yes"):
                return {"approve": True}
            if answer.lower() in ("n", "no"):
                return {"approve": False}
            try:
                load_mask(Path(answer).expanduser())
            except BrushEditError as exc:
                console.print(f"Error: {cli_message(exc)}", markup=False)
                continue
            return {"mask": str(Path(answer).expanduser())}

    return review


def _summary(console: Any, result: Any, out: Path | None, session: EditSession) -> None:
    verdict = "[green]accepted[/]" if result.accepted else "[yellow]not accepted[/]"
    where = f"wrote {markup(out)}" if out else f"result {markup(session.path(result.image))}"
    planner = result.planner
    if planner == "vlm":
        from graphs.vlm_setup import planner_info

        info = planner_info(session.components)
        planner = f"vlm: {info.model} ({info.family_label})" if info.model else planner
    console.print(f"{where} ({verdict} after {result.attempts} attempt(s); planner "
                  f"{markup(planner)}, inpainter {result.inpainter})")
    if not result.accepted:
        console.print(f"  reason: {one_line(result.reason)}", markup=False)
    console.print(f"  session {session.id}, turn {result.turn}: `brushedit trace show "
                  f"{session.id}`", markup=False)


def edit(
    ctx: typer.Context,
    image: Annotated[Path, typer.Argument(help="Image to edit (or '-' with --session).")],
    instruction: Annotated[str, typer.Argument(help="What to change, e.g. 'remove the cat'.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write the result.")],
    mask: Annotated[Path | None, typer.Option("--mask", help="Mask PNG, white = edit.")] = None,
    session_id: SessionOpt = None,
    seed: SeedOpt = None,
    steps: StepsOpt = None,
    samples: SamplesOpt = None,
    guidance: GuidanceOpt = None,
    conditioning: ConditioningOpt = None,
    max_attempts: MaxAttemptsOpt = None,
    inpainter: InpainterOpt = DEFAULT_INPAINTER,
    planner: PlannerOpt = "auto",
    vlm_url: VlmUrlOpt = None,
    vlm_model: VlmModelOpt = None,
    review_mask: Annotated[bool, typer.Option("--review-mask",
                                              help="Approve or replace the mask first.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Edit IMAGE as INSTRUCTION says and write the result to OUT.

    Prints the result (the path written, the session and turn) on stdout, progress on stderr.
    """
    from interfaces.cli_errors import JSON_OUTPUT

    ctx.meta[JSON_OUTPUT] = json_output
    _choice(inpainter, INPAINTERS, "--inpainter")
    _choice(planner, PLANNERS, "--planner")
    from graphs.requests import check_options, check_session_name
    from graphs.session import EditSession

    source = None if str(image) == "-" else image
    if source is None and session_id is None:
        raise InvalidRequestError("IMAGE '-' continues a session: pass --session ID")
    if session_id is not None:
        check_session_name(session_id)
    given = {"seed": seed, "steps": steps, "samples": samples, "guidance_scale": guidance,
             "conditioning_scale": conditioning, "max_attempts": max_attempts}
    flags = {name: value for name, value in given.items() if value is not None}
    check_options(flags)  # the facade's rule, before anything runs: NaN or inf stop here
    out = _check_output(out, source, mask)
    _check_inputs(source, mask)
    components = _components(inpainter, planner, max_attempts, vlm_url=vlm_url,
                             vlm_model=vlm_model)
    try:
        if source is None and not components.traces.has_session(str(session_id)):
            raise InvalidRequestError(f"no session {session_id!r} to continue from; "
                                      "`brushedit trace list` shows the recent ones")
        session = EditSession.open(components, session_id)
        result = _run_edit(session, json_output, lambda view: session.edit(
            str(source) if source is not None else None, instruction, mask=mask,
            options=flags, review_mask=review_mask,
            review=_stdin_review(_console()) if review_mask else None, on_event=view,
        ))
        _save(components, result.image, out)
        _report(result, out, session, json_output)
    finally:
        components.close()


def _report(result: Any, out: Path | None, session: EditSession, json_output: bool) -> None:
    """The finished edit on stdout: one JSON object, or the summary lines."""
    if json_output:
        typer.echo(_result_json(result, out, session))
    else:
        _summary(_console(stderr=False), result, out, session)


def _check_inputs(image: Path | None, mask: Path | None) -> None:
    """Read the image and the mask once, so a bad file is refused before any model loads."""
    from tools.images import load_mask, read_image

    if image is not None:
        read_image(image)
    if mask is not None:
        load_mask(mask)


def resume(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(help="Session whose last edit was cut short.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write the result.")],
    json_output: JsonOpt = False,
    vlm_url: VlmUrlOpt = None,
    vlm_model: VlmModelOpt = None,
) -> None:
    """Finish an edit that was interrupted (crash, kill, Ctrl-C) from its last completed step."""
    from graphs.requests import check_session_name
    from graphs.session import EditSession
    from interfaces.cli_errors import JSON_OUTPUT

    ctx.meta[JSON_OUTPUT] = json_output
    check_session_name(session_id)
    out = _check_output(out)
    components = _components(DEFAULT_INPAINTER, "auto", vlm_url=vlm_url, vlm_model=vlm_model)
    try:
        if not components.traces.has_session(session_id):
            raise InvalidRequestError(f"no session {session_id!r}; `brushedit trace list` "
                                      "shows the recent ones")
        session = EditSession.open(components, session_id)
        result = _run_edit(session, json_output, lambda view: session.resume(on_event=view))
        if not hasattr(result, "image"):
            raise InvalidRequestError("the edit is waiting for a mask review; use the Python API")
        _save(components, result.image, out)
        _report(result, out, session, json_output)
    finally:
        components.close()


CHAT_HELP = """Type an instruction, or: undo [TURN] · keep · show-mask · history · save PATH · quit"""


def chat(
    image: Annotated[Path, typer.Argument(help="Image to start from.")],
    session_id: SessionOpt = None,
    inpainter: InpainterOpt = DEFAULT_INPAINTER,
    planner: PlannerOpt = "auto",
    vlm_url: VlmUrlOpt = None,
    vlm_model: VlmModelOpt = None,
    mask: Annotated[Path | None, typer.Option("--mask", help="Mask for the first turn.")] = None,
) -> None:
    """Edit IMAGE over several turns, reading instructions from stdin (one per line)."""
    _choice(inpainter, INPAINTERS, "--inpainter")
    _choice(planner, PLANNERS, "--planner")
    from graphs.requests import check_session_name
    from graphs.session import EditSession
    from tools.errors import BrushEditError

    if session_id is not None:
        check_session_name(session_id)
    _check_inputs(image, mask)
    components = _components(inpainter, planner, vlm_url=vlm_url, vlm_model=vlm_model)
    console = _console(stderr=False)
    try:
        session = EditSession.open(components, session_id)
        source: str | None = str(image)
        pending_mask: Path | None = mask
        console.print(f"session {session.id}. {CHAT_HELP}", markup=False)
        for raw in _stdin_lines():
            try:
                line = _text(raw).strip()
                if not line:
                    continue
                command, _, arg = line.partition(" ")
                if command in ("quit", "exit", "q"):
                    break
                if command == "undo":
                    current = session.undo(_turn_number(arg))
                    console.print(f"back to {plain(session.path(current))}", markup=False)
                elif command == "keep":
                    current = session.keep()
                    console.print(f"continuing from {plain(session.path(current))}",
                                  markup=False)
                elif command == "show-mask":
                    masks = [t for t in session.turns() if t.mask and not t.undone]
                    console.print(f"mask: {plain(session.path(masks[-1].mask))}" if masks
                                  else "no mask yet", markup=False)
                elif command == "history":
                    for t in session.turns():
                        flag = " (undone)" if t.undone else ""
                        state = "accepted" if t.accepted else t.status
                        where = f" {session.path(t.image)}" if t.image else ""
                        console.print(f"{t.turn}. {one_line(t.instruction)} -> {state}{flag}"
                                      f"{plain(where)}", markup=False)
                elif command == "save":
                    current = session.current_image
                    if not arg.strip() or current is None:
                        raise InvalidRequestError("usage: save PATH (after a first edit)")
                    target = _check_output(Path(arg.strip()), image, mask)
                    console.print(f"wrote {plain(_save(components, current, target))}",
                                  markup=False)
                else:
                    with EventView(_console()) as view:
                        last = session.edit(source, line, mask=pending_mask, on_event=view)
                    source, pending_mask = None, None
                    _summary(console, last, None, session)
            except BrushEditError as exc:
                console.print(f"Error: {cli_message(exc)}", markup=False)
        if session.turns():
            console.print(f"bye: `brushedit trace show {session.id}`", markup=False)
        else:
            console.print("bye (no edit made, nothing recorded)", markup=False)
    finally:
        components.close()


def _turn_number(arg: str) -> int | None:
    """`undo`'s optional TURN: a whole number >= 0, or None when omitted."""
    text = arg.strip()
    if not text:
        return None
    if not text.isdigit() or not text.isascii() or len(text) > 9:
        raise InvalidRequestError(f"cannot read {one_line(text, 40)!r} as a turn number")
    return int(text)


def examples_dir() -> Path:
    return Path(__file__).parent / "examples"


def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for results and the report.")] = Path(
        "brushedit-demo"),
    vlm_url: VlmUrlOpt = None,
    vlm_model: VlmModelOpt = None,
    inpainter: Annotated[str | None, typer.Option(
        "--inpainter", help="Paint with this inpainter (default: brushnet when its weights are "
        f"here, else {WEIGHTLESS_INPAINTER}): {', '.join(INPAINTER_NAMES)}.")] = None,
) -> None:
    """Edit the bundled examples offline with whatever is installed, and write a report."""
    from graphs.artifacts import check_output_folder
    from graphs.components import build_components
    from graphs.session import EditSession
    from graphs.vlm_setup import planner_info
    from graphs.weights import check_weights
    from interfaces.doctor import check_vlm
    from interfaces.trace_view import write_report
    from interfaces.vlm_options import settings_with
    from tools.errors import BrushEditError

    if inpainter is not None:
        _choice(inpainter, INPAINTERS, "--inpainter")
    settings = settings_with(vlm_url, vlm_model)
    out = check_output_folder(out, data_dir=Path(settings.data_dir).expanduser())
    console = _console(stderr=False)
    have_brushnet = inpainter is not None or all(c.ok for c in (
        check_weights("SD1.5 base", settings.base_model, "BRUSHEDIT_BASE_MODEL",
                      "model_index.json"),
        check_weights("BrushNet", settings.brushnet, "BRUSHEDIT_BRUSHNET", "config.json",
                      subfolder=settings.brushnet_subfolder),
    ))
    have_vlm = all(c.ok for c in check_vlm(settings))
    chosen = inpainter is not None  # the user's choice runs as is: no fallback
    inpainter = inpainter or (DEFAULT_INPAINTER if have_brushnet else WEIGHTLESS_INPAINTER)
    planner = "auto" if have_vlm else "rules"
    components = build_components(settings, inpainter=inpainter, planner=planner,
                                  segmenter=False)
    console.print(f"demo: planner {planner_info(components).summary}, inpainter {inpainter}"
                  + ("" if have_brushnet else " (BrushNet weights not found; see `brushedit "
                     "doctor`)"), markup=False)
    try:
        session = EditSession.open(components, None)
        manifest = json.loads((examples_dir() / "examples.json").read_text())
        out.mkdir(parents=True, exist_ok=True)
        for example in manifest:
            image = examples_dir() / example["image"]
            mask = examples_dir() / example["mask"]
            options = session.default_options()
            with EventView(_console()) as view:
                try:
                    result = session.edit(str(image), example["instruction"], mask=str(mask),
                                          options=options, on_event=view)
                except BrushEditError as exc:
                    if chosen or options.inpainter == WEIGHTLESS_INPAINTER:
                        raise
                    console.print(f"BrushNet failed ({one_line(exc)}); falling back to "
                                  f"{WEIGHTLESS_INPAINTER}",
                                  markup=False)
                    result = session.edit(
                        str(image), example["instruction"], mask=str(mask),
                        options=options.model_copy(update={"inpainter": WEIGHTLESS_INPAINTER}),
                        on_event=view,
                    )
            target = _save(components, result.image, out / f"{example['name']}_result.png")
            console.print(f"{example['instruction']!r}: wrote {plain(target)} (planner "
                          f"{result.planner}, inpainter {result.inpainter}, "
                          f"{'accepted' if result.accepted else 'not accepted'} after "
                          f"{result.attempts} attempt(s))", markup=False)
        report = write_report(out / "report.html", session.id, session.trace(),
                              components.traces.turns(session.id), components.store)
        console.print(f"report: {plain(report)}  (session {session.id})", markup=False)
    finally:
        components.close()


def register(app: typer.Typer) -> None:
    """Add the editing commands to the root app."""
    app.command()(edit)
    app.command()(resume)
    app.command()(chat)
    app.command()(demo)
