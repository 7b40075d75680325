"""Turn a run folder into `summary.json`, `items.jsonl` and a self-contained `report.html`.

Reads only what the run wrote (`config.json`, `results.jsonl`, the artifact store), so a report
can be rebuilt at any time, also while a run is still going. Plots use matplotlib's Agg backend
and are embedded as base64 PNGs: the HTML file is the whole report.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from evals.metrics import compare_to_canonical, group_summaries, planned, summarise
from evals.perturb import CANONICAL
from evals.runner import CONFIG, DATA, RESULTS, read_results
from tools.errors import BrushEditError, InvalidRequestError

VLM_ERRORS = {"VLMUnavailableError", "VLMModelNotFoundError", "VLMTimeoutError"}
WORST_CASES = 12
THUMB = 128


class ReportError(InvalidRequestError):
    """The folder holds no run to report on."""


def load_run(out: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The stored config and the compared result rows of a run folder."""
    out = Path(out)
    config = run_config(out, "an eval", "eval run")
    rows = read_results(out / RESULTS)
    store = _store(out)
    rows = compare_to_canonical(sorted(rows, key=_order), load_mask=store.get_mask)
    return config, rows


def run_config(
    out: Path, what: str, command: str, error: type[BrushEditError] = ReportError
) -> dict[str, Any]:
    """The config a run folder stores; `error` naming the `command` that writes one if none."""
    if not (out / CONFIG).is_file():
        raise error(f"{out} is not {what} run folder (no {CONFIG}); run `brushedit {command}`")
    from evals.runner import load_json_object

    return load_json_object(out / CONFIG)


def _store(out: Path) -> Any:
    from graphs.artifacts import ArtifactStore

    return ArtifactStore(out / DATA / "artifacts")


def _order(row: dict[str, Any]) -> tuple:
    return (row["item"], row["planner"], row["family"] != CANONICAL, row["family"], row["index"])


def build_summary(config: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything the report shows, as JSON: overall, per family, per category, per planner."""
    planners = sorted({r["planner"] for r in rows}) or list(config.get("planners", []))
    notes = _notes(rows)
    return {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config,
        "rows": len(rows),
        "items": len({r["item"] for r in rows}),
        "notes": notes,
        "overall": {p: summarise([r for r in rows if r["planner"] == p]) for p in planners},
        "families": group_summaries(rows, "planner", "family"),
        "categories": group_summaries(
            [r for r in rows if r.get("expected_category")], "planner", "expected_category"
        ),
        "robustness": {
            planner: {
                family: stats["robustness"]
                for family, stats in group_summaries(
                    [r for r in rows if r["planner"] == planner], "family"
                ).items()
                if family != CANONICAL
            }
            for planner in planners
        },
    }


def _notes(rows: list[dict[str, Any]]) -> list[str]:
    """Plain sentences about what the numbers cannot show (an unreachable VLM, refused edits)."""
    notes = []
    for planner in sorted({r["planner"] for r in rows}):
        mine = [r for r in rows if r["planner"] == planner]
        vlm_down = [r for r in mine if r.get("error_type") in VLM_ERRORS]
        if vlm_down:
            first = vlm_down[0].get("error", "")
            notes.append(
                f"The {planner} planner could not reach its model for {len(vlm_down)} of "
                f"{len(mine)} rows ({vlm_down[0]['error_type']}: {first}). Those rows hold no "
                "plan; start the server and rerun with --retry-errors."
            )
        refused = Counter(
            r["error_type"] for r in mine if not r.get("ok") and planned(r) and r.get("error_type")
        )
        for error_type, count in sorted(refused.items()):
            notes.append(
                f"{planner}: {count} edits were planned but not performed ({error_type}); their "
                "plans count towards robustness, their images do not count towards fidelity."
            )
    return notes


def build_items(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per (item, planner): the canonical plan, robustness and what disagreed."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["item"], row["planner"])].append(row)
    items = []
    for (item, planner), group in sorted(groups.items()):
        canon = next((r for r in group if r["family"] == CANONICAL), {})
        stats = summarise(group)
        items.append(
            {
                "item": item,
                "planner": planner,
                "instruction": canon.get("text"),
                "expected_category": canon.get("expected_category"),
                "expected_object": canon.get("expected_object"),
                "category": canon.get("category"),
                "object": canon.get("object"),
                "variants": sum(1 for r in group if r["family"] != CANONICAL),
                **{
                    k: stats[k]
                    for k in (
                        "robustness",
                        "category_agreement",
                        "object_agreement",
                        "iou_canonical",
                        "iou_expected",
                        "bg_psnr",
                        "bg_ssim",
                        "bg_mse",
                        "change_inside",
                        "accepted",
                        "latency_mean_s",
                        "errors",
                    )
                },
                "disagreements": [
                    {
                        "family": r["family"],
                        "text": r["text"],
                        "category": r.get("category"),
                        "object": r.get("object"),
                    }
                    for r in group
                    if r.get("plan_equal") is False
                ],
            }
        )
    return items


def worst_cases(rows: list[dict[str, Any]], limit: int = WORST_CASES) -> list[dict[str, Any]]:
    """Variants whose plan or mask differs from the canonical one, spread over items and
    families: category changes first, then object changes, then by mask IoU and background PSNR.
    """
    variants = [r for r in rows if r["family"] != CANONICAL and planned(r)]

    def bad(row: dict[str, Any]) -> bool:
        iou = row.get("iou_canonical")
        return row.get("plan_equal") is False or (iou is not None and iou < 0.999)

    def badness(row: dict[str, Any]) -> tuple:
        psnr = (row.get("metrics") or {}).get("bg_psnr")
        return (
            row.get("category_agrees") is not False,
            row.get("plan_equal") is not False,
            row.get("iou_canonical") if row.get("iou_canonical") is not None else 2.0,
            psnr if psnr is not None else 1e9,
            row["item"],
            row["family"],
            row["index"],
        )

    chosen: list[dict[str, Any]] = []
    per_item: Counter[str] = Counter()
    seen: set[tuple[str, str, str]] = set()
    for row in sorted((r for r in variants if bad(r)), key=badness):
        group = (row["item"], row["family"], row["planner"])
        if group in seen or per_item[row["item"]] >= 2:
            continue
        seen.add(group)
        per_item[row["item"]] += 1
        chosen.append(row)
        if len(chosen) == limit:
            break
    return chosen


# -- writing ------------------------------------------------------------------------------------


def write_report(out: str | Path) -> dict[str, Path]:
    """Write summary.json, items.jsonl and report.html into `out`; returns their paths."""
    out = Path(out)
    config, rows = load_run(out)
    summary = build_summary(config, rows)
    items = build_items(rows)
    return write_outputs(out, summary, items, render_html(summary, items, rows, out))


def write_outputs(
    out: Path, summary: dict[str, Any], items: list[dict[str, Any]], page: str
) -> dict[str, Path]:
    """Write summary.json, items.jsonl and report.html (`page`) into `out`; their paths."""
    paths = {
        "summary": out / "summary.json",
        "items": out / "items.jsonl",
        "html": out / "report.html",
    }
    _atomic(paths["summary"], json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    _atomic(paths["items"], "".join(json.dumps(i, sort_keys=True) + "\n" for i in items))
    _atomic(paths["html"], page)
    return paths


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{2 if abs(value) >= 10 else digits}f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "–"
    return html.escape(str(value))


FAMILY_COLUMNS = (
    ("robustness", "robustness"),
    ("category_agreement", "category agr."),
    ("object_agreement", "object agr."),
    ("iou_canonical", "mask IoU vs canon."),
    ("bg_psnr", "bg PSNR"),
    ("bg_ssim", "bg SSIM"),
    ("accepted", "accepted"),
    ("latency_mean_s", "latency s"),
)
OVERALL_COLUMNS = (
    ("rows", "rows"),
    ("planned", "planned"),
    ("ok", "edited"),
    ("robustness", "robustness"),
    ("category_accuracy", "category acc."),
    ("object_accuracy", "object acc."),
    ("iou_expected", "mask IoU vs expected"),
    ("bg_psnr", "bg PSNR"),
    ("bg_ssim", "bg SSIM"),
    ("bg_mse", "bg MSE"),
    ("change_inside", "change inside"),
    ("accepted", "accepted"),
    ("attempts", "attempts"),
    ("latency_p50_s", "latency p50 s"),
    ("errors", "errors"),
)


def _table(rows: list[tuple[str, dict[str, Any]]], columns: tuple, first: str) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{_fmt(stats.get(key))}</td>" for key, _ in columns)
        + "</tr>"
        for name, stats in rows
    )
    return f"<table><tr><th>{first}</th>{head}</tr>{body}</table>"


def render_html(
    summary: dict[str, Any], items: list[dict[str, Any]], rows: list[dict[str, Any]], out: Path
) -> str:
    """The report page: notes, tables, plots and the worst cases with thumbnails."""
    config = summary["config"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>BrushEdit eval report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Instruction robustness report</h1>",
        f"<p class='meta'>suite <code>{html.escape(str(config.get('suite')))}</code> · "
        f"{summary['items']} items · {summary['rows']} rows · families "
        f"{html.escape(', '.join(config.get('families', [])))} · {config.get('variants')} "
        f"variants each · seed {config.get('seed')} · inpainter {config.get('inpainter')} · "
        f"generated {summary['generated']}</p>",
    ]
    if summary["notes"]:
        parts.append("<div class='notes'>")
        parts.extend(f"<p>{html.escape(note)}</p>" for note in summary["notes"])
        parts.append("</div>")
    parts.append("<h2>Overall</h2>")
    parts.append(_table(list(summary["overall"].items()), OVERALL_COLUMNS, "planner"))
    parts.append(
        "<p class='help'>robustness: share of rephrased variants whose plan (category and "
        "normalised object) equals the plan for the original instruction. bg PSNR/SSIM/MSE: "
        "outside the expected mask, against the source (PSNR capped at 100 dB for identical "
        "pixels).</p>"
    )
    parts.append("<h2>Per perturbation family</h2>")
    for planner, families in summary["families"].items():
        parts.append(f"<h3>{html.escape(planner)} planner</h3>")
        ordered = [(f, s) for f, s in families.items() if f != CANONICAL]
        parts.append(_table(ordered, FAMILY_COLUMNS, "family"))
    for title, figure in _plots(summary, rows):
        parts.append(f"<h3>{html.escape(title)}</h3><img class='plot' src='{figure}'>")
    parts.append("<h2>Per expected category</h2>")
    for planner, categories in summary["categories"].items():
        parts.append(f"<h3>{html.escape(planner)} planner</h3>")
        parts.append(_table(list(categories.items()), FAMILY_COLUMNS, "category"))
    parts.append("<h2>Worst cases</h2>")
    parts.append(_worst_html(worst_cases(rows), rows, out))
    parts.append("<h2>Items</h2>")
    parts.append(_items_html(items))
    parts.append("</body></html>")
    return "\n".join(parts)


def _plots(summary: dict[str, Any], rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    try:
        import matplotlib
    except ImportError:  # the tables carry the same numbers
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    robustness = summary["robustness"]
    families = sorted({f for per in robustness.values() for f in per})
    if families:
        fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
        width = 0.8 / max(1, len(robustness))
        for i, (planner, per) in enumerate(sorted(robustness.items())):
            values = [per.get(f) if per.get(f) is not None else 0.0 for f in families]
            ax.bar(np.arange(len(families)) + i * width, values, width, label=planner)
        ax.set_xticks(np.arange(len(families)) + width * (len(robustness) - 1) / 2)
        ax.set_xticklabels(families, rotation=30, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("plan = canonical plan")
        ax.legend(loc="lower right")
        ax.grid(axis="y", alpha=0.3)
        plots.append(("Robustness per family", _figure(fig)))
    ious = defaultdict(list)
    for row in rows:
        if row.get("iou_canonical") is not None:
            ious[row["family"]].append(row["iou_canonical"])
    if ious:
        fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
        names = sorted(ious)
        ax.boxplot([ious[n] for n in names])
        ax.set_xticks(range(1, len(names) + 1))
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("mask IoU vs canonical")
        ax.grid(axis="y", alpha=0.3)
        plots.append(("Mask agreement per family", _figure(fig)))
    latencies = defaultdict(list)
    for row in rows:
        if row.get("ok") and row.get("latency_s") is not None:
            latencies[row["planner"]].append(row["latency_s"])
    if latencies:
        fig, ax = plt.subplots(figsize=(8, 2.8), dpi=100)
        for planner, values in sorted(latencies.items()):
            ax.hist(values, bins=20, alpha=0.6, label=planner)
        ax.set_xlabel("seconds per edit")
        ax.set_ylabel("edits")
        ax.legend()
        plots.append(("Latency", _figure(fig)))
    return plots


def _figure(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _thumb(image: Any) -> str:
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.copy()
    image.thumbnail((THUMB, THUMB))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _img(loader: Any, alt: str) -> str:
    try:
        return f"<img src='{_thumb(loader())}' alt='{html.escape(alt)}' title='{html.escape(alt)}'>"
    except Exception:  # a missing file only costs its thumbnail
        return f"<span class='missing'>no {html.escape(alt)}</span>"


def _worst_html(cases: list[dict[str, Any]], rows: list[dict[str, Any]], out: Path) -> str:
    if not cases:
        return "<p>No variant changed the plan or the mask.</p>"
    from tools.images import load_image

    store = _store(out)
    canon = {(r["item"], r["planner"]): r for r in rows if r["family"] == CANONICAL}
    parts = [
        "<table><tr><th>variant</th><th>plan (canonical → variant)</th><th>source</th>"
        "<th>canonical mask</th><th>variant mask</th><th>result</th></tr>"
    ]
    for row in cases:
        base = canon.get((row["item"], row["planner"]), {})
        psnr = (row.get("metrics") or {}).get("bg_psnr")
        parts.append(
            "<tr><td>"
            f"<b>{html.escape(row['item'])}</b> · {html.escape(row['planner'])} · "
            f"{html.escape(row['family'])}/{row['index']}<br>"
            f"<q>{html.escape(row['text'])}</q><br><small>canonical: "
            f"<q>{html.escape(str(base.get('text')))}</q></small></td>"
            f"<td>{_fmt(base.get('category'))} / {_fmt(base.get('object'))} → "
            f"<b>{_fmt(row.get('category'))} / {_fmt(row.get('object'))}</b><br>"
            f"IoU {_fmt(row.get('iou_canonical'))} · bg PSNR {_fmt(psnr, 1)}"
            f"{_error_html(row)}</td>"
            f"<td>{_img(lambda r=row: load_image(r['source_path']), 'source')}</td>"
            f"<td>{_mask_img(store, base.get('mask'), 'canonical mask')}</td>"
            f"<td>{_mask_img(store, row.get('mask'), 'variant mask')}</td>"
            f"<td>{_result_img(store, row.get('image'))}</td></tr>"
        )
    parts.append("</table>")
    return "".join(parts)


def _error_html(row: dict[str, Any]) -> str:
    if not row.get("error"):
        return ""
    kind = html.escape(str(row.get("error_type") or "error"))
    return f"<br><span class='error' title='{html.escape(row['error'])}'>not edited: {kind}</span>"


def _mask_img(store: Any, digest: str | None, alt: str) -> str:
    if not digest:
        return f"<span class='missing'>no {alt}</span>"
    return _img(lambda: store.get_mask(digest), alt)


def _result_img(store: Any, digest: str | None) -> str:
    if not digest:
        return "<span class='missing'>no result</span>"
    return _img(lambda: store.get_image(digest), "result")


def _items_html(items: list[dict[str, Any]]) -> str:
    columns = (
        ("instruction", "instruction"),
        ("category", "category"),
        ("object", "object"),
        ("robustness", "robustness"),
        ("iou_canonical", "IoU vs canon."),
        ("bg_psnr", "bg PSNR"),
        ("bg_ssim", "bg SSIM"),
        ("errors", "errors"),
    )
    named = [(f"{i['item']} ({i['planner']})", i) for i in items]
    return _table(named, columns, "item")


_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; padding: 0 1em; max-width: 1200px;
       color: #222; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top;
         overflow-wrap: break-word; }
th { background: #f3f3f3; }
td img { display: block; max-width: 128px; }
.plot { max-width: 100%; }
.notes { background: #fff6e0; border-left: 4px solid #e0a000; padding: .3em 1em; }
.meta, .help { color: #555; }
.missing { color: #999; font-style: italic; }
.error { color: #a33; }
"""
