"""A self-contained HTML report of a session's trace: each step with its prompts and images.

Images are embedded as data-URI thumbnails, so the file can be mailed or attached to an issue.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphs.artifacts import is_hash

if TYPE_CHECKING:
    from graphs.artifacts import ArtifactStore

THUMB_SIDE = 256

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.4rem} h2{font-size:1.05rem;margin:0}
.step{border:1px solid #ddd;border-radius:8px;padding:.8rem 1rem;margin:1rem 0}
.err{border-color:#c33;background:#fff5f5} .meta{color:#666;font-size:.85rem}
.imgs{display:flex;gap:.8rem;flex-wrap:wrap;margin:.5rem 0}
figure{margin:0} figcaption{font-size:.8rem;color:#555;text-align:center}
img{max-width:256px;border:1px solid #ccc;background:#eee}
pre{background:#f6f6f6;padding:.5rem;overflow-x:auto;white-space:pre-wrap;font-size:.8rem}
details{margin:.3rem 0} summary{cursor:pointer;color:#135}
.ok{color:#171} .bad{color:#b11}
"""


def render_report(
    session_id: str, events: list[dict[str, Any]], turns: list[dict[str, Any]],
    store: ArtifactStore,
) -> str:
    """The report as an HTML string."""
    cache: dict[str, str | None] = {}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>brushedit trace {_e(session_id)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Session {_e(session_id)}</h1>",
    ]
    if turns:
        parts.append("<table><tr><th>turn</th><th>instruction</th><th>status</th>"
                     "<th>accepted</th><th>undone</th></tr>")
        for t in turns:
            parts.append(
                f"<tr><td>{t['turn']}</td><td>{_e(t['instruction'])}</td><td>{_e(t['status'])}"
                f"</td><td>{'yes' if t['accepted'] else 'no'}</td>"
                f"<td>{'yes' if t['undone'] else ''}</td></tr>"
            )
        parts.append("</table>")
    for event in events:
        parts.append(_step(event, store, cache))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    path: str | Path, session_id: str, events: list[dict[str, Any]],
    turns: list[dict[str, Any]], store: ArtifactStore,
) -> Path:
    from graphs.artifacts import write_text_atomic

    return write_text_atomic(path, render_report(session_id, events, turns, store))


def _step(event: dict[str, Any], store: ArtifactStore, cache: dict[str, str | None]) -> str:
    status = event.get("status")
    title = (f"turn {event.get('turn')} · attempt {event.get('attempt')} · "
             if event.get("turn") is not None else "")
    out = [f"<div class='step{' err' if status == 'error' else ''}'>",
           f"<h2>{_e(title)}{_e(event['node'])} "
           f"<span class='{'ok' if status == 'ok' else 'bad'}'>{_e(status)}</span></h2>",
           f"<div class='meta'>{_e(event.get('started'))} · "
           f"{event.get('duration_ms') or 0:.0f} ms</div>"]
    if event.get("error"):
        out.append(f"<pre>{_e(event['error'])}</pre>")
    figures = []
    for label, digest in (event.get("images") or {}).items():
        uri = _thumb(digest, store, cache) if is_hash(digest) else None
        if uri:
            figures.append(f"<figure><img src='{uri}' alt='{_e(label)}'>"
                           f"<figcaption>{_e(label)} {digest[:10]}</figcaption></figure>")
    if figures:
        out.append("<div class='imgs'>" + "".join(figures) + "</div>")
    for key in ("verdict", "outputs", "params", "inputs"):
        value = event.get(key)
        if value:
            out.append(f"<details{' open' if key in ('verdict', 'outputs') else ''}>"
                       f"<summary>{key}</summary><pre>{_e(_pretty(value))}</pre></details>")
    for i, call in enumerate(event.get("calls") or [], 1):
        out.append(
            f"<details><summary>model call {i}: {_e(call.get('model'))} "
            f"({call.get('duration_ms') or 0:.0f} ms){' — error' if call.get('error') else ''}"
            f"</summary><b>system</b><pre>{_e(call.get('system'))}</pre>"
            f"<b>prompt</b><pre>{_e(call.get('prompt'))}</pre>"
            f"<b>raw answer</b><pre>{_e(call.get('raw'))}</pre>"
            f"<b>parsed</b><pre>{_e(_pretty(call.get('parsed')))}</pre>"
            + (f"<b>error</b><pre>{_e(call.get('error'))}</pre>" if call.get("error") else "")
            + "</details>"
        )
    out.append("</div>")
    return "\n".join(out)


def _thumb(digest: str, store: ArtifactStore, cache: dict[str, str | None]) -> str | None:
    if digest in cache:
        return cache[digest]
    uri = None
    if store.has(digest):
        from PIL import Image

        with Image.open(store.path(digest)) as image:
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            buffer = io.BytesIO()
            if image.mode == "L":  # masks stay crisp and tiny as PNG
                image.save(buffer, format="PNG", optimize=True)
                kind = "png"
            else:
                image.convert("RGB").save(buffer, format="JPEG", quality=82)
                kind = "jpeg"
        uri = f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode()
    cache[digest] = uri
    return uri


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))
