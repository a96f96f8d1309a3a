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
from .data import Item, Split, label_set, load_images, load_items, make_split
from .loop import TrainArgs
from .report import img_tag, write_report
from .run import SIZE, _encode, train_on, write_evaluation


def paired_items(clean: str | Path, masked: str | Path) -> tuple[list[Item], list[Item]]:
    """The items of SRC and of its `maskgen convert` output DST, each kept only if the other has it too."""
    clean_items, masked_items = load_items(Path(clean)), load_items(Path(masked))
    common = {it.group_source for it in clean_items} & {it.source for it in masked_items}
    if not common:
        raise BadParameter(f"no image of {masked} was made from {clean}: pass the SRC and DST of one `maskgen convert`")
    return [it for it in clean_items if it.group_source in common], [it for it in masked_items if it.source in common]


def follow(sp: Split, clean_items: list[Item], masked_items: list[Item]) -> Split:
    """The split of the masked items that puts every masked variant in its clean source's part."""
    where = {clean_items[i].group_source: name for name, idx in sp.index.items() for i in idx}
    return Split(
        sp.mode, sp.note, {k: [i for i, it in enumerate(masked_items) if where[it.source] == k] for k in sp.index}
    )


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
    clean_items, masked_items = paired_items(clean, masked)
    labels = label_set(clean_items + masked_items)
    sp = make_split(clean_items, split, args.seed)  # split once, on the clean sources ...
    msp = follow(sp, clean_items, masked_items)  # ... and every masked variant follows its source
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
            keep = ("accuracy", "accuracy_ci95", "macro_f1", "n", "warnings")
            cells.append({"train": tr, "test": te} | {k: m[k] for k in keep})
    _write_tables(out, cells, args.model, sp)
    return cells


def noise_notes(cells: list[dict[str, Any]]) -> list[str]:
    """For each test set, whether the models trained clean and masked differ by more than the noise: their
    accuracies' 95% Wilson intervals overlap or not (a conservative test at this test set's size)."""
    get = {(c["train"], c["test"]): c for c in cells}
    notes = []
    for te in ("clean", "masked"):
        a, b = get[("clean", te)], get[("masked", te)]
        gap = abs(a["accuracy"] - b["accuracy"]) * 100
        (alo, ahi), (blo, bhi) = a["accuracy_ci95"], b["accuracy_ci95"]
        if alo <= bhi and blo <= ahi:
            notes.append(
                f"On the {te} test set ({a['n']} images) the two models differ by {gap:.1f} points, less than the "
                "noise: their 95% intervals overlap."
            )
        else:
            better = "clean" if a["accuracy"] > b["accuracy"] else "masked"
            notes.append(
                f"On the {te} test set the model trained {better} is better by {gap:.1f} points, beyond the noise."
            )
    return notes


def _write_tables(out: Path, cells: list[dict[str, Any]], model: str, sp: Split) -> None:
    buf = io.StringIO()
    columns = ["train", "test", "accuracy", "ci95_low", "ci95_high", "macro_f1", "n"]
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows({**c, "ci95_low": c["accuracy_ci95"][0], "ci95_high": c["accuracy_ci95"][1]} for c in cells)
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
        row = [
            f"{c['accuracy']:.1%} [{c['accuracy_ci95'][0]:.1%}, {c['accuracy_ci95'][1]:.1%}] (F1 {c['macro_f1']:.3f})"
            for c in (get[(tr, te)] for te in ("clean", "masked"))
        ]
        lines.append(f"| {tr} | {row[0]} | {row[1]} |")
    notes = noise_notes(cells)
    lines += ["", "Accuracy [95% Wilson interval] (macro-F1).", "", *notes]
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
    notes_html = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)
    sections = [("Accuracy matrix", f"<p class='note'>Split: {sp.describe()}.</p>{warn_html}{table}{notes_html}")]
    for c in cells:
        cell = out / f"train-{c['train']}_test-{c['test']}"
        link = f"<p class='note'><a href='{cell.name}/report.html'>per-class metrics and saliency maps</a></p>"
        sections.append((f"train {c['train']} / test {c['test']}", link + img_tag(cell / "confusion.png", "confusion")))
    write_report(out / "report.html", f"{model}: clean vs masked", sections)
