"""Large photos: seconds and peak memory of one `maskgen convert --jobs 1` per photo size, for overlay and
zero, beside the same run's plain read + write of the photo (the floor no masking can go under).

Faces are found on a copy whose longest side is 2,000 px (`maskgen.detectors.DETECT_MAX_SIDE`) and
masked at full resolution, so memory per worker grows with the photo's pixels only (about 14 bytes
per pixel over the process's ~200 MB), up to the 80-megapixel read limit.
Usage: python bench/large_photos.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
from _child import seconds_and_peak
from skimage import data

import maskgen as mg

SIZES = ((1600, 1200), (4000, 3000), (8500, 8500))


def peak(code: str) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of `code` run in a fresh process."""
    return seconds_and_peak(["-c", code])


def main() -> None:
    photo = data.astronaut()
    print(f"{'photo':<12} {'run':<22} {'seconds':>8} {'peak MiB':>9} {'vs read+write':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for w, h in SIZES:
            src = Path(tmp, f"src{w}", "happy", "p.jpg")
            mg.write_image(src, cv2.resize(photo, (w, h), interpolation=cv2.INTER_CUBIC), quality=90)
            floor = peak(
                f"import maskgen as mg; mg.write_image({str(Path(tmp, 'copy.jpg'))!r}, mg.read_image({str(src)!r}))"
            )
            print(f"{f'{w}x{h}':<12} {'read + write':<22} {floor[0]:>8.2f} {floor[1]:>9.0f} {'1.00x':>14}")
            for strategy in ("overlay", "zero"):
                dst = Path(tmp, f"dst{w}{strategy}")
                code = (
                    "from maskgen.cli import main; "
                    f"main([ 'convert', {str(src.parents[1])!r}, {str(dst)!r}, '--jobs', '1', '-q', "
                    f"'--strategy', {strategy!r}], standalone_mode=False)"
                )
                t, m = peak(code)
                print(f"{'':<12} {f'convert, {strategy}':<22} {t:>8.2f} {m:>9.0f} {t / floor[0]:>13.2f}x")


if __name__ == "__main__":
    main()
