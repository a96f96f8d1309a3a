"""Face detectors returning `Faces` with 68 landmarks; registered by name, loaded lazily once per process."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import cv2
import numpy as np

from ..registry import Registry
from ..types import Faces


class Detector(Protocol):
    name: str

    def __call__(self, image: np.ndarray) -> Faces: ...


DETECTORS: Registry[Detector] = Registry("detector")
_CACHE: dict[str, Detector] = {}

from . import aligned, dlib, mtcnn  # noqa: E402,F401  (registration side effects)


def get_detector(name: str) -> Detector:
    """The process-wide instance of a detector (created on first use; models load lazily)."""
    if name not in _CACHE:
        _CACHE[name] = DETECTORS.create(name)
    return _CACHE[name]


# Photos larger than this (longest side, px) are searched on a reduced copy and the faces scaled back:
# time and memory stay bounded (an 8500x8500 photo: ~1 s and a few hundred MB instead of ~35 s and 7 GB),
# and faces down to ~1% of the longest side (20 px in the copy, MTCNN's smallest) are still found.
DETECT_MAX_SIDE = 2000


def _reduced(image: np.ndarray) -> tuple[np.ndarray, float]:
    """(the image, or a copy whose longest side is DETECT_MAX_SIDE, and that copy's scale)."""
    side = max(image.shape[:2])
    if side <= DETECT_MAX_SIDE:
        return image, 1.0
    k = DETECT_MAX_SIDE / side
    size = (max(1, round(image.shape[1] * k)), max(1, round(image.shape[0] * k)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), k


def _scaled_back(faces: Faces, k: float) -> Faces:
    if k == 1.0 or len(faces) == 0:
        return faces
    return replace(faces, xyxy=faces.xyxy / k, landmarks=faces.landmarks / k)


def detect(image: np.ndarray, detector: str = "mtcnn", fallback: str | None = None) -> Faces:
    """Find faces and 68 landmarks; if none are found and `fallback` names a detector, use it (recorded in Faces).

    Photos over DETECT_MAX_SIDE pixels are searched on a reduced copy; boxes and points are in `image`'s pixels."""
    view, k = _reduced(image)
    faces = get_detector(detector)(view)
    if len(faces) == 0 and fallback:
        faces = get_detector(fallback)(view)
    return _scaled_back(faces, k)


def detect_batch(images: list[np.ndarray], detector: str = "mtcnn", fallback: str | None = None) -> list[Faces]:
    """`detect` over many images; detectors with a `batch` method share work between them."""
    det = get_detector(detector)
    work = [_reduced(im) for im in images]
    views = [w for w, _ in work]
    batch = getattr(det, "batch", None)
    results = batch(views) if batch is not None else [det(im) for im in views]
    if fallback:
        results = [r if len(r) else get_detector(fallback)(im) for r, im in zip(results, views, strict=True)]
    return [_scaled_back(r, k) for r, (_, k) in zip(results, work, strict=True)]


__all__ = ["DETECTORS", "Detector", "detect", "detect_batch", "get_detector"]
