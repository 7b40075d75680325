"""Robustness metrics: does a rephrased request give the same plan, mask and untouched background?

Pure functions over plain values and result rows (dicts, as written to `results.jsonl`), so they
are easy to test by hand. Image fidelity is not re-implemented here: `background_metrics` calls
`tools.metrics` (the paper's formulas) and only renames the keys for the report.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from agents.phrases import DETERMINERS
from evals.perturb import CANONICAL

_DETERMINERS = DETERMINERS | {"one"}
_KEEP_S = ("ss", "us", "is", "ous")


def singularise(word: str) -> str:
    """Light English singular: "eyes" -> "eye", "glasses" -> "glass", "puppies" -> "puppy"."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(_KEEP_S):
        return word[:-1]
    return word


def normalise_object(text: str | None) -> str | None:
    """Lowercase, punctuation and leading articles stripped, last word singularised.

    "The Eyes" -> "eye"; "a red car." -> "red car"; None or "" -> None.
    """
    if not text:
        return None
    tokens = re.findall(r"[a-z0-9]+(?:['-][a-z0-9]+)*", text.lower())
    tokens = [t[:-2] if t.endswith("'s") else t for t in tokens]
    while tokens and tokens[0] in _DETERMINERS:
        tokens = tokens[1:]
    if not tokens:
        return None
    tokens[-1] = singularise(tokens[-1])
    return " ".join(tokens)


def category_agrees(a: str | None, b: str | None) -> bool | None:
    """Same category, or None when either side is unknown (an error row)."""
    if a is None or b is None:
        return None
    return str(a).lower() == str(b).lower()


def object_agrees(a: str | None, b: str | None) -> bool:
    """Same object after normalisation; two missing objects agree (e.g. global edits)."""
    return normalise_object(a) == normalise_object(b)


def plans_equal(a: dict[str, Any], b: dict[str, Any]) -> bool | None:
    """Category and normalised object both equal; None when either plan is missing."""
    same_category = category_agrees(a.get("category"), b.get("category"))
    if same_category is None:
        return None
    return same_category and object_agrees(a.get("object"), b.get("object"))


def mask_iou(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Intersection over union of two masks (nonzero = inside); two empty masks give 1.0."""
    if a is None or b is None:
        return None
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)


def background_metrics(source: Any, result: Any, mask: np.ndarray) -> dict[str, float]:
    """PSNR / SSIM / MSE outside `mask` and the change inside it, via `tools.metrics`.

    Background = both images times (1 - mask), normalised by the unmasked pixel count (the
    paper's formulas, implemented once in `tools.metrics`).
    """
    from tools.metrics import edit_metrics

    names = {"psnr_outside": "bg_psnr", "ssim_outside": "bg_ssim", "mse_outside": "bg_mse"}
    return {names.get(k, k): float(v) for k, v in edit_metrics(source, result, mask).items()}


# -- aggregation over rows -----------------------------------------------------------------------


def robustness_score(rows: Iterable[dict[str, Any]]) -> float | None:
    """Share of variant rows whose plan equals their canonical plan (`plan_equal`), None if none."""
    flags = [row["plan_equal"] for row in rows if row.get("plan_equal") is not None]
    return sum(flags) / len(flags) if flags else None


def _mean(values: Iterable[Any]) -> float | None:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return statistics.fmean(finite) if finite else None


def _share(values: Iterable[Any]) -> float | None:
    flags = [bool(v) for v in values if v is not None]
    return sum(flags) / len(flags) if flags else None


def _quantile(values: Sequence[float], q: float) -> float | None:
    data = sorted(v for v in values if v is not None)
    if not data:
        return None
    position = q * (len(data) - 1)
    low, high = math.floor(position), math.ceil(position)
    return data[low] + (data[high] - data[low]) * (position - low)


def compare_to_canonical(
    rows: list[dict[str, Any]], load_mask: Callable[[str], np.ndarray] | None = None
) -> list[dict[str, Any]]:
    """Add agreement fields to each row, comparing it with its (item, planner) canonical row.

    Adds `category_agrees`, `object_agrees`, `plan_equal`, `iou_canonical` (when `load_mask`
    resolves mask hashes), `category_correct` and `object_correct` against the suite's
    expectations. Rows are copied, not changed.
    """
    canon = {(r["item"], r["planner"]): r for r in rows if r["family"] == CANONICAL and planned(r)}
    cache: dict[str, np.ndarray | None] = {}

    def mask(digest: str | None) -> np.ndarray | None:
        if digest is None or load_mask is None:
            return None
        if digest not in cache:
            try:
                cache[digest] = load_mask(digest)
            except Exception:  # a missing artifact only loses this comparison
                cache[digest] = None
        return cache[digest]

    out = []
    for row in rows:
        row = dict(row)
        base = canon.get((row["item"], row["planner"]))
        ok = planned(row)
        if row.get("expected_category") is not None and ok:
            row["category_correct"] = category_agrees(row.get("category"), row["expected_category"])
        if row.get("expected_object") is not None and ok:
            row["object_correct"] = object_agrees(row.get("object"), row["expected_object"])
        if row["family"] != CANONICAL and base is not None and ok:
            row["category_agrees"] = category_agrees(row.get("category"), base.get("category"))
            row["object_agrees"] = object_agrees(row.get("object"), base.get("object"))
            row["plan_equal"] = plans_equal(row, base)
            a, b = mask(row.get("mask")), mask(base.get("mask"))
            if a is not None and b is not None and a.shape == b.shape:
                row["iou_canonical"] = mask_iou(a, b)
        out.append(row)
    return out


def planned(row: dict[str, Any]) -> bool:
    """The system got as far as a plan (an edit that failed later still has one)."""
    return row.get("category") is not None


def _metric(row: dict[str, Any], name: str) -> Any:
    return (row.get("metrics") or {}).get(name)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate compared rows (see `compare_to_canonical`) into the numbers a report shows."""
    ok = [r for r in rows if r.get("ok")]
    variants = [r for r in rows if r["family"] != CANONICAL]
    latencies = [r["latency_s"] for r in ok if r.get("latency_s") is not None]
    errors: dict[str, int] = defaultdict(int)
    for row in rows:
        if not row.get("ok"):
            errors[row.get("error_type") or "error"] += 1
    return {
        "rows": len(rows),
        "planned": sum(planned(r) for r in rows),
        "ok": len(ok),
        "errors": dict(errors),
        "robustness": robustness_score(variants),
        "category_agreement": _share(r.get("category_agrees") for r in variants),
        "object_agreement": _share(r.get("object_agrees") for r in variants),
        "category_accuracy": _share(r.get("category_correct") for r in rows),
        "object_accuracy": _share(r.get("object_correct") for r in rows),
        "iou_canonical": _mean(r.get("iou_canonical") for r in variants),
        "iou_expected": _mean(r.get("iou_expected") for r in ok),
        "bg_psnr": _mean(_metric(r, "bg_psnr") for r in ok),
        "bg_ssim": _mean(_metric(r, "bg_ssim") for r in ok),
        "bg_mse": _mean(_metric(r, "bg_mse") for r in ok),
        "change_inside": _mean(_metric(r, "change_inside") for r in ok),
        "accepted": _share(r.get("accepted") for r in ok),
        "attempts": _mean(r.get("attempts") for r in ok),
        "latency_mean_s": _mean(latencies),
        "latency_p50_s": _quantile(latencies, 0.5),
        "latency_p95_s": _quantile(latencies, 0.95),
    }


def group_summaries(rows: list[dict[str, Any]], *fields: str) -> dict[str, Any]:
    """`summarise` per distinct value of `fields`, nested in that order."""
    if not fields:
        return summarise(rows)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[str(row.get(fields[0]))].append(row)
    return {key: group_summaries(group, *fields[1:]) for key, group in sorted(groups.items())}
