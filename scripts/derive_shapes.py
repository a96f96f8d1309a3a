"""Derive maskgen's mean 68-point face shape and the aligned-crop prior from real faces.

Runs dlib's HOG detector and 68-point predictor (the `dlib` extra) over the public-domain
sample faces and, when present, the research dev sets in ../shared/data, then:

* mean_shape: generalised Procrustes mean of all shapes (unit RMS size, centred, eye line
  horizontal), used to complete MTCNN's five points to 68;
* aligned_prior: the mean landmark position as a fraction of the image, over the 48x48 crops
  (FER2013, CK+48), used by the `aligned` detector for pre-aligned crops;
* mtcnn5: where MTCNN's five points fall in the mean-shape frame (each face's MTCNN points mapped
  by the similarity that takes its dlib shape onto the mean), so 5->68 fitting has no bias.

Only averaged coordinates are stored (maskgen/data/shapes.json); no image data is kept.
Usage: python scripts/derive_shapes.py [SHARED_DATA_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from maskgen.detectors.dlib import DlibDetector
from maskgen.detectors.mtcnn import MTCNNDetector
from maskgen.io import read_image
from maskgen.landmarks import LEFT_EYE, RIGHT_EYE
from maskgen.samples import sample_faces


def normalise(shape: np.ndarray) -> np.ndarray:
    """Centre, scale to unit RMS radius, rotate the eye line to horizontal."""
    s = shape - shape.mean(0)
    s /= np.sqrt((s**2).sum(1).mean())
    d = s[RIGHT_EYE].mean(0) - s[LEFT_EYE].mean(0)
    a = -np.arctan2(d[1], d[0])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return s @ rot.T


def procrustes_mean(shapes: list[np.ndarray], iters: int = 5) -> np.ndarray:
    norm = [normalise(s) for s in shapes]
    mean = np.mean(norm, 0)
    for _ in range(iters):
        aligned = []
        for s in norm:
            m, _ = cv2.estimateAffinePartial2D(s.astype(np.float32), mean.astype(np.float32))
            aligned.append(s @ m[:, :2].T + m[:, 2])
        mean = normalise(np.mean(aligned, 0))
    return mean


def main(shared: Path) -> None:
    det = DlibDetector()
    mtcnn = MTCNNDetector()
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    shapes: list[np.ndarray] = []
    crops: list[np.ndarray] = []
    counts: dict[str, int] = {}

    def add(img: np.ndarray, source: str, is_crop: bool) -> None:
        faces = det(img)
        if len(faces):
            lm = faces.largest().landmarks[0]
            shapes.append(lm)
            found = mtcnn.find(img)
            if found:
                box, _, five, _ = max(found, key=lambda f: (f[0][2] - f[0][0]) * (f[0][3] - f[0][1]))
                if np.linalg.norm(five[2] - lm[30]) < 0.5 * np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)):
                    pairs.append((lm, five))
            if is_crop:
                crops.append(lm / np.array([img.shape[1], img.shape[0]]))
            counts[source] = counts.get(source, 0) + 1

    for name, img in sample_faces().items():
        add(img, name, False)
    for sub, is_crop in (("jaffe-dev", False), ("ckplus48-dev", True), ("fer2013-dev", True)):
        for p in sorted((shared / sub).glob("*/*")):
            add(read_image(p), sub, is_crop)
    mean = procrustes_mean(shapes)
    prior = np.mean(crops, 0)
    mapped = []
    for lm, five in pairs:
        m, _ = cv2.estimateAffinePartial2D(lm.astype(np.float32), mean.astype(np.float32))
        mapped.append(five @ m[:, :2].T + m[:, 2])
    mtcnn5 = np.mean(mapped, 0)
    out = {
        "about": "Averages of dlib 68-point landmarks on real faces, made by scripts/derive_shapes.py",
        "faces_per_source": counts,
        "mean_shape": np.round(mean, 5).tolist(),
        "aligned_prior": np.round(prior, 5).tolist(),
        "mtcnn5": np.round(mtcnn5, 5).tolist(),
        "mtcnn5_faces": len(pairs),
    }
    path = Path(__file__).resolve().parents[1] / "maskgen" / "data" / "shapes.json"
    path.write_text(json.dumps(out, indent=None) + "\n")
    print(f"wrote {path}: {len(shapes)} shapes, {len(crops)} crops, {len(pairs)} mtcnn pairs, {counts}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data"))
