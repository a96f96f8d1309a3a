"""Mask a Hugging Face dataset: on access with `with_transform`, or once with `map`.

python examples/hf_datasets.py [FOLDER]   (default: the shipped examples/faces)
"""

from __future__ import annotations

import sys
from pathlib import Path

import datasets
import numpy as np

from maskgen.transforms import HFMask

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "faces"

if __name__ == "__main__":
    ds = datasets.load_dataset("imagefolder", data_dir=str(ROOT), split="train")
    print(ds)

    # 1. on access: every read draws a new mask (good for training)
    live = ds.with_transform(HFMask(types="random", seed=0, occlusion_column="occlusion"))
    row = live[0]
    print("on access:", row["image"].size, "occluded pixels:", int((np.asarray(row["occlusion"]) > 0).sum()))

    # 2. materialised: masks fixed per example index (good for a test set you want to share)
    fixed = ds.map(HFMask(types=["surgical", "kn95"], seed=0), batched=True, with_indices=True)
    again = ds.map(HFMask(types=["surgical", "kn95"], seed=0), batched=True, with_indices=True)
    pairs = zip(fixed, again, strict=True)
    same = all(np.array_equal(np.asarray(a["image"]), np.asarray(b["image"])) for a, b in pairs)
    print(f"materialised {len(fixed)} masked images; identical when run again: {same}")
