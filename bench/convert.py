"""`convert` at scale: images/s with --jobs 1 and --jobs 2 (target >= 1.7x), and peak memory converting
1k vs 10k generated items (target: within 10%, i.e. memory flat in dataset size).

Items are FER-style 48x48 crops of the public-domain astronaut, each shifted, scaled and relit
differently so that no two are alike. Each conversion runs in a fresh process, end to end (start-up,
listing, workers, journal); peak RSS is that process tree's maximum resident set; the two speeds are
each the best of two runs on the 10k set. The fixed cost of a run (start-up, and spawning workers for
--jobs 2) is printed too, from a 5-item conversion: at ~1,000 images/s it is a tenth of a 4000-item run,
so a small conversion gains less from a second worker.

Output formats: the same 10k crops converted to a folder (one file per image), Parquet shards and WebDataset
shards, --jobs 1 and 2 (best of two runs each), with peak RSS (target: sharded >= 1.5x the folder's speed
with --jobs 2); once as by default (MTCNN, random overlays) and once with the least work per image that
convert does (`--strategy zero --detector aligned`), where writing the outputs is the largest share of the
time. With --fer2013, FER2013's training split (../shared/data/fer2013-train) in each format.
Usage: python bench/convert.py [--small 1000 --large 10000] [--fer2013] [--formats-only]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
from _child import seconds_and_peak
from skimage import data

import maskgen as mg

LABELS = ("angry", "happy", "neutral", "sad")


def generate(root: Path, n: int, seed: int = 0) -> None:
    photo = data.astronaut()
    x0, y0, x1, y1 = mg.detect(photo).largest().xyxy[0]
    side = 1.1 * max(x1 - x0, y1 - y0)  # framed like FER2013: the face box fills the crop
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.05 * side
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    rng = np.random.default_rng(seed)
    for i in range(n):
        angle, scale = rng.uniform(-12, 12), 48 / side * rng.uniform(0.92, 1.08)
        centre = (cx + rng.uniform(-4, 4), cy + rng.uniform(-4, 4))
        m = cv2.getRotationMatrix2D(centre, angle, scale)  # keeps `centre` in place ...
        m[:, 2] += np.array([24.0, 24.0]) - np.array(centre)  # ... then moves it to the crop's middle
        img = cv2.warpAffine(gray, m, (48, 48), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
        img = img.astype(np.float32)
        img = np.clip(img * rng.uniform(0.7, 1.3) + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
        mg.write_image(root / LABELS[i % len(LABELS)] / f"item{i:06d}.png", img)


FORMATS = ("folder", "parquet", "webdataset")
FER2013 = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013-train"


CHEAPEST = ("--strategy", "zero", "--detector", "aligned")


def run(src: Path, dst: Path, jobs: int, fmt: str = "folder", extra: tuple[str, ...] = ()) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one `maskgen convert` in a fresh process."""
    args = ["-m", "maskgen", "convert", str(src), str(dst), "--jobs", str(jobs), "--quiet", "--output-format", fmt]
    return seconds_and_peak([*args, *extra])


def formats_table(src: Path, root: Path, n: int) -> None:
    """Images/s and peak RSS per output format and --jobs, and each format's speed over the folder's; the
    formats' runs interleave (best of two rounds), so a slow minute of this VM slows all of them."""
    print(f"\n{'work per image':<16} {'output format':<14} {'jobs':>4} {'img/s':>8} {'vs folder':>10} {'peak RSS':>10}")
    for label, extra in (("default", ()), ("zero, aligned", CHEAPEST)):
        for jobs in (1, 2):
            best: dict[str, tuple[float, float]] = {}
            for i in range(2):
                for fmt in FORMATS:
                    t, peak = run(src, root / f"{fmt}-{jobs}-{len(extra)}-{i}", jobs, fmt, extra)
                    old = best.get(fmt, (float("inf"), 0.0))
                    best[fmt] = (min(old[0], t), max(old[1], peak))
            for fmt in FORMATS:
                t, peak = best[fmt]
                ratio = best["folder"][0] / t
                print(f"{label:<16} {fmt:<14} {jobs:>4} {n / t:>8.0f} {ratio:>9.2f}x {peak:>7.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--large", type=int, default=10000)
    ap.add_argument("--fer2013", action="store_true", help="also FER2013's training split in each format")
    ap.add_argument("--formats-only", action="store_true", help="only the output formats table")
    args = ap.parse_args()
    if args.formats_only:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp) / "large", args.large, seed=1)
            formats_table(Path(tmp) / "large", Path(tmp) / "formats", args.large)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root / "tiny", 5, seed=2)
        generate(root / "small", args.small)
        generate(root / "large", args.large, seed=1)
        # best of two fresh runs each: this VM's speed drifts by 20% from minute to minute
        f1 = min(run(root / "tiny", root / f"f1-{i}", 1)[0] for i in range(2))
        f2 = min(run(root / "tiny", root / f"f2-{i}", 2)[0] for i in range(2))
        t1 = min(run(root / "large", root / f"o1-{i}", 1)[0] for i in range(2))
        t2 = min(run(root / "large", root / f"o2-{i}", 2)[0] for i in range(2))
        _, m_small = run(root / "small", root / "o3", 1)
        _, m_large = run(root / "large", root / "o4", 1)
        formats_table(root / "large", root / "formats", args.large)
        if args.fer2013 and FER2013.is_dir():
            n = sum(1 for _ in FER2013.glob("*/*"))
            print(f"\nFER2013 training split ({n} images), --jobs 2:")
            for fmt in FORMATS:
                t, peak = run(FER2013, root / f"fer-{fmt}", 2, fmt)
                print(f"{fmt:<14} {t:>6.1f} s {n / t:>8.0f} img/s {peak:>7.0f} MiB")
    r1, r2 = args.large / t1, args.large / t2
    print(f"{'run':<28} {'figure':>12}")
    print(f"{'fixed cost, --jobs 1 / 2':<28} {f1:>5.2f} / {f2:.2f} s")
    print(f"{f'--jobs 1 ({args.large} items)':<28} {r1:>8.0f} img/s")
    print(f"{'--jobs 2':<28} {r2:>8.0f} img/s")
    print(f"{'speed-up (target >= 1.7x)':<28} {r2 / r1:>10.2f}x")
    print(f"{f'peak RSS, {args.small} items':<28} {m_small:>8.0f} MiB")
    print(f"{f'peak RSS, {args.large} items':<28} {m_large:>8.0f} MiB")
    print(f"{'RSS ratio (target <= 1.10)':<28} {m_large / m_small:>10.2f}x")


if __name__ == "__main__":
    main()
