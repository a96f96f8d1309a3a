"""DataLoader time per epoch with on-the-fly masking (faces from the cache) as a ratio to the same loader
without masking (target <= 1.5x). Two workers, batch 64, persistent workers, epochs 2-4 timed.

Data: FER2013 crops from ../shared/data/fer2013-train (first 4000) when present, else generated crops.
Usage: python bench/dataloader.py [--n 4000]
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
from maskgen.transforms import MaskFaces

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


def epoch_seconds(ds: Dataset, epochs: int = 3) -> float:
    loader = DataLoader(ds, batch_size=64, shuffle=True, num_workers=2, persistent_workers=True)
    for _ in loader:  # epoch 1 warms the workers (imports, detector, template cache)
        pass
    t = time.perf_counter()
    for _ in range(epochs):
        for _ in loader:
            pass
    return (time.perf_counter() - t) / epochs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    args = ap.parse_args()
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
    plain = epoch_seconds(Files(paths))
    masked = epoch_seconds(Files(paths, MaskFaces(types="random", faces=cache, seed=0)))
    zero = epoch_seconds(Files(paths, MaskFaces(strategy="zero", faces=cache, seed=0)))
    print(f"data: {source}; face cache built once in {t_cache:.1f} s")
    print(f"{'loader':<34} {'s/epoch':>8} {'ratio':>7}")
    print(f"{'no masking':<34} {plain:>8.2f} {1.0:>7.2f}")
    print(f"{'overlay random (cached faces)':<34} {masked:>8.2f} {masked / plain:>7.2f}")
    print(f"{'zero (cached faces)':<34} {zero:>8.2f} {zero / plain:>7.2f}")


if __name__ == "__main__":
    main()
