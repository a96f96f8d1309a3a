"""Measure the colours of real masks: the palette `--color random` draws from (maskgen.strategies.overlay.PALETTE).

For each photo in ../shared/data/realism-dev/masked with a face found, the median colour of the mask's core
(the lower face between the nose and the chin, inset from the jaw so no skin or background enters) is one
sample; k-means in CIELAB groups the samples, and each group's median colour and share of the photos become
one palette entry. Prints the entries as Python, ready to paste, with the figures behind them.

Only colours (numbers) leave the photos; nothing else of them is kept.
Usage: python scripts/measure_palette.py [--k 10] [--data ../shared/data/realism-dev/masked]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from sklearn.cluster import KMeans

import maskgen as mg

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "realism-dev" / "masked"


def mask_core(shape: tuple[int, int], lm: np.ndarray) -> np.ndarray:
    """A boolean map of the mask's core: the polygon nose-bottom / jaw 3-13 / chin, shrunk to 70%
    around its centre."""
    poly = np.concatenate([lm[[31, 33, 35]], lm[13:2:-1]]).astype(np.float64)
    c = poly.mean(0)
    poly = c + 0.7 * (poly - c)
    core = np.zeros(shape, np.uint8)
    cv2.fillPoly(core, [np.round(poly).astype(np.int32)], 1)
    return core.astype(bool)


def samples(folder: Path) -> np.ndarray:
    out = []
    for p in sorted(folder.glob("*.jpg")):
        img = mg.read_image(p)
        if img.ndim != 3:
            continue
        faces = mg.detect(img)
        if not len(faces):
            continue
        core = mask_core(img.shape[:2], faces.largest().landmarks[0])
        if core.sum() >= 30:
            out.append(np.median(img[core][:, :3], axis=0))
    return np.array(out, np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--data", type=Path, default=DATA)
    a = ap.parse_args()
    rgb = samples(a.data)
    if not len(rgb):
        raise SystemExit(f"no faces found in {a.data}")
    lab = cv2.cvtColor(rgb[None], cv2.COLOR_RGB2LAB)[0].astype(np.float64)
    groups = KMeans(a.k, n_init=10, random_state=0).fit_predict(lab)
    rows = []
    for g in range(a.k):
        members = rgb[groups == g]
        colour = np.median(members, axis=0).round().astype(int)
        rows.append((len(members) / len(rgb), "#{:02x}{:02x}{:02x}".format(*colour), members.std(0).mean()))
    rows.sort(reverse=True)
    print(f"{len(rgb)} masks measured in {a.data}")
    print(f"{'share':>6} {'colour':>8} {'spread':>7}")
    for share, colour, spread in rows:
        print(f"{share:>6.1%} {colour:>8} {spread:>7.1f}")
    print("\nPALETTE = {" + ", ".join(f'"{c}": {s * 100:.0f}' for s, c, _ in rows) + "}")


if __name__ == "__main__":
    main()
