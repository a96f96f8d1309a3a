"""Detection rate with sane landmarks and median ms/image, per dev set and detector.

A face counts when a real detector (not the prior) returns one whose landmarks are inside the frame
with eyes above nose above mouth. Usage: python bench/detect_rates.py [SHARED_DATA] [--detectors mtcnn,dlib]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import maskgen as mg
from maskgen.errors import MissingExtra
from maskgen.landmarks import landmarks_are_sane

SETS = ("fer2013-dev", "ckplus48-dev", "jaffe-dev")


def rate(detector: str, paths: list[Path]) -> tuple[float, float, int]:
    images = [mg.read_image(p) for p in paths]
    mg.detect(images[0], detector=detector)  # load the model outside the timing
    ok, times = 0, []
    for img in images:
        t = time.perf_counter()
        faces = mg.detect(img, detector=detector)
        times.append(time.perf_counter() - t)
        if len(faces):
            f = faces.largest()
            real = f.landmark_source[0] != "prior"
            ok += real and landmarks_are_sane(f.landmarks[0], img.shape[1], img.shape[0])
    return ok / len(images), 1000 * float(np.median(times)), len(images)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--detectors", default="mtcnn,dlib")
    args = ap.parse_args()
    root = Path(args.data)
    print(f"{'set':<14} {'detector':<8} {'images':>6} {'rate':>7} {'median ms':>10}")
    for name in SETS:
        paths = sorted(p for p in (root / name).glob("*/*") if p.is_file())
        if not paths:
            print(f"{name:<14} (not present under {root})")
            continue
        for det in args.detectors.split(","):
            try:
                r, ms, n = rate(det, paths)
            except MissingExtra as e:
                print(f"{name:<14} {det:<8} skipped: {e}")
                continue
            print(f"{name:<14} {det:<8} {n:>6} {100 * r:>6.1f}% {ms:>10.2f}")


if __name__ == "__main__":
    main()
