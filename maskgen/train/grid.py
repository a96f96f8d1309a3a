"""Experiment grids: several models (and variants such as `deep-emotion:l1=0.001`) x trained clean or masked
x tested clean or masked, on one split or k folds, as one table of mean +- std. Every cell's run is a
folder of its own; a finished one is reused, so an interrupted grid resumes cell by cell."""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadParameter
from ..io import write_bytes_atomic
from .data import Split, label_set, load_images, make_folds, make_split
from .evaluate import metrics
from .experiment import follow, paired_items
from .loop import TrainArgs
from .models import MODELS
from .report import write_report
from .run import SIZE, Run, _encode, train_on

CONDITIONS = [("clean", "clean"), ("clean", "masked"), ("masked", "clean"), ("masked", "masked")]
NUMERIC = {"lr", "l1", "stn_lr_scale"}
INTEGER = {"epochs", "batch_size", "patience", "seed"}


def parse_variant(spec: str, base: TrainArgs) -> tuple[str, TrainArgs]:
    """`name` or `name:key=value;key=value` (e.g. `deep-emotion:l1=0.001`) -> (label, training arguments);
    commas separate the models themselves."""
    name, _, opts = spec.strip().partition(":")
    MODELS.get(name)
    args = replace(base, model=name)
    for pair in filter(None, opts.split(";")):
        key, sep, value = pair.partition("=")
        if not sep or key not in NUMERIC | INTEGER:
            raise BadParameter(
                f"model variant {spec!r}: use name:key=value with key one of {sorted(NUMERIC | INTEGER)}"
            )
        args = replace(args, **{key: int(value) if key in INTEGER else float(value)})
    return spec.strip(), args


def grid(
    clean: str | Path,
    masked: str | Path,
    out: str | Path,
    base: TrainArgs,
    models: list[str],
    split: str = "subject",
    folds: int | None = None,
    progress: bool = True,
    echo: Any = None,
) -> dict[str, Any]:
    """Run every (model, fold, train condition) once and test it on both test sets; write OUT/matrix.md,
    matrix.csv, grid.json and report.html. `echo` (a print function) reports each cell as it finishes."""
    out = Path(out)
    variants = [parse_variant(m, base) for m in models]
    clean_items, masked_items = paired_items(clean, masked)
    labels = label_set(clean_items + masked_items)
    splits = make_folds(clean_items, folds, split, base.seed) if folds else [make_split(clean_items, split, base.seed)]
    data = {
        "clean": (clean_items, load_images(clean_items, SIZE)),
        "masked": (masked_items, load_images(masked_items, SIZE)),
    }
    ys = {name: _encode(items, labels) for name, (items, _) in data.items()}
    rows: list[dict[str, Any]] = []
    total, done, start = len(variants) * len(splits) * 2, 0, time.perf_counter()
    for label, args in variants:
        for f, sp in enumerate(splits, 1):
            parts = {"clean": sp, "masked": follow(sp, clean_items, masked_items)}
            cell_dir = out / _safe(label) / (f"fold-{f:02d}" if folds else "split")
            for tr in ("clean", "masked"):
                run_dir = cell_dir / f"train-{tr}"
                items, x = data[tr]
                if (run_dir / "run.json").exists() and json.loads((run_dir / "run.json").read_text())[
                    "train_args"
                ] == args.resolved():
                    run = Run.load(run_dir)
                else:
                    run, _ = train_on(
                        items, labels, parts[tr], run_dir, args, str(clean if tr == "clean" else masked), progress, x
                    )
                for te in ("clean", "masked"):
                    idx = np.array(parts[te].index["test"] or parts[te].index["val"], dtype=int)
                    pred = run.predict_proba(data[te][1][idx]).argmax(1) if len(idx) else np.zeros(0, int)
                    m = metrics(ys[te][idx], pred, labels)
                    rows.append(
                        {
                            "model": label,
                            "fold": f,
                            "train": tr,
                            "test": te,
                            "accuracy": m["accuracy"],
                            "macro_f1": m["macro_f1"],
                            "n": m["n"],
                        }
                    )
                done += 1
                if echo:
                    left = (time.perf_counter() - start) / done * (total - done) / 60
                    where_ = f"fold {f}" if folds else "split"
                    echo(f"[{done}/{total}] {label}, {where_}, trained {tr} (~{left:.0f} min left)")
    summary = _summarise(rows, [v[0] for v in variants])
    _write(out, rows, summary, [v[0] for v in variants], splits[0], folds)
    return summary


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in label)


def _summarise(rows: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label in labels:
        for tr, te in CONDITIONS:
            acc = np.array([r["accuracy"] for r in rows if (r["model"], r["train"], r["test"]) == (label, tr, te)])
            out[f"{label}|{tr}|{te}"] = {
                "mean": float(acc.mean()),
                "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                "folds": len(acc),
            }
    return out


def _write(
    out: Path, rows: list[dict[str, Any]], summary: dict[str, Any], labels: list[str], sp: Split, folds: int | None
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(
        buf, fieldnames=["model", "fold", "train", "test", "accuracy", "macro_f1", "n"], lineterminator="\n"
    )
    w.writeheader()
    w.writerows(rows)
    write_bytes_atomic(out / "matrix.csv", buf.getvalue().encode())
    write_bytes_atomic(out / "grid.json", (json.dumps(summary, indent=1) + "\n").encode())
    how = f"{folds}-fold cross-validation ({sp.mode}), mean +- std over folds" if folds else f"one {sp.describe()}"
    head = "| train / test | " + " | ".join(labels) + " |"
    lines = [f"# Clean vs masked: {how}", "", head, "|---|" + "---|" * len(labels)]
    for tr, te in CONDITIONS:
        cells = []
        for label in labels:
            c = summary[f"{label}|{tr}|{te}"]
            cells.append(f"{c['mean']:.1%} +- {c['std']:.1%}" if folds else f"{c['mean']:.1%}")
        lines.append(f"| {tr} / {te} | " + " | ".join(cells) + " |")
    md = "\n".join(lines) + "\n"
    write_bytes_atomic(out / "matrix.md", md.encode())
    table = "<pre>" + md.replace("&", "&amp;").replace("<", "&lt;") + "</pre>"
    write_report(out / "report.html", "Experiment grid", [("Accuracy", table)])
