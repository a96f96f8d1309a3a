"""Deploy mode (KAIST): on photos of people really wearing masks, how often do we find real landmarks,
and does the zeroed region cover the mouth and spare the eyes? Usage: python bench/deploy_rate.py [SHARED_DATA]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import maskgen as mg
from maskgen.errors import MissingExtra
from maskgen.landmarks import EYES, MOUTH, landmarks_are_sane

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data"


def evaluate(paths: list[Path], detector: str = "mtcnn") -> dict[str, float]:
    found = good = 0
    times = []
    for p in paths:
        img = mg.read_image(p)
        t = time.perf_counter()
        face = mg.detect(img, detector=detector).largest()
        times.append(time.perf_counter() - t)
        if not len(face) or face.landmark_source[0] == "prior":
            continue
        lm = face.landmarks[0]
        if not landmarks_are_sane(lm, img.shape[1], img.shape[0]):
            continue
        found += 1
        occ = mg.mask(img, "zero", faces=face).occlusion
        pts = np.round(lm).astype(int)
        h, w = occ.shape
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
        hit = np.zeros(68, bool)
        hit[inside] = occ[pts[inside, 1], pts[inside, 0]] > 0
        good += bool(hit[MOUTH][inside[MOUTH]].all() and not hit[EYES].any())
    n = len(paths)
    return {"images": n, "found": found / n, "zero_ok": good / n, "median_ms": 1000 * float(np.median(times))}


def main() -> None:
    paths = sorted(p for p in (ROOT / "maskedreal-dev").glob("*") if p.is_file())
    if not paths:
        print(f"{ROOT / 'maskedreal-dev'} is not present")
        return
    print(
        f"{'detector':<8} {'images':>6} {'real landmarks':>15} {'zero covers mouth, spares eyes':>31} {'median ms':>10}"
    )
    for det in ("mtcnn", "dlib"):
        try:
            r = evaluate(paths, det)
        except MissingExtra as e:
            print(f"{det:<8} skipped: {e}")
            continue
        print(
            f"{det:<8} {r['images']:>6} {100 * r['found']:>14.1f}% {100 * r['zero_ok']:>30.1f}% {r['median_ms']:>10.1f}"
        )


if __name__ == "__main__":
    main()
