"""`brushedit trace`: the audit trail from the command line (list, show, export, report).

Reads the trace store in the data folder; nothing here loads a model.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from interfaces.terminal import markup, one_line, plain
from tools.errors import InvalidRequestError

app = typer.Typer(help="Inspect the audit trail: sessions, steps, prompts and images.",
                  no_args_is_help=True)


def _settings() -> Any:
    from graphs.settings import load_settings

    return load_settings()


def _stdout() -> Any:
    from interfaces.terminal import console

    return console()


def _data_dir() -> Path:
    return Path(_settings().data_dir).expanduser()


def _traces() -> Any:
    from graphs.components import check_data_dir
    from graphs.traces import TraceStore

    return TraceStore(check_data_dir(_settings().data_dir) / "traces.sqlite")


def _session_events(store: Any, session_id: str) -> list[dict[str, Any]]:
    if not store.has_session(session_id):
        known = [s["id"] for s in store.sessions()[:5]]
        raise InvalidRequestError(
            f"no session {session_id[:80]!r} in the trace log"
            + (f"; recent: {', '.join(known)}" if known else "; run `brushedit edit` first")
        )
    return store.events(session_id)


@app.command("list")
def trace_list(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 20,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Print the sessions as one JSON object on stdout.")] = False,
) -> None:
    """Sessions, newest first."""
    from rich.table import Table

    store = _traces()
    try:
        rows = store.sessions(limit=limit)
    finally:
        store.close()
    if json_output:
        import json

        keys = ("id", "created", "updated", "title", "turns", "events")
        typer.echo(json.dumps({"sessions": [{k: row[k] for k in keys} for row in rows]}))
        return
    if not rows:
        typer.echo("no sessions yet")
        return
    table = Table("session", "updated", "turns", "steps", "first instruction")
    for row in rows:
        table.add_row(markup(row["id"]), markup(row["updated"][:19]), str(row["turns"]),
                      str(row["events"]), markup(one_line(row["title"] or "", 80)))
    _stdout().print(table)


@app.command("show")
def trace_show(session_id: Annotated[str, typer.Argument(help="Session id.")]) -> None:
    """A readable timeline of one session: steps, decisions, prompts in brief."""
    from interfaces.trace_view import render_terminal

    store = _traces()
    try:
        events = _session_events(store, session_id)
    finally:
        store.close()
    _stdout().print(render_terminal(session_id, events))


@app.command("export")
def trace_export(
    session_id: Annotated[str, typer.Argument(help="Session id.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl (one event per line).")] = "jsonl",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File (stdout if omitted).")]
    = None,
) -> None:
    """Every event of a session as JSON lines, with prompts, raw answers and image hashes."""
    if fmt != "jsonl":
        raise typer.BadParameter("only jsonl is supported", param_hint="--format")
    from graphs.traces import dumps

    if output is not None:
        from graphs.artifacts import check_output_path

        _refuse_image_name(output, "the export (JSON lines)", ".jsonl")
        output = check_output_path(output, data_dir=_data_dir(), image=False,
                                   what="the export")
    store = _traces()
    try:
        lines = [dumps(event) for event in _session_events(store, session_id)]
    finally:
        store.close()
    text = "\n".join(lines) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        from graphs.artifacts import write_text_atomic

        write_text_atomic(output, text)
        typer.echo(f"wrote {len(lines)} events to {plain(output)}", err=True)


@app.command("report")
def trace_report(
    session_id: Annotated[str, typer.Argument(help="Session id.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = Path(
        "report.html"),
) -> None:
    """A self-contained HTML page: each step with its images, prompts and verdicts."""
    from graphs.artifacts import ArtifactStore, check_output_path
    from interfaces.trace_view import write_report

    settings = _settings()
    _refuse_image_name(output, "the report (HTML)", ".html")
    output = check_output_path(output, data_dir=Path(settings.data_dir).expanduser(),
                               image=False, what="the report")
    store = _traces()
    try:
        events = _session_events(store, session_id)
        turns = store.turns(session_id)
    finally:
        store.close()
    artifacts = ArtifactStore(Path(settings.data_dir).expanduser() / "artifacts")
    path = write_report(output, session_id, events, turns, artifacts)
    typer.echo(f"wrote {plain(path)}")


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm",
                   ".tga")


def _refuse_image_name(output: Path, what: str, suffix: str) -> None:
    """A text output named like an image would replace a picture (often the edit's input)."""
    if output.suffix.lower() in _IMAGE_SUFFIXES:
        raise InvalidRequestError(
            f"{plain(output)} is named like an image, and writing {what} there would replace it; "
            f"give a {suffix} file name"
        )
