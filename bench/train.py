"""Training and inference throughput (images/s) of each reference net on 48x48 crops, both cores.

Data: the first 4096 crops of ../shared/data/fer2013-train when present, else random pixels (speed only).
Usage: python bench/train.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from maskgen.train.loop import TrainArgs, fit_torch, predict_proba_torch, to_tensor
from maskgen.train.models import MODELS, TORCH_DEFAULTS

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013-train"


def data(n: int = 4096) -> tuple[np.ndarray, np.ndarray, str]:
    paths = sorted(SHARED.glob("*/*"))[::7][:n]
    if paths:
        import maskgen as mg

        labels = sorted({p.parent.name for p in paths})
        return (
            np.stack([mg.read_image(p) for p in paths]),
            np.array([labels.index(p.parent.name) for p in paths]),
            f"fer2013-train ({len(paths)} crops)",
        )
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), rng.integers(0, 7, n), f"random pixels ({n})"


def main() -> None:
    x, y, source = data()
    print(f"data: {source}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':<20} {'params':>9} {'train img/s':>12} {'infer img/s':>12} {'s / 10k images / epoch':>24}")
    for name in TORCH_DEFAULTS:
        args = TrainArgs(model=name, epochs=1, patience=99)
        t = time.perf_counter()
        model, _ = fit_torch(args, 7, x, y, x[:256], y[:256], progress=False)
        train_rate = len(x) / (time.perf_counter() - t)
        xt = to_tensor(x)
        t = time.perf_counter()
        predict_proba_torch(model, xt, tta="none")
        infer_rate = len(x) / (time.perf_counter() - t)
        params = sum(p.numel() for p in MODELS.create(name, classes=7).parameters())
        print(f"{name:<20} {params:>9,} {train_rate:>12.0f} {infer_rate:>12.0f} {10000 / train_rate:>24.0f}")


if __name__ == "__main__":
    main()
