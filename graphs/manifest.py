"""A batch manifest: one edit per row, as JSON lines, CSV or Parquet.

Columns: `image` (a path, relative to the manifest's folder, or an http(s) URL), `instruction`,
and optionally `mask`, `caption`, `id` and any `EditOptions` field (`seed`, `steps`,
`inpainter`, ...), which override the run's defaults for that row. What concerns the whole file
(it cannot be read, an unknown or missing column, two rows with one id) refuses the run in one
sentence; what concerns one row (its image, mask, instruction or option values) fails that row
alone, when it runs, with the session facade's own sentence.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tools.errors import ConfigError
from tools.types import EditOptions

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
           ".parquet": "parquet", ".pq": "parquet"}
REQUIRED = ("image", "instruction")
TEXT_COLUMNS = ("id", "image", "instruction", "mask", "caption")
OPTION_COLUMNS = tuple(EditOptions.model_fields)
COLUMNS = (*TEXT_COLUMNS, *OPTION_COLUMNS)
MAX_ID_CHARS = 200


class ManifestRow(BaseModel):
    """One row as read: references resolved, values not yet checked (the worker's facade does)."""

    index: int = Field(description="1-based row number in the manifest (its line in JSONL).")
    id: str
    image: str | None = None
    instruction: Any = None
    mask: str | None = None
    caption: Any = None
    options: dict[str, Any] = Field(default_factory=dict)
    problem: str | None = Field(
        default=None, description="Why the row cannot run at all (a JSONL line that is not an "
        "object); the row fails with it, without a worker."
    )

    def fingerprint(self) -> str:
        """What the row asks for (not where it sits): a done row whose fingerprint changed is
        edited again on a resume."""
        fields = self.model_dump(mode="json", exclude={"index"})
        text = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Every row of a manifest, in order; a `ConfigError` sentence for a file that cannot be."""
    path = Path(path).expanduser()
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"{path.name} is not a manifest this reads: name it .jsonl, .csv or "
                          ".parquet (one edit per row)")
    if not path.is_file():
        raise ConfigError(f"the manifest {path} does not exist" if not path.exists() else
                          f"the manifest {path} is not a file")
    try:
        raw = {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet}[kind](path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"the manifest {path} cannot be read ({exc})") from None
    columns = {name for _, row in raw if isinstance(row, dict) for name in row}
    _check_columns(path, columns)
    rows = [_row(path.parent, index, value) for index, value in raw]
    _check_ids(path, rows)
    return rows


def _check_columns(path: Path, columns: set[str]) -> None:
    unknown = sorted(str(c) for c in columns - set(COLUMNS))
    if unknown:
        raise ConfigError(
            f"the manifest {path.name} has column(s) this does not know: "
            f"{', '.join(unknown[:5])}; the columns are {', '.join(COLUMNS)} (a misspelt option "
            "would silently use the default on every row)"
        )
    missing = [name for name in REQUIRED if name not in columns]
    if missing and columns:
        raise ConfigError(f"the manifest {path.name} has no `{missing[0]}` column; every row "
                          "needs `image` and `instruction`")


def _check_ids(path: Path, rows: list[ManifestRow]) -> None:
    seen: dict[str, int] = {}
    for row in rows:
        if row.id in seen:
            raise ConfigError(f"rows {seen[row.id]} and {row.index} of {path.name} both have the "
                              f"id {row.id!r}; give each row its own id (results are kept by id)")
        seen[row.id] = row.index


def _jsonl(path: Path) -> list[tuple[int, Any]]:
    rows = []
    with path.open(encoding="utf-8-sig") as handle:
        for index, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append((index, json.loads(line)))
            except json.JSONDecodeError as exc:
                rows.append((index, f"line {index} is not JSON ({exc.msg})"))
    return rows


def _csv(path: Path) -> list[tuple[int, Any]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = []
        for row in reader:
            if None in row:  # more cells than the header names
                rows.append((reader.line_num, f"row on line {reader.line_num} has more cells "
                                              "than the header has columns"))
                continue
            rows.append((reader.line_num, row))
        return rows


def _parquet(path: Path) -> list[tuple[int, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("reading a Parquet manifest needs pyarrow; run `pip install "
                          "'brushedit-agents[ray]'` (or `pip install pyarrow`), or give JSONL "
                          "or CSV") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow's errors are many; all mean "not a Parquet file we read"
        raise ConfigError(f"the manifest {path} is not a readable Parquet file ({exc})") from None
    return list(enumerate(table.to_pylist(), start=1))


def _missing(value: Any) -> bool:
    """An empty cell: None, blank text, or a float NaN (how pandas and Arrow write nothing)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, float) and math.isnan(value)


def _row(folder: Path, index: int, value: Any) -> ManifestRow:
    if not isinstance(value, dict):
        problem = value if isinstance(value, str) else (
            f"row {index} is a JSON {type(value).__name__}, not an object of columns")
        return ManifestRow(index=index, id=f"row-{index}", problem=problem)
    cells = {k: v for k, v in value.items() if not _missing(v)}
    row_id = _row_id(cells.get("id"), index)
    return ManifestRow(
        index=index, id=row_id,
        image=_reference(folder, cells.get("image")),
        instruction=cells.get("instruction"),
        mask=_reference(folder, cells.get("mask")),
        caption=cells.get("caption"),
        options={k: cells[k] for k in OPTION_COLUMNS if k in cells},
        problem=_image_problem(cells.get("image")),
    )


def _image_problem(value: Any) -> str | None:
    if value is None:
        return "the row has no `image`: give the path or URL of the picture to edit"
    if not isinstance(value, str):
        return f"its `image` is a {type(value).__name__}, not text: give a path or a URL"
    return None


def _row_id(value: Any, index: int) -> str:
    if value is None:
        return f"row-{index}"
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a numeric id column read as floats
    text = " ".join(str(value).split())
    return text[:MAX_ID_CHARS] or f"row-{index}"


def _reference(folder: Path, value: Any) -> str | None:
    """A path made absolute against the manifest's folder; URLs and `data:` URIs as given."""
    if value is None or not isinstance(value, str):
        return None if value is None else str(value)
    text = value.strip()
    if "://" in text or text[:5].lower() == "data:":
        return text
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else (folder / path).resolve())
