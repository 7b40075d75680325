"""Eval suites: JSONL files of (image, instruction, expectations), validated line by line.

One JSON object per line. Paths are relative to the suite file, so a suite folder can be moved
or shipped inside the package. A bad line raises `SuiteError` naming the file, the line number
and the field, never a bare pydantic traceback.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from tools.errors import InvalidRequestError
from tools.types import MAX_INSTRUCTION_CHARS, EditCategory


class SuiteError(InvalidRequestError):
    """A suite file cannot be read or one of its lines is invalid."""


def _category(value: object) -> object:
    """A category as written in a suite: the reference's spelling (`remove`), any casing."""
    return EditCategory.parse(value) if isinstance(value, str) else value


class SuiteItem(BaseModel):
    """One request to evaluate; optional fields are expectations to score against."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default="", description="Stable id; defaults to `line<N>`.")
    image: str = Field(min_length=1, description="Image path, relative to the suite file.")
    instruction: str = Field(min_length=1, max_length=MAX_INSTRUCTION_CHARS)
    category: Annotated[EditCategory | None, BeforeValidator(_category)] = Field(
        default=None, description="Expected edit category."
    )
    object: str | None = Field(default=None, description="Expected object noun.")
    mask: str | None = Field(default=None, description="Expected mask path (white = edit).")
    target_caption: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if any(ch in value for ch in "|\n"):
            raise ValueError(f"`id` may not contain '|' or a newline, got {value!r}")
        return value.strip()


class Suite(BaseModel):
    """A loaded suite: its items with absolute paths, plus a content hash for resume checks."""

    path: str
    sha256: str
    items: list[SuiteItem]


def _render(error: ValidationError) -> str:
    parts = []
    for detail in error.errors():
        where = ".".join(str(p) for p in detail["loc"]) or "line"
        parts.append(f"`{where}`: {detail['msg']}")
    return "; ".join(parts)


def load_suite(path: str | Path, *, check_files: bool = True) -> Suite:
    """Read and validate a suite; image and mask paths come back absolute."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise SuiteError(f"suite {path} does not exist (expected a .jsonl file)")
    from tools.errors import InvalidImageError
    from tools.images import read_user_file

    try:
        raw = read_user_file(path, max_bytes=64 * 1024 * 1024, what="a .jsonl suite file")
        text = raw.decode("utf-8")
    except InvalidImageError as exc:
        raise SuiteError(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise SuiteError(f"suite {path} is not UTF-8 text (byte {exc.start})") from None
    items: list[SuiteItem] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise SuiteError(f"{path}:{number}: expected a JSON object, got {type(data).__name__}")
        try:
            item = SuiteItem.model_validate(data)
        except ValidationError as exc:
            raise SuiteError(f"{path}:{number}: {_render(exc)}") from None
        updates: dict[str, object] = {"id": item.id or f"line{number}"}
        for field in ("image", "mask"):
            value = getattr(item, field)
            if value is None:
                continue
            resolved = (path.parent / value).resolve()
            if check_files and not resolved.is_file():
                raise SuiteError(f"{path}:{number}: `{field}` file {value} not found at {resolved}")
            updates[field] = str(resolved)
        item = item.model_copy(update=updates)
        if item.id in seen:
            raise SuiteError(
                f"{path}:{number}: duplicate id {item.id!r} (first on line {seen[item.id]})"
            )
        seen[item.id] = number
        items.append(item)
    if not items:
        raise SuiteError(f"suite {path} holds no items")
    return Suite(path=str(path), sha256=hashlib.sha256(raw).hexdigest(), items=items)
