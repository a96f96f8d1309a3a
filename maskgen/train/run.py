"""The trainer's entry points: train a model into a run folder, evaluate a run on data, and run the
clean-vs-masked matrix. A run folder holds the model, run.json (labels, preprocessing, split, history),
metrics.json, figures and report.html."""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import BadParameter
from ..io import write_bytes_atomic
from . import evaluate as ev
from .data import Item, Split, label_set, load_images, load_items, make_folds, make_split
from .loop import History, TrainArgs, fit_classical, fit_torch, is_classical, predict_proba_torch, to_tensor
from .models import MODELS, hog_features
from .report import img_tag, metrics_table, write_report

SIZE = 48
# test-time views for reported metrics: the image and its mirror, each also enlarged and reduced (six
# views; on FER2013's PublicTest +0.8-1.0 points over the two mirror views, bench/fer2013.py). Predictions
# on new images and the saliency maps use the two mirror views.
EVAL_TTA = "zoom"


@dataclass
class Run:
    """A trained model with what it needs to predict: labels and preprocessing."""

    path: Path
    meta: dict[str, Any]
    model: Any

    @property
    def labels(self) -> list[str]:
        return self.meta["labels"]

    @classmethod
    def load(cls, path: str | Path) -> Run:
        path = Path(path)
        if not (path / "run.json").exists():
            raise BadParameter(f"{path}: not a maskgen run (no run.json); train one with `maskgen train`")
        meta = json.loads((path / "run.json").read_text())
        if is_classical(meta["model"]):
            with open(path / "model.pkl", "rb") as f:
                model = pickle.load(f)
        else:
            model = MODELS.create(meta["model"], classes=len(meta["labels"])).to(memory_format=torch.channels_last)
            model.load_state_dict(torch.load(path / "model.pt", map_location="cpu", weights_only=True))
            model.eval()
        return cls(path, meta, model)

    def predict_proba(self, x: np.ndarray, tta: str = "flip") -> np.ndarray:
        """(N, 48, 48) uint8 grayscale faces -> (N, classes) probabilities, averaged over the test-time
        views `tta` (none, flip, zoom; torch models)."""
        if is_classical(self.meta["model"]):
            return self.model.predict_proba(hog_features(x))
        return predict_proba_torch(self.model, to_tensor(x), tta=tta)


def _save_model(out: Path, name: str, model: Any) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if is_classical(name):
        write_bytes_atomic(out / "model.pkl", pickle.dumps(model))
    else:
        import io

        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        write_bytes_atomic(out / "model.pt", buf.getvalue())


def _encode(items: list[Item], labels: list[str]) -> np.ndarray:
    unknown = sorted({it.label for it in items} - set(labels))
    if unknown:
        raise BadParameter(f"labels {unknown} are not among the model's labels ({', '.join(labels)})")
    return np.array([labels.index(it.label) for it in items], dtype=np.int64)


def fit(args: TrainArgs, labels: list[str], xtr, ytr, xva, yva, progress: bool = True) -> tuple[Any, History]:
    if is_classical(args.model):
        return fit_classical(args, len(labels), xtr, ytr)
    return fit_torch(args, len(labels), xtr, ytr, xva, yva, progress)


def write_evaluation(
    run: Run, x: np.ndarray, y: np.ndarray, out: Path, title: str, note: str = "", history: History | None = None
) -> dict[str, Any]:
    """metrics.json, confusion.png, saliency.png (and curves.png) and report.html in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    proba = run.predict_proba(x, tta=EVAL_TTA)
    pred = proba.argmax(1) if len(proba) else np.zeros(0, int)
    m = ev.metrics(y, pred, run.labels)
    m["tta"] = "none" if is_classical(run.meta["model"]) else EVAL_TTA
    m["note"] = note
    write_bytes_atomic(out / "metrics.json", (json.dumps(m, indent=1) + "\n").encode())
    figs = [("Confusion matrix", ev.confusion_png(y, pred, run.labels, out / "confusion.png", title))]
    if len(x):
        figs.append(
            (
                "Occlusion saliency (true class)",
                ev.saliency_png(run.predict_proba, x, y, run.labels, out / "saliency.png"),
            )
        )
    if history is not None and history.epochs:
        figs.append(("Training curves", ev.curves_png(history.epochs, out / "curves.png", title)))
    sections = [("Summary", f"<p class='note'>{note}</p>" + metrics_table(m))]
    sections += [(h, img_tag(p, h)) for h, p in figs]
    write_report(out / "report.html", title, sections)
    return m


def train(
    data: str | Path,
    out: str | Path,
    args: TrainArgs,
    split: str = "subject",
    progress: bool = True,
    folds: int | None = None,
    val: str | Path | None = None,
) -> dict[str, Any]:
    """Train `args.model` on DATA; evaluate on the held-out test split; write everything into OUT.

    With `folds`, k-fold cross-validation instead (see `cross_validate`). With `val`, a separate set
    (e.g. FER2013's PublicTest) for early stopping: DATA is all training data, and the test split is
    DATA's own `test` items if it has any, else `val` itself (and the report says so)."""
    if args.model not in MODELS:
        MODELS.get(args.model)
    items = load_items(data)
    if val is not None:
        if folds:
            raise BadParameter("--val and --folds do not go together: each fold holds out its own validation part")
        extra = load_items(Path(val))
        own_test = [i for i, it in enumerate(items) if it.split.lower() in ("test", "privatetest")]
        train_idx = [i for i in range(len(items)) if i not in set(own_test)]
        val_idx = list(range(len(items), len(items) + len(extra)))
        items = items + extra
        test_idx = own_test or val_idx
        note = f"validation: {val} ({len(extra)} images)" + ("" if own_test else "; no test split: reported on it")
        sp = Split("given", note, {"train": train_idx, "val": val_idx, "test": test_idx})
        return train_on(items, label_set(items), sp, Path(out), args, str(data), progress)[1]
    labels = label_set(items)
    if folds:
        return cross_validate(
            items, labels, make_folds(items, folds, split, args.seed), Path(out), args, str(data), progress
        )
    sp = make_split(items, split, args.seed)
    return train_on(items, labels, sp, Path(out), args, str(data), progress)[1]


def cross_validate(
    items: list[Item],
    labels: list[str],
    folds: list[Split],
    out: Path,
    args: TrainArgs,
    data_name: str,
    progress: bool = True,
) -> dict[str, Any]:
    """One run per fold in OUT/fold-NN (a finished fold is reused: an interrupted run resumes), then
    OUT/metrics.json: each fold's accuracy and macro-F1, their mean and standard deviation, and the
    metrics of all folds' test predictions pooled (with a 95% Wilson interval), a pooled confusion
    matrix and report.html."""
    x = load_images(items, SIZE)
    y = _encode(items, labels)
    per_fold, ys, preds = [], [], []
    for f, sp in enumerate(folds, 1):
        fold_out = out / f"fold-{f:02d}"
        test = np.array(sp.index["test"], dtype=int)
        done = fold_out / "metrics.json"
        if done.exists() and json.loads((fold_out / "run.json").read_text())["train_args"] == args.resolved():
            run, m = Run.load(fold_out), json.loads(done.read_text())
        else:
            run, m = train_on(items, labels, sp, fold_out, args, data_name, progress, x)
        ys.append(y[test])
        preds.append(run.predict_proba(x[test], tta=EVAL_TTA).argmax(1))
        per_fold.append({"fold": f, "n": m["n"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]})
    y_all, pred_all = np.concatenate(ys), np.concatenate(preds)
    acc, f1 = np.array([r["accuracy"] for r in per_fold]), np.array([r["macro_f1"] for r in per_fold])
    pooled = ev.metrics(y_all, pred_all, labels)
    m = {
        "folds": len(folds),
        "split": folds[0].mode,
        "accuracy_mean": float(acc.mean()),
        "accuracy_std": float(acc.std(ddof=1)),
        "macro_f1_mean": float(f1.mean()),
        "macro_f1_std": float(f1.std(ddof=1)),
        "per_fold": per_fold,
        **pooled,
        "note": (
            f"{args.model} on {data_name}: {len(folds)}-fold cross-validation by "
            f"{'subject' if folds[0].mode == 'subject' else 'source image'}, stratified by label; each fold "
            f"trained with a tenth of its training part held out for early stopping"
            + (f"; {folds[0].note}" if folds[0].note else "")
        ),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "metrics.json", (json.dumps(m, indent=1) + "\n").encode())
    title = f"{args.model}: {Path(data_name).name}, {len(folds)}-fold"
    cm = ev.confusion_png(y_all, pred_all, labels, out / "confusion.png", title + " (pooled)")
    rows = "".join(
        f"<tr><td><a href='fold-{r['fold']:02d}/report.html'>fold {r['fold']}</a></td><td>{r['n']}</td>"
        f"<td>{r['accuracy']:.3f}</td><td>{r['macro_f1']:.3f}</td></tr>"
        for r in per_fold
    )
    summary = (
        f"<p class='note'>{m['note']}</p><p>accuracy {m['accuracy_mean']:.3f} &plusmn; {m['accuracy_std']:.3f}, "
        f"macro-F1 {m['macro_f1_mean']:.3f} &plusmn; {m['macro_f1_std']:.3f} (mean &plusmn; std over folds)</p>"
        f"<table><tr><th>fold</th><th>n</th><th>accuracy</th><th>macro-F1</th></tr>{rows}</table>"
    )
    write_report(
        out / "report.html",
        title,
        [
            ("Folds", summary),
            ("All folds pooled", metrics_table(pooled)),
            ("Confusion matrix", img_tag(cm, "confusion")),
        ],
    )
    return m


def train_on(
    items: list[Item],
    labels: list[str],
    sp: Split,
    out: Path,
    args: TrainArgs,
    data_name: str,
    progress: bool = True,
    x: np.ndarray | None = None,
) -> tuple[Run, dict[str, Any]]:
    x = load_images(items, SIZE) if x is None else x
    y = _encode(items, labels)
    tr, va, te = (np.array(sp.index[k], dtype=int) for k in ("train", "val", "test"))
    if len(tr) == 0:
        raise BadParameter("the split left no training images")
    model, hist = fit(args, labels, x[tr], y[tr], x[va], y[va], progress)
    _save_model(out, args.model, model)
    meta = {
        "model": args.model,
        "labels": labels,
        "data": data_name,
        "preprocess": {
            "gray": True,
            "size": SIZE,
            "input": "the whole image (an aligned face crop)",
            "normalise": "x / 127.5 - 1",
        },
        "train_args": args.resolved(),
        "split": {"mode": sp.mode, "note": sp.note, "counts": {k: len(v) for k, v in sp.index.items()}},
        "history": asdict(hist),
    }
    write_bytes_atomic(out / "run.json", (json.dumps(meta, indent=1) + "\n").encode())
    run = Run(out, meta, model)
    test = te if len(te) else va
    note = (
        f"{args.model} on {data_name}; evaluated on the {'test' if len(te) else 'validation'} part of a "
        f"{sp.describe()}; trained {hist.seconds:.0f} s, best epoch {hist.best_epoch}."
    )
    return run, write_evaluation(run, x[test], y[test], out, f"{args.model}: {Path(data_name).name}", note, hist)


# the usual spellings of the basic emotions across FER datasets (CK+ "anger", JAFFE/FER2013 "angry", ...)
SYNONYMS = [
    {"angry", "anger", "an"},
    {"disgust", "disgusted", "di"},
    {"fear", "fearful", "afraid", "fe"},
    {"happy", "happiness", "joy", "ha"},
    {"sad", "sadness", "sa"},
    {"surprise", "surprised", "su"},
    {"neutral", "neutrality", "ne"},
    {"contempt"},
]


def resolve_label_map(spec: str | dict[str, str] | None, data_labels: set[str], model_labels: list[str]) -> dict:
    """{data label: model label, or "" to leave those items out}.

    `spec`: "auto" (known synonyms: anger -> angry, sadness -> sad, ...), "a=b,c=d" pairs (`contempt=` drops
    contempt), or a dict. Labels it does not name are kept as they are."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        mapping = dict(spec)
    elif spec.strip().lower() == "auto":
        mapping = {}
        for lab in data_labels - set(model_labels):
            group = next((g for g in SYNONYMS if lab.lower() in g), set())
            match = [m for m in model_labels if m.lower() in group]
            if match:
                mapping[lab] = match[0]
    else:
        mapping = {}
        for pair in spec.split(","):
            a, sep, b = pair.partition("=")
            if not sep or not a.strip():
                raise BadParameter(
                    f"--label-map takes auto or data=model pairs like anger=angry,contempt=; got {pair!r}"
                )
            mapping[a.strip()] = b.strip()
    bad = sorted(v for v in mapping.values() if v and v not in model_labels)
    if bad:
        raise BadParameter(f"--label-map names {bad}, not among the model's labels ({', '.join(model_labels)})")
    return mapping


def default_eval_dir(run_dir: str | Path, data: str | Path) -> Path:
    """RUN/eval-<DATA's last name> (DATA a path or a URL)."""
    return Path(run_dir) / f"eval-{str(data).rstrip('/').rsplit('/', 1)[-1]}"


def evaluate(
    run_dir: str | Path,
    data: str | Path,
    out: str | Path | None = None,
    split: str | None = None,
    label_map: str | dict[str, str] | None = None,
) -> dict[str, Any]:
    """Evaluate a run on DATA (all of it, or only its given `split`); `label_map` renames DATA's labels
    to the model's (see `resolve_label_map`)."""
    run = Run.load(run_dir)
    items = load_items(data)
    if split:
        items = [it for it in items if it.split == split]
        if not items:
            raise BadParameter(f"{data} has no items in split {split!r}")
    mapping = resolve_label_map(label_map, {it.label for it in items}, run.labels)
    if mapping:
        items = [replace(it, label=mapping.get(it.label, it.label)) for it in items]
        items = [it for it in items if it.label]
        if not items:
            raise BadParameter(f"--label-map leaves no items of {data} to evaluate")
    unknown = sorted({it.label for it in items} - set(run.labels))
    if unknown:
        hint = resolve_label_map("auto", set(unknown), run.labels)
        raise BadParameter(
            f"labels {unknown} of {data} are not among the model's ({', '.join(run.labels)}); map them with "
            + (f"--label-map auto ({', '.join(f'{a}={b}' for a, b in sorted(hint.items()))})" if hint else "")
            + (" or " if hint else "")
            + "--label-map data=model pairs (a label mapped to nothing, e.g. contempt=, is left out)"
        )
    x, y = load_images(items, SIZE), _encode(items, run.labels)
    out = Path(out) if out else default_eval_dir(run_dir, data)
    note = (
        f"{run.meta['model']} from {run_dir} on {data}" + (f" (split {split})" if split else "") + f": {len(y)} images"
    )
    return write_evaluation(run, x, y, out, f"{run.meta['model']} on {Path(data).name}", note)
