"""dlib's HOG face detector with its 68-point shape predictor (the `dlib` extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from ..errors import MissingExtra
from ..io import as_rgb
from ..types import Faces
from . import DETECTORS

_HINT = "the dlib detector needs the dlib extra: pip install 'maskgen[dlib]'"


def _model_path(name: str) -> Path:
    # face_recognition_models' __init__ imports pkg_resources, which new setuptools lacks: find files by spec.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise MissingExtra(_HINT)
    return Path(spec.origin).parent / "models" / name


@DETECTORS.register(
    "dlib",
    "dlib HOG detector + 68-point shape predictor (extra: maskgen[dlib]; model non-commercial)",
)
class DlibDetector:
    """Real 68 points from dlib; small images are padded and upscaled so HOG's 80 px window fits."""

    name = "dlib"

    def __init__(self, min_side: int = 200, upsample: int = 0) -> None:
        self.min_side = min_side
        self.upsample = upsample
        self._models = None

    def _load(self):
        if self._models is None:
            try:
                import dlib
            except ImportError:
                raise MissingExtra(_HINT) from None
            predictor = _model_path("shape_predictor_68_face_landmarks.dat")
            if not predictor.exists():
                raise MissingExtra(_HINT)
            self._models = (
                dlib,
                dlib.get_frontal_face_detector(),
                dlib.shape_predictor(str(predictor)),
            )
        return self._models

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_models": None}

    def __call__(self, image: np.ndarray) -> Faces:
        dlib, hog, predictor = self._load()
        rgb = as_rgb(image)
        h, w = rgb.shape[:2]
        pad = int(0.25 * max(h, w)) if min(h, w) < self.min_side else 0
        work = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else rgb
        scale = max(1.0, self.min_side / min(work.shape[:2]))
        if scale > 1:
            work = cv2.resize(work, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        rects, scores, _ = hog.run(work, self.upsample, 0.0)
        if not rects:
            return Faces.empty(self.name)
        boxes, lms = [], []
        for r in rects:
            shape = predictor(work, r)
            pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            lms.append(pts / scale - pad)
            boxes.append(np.array([r.left(), r.top(), r.right(), r.bottom()]) / scale - pad)
        boxes = np.clip(np.array(boxes), 0, [w, h, w, h])
        src = np.array(["detector-68"] * len(rects), dtype=object)
        return Faces(boxes, np.array(scores), np.array(lms), src, self.name)
