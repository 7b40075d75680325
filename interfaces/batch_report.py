"""The HTML page of a batch run: counts, the failures with their sentences, and every row with
its before/after thumbnails (the files the run wrote in `DIR/thumbs/`, linked, not embedded, so
a page of 100,000 rows stays small)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from interfaces.terminal import one_line

MAX_ROWS_SHOWN = 5000
"""Rows listed with thumbnails; the failures are always all listed."""


def write_batch_report(folder: str | Path, output: str | Path | None = None) -> Path:
    """Render `folder`'s run to `output` (default `folder/report.html`) atomically."""
    from graphs.artifacts import check_output_path, write_text_atomic
    from graphs.batch import REPORT, read_batch
    from graphs.settings import load_settings

    folder = Path(folder).expanduser().resolve()
    config, rows = read_batch(folder)
    target = Path(output).expanduser() if output is not None else folder / REPORT
    if target.suffix.lower() not in (".html", ".htm"):
        from tools.errors import InvalidRequestError

        raise InvalidRequestError(f"{target} is not an .html file name; give one for the report")
    target = check_output_path(target, data_dir=load_settings().data_dir, image=False,
                               what="the report").resolve()
    html = render_batch_report(folder, config, rows, target.parent)
    return write_text_atomic(target, html)


def render_batch_report(folder: Path, config: dict[str, Any], rows: list[dict[str, Any]],
                        page_dir: Path) -> str:
    """The page's HTML; links are relative to `page_dir`, where the page will be written."""
    import jinja2

    def link(relative: str | None) -> str | None:
        if not relative or not (folder / relative).is_file():
            return None
        return Path(os.path.relpath(folder / relative, page_dir)).as_posix()

    shown = [_row_view(row, link) for row in rows[:MAX_ROWS_SHOWN]]
    failed = [_row_view(row, link) for row in rows if row.get("status") != "done"]
    counts = Counter(str(row.get("status")) for row in rows)
    env = jinja2.Environment(loader=jinja2.PackageLoader("interfaces", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             finalize=lambda value: "" if value is None else value)
    return env.get_template("batch_report.html.j2").render(
        folder=str(folder), config=config, rows=shown, failed=failed, total=len(rows),
        done=counts.get("done", 0), failures=len(failed), cut=max(0, len(rows) - len(shown)),
        accepted=sum(bool(row.get("accepted")) for row in rows),
    )


def _row_view(row: dict[str, Any], link: Any) -> dict[str, Any]:
    thumbs = row.get("thumbs") or {}
    total = (row.get("timings") or {}).get("total_s")
    return {
        "id": one_line(row.get("id"), 120), "status": row.get("status"),
        "instruction": one_line(row.get("instruction"), 300),
        "before": link(thumbs.get("before")), "after": link(thumbs.get("after")),
        "output": link(row.get("output")), "accepted": row.get("accepted"),
        "attempts": row.get("attempts"), "category": row.get("category"),
        "seconds": f"{total:.1f} s" if isinstance(total, (int, float)) else "",
        "error": one_line(row.get("error"), 1000), "error_type": row.get("error_type"),
        "session": row.get("session"),
    }
