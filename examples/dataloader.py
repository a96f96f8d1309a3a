"""Mask faces on the fly in a PyTorch DataLoader with two workers: new masks every epoch, reproducible runs.

    python examples/dataloader.py [FOLDER]   (default: the shipped examples/faces)

Faces are detected once up front (`precompute_faces`), so each epoch only pays for the masking.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

import maskgen as mg
from maskgen.transforms import MaskCollate, MaskFaces

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "faces"


class Faces48(Dataset):
    """Images of a labelled folder as 48x48 grayscale tensors, masked by `transform`."""

    def __init__(self, root: Path, transform) -> None:
        self.paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        self.labels = sorted({p.parent.name for p in self.paths})
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        img = mg.read_image(self.paths[i])
        img = self.transform(img)  # numpy in, numpy out (PIL and CHW tensors work too)
        gray = img if img.ndim == 2 else img.mean(axis=2)
        t = torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32) / 255.0)[None]
        t = torch.nn.functional.interpolate(t[None], size=(48, 48), mode="area")[0]
        return t, self.labels.index(self.paths[i].parent.name)


def epoch_sums(seed: int) -> list[float]:
    torch.manual_seed(seed)  # with MaskFaces(seed=...), this reproduces every mask of the run
    cache = mg.precompute_faces(ROOT)
    ds = Faces48(ROOT, MaskFaces(types="random", color="random", seed=0, faces=cache))
    loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=2)
    sums = []
    for epoch in range(2):
        total = 0.0
        for x, y in loader:
            assert x.shape[1:] == (1, 48, 48) and len(x) == len(y)
            total += float(x.sum())
        sums.append(total)
        print(f"epoch {epoch}: {len(ds)} masked images in batches of 4; checksum {sums[-1]:.3f}")
    return sums


def batch_masking() -> None:
    """The same masks, applied to whole batches by the collate_fn (cheaper for small crops)."""
    paths = sorted(p for p in ROOT.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    images = [mg.read_image(p) for p in paths]
    gray = [im if im.ndim == 2 else cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images]
    crops = [(cv2.resize(g, (48, 48), interpolation=cv2.INTER_AREA), 0) for g in gray]
    cache48 = mg.precompute_faces([c for c, _ in crops])  # faces of the 48x48 copies
    tf = MaskFaces(types="random", seed=0, faces=cache48)
    for x, _ in DataLoader(crops, batch_size=4, num_workers=2, collate_fn=MaskCollate(tf)):
        assert x.dtype == torch.uint8  # make floats after masking: x.float() / 255
        print(f"batch {tuple(x.shape)} masked in one pass")


if __name__ == "__main__":
    first = epoch_sums(seed=1)
    again = epoch_sums(seed=1)
    print("reproducible with the same seed:", first == again)
    batch_masking()
