"""Deploy-time zeroing (the KAIST idea): make photos of people who really wear masks look like the
zeroed training data, by finding landmarks above the mask and zeroing below the 8:2 eye-nose line.

    python examples/deploy_zeroing.py [IMAGES_OR_FOLDER ...] [-o OUT]

With no inputs it first puts a mask on the shipped example photos (so the demo needs no data), then
zeroes them; point it at your own photos of masked people to use it for real.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import maskgen as mg

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="*", type=Path)
    ap.add_argument("-o", "--out", type=Path, default=Path("out/deploy_zeroing"))
    args = ap.parse_args()
    inputs = args.inputs or [
        HERE / "faces" / "happy" / "astronaut.jpg",
        HERE / "faces" / "neutral" / "grace_hopper.jpg",
    ]
    paths = [p for src in inputs for p in (sorted(src.iterdir()) if src.is_dir() else [src])]
    for path in paths:
        img = mg.read_image(path)
        if not args.inputs:  # demo: a masked person first
            img = mg.mask(img, "overlay", type="surgical").image
        faces = mg.detect(img)
        if len(faces) == 0:
            print(f"{path.name}: no face found, left out")
            continue
        res = mg.mask(img, "zero", faces=faces)
        out = mg.write_image(args.out / f"{path.stem}_zeroed.png", res.image)
        sources = ", ".join(sorted(set(faces.landmark_source)))
        print(f"{path.name}: {len(faces)} face(s), landmarks {sources} -> {out}")


if __name__ == "__main__":
    main()
