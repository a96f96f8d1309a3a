"""A self-contained HTML report (figures embedded as data URIs)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from ..io import write_bytes_atomic

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:.5em 0}
.note{color:#555;font-size:.9em}
.warn{color:#8a3b00;background:#fff4e5;padding:.4em .6em;border-left:4px solid #e08a00}"""


def img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def metrics_table(m: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v['precision']:.3f}</td><td>{v['recall']:.3f}</td><td>{v['f1']:.3f}</td>"
        f"<td>{v['support']}</td></tr>"
        for k, v in m["per_class"].items()
    )
    warn = "".join(f"<p class='warn'>&#9888; {html.escape(w)}</p>" for w in m.get("warnings", []))
    return warn + (
        f"<p><b>accuracy {m['accuracy']:.3f}</b> &nbsp; macro-F1 {m['macro_f1']:.3f} &nbsp; n = {m['n']}</p>"
        f"<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{rows}</table>"
    )


def write_report(path: Path, title: str, sections: list[tuple[str, str]]) -> Path:
    body = "".join(f"<h2>{html.escape(h)}</h2>{content}" for h, content in sections)
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    write_bytes_atomic(path, doc.encode())
    return path
