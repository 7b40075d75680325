"""The paper's benchmarks as distributed: PIE-Bench and BrushBench folders, read item by item.

PIE-Bench (`mapping_file.json` + `annotation_images/<image_path>`): per item an `image_path`,
prompts with `[bracketed]` edited words, an `editing_instruction`, an `editing_type_id` ("0".."9")
and the edited region as `mask`: `[start, length, ...]` runs over the row-major 512x512 image
(0-based). The benchmark's own decoder then sets the outermost rows and columns to 1 ("to avoid
annotation errors in boundary"); `decode_pie_mask` does the same, so the unedited region never
includes the image border.

BrushBench (BrushNet repository, `mapping_file.json` + images under the same folder): per item an
`image`, a `caption` and two masks, `inpainting_mask` (inside: repaint the object) and
`outpainting_mask` (outside: repaint around it), each `[start, length, ...]` runs with 1-based
starts (BrushNet's `rle2mask` subtracts one), no border rule.

Masks come back in the project convention: uint8 (H, W), 255 = edited.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tools.errors import InvalidRequestError
from tools.types import EditCategory

BENCH_SIZE = (512, 512)
"""(H, W) the masks of both benchmarks are encoded for."""

PIE_TYPES: dict[str, str] = {
    "0": "random",
    "1": "change object",
    "2": "add object",
    "3": "delete object",
    "4": "change attribute: content",
    "5": "change attribute: pose",
    "6": "change attribute: color",
    "7": "change attribute: material",
    "8": "change background",
    "9": "change style",
}
"""PIE-Bench's ten editing types, by `editing_type_id`."""

PIE_CATEGORY: dict[str, EditCategory] = {
    "2": EditCategory.ADDITION,
    "3": EditCategory.REMOVAL,
    "8": EditCategory.BACKGROUND,
    "9": EditCategory.GLOBAL,
}
"""The edit category a PIE-Bench type is (every other type is a local edit)."""

BrushBenchMask = Literal["inside", "outside"]
BRUSHBENCH_KEYS: dict[str, str] = {"inside": "inpainting_mask", "outside": "outpainting_mask"}


class BenchmarkError(InvalidRequestError):
    """A benchmark folder is missing, or its mapping file does not have the expected layout."""


class BenchItem(BaseModel):
    """One benchmark case, with absolute paths; the mask stays encoded (it is small)."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(description="Unique within the run: item id, plus `|inside`/`|outside`.")
    id: str
    image: str = Field(description="Absolute path of the source image.")
    image_path: str = Field(description="The path as the mapping file gives it.")
    prompt: str = Field(description="Target caption: PIE-Bench editing_prompt, BrushBench caption.")
    instruction: str | None = None
    original_prompt: str | None = None
    editing_type_id: str | None = None
    blended_word: str | None = None
    mask_kind: BrushBenchMask | None = None
    runs: list[int] = Field(description="The encoded mask as given.")
    encoding: Literal["pie", "brushbench"]

    @property
    def group(self) -> str:
        """What the summary breaks down by: the editing type, or inside/outside."""
        return self.editing_type_id if self.encoding == "pie" else str(self.mask_kind)

    @property
    def category(self) -> EditCategory:
        """The kind of edit this case asks for (BrushBench inpainting is a local edit)."""
        if self.encoding == "pie":
            return PIE_CATEGORY.get(str(self.editing_type_id), EditCategory.LOCAL)
        return EditCategory.LOCAL

    def mask(self) -> np.ndarray:
        """The decoded mask, uint8 (512, 512), 255 = edited."""
        if self.encoding == "pie":
            return decode_pie_mask(self.runs)
        return decode_brushbench_mask(self.runs)


class Benchmark(BaseModel):
    """A loaded benchmark: its items in mapping-file order and the mapping file's hash."""

    name: Literal["pie-bench", "brushbench"]
    root: str
    mapping_sha256: str
    items: list[BenchItem]


# -- masks -----------------------------------------------------------------------------------


def _check_runs(runs: Sequence[int]) -> np.ndarray:
    values = np.asarray(list(runs), dtype=np.int64)
    if values.ndim != 1 or values.size % 2:
        raise BenchmarkError(
            f"a mask must be a flat list of [start, length] pairs, got {values.size} numbers"
        )
    if values.size and (values < 0).any():
        raise BenchmarkError("mask runs hold a negative start or length")
    return values.reshape(-1, 2)


def _paint(pairs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    length = shape[0] * shape[1]
    flat = np.zeros(length + 1, dtype=np.int32)
    starts = np.clip(pairs[:, 0], 0, length)
    ends = np.clip(pairs[:, 0] + pairs[:, 1], 0, length)
    np.add.at(flat, starts, 1)
    np.add.at(flat, ends, -1)
    return (np.cumsum(flat[:-1]) > 0).reshape(shape)


def decode_pie_mask(runs: Sequence[int], shape: tuple[int, int] = BENCH_SIZE) -> np.ndarray:
    """PIE-Bench's `mask_decode`: 0-based runs, then the outermost rows and columns set."""
    mask = _paint(_check_runs(runs), shape)
    mask[0, :] = mask[-1, :] = True
    mask[:, 0] = mask[:, -1] = True
    return mask.astype(np.uint8) * 255


def encode_pie_mask(mask: np.ndarray) -> list[int]:
    """The runs PIE-Bench stores for `mask` (nonzero = edited), 0-based starts."""
    return _encode(mask, base=0)


def decode_brushbench_mask(runs: Sequence[int], shape: tuple[int, int] = BENCH_SIZE) -> np.ndarray:
    """BrushNet's `rle2mask`: 1-based starts, no border rule."""
    pairs = _check_runs(runs)
    if pairs.size and (pairs[:, 0] < 1).any():
        raise BenchmarkError("BrushBench mask runs start at 1; found a start of 0")
    pairs = pairs - np.array([1, 0])
    return _paint(pairs, shape).astype(np.uint8) * 255


def encode_brushbench_mask(mask: np.ndarray) -> list[int]:
    """The runs BrushBench stores for `mask` (nonzero = edited), 1-based starts."""
    return _encode(mask, base=1)


def _encode(mask: np.ndarray, base: int) -> list[int]:
    flat = (np.asarray(mask) > 0).reshape(-1).astype(np.int8)
    edges = np.diff(np.concatenate([[0], flat, [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    out: list[int] = []
    for start, end in zip(starts, ends, strict=True):
        out += [int(start) + base, int(end - start)]
    return out


# -- mapping files ---------------------------------------------------------------------------


def _read_mapping(root: str | Path, what: str) -> tuple[Path, dict, str]:
    root = Path(root).expanduser().resolve()
    mapping = root / "mapping_file.json"
    if not root.is_dir():
        raise BenchmarkError(f"{what} folder {root} does not exist")
    if not mapping.is_file():
        raise BenchmarkError(
            f"{root} holds no mapping_file.json; point at the {what} folder as distributed"
        )
    raw = mapping.read_bytes()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BenchmarkError(f"{mapping}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not data:
        raise BenchmarkError(f"{mapping}: expected a non-empty object of items by id")
    return root, data, hashlib.sha256(raw).hexdigest()


def _field(record: dict, name: str, where: str) -> object:
    if not isinstance(record, dict) or name not in record:
        raise BenchmarkError(f"{where}: missing `{name}`")
    return record[name]


def _prompt(text: object) -> str:
    """Drop PIE-Bench's `[edited word]` brackets, as its evaluator does."""
    return str(text).replace("[", "").replace("]", "").strip()


def load_pie_bench(
    root: str | Path, types: Iterable[str] | None = None, *, check_files: bool = True
) -> Benchmark:
    """The items of a PIE-Bench folder, optionally only those of some `editing_type_id`s."""
    root, data, digest = _read_mapping(root, "PIE-Bench")
    wanted = {str(t) for t in types} if types else None
    if wanted and not wanted <= set(PIE_TYPES):
        unknown = ", ".join(sorted(wanted - set(PIE_TYPES)))
        raise BenchmarkError(f"unknown editing type id(s) {unknown}; PIE-Bench has 0..9")
    items = []
    for key, record in data.items():
        where = f"mapping_file.json item {key}"
        type_id = str(_field(record, "editing_type_id", where))
        if wanted and type_id not in wanted:
            continue
        image_path = str(_field(record, "image_path", where))
        image = root / "annotation_images" / image_path
        if check_files and not image.is_file():
            raise BenchmarkError(f"{where}: image {image} not found")
        items.append(
            BenchItem(
                key=str(key),
                id=str(key),
                image=str(image),
                image_path=image_path,
                prompt=_prompt(_field(record, "editing_prompt", where)),
                instruction=str(_field(record, "editing_instruction", where)).strip(),
                original_prompt=_prompt(record.get("original_prompt", "")),
                editing_type_id=type_id,
                blended_word=record.get("blended_word"),
                runs=list(_field(record, "mask", where)),
                encoding="pie",
            )
        )
    if not items:
        raise BenchmarkError(f"{root}: no items of editing type(s) {sorted(wanted or [])}")
    return Benchmark(name="pie-bench", root=str(root), mapping_sha256=digest, items=items)


def load_brushbench(
    root: str | Path,
    masks: Iterable[BrushBenchMask] = ("inside", "outside"),
    *,
    check_files: bool = True,
) -> Benchmark:
    """The items of a BrushBench folder, once per mask kind (inside, outside)."""
    root, data, digest = _read_mapping(root, "BrushBench")
    kinds = list(dict.fromkeys(masks))
    if not kinds or any(k not in BRUSHBENCH_KEYS for k in kinds):
        raise BenchmarkError(f"mask kinds must be inside and/or outside, got {kinds}")
    items = []
    for key, record in data.items():
        where = f"mapping_file.json item {key}"
        image_path = str(_field(record, "image", where))
        image = root / image_path
        if check_files and not image.is_file():
            raise BenchmarkError(f"{where}: image {image} not found")
        for kind in kinds:
            items.append(
                BenchItem(
                    key=f"{key}|{kind}",
                    id=str(key),
                    image=str(image),
                    image_path=image_path,
                    prompt=_prompt(_field(record, "caption", where)),
                    mask_kind=kind,
                    runs=list(_field(record, BRUSHBENCH_KEYS[kind], where)),
                    encoding="brushbench",
                )
            )
    return Benchmark(name="brushbench", root=str(root), mapping_sha256=digest, items=items)
