"""Experiment grids: several models (and variants such as `deep-emotion:l1=0.001`) x trained on the clean data
or on one of several masked versions of it x tested on each, on one split or k folds, as one table of mean +-
std. Every cell's run is a folder of its own; a finished one is reused, so an interrupted grid resumes cell
by cell."""

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
from .data import Item, Split, label_set, load_images, load_items, make_folds, make_split
from .evaluate import metrics
from .experiment import follow, paired_items
from .loop import TrainArgs
from .models import MODELS
from .report import write_report
from .run import EVAL_TTA, SIZE, Run, _encode, train_on

CLEAN = "clean"
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


def named_sets(masked: str | Path | dict[str, str | Path] | list[str | Path]) -> dict[str, Path]:
    """The masked versions by name: a dict as given, one path as "masked", several by folder name."""
    if isinstance(masked, dict):
        sets = {str(k): Path(v) for k, v in masked.items()}
    elif isinstance(masked, (str, Path)):
        sets = {"masked": Path(masked)}
    else:
        paths = [Path(p) for p in masked]
        sets = {"masked": paths[0]} if len(paths) == 1 else {p.name: p for p in paths}
        if len(sets) < len(paths):
            raise BadParameter("two masked sets share a folder name; name them: --masked zero=PATH")
    for name in sets:
        if name == CLEAN or not name or _safe(name) != name:
            raise BadParameter(f"masked set name {name!r}: use letters, digits, '-', '_' or '.', and not 'clean'")
    return sets


def aligned_sets(clean: str | Path, masked: dict[str, Path]) -> dict[str, list[Item]]:
    """The clean items and each masked version's, keeping only the sources every one of them has."""
    sets = {CLEAN: load_items(Path(clean))}
    for name, path in masked.items():
        _, sets[name] = paired_items(clean, path)
    common = {it.group_source for it in sets[CLEAN]}
    for name in masked:
        common &= {it.source for it in sets[name]}
    return {
        name: [it for it in items if (it.group_source if name == CLEAN else it.source) in common]
        for name, items in sets.items()
    }


def grid(
    clean: str | Path,
    masked: str | Path | dict[str, str | Path] | list[str | Path],
    out: str | Path,
    base: TrainArgs,
    models: list[str],
    split: str = "subject",
    folds: int | None = None,
    progress: bool = True,
    echo: Any = None,
) -> dict[str, Any]:
    """Run every (model, fold, training set) once and test it on every test set (the clean data and each
    masked version: `masked` is one path, several, or {name: path}); write OUT/matrix.md, matrix.csv, grid.json
    and report.html. `echo` (a print function) reports each cell as it finishes."""
    out = Path(out)
    variants = [parse_variant(m, base) for m in models]
    paths = {CLEAN: Path(clean), **named_sets(masked)}
    sets = aligned_sets(clean, {k: v for k, v in paths.items() if k != CLEAN})
    clean_items = sets[CLEAN]
    labels = label_set([it for items in sets.values() for it in items])
    splits = make_folds(clean_items, folds, split, base.seed) if folds else [make_split(clean_items, split, base.seed)]
    data = {name: (items, load_images(items, SIZE)) for name, items in sets.items()}
    ys = {name: _encode(items, labels) for name, (items, _) in data.items()}
    rows: list[dict[str, Any]] = []
    total, done, start = len(variants) * len(splits) * len(sets), 0, time.perf_counter()
    for label, args in variants:
        for f, sp in enumerate(splits, 1):
            parts = {name: sp if name == CLEAN else follow(sp, clean_items, items) for name, items in sets.items()}
            cell_dir = out / _safe(label) / (f"fold-{f:02d}" if folds else "split")
            for tr in sets:
                run_dir = cell_dir / f"train-{tr}"
                items, x = data[tr]
                if (run_dir / "run.json").exists() and json.loads((run_dir / "run.json").read_text())[
                    "train_args"
                ] == args.resolved():
                    run = Run.load(run_dir)
                else:
                    run, _ = train_on(items, labels, parts[tr], run_dir, args, str(paths[tr]), progress, x)
                for te in sets:
                    idx = np.array(parts[te].index["test"] or parts[te].index["val"], dtype=int)
                    pred = run.predict_proba(data[te][1][idx], tta=EVAL_TTA).argmax(1) if len(idx) else np.zeros(0, int)
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
    conditions = [(tr, te) for tr in sets for te in sets]
    summary = _summarise(rows, [v[0] for v in variants], conditions)
    _write(out, rows, summary, [v[0] for v in variants], conditions, splits[0], folds)
    return summary


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in label)


def _summarise(rows: list[dict[str, Any]], labels: list[str], conditions: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label in labels:
        for tr, te in conditions:
            acc = np.array([r["accuracy"] for r in rows if (r["model"], r["train"], r["test"]) == (label, tr, te)])
            out[f"{label}|{tr}|{te}"] = {
                "mean": float(acc.mean()),
                "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                "folds": len(acc),
            }
    return out


def _write(
    out: Path,
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    labels: list[str],
    conditions: list[tuple[str, str]],
    sp: Split,
    folds: int | None,
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
    for tr, te in conditions:
        cells = []
        for label in labels:
            c = summary[f"{label}|{tr}|{te}"]
            cells.append(f"{c['mean']:.1%} +- {c['std']:.1%}" if folds else f"{c['mean']:.1%}")
        lines.append(f"| {tr} / {te} | " + " | ".join(cells) + " |")
    md = "\n".join(lines) + "\n"
    write_bytes_atomic(out / "matrix.md", md.encode())
    table = "<pre>" + md.replace("&", "&amp;").replace("<", "&lt;") + "</pre>"
    write_report(out / "report.html", "Experiment grid", [("Accuracy", table)])
