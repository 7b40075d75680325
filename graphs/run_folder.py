"""A resumable run's folder: its identity (`config.json`) and its append-only results log.

Shared by the batch engine (`graphs.batch`) and the evals. The process that drives a run is the
only writer of `results.jsonl`: one line per finished unit of work, flushed and synced at once,
never rewritten in place, so a run killed at any moment keeps everything it recorded and the
same command resumes it. `config.json` holds what the run measures or makes; a restart with a
different one is refused in one sentence.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tools.errors import BrushEditError, ConfigError

logger = logging.getLogger(__name__)

RESULTS = "results.jsonl"
CONFIG = "config.json"
MAX_CONFIG_BYTES = 16 * 1024 * 1024


def read_results(path: str | Path, key: str = "key") -> list[dict[str, Any]]:
    """All complete rows of a results file, the last row per `key` winning.

    A line cut short by a kill is skipped (and logged); everything else must parse.
    """
    path = Path(path)
    if not path.is_file():
        return []
    rows: dict[Any, dict[str, Any]] = {}
    broken = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                broken += 1
                continue
            if isinstance(row, dict) and key in row:
                rows[row[key]] = row
    if broken:
        logger.warning("%s: skipped %d incomplete line(s) (an interrupted write)", path, broken)
    return list(rows.values())


class ResultLog:
    """Append-only JSONL writer: one line per row, flushed and synced before returning."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8")
        if self.path.stat().st_size and not _ends_with_newline(self.path):
            self._handle.write("\n")  # isolate a half-written line left by a kill
            self._handle.flush()

    def write(self, row: dict[str, Any]) -> None:
        self._handle.write(json.dumps(row, sort_keys=True, default=str) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ResultLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def compact_results(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Replace a results file by `rows` (the latest per key), atomically: a kill during it
    leaves the old file whole."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, sort_keys=True, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def load_json_object(path: Path) -> dict[str, Any]:
    """A run folder's JSON file (config, summary) as a dict, or one `ConfigError` sentence."""
    from tools.images import read_user_file

    try:
        raw = read_user_file(path, max_bytes=MAX_CONFIG_BYTES, what="a JSON file")
        value = json.loads(raw.decode("utf-8"))
    except BrushEditError as exc:
        raise ConfigError(str(exc)) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path} is damaged: it is not JSON ({exc}); restore it or set the "
                          "folder aside") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path} is damaged: it holds a JSON {type(value).__name__}, not an "
                          "object; restore it or set the folder aside")
    return value


def check_run_folder(out: Path) -> None:
    """Refuse a run folder that is a file, or that sits in BrushEdit's data folder."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a run folder; give a folder path")
    from graphs.artifacts import check_output_folder
    from graphs.settings import load_settings

    try:
        check_output_folder(out, data_dir=load_settings().data_dir)
    except BrushEditError as exc:
        raise ConfigError(str(exc)) from None


DEFAULT_SET_ASIDE = (CONFIG, RESULTS, "summary.json", "items.jsonl", "report.html")
"""What `--force-new` moves out of the way (the files an eval run writes)."""


def check_or_store_config(
    config: BaseModel, out: Path, *, force_new: bool = False,
    set_aside: Iterable[str] = DEFAULT_SET_ASIDE,
) -> None:
    """Write `config.json` on the first start; refuse a restart that measures something else.

    With `force_new`, an earlier run in `out` is moved to `out/previous-<time>/` first (the
    files named in `set_aside`).
    """
    path = out / CONFIG
    check_run_folder(out)
    if path.is_file():
        stored = load_json_object(path)
        current = config.model_dump(mode="json")
        if stored != current:
            if not force_new:
                diffs = [
                    f"{name}: {stored.get(name)!r} -> {current.get(name)!r}"
                    for name in sorted(set(stored) | set(current))
                    if stored.get(name) != current.get(name)
                ]
                raise ConfigError(
                    f"{out} holds a run with a different configuration ({'; '.join(diffs)}). "
                    "Resume it with the same options, pick another --out, or pass --force-new "
                    "to set the old run aside and start again"
                )
            _set_aside(out, set_aside)
        elif force_new:
            _set_aside(out, set_aside)
    out.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)


def _set_aside(out: Path, names: Iterable[str]) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = out / f"previous-{stamp}"
    target.mkdir()
    for name in names:
        if (out / name).exists():
            os.replace(out / name, target / name)
    return target


__all__ = [
    "CONFIG",
    "RESULTS",
    "ResultLog",
    "check_or_store_config",
    "check_run_folder",
    "compact_results",
    "load_json_object",
    "read_results",
]
