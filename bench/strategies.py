"""Strategy throughput on the dev sets, as a ratio to the floor of reading and writing the same files.

Each row reads every image, detects (in chunks of 64, as `convert` does), masks and writes it to a
fresh folder, in one process, one step after another; best of three runs, each with memoised mask
placements forgotten (a conversion sees every face once). `in-memory` leaves out reading and writing.
`pipeline` runs the same through `convert`'s own chunk runner (which also hashes each source and
builds its manifest rows). Reading, writing or detecting on helper threads was tried and gained
nothing here (GIL hand-offs). Targets: with the aligned prior, zero >= 0.5x the floor and
overlay >= 0.25x; with the default detector, FER2013-size crops at >= 700 images/s.

One process means one core: OpenCV is set to one thread (as in `convert`'s workers) and MTCNN's nets
run on onnxruntime with one thread.

Usage: python bench/strategies.py [SHARED_DATA [OUT_PARENT]]. Outputs go under OUT_PARENT (default:
build/ in the repo). Creating a small file on this VM's disk (ext4 mounted with `discard`) costs
anywhere from 60 to 900 us depending on recent deletions and the folder's place on disk, so each
floor row prints that cost, and each row's ratio is to a floor measured just before it. `pipeline, RAM disk` runs
the chunk runner with outputs on /dev/shm (tmpfs): the code's own speed, without this disk.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2

import maskgen as mg
from maskgen.detectors import detect_batch
from maskgen.io import write_bytes_atomic
from maskgen.pipeline.items import ConvertConfig, run_chunk
from maskgen.pipeline.sources import Record
from maskgen.strategies.overlay import _PLACEMENTS

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data"
OUT_PARENT = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[1] / "build"
CHUNK = 64


def fresh(root: Path | None) -> Path | None:
    """An empty folder for each timed run, all deleted only at the end: replacing or deleting files makes
    this disk (ext4 mounted with `discard`) stall the next creates for a while (creating a small file took
    70-100 us when quiet, 650-800 us after a deletion), and a real conversion writes new files."""
    return Path(tempfile.mkdtemp(dir=root)) if root is not None else None


def cold() -> None:
    """Forget memoised mask placements: a conversion sees each face once (templates stay loaded)."""
    _PLACEMENTS.clear()


def create_cost(root: Path, n: int = 300) -> float:
    """Microseconds to create one small file atomically here: this disk's state, printed for context."""
    out = fresh(root)
    t = time.perf_counter()
    for i in range(n):
        write_bytes_atomic(out / f"{i}.bin", b"x" * 1500)
    return (time.perf_counter() - t) / n * 1e6


def run(paths: list[Path], root: Path | None, strategy: str | None, detector: str, params: dict) -> float:
    """Images per second for read -> detect -> mask -> write (root=None: on images already in memory)."""
    images = [mg.read_image(p) for p in paths] if root is None else None
    out = fresh(root)
    cold()
    t = time.perf_counter()
    for start in range(0, len(paths), CHUNK):
        chunk = paths[start : start + CHUNK]
        imgs = images[start : start + CHUNK] if images is not None else [mg.read_image(p) for p in chunk]
        if strategy is not None:
            faces = detect_batch(imgs, detector=detector)
            imgs = [
                mg.mask(im, strategy, faces=f.largest(), seed=start + i, **params).image if len(f) else im
                for i, (im, f) in enumerate(zip(imgs, faces, strict=True))
            ]
        if out is not None:
            for p, im in zip(chunk, imgs, strict=True):
                mg.write_image(out / p.name, im)
    return len(paths) / (time.perf_counter() - t)


def pipeline(paths: list[Path], root: Path, strategy: str, detector: str, params: dict) -> float:
    """Images per second through `run_chunk`, as `maskgen convert` runs in one process."""
    cfg = ConvertConfig(strategy=strategy, detector=detector, params={k: v for k, v in params.items() if k != "type"})
    if "type" in params:
        cfg = replace(cfg, types=(params["type"],))
    records = [Record(key=f"{i}_{p.name}", path=p) for i, p in enumerate(paths)]
    chunks = (records[i : i + CHUNK] for i in range(0, len(records), CHUNK))
    out = fresh(root)
    cold()
    t = time.perf_counter()
    for chunk in chunks:
        run_chunk(chunk, cfg, str(out), {})
    return len(paths) / (time.perf_counter() - t)


def best(*args, fn=run) -> float:
    return max(fn(*args) for _ in range(3))


def main() -> None:
    cv2.setNumThreads(1)
    sets = {n: sorted((ROOT / n).glob("*/*")) for n in ("fer2013-dev", "ckplus48-dev", "jaffe-dev")}
    sets = {n: p for n, p in sets.items() if p}
    if not sets:
        print(f"no dev sets under {ROOT}")
        return
    rows = [
        ("zero", "aligned", "zero", {}),
        ("overlay random", "aligned", "overlay", {"type": "random"}),
        ("zero", "mtcnn", "zero", {}),
        ("overlay random", "mtcnn", "overlay", {"type": "random"}),
    ]
    head = f"{'set':<13} {'strategy':<15} {'detector':<8} {'img/s':>7} {'x floor':>8} {'in-memory img/s':>16}"
    print(f"{head} {'pipeline img/s':>15} {'pipeline, RAM disk':>19}   (outputs under {OUT_PARENT})")
    OUT_PARENT.mkdir(parents=True, exist_ok=True)
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=OUT_PARENT) as tmp, tempfile.TemporaryDirectory(dir=shm) as ram:
        out = Path(tmp)
        for name, paths in sets.items():
            best(paths[:20], out, "overlay", "mtcnn", {})  # warm up models and caches
            floor = best(paths, out, None, "", {})
            probe = f"(creating a file: {create_cost(out):.0f} us)"
            print(f"{name:<13} {'(read+write)':<15} {'-':<8} {floor:>7.0f} {1.0:>8.2f} {probe:>32}")
            for label, det, strat, params in rows:
                floor = best(paths, out, None, "", {})  # again, just before: this disk's speed drifts
                rate = best(paths, out, strat, det, params)
                mem = best(paths, None, strat, det, params)
                piped = best(paths, out, strat, det, params, fn=pipeline)
                in_ram = best(paths, Path(ram), strat, det, params, fn=pipeline) if shm else float("nan")
                print(
                    f"{name:<13} {label:<15} {det:<8} {rate:>7.0f} {rate / floor:>8.2f} {mem:>16.0f} {piped:>15.0f}"
                    f" {in_ram:>19.0f}"
                )


if __name__ == "__main__":
    main()
