"""Metrics and figures: accuracy, macro-F1, per-class precision/recall/F1, a confusion matrix, occlusion
saliency maps (slide a patch, measure the drop of the true class) and training curves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Proba = Callable[[np.ndarray], np.ndarray]  # (N,48,48) uint8 -> (N, classes)


def metrics(y: np.ndarray, pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    k = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=k, zero_division=0)
    hits = int(np.sum(np.asarray(y) == np.asarray(pred))) if len(y) else 0
    return {
        "warnings": prediction_warnings(y, pred, labels),
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)) if len(y) else 0.0,
        "accuracy_ci95": list(wilson(hits, len(y))),
        "macro_f1": float(f1_score(y, pred, labels=k, average="macro", zero_division=0)) if len(y) else 0.0,
        "per_class": {
            lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, lab in enumerate(labels)
        },
    }


def wilson(hits: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a proportion hits/n: honest for small n and for
    proportions near 0 or 1, where the usual p +- z*sqrt(p(1-p)/n) is not."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def prediction_warnings(y: np.ndarray, pred: np.ndarray, labels: list[str]) -> list[str]:
    """Plain-words warnings a table of numbers hides: a model that answers one class for (nearly) every
    image, and classes present in the data that it never predicts."""
    if len(y) < 20:
        return []
    out = []
    share = np.bincount(pred, minlength=len(labels)) / len(pred)
    top = int(share.argmax())
    truth = float(np.mean(y == top))
    if share[top] >= 0.9 and truth < 0.75:
        out.append(
            f"collapsed: predicts '{labels[top]}' for {share[top]:.0%} of images (only {truth:.0%} are); "
            "on its own training data this means training diverged"
        )
    never = [labels[i] for i in range(len(labels)) if share[i] == 0 and np.any(y == i)]
    if never and not out:
        out.append(f"never predicts: {', '.join(never)} (if rare in training, try --class-weights)")
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_png(y: np.ndarray, pred: np.ndarray, labels: list[str], path: Path, title: str) -> Path:
    from sklearn.metrics import confusion_matrix

    plt = _plt()
    cm = confusion_matrix(y, pred, labels=list(range(len(labels))))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(labels), 0.8 + 0.7 * len(labels)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{cm[i, j]}\n{norm[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def occlusion_saliency(proba: Proba, img: np.ndarray, label: int, patch: int = 8, stride: int = 4) -> np.ndarray:
    """Drop of the true class's probability when a gray patch hides each region (48x48 map, >= 0)."""
    h, w = img.shape
    base = proba(img[None])[0, label]
    pos = [(y, x) for y in range(0, h - patch + 1, stride) for x in range(0, w - patch + 1, stride)]
    batch = np.repeat(img[None], len(pos), axis=0)
    for k, (y, x) in enumerate(pos):
        batch[k, y : y + patch, x : x + patch] = 128
    drops = base - proba(batch)[:, label]
    heat, count = np.zeros((h, w)), np.zeros((h, w))
    for d, (y, x) in zip(drops, pos, strict=True):
        heat[y : y + patch, x : x + patch] += d
        count[y : y + patch, x : x + patch] += 1
    return np.clip(heat / np.maximum(count, 1), 0, None)


def saliency_png(
    proba: Proba, x: np.ndarray, y: np.ndarray, labels: list[str], path: Path, per_class: int = 2, seed: int = 0
) -> Path:
    """A grid: for a few images per class, the face and its occlusion-saliency overlay."""
    plt = _plt()
    rng = np.random.default_rng(seed)
    picks = [(c, i) for c in range(len(labels)) for i in rng.permutation(np.flatnonzero(y == c))[:per_class]]
    cols = max(1, 2 * per_class)
    fig, axes = plt.subplots(len(labels), cols, figsize=(1.6 * cols, 1.7 * len(labels)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    slot: dict[int, int] = {}
    for c, i in picks:
        k = slot.get(c, 0)
        slot[c] = k + 1
        heat = occlusion_saliency(proba, x[i], c)
        pred = int(proba(x[i][None]).argmax())
        axes[c, 2 * k].imshow(x[i], cmap="gray", vmin=0, vmax=255)
        axes[c, 2 * k].set_title(f"{labels[c]}\npred {labels[pred]}", fontsize=7)
        axes[c, 2 * k + 1].imshow(x[i], cmap="gray", vmin=0, vmax=255)
        axes[c, 2 * k + 1].imshow(heat, cmap="jet", alpha=0.5, vmin=0, vmax=max(float(heat.max()), 1e-6))
        axes[c, 2 * k + 1].set_title("saliency", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curves_png(epochs: list[dict[str, float]], path: Path, title: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    e = [r["epoch"] for r in epochs]
    ax.plot(e, [r["loss"] for r in epochs], label="train loss", color="tab:red")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(e, [r["val_accuracy"] for r in epochs], label="val accuracy", color="tab:blue")
    ax2.set_ylabel("val accuracy")
    ax.set_title(title, fontsize=10)
    fig.legend(loc="upper center", ncol=2, fontsize=8, bbox_to_anchor=(0.5, 0.93))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
