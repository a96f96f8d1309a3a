"""Drawing helpers for previews: boxes and landmarks on a copy of an image."""

from __future__ import annotations

import cv2
import numpy as np

from .io import as_rgb
from .types import Faces

_SOURCE_COLOURS = {
    "detector-68": (40, 220, 40),
    "fitted-5": (40, 160, 255),
    "prior": (255, 80, 40),
}


def draw_faces(image: np.ndarray, faces: Faces) -> np.ndarray:
    """RGB copy of `image` with each face's box and 68 points (colour by landmark source)."""
    out = as_rgb(image).copy()
    h, w = out.shape[:2]
    scale = max(1, round(min(h, w) / 160))
    for box, lm, src in zip(faces.xyxy, faces.landmarks, faces.landmark_source, strict=True):
        colour = _SOURCE_COLOURS[str(src)]
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, scale, cv2.LINE_AA)
        for x, y in lm:
            cv2.circle(out, (int(round(x)), int(round(y))), scale, colour, -1, cv2.LINE_AA)
    return out
