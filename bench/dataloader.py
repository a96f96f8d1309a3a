"""DataLoader time per epoch with on-the-fly masking (faces from the cache) as a ratio to the same loader
without masking (target <= 1.5x). Two workers, batch 64, persistent workers; the fastest of epochs 2-6, in
three rounds that interleave the loaders (--rounds).

Two ways to mask: per item (`MaskFaces` as the dataset's transform; float tensors out), and per batch
(`MaskCollate`: the dataset returns uint8 crops, the collate_fn masks the batch, the loop makes floats).
Each is compared with the same loader without masking. First, the cost of masking alone: microseconds
per crop for `MaskFaces.batch` on batches of 64 in this process (fastest of 20 passes), with the default
overlays, with `shade=1` (and `grain=1`), and `zero`.

Data: FER2013 crops from ../shared/data/fer2013-train (first 4000) when present, else generated crops.
Usage: python bench/dataloader.py [--n 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

import maskgen as mg
from maskgen.transforms import MaskCollate, MaskFaces

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013-train"


class Files(Dataset):
    def __init__(self, paths: list[Path], transform=None) -> None:
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        img = mg.read_image(self.paths[i])
        if self.transform is not None:
            img = self.transform(img)
        x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).div_(255.0)
        return x[None] if x.ndim == 2 else x.permute(2, 0, 1), 0


class Crops(Dataset):
    """The same files as uint8 arrays: the batch is masked (or not) by the collate_fn."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return mg.read_image(self.paths[i]), 0


def epoch_seconds(ds: Dataset, epochs: int = 5, collate=None) -> float:
    """The fastest of `epochs` timed epochs (this machine's timings are noisy; the minimum is the cost)."""
    loader = DataLoader(ds, batch_size=64, shuffle=True, num_workers=2, persistent_workers=True, collate_fn=collate)
    for _ in loader:  # epoch 1 warms the workers (imports, detector, template cache)
        pass
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        for x, _ in loader:
            if x.dtype == torch.uint8:
                x = x.float().div_(255.0)
        times.append(time.perf_counter() - t)
    return min(times)


def batch_us(images: np.ndarray, transform: MaskFaces, passes: int = 20) -> float:
    """Microseconds per crop for `transform.batch` over `images` in batches of 64 (fastest pass)."""
    best = float("inf")
    for _ in range(passes + 1):  # the first pass warms the caches (placements, template levels)
        t = time.perf_counter()
        for i in range(0, len(images), 64):
            transform.batch(images[i : i + 64])
        best = min(best, time.perf_counter() - t)
    return best / len(images) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every loader (best of all)")
    ap.add_argument(
        "--main-threads",
        type=int,
        default=1,
        help="torch threads of the main process (0: torch's default). It only receives batches here; with "
        "more than one, its idle OpenMP threads spin between batches and take a core from the workers",
    )
    args = ap.parse_args()
    if args.main_threads:
        torch.set_num_threads(args.main_threads)
    tmp = None
    if SHARED.is_dir():
        paths = sorted(SHARED.glob("*/*"))[:: max(1, len(list(SHARED.glob("*/*"))) // args.n)][: args.n]
        source = f"fer2013-train ({len(paths)} crops)"
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        from convert import generate

        tmp = tempfile.TemporaryDirectory()
        generate(Path(tmp.name), args.n)
        paths = sorted(Path(tmp.name).rglob("*.png"))
        source = f"generated crops ({len(paths)})"
    t = time.perf_counter()
    cache = mg.precompute_faces(paths)
    t_cache = time.perf_counter() - t
    stack = np.stack([mg.read_image(p) for p in paths])
    alone = {
        "overlay random": {"types": "random"},
        "overlay random, shade=1": {"types": "random", "shade": 1.0},
        "overlay random, shade=1 grain=1": {"types": "random", "shade": 1.0, "grain": 1.0},
        "zero": {"strategy": "zero"},
    }
    print(f"{'masking alone, one process, batches of 64':<44} {'us/crop':>8}")
    for label, kw in alone.items():
        print(f"{label:<44} {batch_us(stack, MaskFaces(faces=cache, seed=0, **kw)):>8.1f}")
    print()
    loaders = {
        "plain": lambda: epoch_seconds(Files(paths)),
        "masked": lambda: epoch_seconds(Files(paths, MaskFaces(types="random", faces=cache, seed=0))),
        "zero": lambda: epoch_seconds(Files(paths, MaskFaces(strategy="zero", faces=cache, seed=0))),
        "plain_b": lambda: epoch_seconds(Crops(paths)),
        "masked_b": lambda: epoch_seconds(
            Crops(paths), collate=MaskCollate(MaskFaces(types="random", faces=cache, seed=0))
        ),
        "zero_b": lambda: epoch_seconds(
            Crops(paths), collate=MaskCollate(MaskFaces(strategy="zero", faces=cache, seed=0))
        ),
    }
    # rounds interleave the loaders, so a slow minute of this VM slows all of them, not one; best of all
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, measure in loaders.items():
            best[name] = min(best.get(name, float("inf")), measure())
    plain, masked, zero = best["plain"], best["masked"], best["zero"]
    plain_b, masked_b, zero_b = best["plain_b"], best["masked_b"], best["zero_b"]
    print(f"data: {source}; face cache built once in {t_cache:.1f} s; best of {args.rounds} interleaved rounds")
    print(f"{'loader':<44} {'s/epoch':>8} {'ratio':>7}")
    rows = [
        ("per item: no masking", plain, plain),
        ("per item: MaskFaces overlay random", masked, plain),
        ("per item: MaskFaces zero", zero, plain),
        ("per batch: no masking", plain_b, plain_b),
        ("per batch: MaskCollate overlay random", masked_b, plain_b),
        ("per batch: MaskCollate zero", zero_b, plain_b),
    ]
    for label, sec, base in rows:
        print(f"{label:<44} {sec:>8.2f} {sec / base:>7.2f}")


if __name__ == "__main__":
    main()
