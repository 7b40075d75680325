"""Turn a benchmark run folder into `summary.json`, `items.jsonl` and `report.html`.

Reads only what the run wrote (`config.json`, `results.jsonl`, `images/`), so it can be rebuilt at
any time. Means are over the measured items; a metric no item could get is `null`, with the
reason under `missing`. `report.html` puts our numbers beside the paper's, in the paper's units.
"""

from __future__ import annotations

import html
import math
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evals.benchmarks import PIE_TYPES
from evals.paper import TABLES, PaperTable
from evals.report import _CSS, _img, run_config, write_outputs
from evals.runner import RESULTS, read_results
from evals.scorers import QUALITY_METRICS
from tools.errors import InvalidRequestError
from tools.metrics import PSNR_CAP

METRICS = (
    "psnr_unedited",
    "mse_unedited",
    "ssim_unedited",
    "lpips_unedited",
    "clip_whole",
    "clip_edited",
)
"""The metrics every summary carries (null with a reason when they could not be measured)."""
OPTIONAL = QUALITY_METRICS
SHOWN_CASES = 12


class BenchReportError(InvalidRequestError):
    """The folder holds no benchmark run."""


def _mean(values: Any) -> float | None:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return statistics.fmean(finite) if finite else None


def _share(values: Any) -> float | None:
    flags = [bool(v) for v in values if v is not None]
    return sum(flags) / len(flags) if flags else None


def metric_means(rows: list[dict[str, Any]], field: str = "metrics") -> dict[str, float | None]:
    """Mean of every metric over the rows that have it."""
    names = (*METRICS, *OPTIONAL)
    return {name: _mean((r.get(field) or {}).get(name) for r in rows) for name in names}


def script_convention(rows: list[dict[str, Any]], benchmark: str) -> dict[str, Any]:
    """PSNR and MSE as the benchmark's own evaluator normalises them (see docs/evals.md).

    PIE-Bench's evaluate.py averages the squared error of the masked images over ALL pixels
    (the zeroed edited region counts), so its MSE is ours times the unedited fraction; BrushNet's
    evaluate_brushnet.py divides by the unedited pixel count without the 3 channels, so its MSE
    is 3x ours. PSNR follows from each item's MSE (capped at 100 dB like ours).
    """
    psnrs, mses = [], []
    for row in rows:
        metrics = row.get("metrics") or {}
        mse, fraction = metrics.get("mse_unedited"), metrics.get("unedited_fraction")
        if mse is None or fraction is None:
            continue
        mse = mse * fraction if benchmark == "pie-bench" else 3.0 * mse
        mses.append(mse)
        psnrs.append(PSNR_CAP if mse <= 0 else min(PSNR_CAP, 10.0 * math.log10(1.0 / mse)))
    evaluator = (
        "PIE-Bench evaluate.py" if benchmark == "pie-bench" else "BrushNet evaluate_brushnet.py"
    )
    return {"evaluator": evaluator, "psnr_unedited": _mean(psnrs), "mse_unedited": _mean(mses)}


def build_summary(config: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything the report shows, as JSON."""
    ok = [r for r in rows if r.get("ok")]
    benchmark = config["benchmark"]
    errors = Counter(r.get("error_type") or "error" for r in rows if not r.get("ok"))
    metrics = metric_means(ok)
    missing: dict[str, str] = {}
    for row in ok:
        for name, reason in (row.get("missing") or {}).items():
            missing.setdefault(name, reason)
    for name in (*METRICS, *OPTIONAL):
        if metrics[name] is None and name not in missing:
            missing[name] = "no item was measured yet" if not ok else "no measured item had a value"
    for name in list(missing):
        if metrics.get(name) is not None:
            del missing[name]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[str(row.get("group"))].append(row)
    breakdown = {}
    for group, members in sorted(groups.items(), key=lambda kv: _group_order(kv[0])):
        measured = [r for r in members if r.get("ok")]
        entry: dict[str, Any] = {
            "rows": len(members),
            "n": len(measured),
            "metrics": metric_means(measured),
        }
        if benchmark == "pie-bench":
            entry["name"] = PIE_TYPES.get(group, group)
        if config.get("mode") == "agent":
            entry["accepted"] = _share(r.get("accepted") for r in measured)
        breakdown[group] = entry
    summary: dict[str, Any] = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config,
        "benchmark": benchmark,
        "mode": config.get("mode"),
        "n": len(ok),
        "rows": len(rows),
        "errors": dict(errors),
        "metrics": metrics,
        "missing": missing,
        "by_type" if benchmark == "pie-bench" else "by_mask": breakdown,
        "script_convention": script_convention(ok, benchmark),
        "latency_mean_s": _mean(r.get("latency_s") for r in ok),
        "notes": _notes(config, rows),
    }
    if config.get("mode") == "agent":
        summary["agent"] = agent_summary(ok)
    return summary


def agent_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Acceptance, attempts, and the first attempt's metrics against the final result's."""
    both = [r for r in rows if r.get("first_metrics") and r.get("metrics")]
    first, final = metric_means(both, "first_metrics"), metric_means(both, "metrics")
    return {
        "n": len(rows),
        "accepted": _share(r.get("accepted") for r in rows),
        "attempts_mean": _mean(r.get("attempts") for r in rows),
        "retried": _share((r.get("attempts") or 1) > 1 for r in rows),
        "compared": len(both),
        "first_attempt": first,
        "final": final,
        "delta": {
            k: None if first[k] is None or final[k] is None else final[k] - first[k] for k in first
        },
    }


def _group_order(group: str) -> tuple:
    return (0, int(group), "") if group.isdigit() else (1, 0, group)


def _notes(config: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    notes = []
    fills = sum(1 for r in rows if r.get("fill_baseline"))
    if fills:
        notes.append(
            f"{fills} results come from the {config.get('inpainter')} inpainter, which only "
            "fills a mask from its surroundings and ignores the caption: a weight-free fill "
            "baseline, not BrushEdit."
        )
    refused = Counter(r.get("error_type") for r in rows if not r.get("ok"))
    for error_type, count in sorted(refused.items(), key=lambda kv: str(kv[0])):
        notes.append(f"{count} items were not edited ({error_type}); they are not in the means.")
    return notes


def build_items(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per benchmark item: what was asked, what happened, its metrics."""
    keep = (
        "key", "id", "group", "editing_type_id", "mask_kind", "image_path", "prompt",
        "instruction", "mode", "ok", "error_type", "error", "category", "object",
        "target_caption", "accepted", "attempts", "reason", "result", "first_result",
        "fill_baseline", "metrics", "first_metrics", "latency_s",
    )  # fmt: skip
    return [{k: r.get(k) for k in keep if k in r} for r in rows]


def load_bench_run(out: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out = Path(out)
    config = run_config(out, "a benchmark", "eval bench", BenchReportError)
    if "benchmark" not in config:
        raise BenchReportError(f"{out} holds an `eval run`, not a benchmark run")
    rows = sorted(read_results(out / RESULTS), key=lambda r: str(r["key"]))
    return config, rows


def write_bench_report(out: str | Path) -> dict[str, Path]:
    """Write summary.json, items.jsonl and report.html into `out`; returns their paths."""
    out = Path(out)
    config, rows = load_bench_run(out)
    summary = build_summary(config, rows)
    return write_outputs(out, summary, build_items(rows), render_html(summary, rows, out))


# -- html --------------------------------------------------------------------------------------


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def paper_table(summary: dict[str, Any], table: PaperTable) -> str:
    """Our numbers beside the paper's, every value in the paper's units."""
    head = "".join(
        f"<th>{html.escape(u.label)} {'↑' if u.higher_is_better else '↓'}</th>" for u in table.units
    )
    rows = []
    for paper in table.rows:
        cells = "".join(f"<td>{_num(paper.values.get(u.metric))}</td>" for u in table.units)
        rows.append(f"<tr><td>{html.escape(paper.method)}</td>{cells}</tr>")
    ours = summary["metrics"]
    cells = "".join(
        f"<td><b>{_num(None if ours.get(u.metric) is None else ours[u.metric] * u.scale)}</b></td>"
        for u in table.units
    )
    label = f"ours: {summary['mode']} mode, {summary['config'].get('inpainter')} (n={summary['n']})"
    rows.append(f"<tr><td><b>{html.escape(label)}</b></td>{cells}</tr>")
    script = summary["script_convention"]
    cells = "".join(
        f"<td>{_num(None if script.get(u.metric) is None else script[u.metric] * u.scale)}</td>"
        for u in table.units
    )
    rows.append(f"<tr><td>ours, normalised as {html.escape(script['evaluator'])}</td>{cells}</tr>")
    scaling = "; ".join(
        f"{u.label} = our value × {u.scale:g}" for u in table.units if u.scale != 1.0
    )
    return (
        f"<table><tr><th>method</th>{head}</tr>{''.join(rows)}</table>"
        f"<p class='help'>Scaling: {html.escape(scaling)}; PSNR in dB; CLIP is CLIPScore "
        "(100 × cosine, floored at 0) as both benchmarks' evaluators compute it. PSNR/MSE/SSIM/"
        "LPIPS are on the unedited region (both images × (1 − mask)); the first 'ours' row "
        "normalises PSNR and MSE by the unedited pixel count (the paper's definition), the "
        "second as the benchmark's evaluator script does. "
        f"{html.escape(table.note)}</p>"
    )


def _metric_table(named: list[tuple[str, dict[str, Any]]], extra: tuple[str, ...] = ()) -> str:
    names = (*METRICS, *OPTIONAL)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in (*extra, *names))
    body = []
    for label, entry in named:
        metrics = entry.get("metrics") or {}
        cells = "".join(f"<td>{_num(entry.get(k), 3)}</td>" for k in extra)
        cells += "".join(f"<td>{_num(metrics.get(n), 4)}</td>" for n in names)
        body.append(f"<tr><td>{html.escape(label)}</td>{cells}</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(body)}</table>"


def _own(config: dict[str, Any], option: str) -> str:
    """A run's `steps` or `guidance_scale`: as set, or the inpainter's own when it was not."""
    value = config.get(option)
    if value is not None:
        return f"{value:g}" if isinstance(value, (int, float)) else str(value)
    from tools.option_specs import model_default
    from tools.registry import INPAINTERS

    inpainter = config.get("inpainter")
    if inpainter not in INPAINTERS:
        return "the inpainter's own"
    return f"{model_default(option, inpainter):g} ({inpainter}'s own)"


def render_html(summary: dict[str, Any], rows: list[dict[str, Any]], out: Path) -> str:
    config = summary["config"]
    table = TABLES[summary["benchmark"]]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>BrushEdit on {html.escape(summary['benchmark'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(summary['benchmark'])}: {html.escape(str(summary['mode']))} mode</h1>",
        f"<p class='meta'>folder <code>{html.escape(str(config.get('root')))}</code> · "
        f"{summary['n']} measured of {summary['rows']} rows · inpainter "
        f"{html.escape(str(config.get('inpainter')))} · seed {config.get('seed')} · "
        f"{_own(config, 'steps')} steps · guidance {_own(config, 'guidance_scale')} · CLIP "
        f"<code>{html.escape(str(config.get('scorers', {}).get('clip_model')))}</code> · "
        f"generated {summary['generated']}</p>",
    ]
    notes = list(summary["notes"]) + [
        f"{name}: not measured ({reason})" for name, reason in sorted(summary["missing"].items())
    ]
    if notes:
        parts.append("<div class='notes'>")
        parts.extend(f"<p>{html.escape(n)}</p>" for n in notes)
        parts.append("</div>")
    parts.append("<h2>Against the paper</h2>")
    parts.append(paper_table(summary, table))
    parts.append("<h2>Raw means</h2>")
    parts.append(_metric_table([("all", summary)], ("n",)))
    parts.append(
        "<p class='help'>Raw scale: PSNR dB; MSE, SSIM, LPIPS on 0..1 images; CLIP as "
        "CLIPScore (100 × cosine).</p>"
    )
    key = "by_type" if summary["benchmark"] == "pie-bench" else "by_mask"
    title = "Per editing type" if key == "by_type" else "Inside and outside masks"
    parts.append(f"<h2>{title}</h2>")
    named = [(f"{g} {e.get('name', '')}".strip(), e) for g, e in summary[key].items()]
    extra = ("rows", "n", "accepted") if summary["mode"] == "agent" else ("rows", "n")
    parts.append(_metric_table(named, extra))
    if "agent" in summary:
        agent = summary["agent"]
        parts.append("<h2>The verifier loop: first attempt vs final result</h2>")
        parts.append(
            f"<p>accepted {_num(agent['accepted'], 3)} · mean attempts "
            f"{_num(agent['attempts_mean'], 2)} · retried {_num(agent['retried'], 3)} · "
            f"{agent['compared']} items compared</p>"
        )
        parts.append(
            _metric_table(
                [
                    ("first attempt", {"metrics": agent["first_attempt"]}),
                    ("final", {"metrics": agent["final"]}),
                    ("final − first", {"metrics": agent["delta"]}),
                ]
            )
        )
    parts.append("<h2>Lowest background PSNR</h2>")
    parts.append(_cases_html(rows, out))
    parts.append("</body></html>")
    return "\n".join(parts)


def _cases_html(rows: list[dict[str, Any]], out: Path) -> str:
    from PIL import Image

    measured = [r for r in rows if r.get("ok") and r.get("metrics")]
    measured.sort(key=lambda r: r["metrics"].get("psnr_unedited") or 0.0)
    if not measured:
        return "<p>No item measured.</p>"

    def open_rgb(path: Path) -> Any:
        with Image.open(path) as image:
            return image.convert("RGB")

    parts = ["<table><tr><th>item</th><th>metrics</th><th>result</th><th>first attempt</th></tr>"]
    for row in measured[:SHOWN_CASES]:
        m = row["metrics"]
        first = (
            _img(lambda r=row: open_rgb(out / r["first_result"]), "first attempt")
            if row.get("first_result") and row.get("first_result") != row.get("result")
            else "<span class='missing'>same</span>"
        )
        parts.append(
            f"<tr><td><b>{html.escape(str(row['key']))}</b><br>"
            f"<q>{html.escape(str(row.get('instruction') or row.get('prompt')))}</q></td>"
            f"<td>PSNR {_num(m.get('psnr_unedited'))} · SSIM {_num(m.get('ssim_unedited'), 3)}"
            f" · CLIP {_num(m.get('clip_whole'))}/{_num(m.get('clip_edited'))}</td>"
            f"<td>{_img(lambda r=row: open_rgb(out / r['result']), 'result')}</td>"
            f"<td>{first}</td></tr>"
        )
    parts.append("</table>")
    return "".join(parts)


__all__ = ["METRICS", "build_summary", "load_bench_run", "write_bench_report"]
