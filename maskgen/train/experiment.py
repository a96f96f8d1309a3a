"""The classic mask matrix: train on clean and on masked data, test each on clean and masked, same split."""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadParameter
from ..io import write_bytes_atomic
from .data import Split, label_set, load_images, load_items, make_split
from .loop import TrainArgs
from .report import img_tag, write_report
from .run import SIZE, _encode, train_on, write_evaluation


def experiment(
    clean: str | Path,
    masked: str | Path,
    out: str | Path,
    args: TrainArgs,
    split: str = "subject",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Write OUT/matrix.md, matrix.csv, report.html and one folder per cell; return the cells."""
    out = Path(out)
    clean_items, masked_items = load_items(Path(clean)), load_items(Path(masked))
    common = {it.group_source for it in clean_items} & {it.source for it in masked_items}
    if not common:
        raise BadParameter(f"no image of {masked} was made from {clean}: pass the SRC and DST of one `maskgen convert`")
    clean_items = [it for it in clean_items if it.group_source in common]
    masked_items = [it for it in masked_items if it.source in common]
    labels = label_set(clean_items + masked_items)
    sp = make_split(clean_items, split, args.seed)  # split once, on the clean sources ...
    where = {clean_items[i].group_source: name for name, idx in sp.index.items() for i in idx}
    msp = Split(
        sp.mode, sp.note, {k: [i for i, it in enumerate(masked_items) if where[it.source] == k] for k in sp.index}
    )  # ... and every masked variant follows its source
    data = {
        "clean": (clean_items, sp, load_images(clean_items, SIZE)),
        "masked": (masked_items, msp, load_images(masked_items, SIZE)),
    }
    runs = {}
    for name, (items, s, x) in data.items():
        runs[name], _ = train_on(
            items, labels, s, out / f"train-{name}", args, str(clean if name == "clean" else masked), progress, x
        )
    cells = []
    for tr, run in runs.items():
        for te, (items, s, x) in data.items():
            idx = np.array(s.index["test"] or s.index["val"], dtype=int)
            y = _encode([items[i] for i in idx], labels)
            note = f"trained on {tr}, tested on {te}: {len(idx)} images, {sp.describe()}"
            m = write_evaluation(run, x[idx], y, out / f"train-{tr}_test-{te}", f"train {tr} / test {te}", note)
            cells.append({"train": tr, "test": te} | {k: m[k] for k in ("accuracy", "macro_f1", "n", "warnings")})
    _write_tables(out, cells, args.model, sp)
    return cells


def _write_tables(out: Path, cells: list[dict[str, Any]], model: str, sp: Split) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(
        buf, fieldnames=["train", "test", "accuracy", "macro_f1", "n"], lineterminator="\n", extrasaction="ignore"
    )
    w.writeheader()
    w.writerows(cells)
    write_bytes_atomic(out / "matrix.csv", buf.getvalue().encode())
    get = {(c["train"], c["test"]): c for c in cells}
    lines = [
        f"# {model}: clean vs masked",
        "",
        f"Split: {sp.describe()}.",
        "",
        "| train \\ test | clean | masked |",
        "|---|---|---|",
    ]
    for tr in ("clean", "masked"):
        row = [f"{get[(tr, te)]['accuracy']:.1%} (F1 {get[(tr, te)]['macro_f1']:.3f})" for te in ("clean", "masked")]
        lines.append(f"| {tr} | {row[0]} | {row[1]} |")
    warns = [f"train {c['train']} / test {c['test']}: {w}" for c in cells for w in c["warnings"]]
    lines += ["", *(f"Warning: {w}" for w in warns)] if warns else []
    md = "\n".join(lines) + "\n"
    write_bytes_atomic(out / "matrix.md", md.encode())
    table = (
        "<table><tr><th>train \\ test</th><th>clean</th><th>masked</th></tr>"
        + "".join(
            f"<tr><td>{tr}</td>"
            + "".join(
                f"<td>{get[(tr, te)]['accuracy']:.1%}<br>F1 {get[(tr, te)]['macro_f1']:.3f}</td>"
                for te in ("clean", "masked")
            )
            + "</tr>"
            for tr in ("clean", "masked")
        )
        + "</table>"
    )
    warn_html = "".join(f"<p class='warn'>&#9888; {html.escape(w)}</p>" for w in warns)
    sections = [("Accuracy matrix", f"<p class='note'>Split: {sp.describe()}.</p>{warn_html}{table}")]
    for c in cells:
        cell = out / f"train-{c['train']}_test-{c['test']}"
        link = f"<p class='note'><a href='{cell.name}/report.html'>per-class metrics and saliency maps</a></p>"
        sections.append((f"train {c['train']} / test {c['test']}", link + img_tag(cell / "confusion.png", "confusion")))
    write_report(out / "report.html", f"{model}: clean vs masked", sections)
