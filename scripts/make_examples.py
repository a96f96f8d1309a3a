"""Write the small example dataset shipped in examples/faces/ from public-domain photos.

Sources (free to redistribute): scikit-image's astronaut.png (NASA, public domain) and camera.png
(CC0), matplotlib's grace_hopper.jpg (US Navy, public domain). The layout is a labelled folder
(examples/faces/<label>/...) with full photos, a tilted copy and FER-style 48x48 grayscale crops.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

import maskgen as mg
from maskgen.samples import sample_faces

OUT = Path(__file__).resolve().parents[1] / "examples" / "faces"


def fer_crop(img: np.ndarray) -> np.ndarray:
    """A 48x48 grayscale crop around the detected face, framed like FER2013."""
    f = mg.detect(img).largest()
    x0, y0, x1, y1 = f.xyxy[0]
    cx, cy, s = (x0 + x1) / 2, (y0 + y1) / 2 + 0.05 * (y1 - y0), 1.05 * max(x1 - x0, y1 - y0)
    m = np.array([[48 / s, 0, 24 - 48 / s * cx], [0, 48 / s, 24 - 48 / s * cy]])
    gray = cv2.cvtColor(mg.io.as_rgb(img), cv2.COLOR_RGB2GRAY)
    return cv2.warpAffine(gray, m, (48, 48), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def main() -> None:
    s = sample_faces()
    astro, hopper, camera = s["astronaut"], s["grace_hopper"], s["camera"]
    small = cv2.resize(astro, (256, 256), interpolation=cv2.INTER_AREA)
    rot = cv2.warpAffine(small, cv2.getRotationMatrix2D((128, 128), 15, 1.0), (256, 256), borderMode=cv2.BORDER_REFLECT)
    hop = cv2.resize(hopper, (256, 300), interpolation=cv2.INTER_AREA)
    files = {
        "happy/astronaut.jpg": small,
        "happy/astronaut_tilted.jpg": rot,
        "happy/astronaut_48.png": fer_crop(astro),
        "neutral/grace_hopper.jpg": hop,
        "neutral/grace_hopper_48.png": fer_crop(hopper),
        "neutral/camera.png": cv2.resize(camera, (256, 256), interpolation=cv2.INTER_AREA),
    }
    for name, img in files.items():
        mg.write_image(OUT / name, img, quality=90)
    print(f"wrote {len(files)} images to {OUT}")
    write_fer_csv(fer_crop(astro), fer_crop(hopper))


def write_fer_csv(astro: np.ndarray, hopper: np.ndarray) -> None:
    """examples/fer2013-sample.csv: the two 48x48 crops, mirrored and shifted, in FER2013's CSV layout
    (emotion 3 happy, 6 neutral; Usage Training or PublicTest)."""
    rows = []
    for i, (crop, emotion) in enumerate([(astro, 3), (hopper, 6)] * 3):
        img = crop[:, ::-1] if i >= 2 else crop
        img = np.roll(img, i - 2, axis=1) if i >= 4 else img
        rows.append(
            f"{emotion},{' '.join(map(str, img.ravel().tolist()))},{'PublicTest' if i % 3 == 2 else 'Training'}"
        )
    path = OUT.parent / "fer2013-sample.csv"
    path.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    print(f"wrote {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
