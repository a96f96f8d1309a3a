"""Face detectors returning `Faces` with 68 landmarks; registered by name, loaded lazily once per process."""

from __future__ import annotations

from typing import Protocol

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


def detect(image: np.ndarray, detector: str = "mtcnn", fallback: str | None = None) -> Faces:
    """Find faces and 68 landmarks; if none are found and `fallback` names a detector, use it (recorded in Faces)."""
    faces = get_detector(detector)(image)
    if len(faces) == 0 and fallback:
        faces = get_detector(fallback)(image)
    return faces


def detect_batch(images: list[np.ndarray], detector: str = "mtcnn", fallback: str | None = None) -> list[Faces]:
    """`detect` over many images; detectors with a `batch` method share work between them."""
    det = get_detector(detector)
    batch = getattr(det, "batch", None)
    results = batch(images) if batch is not None else [det(im) for im in images]
    if fallback:
        results = [r if len(r) else get_detector(fallback)(im) for r, im in zip(results, images, strict=True)]
    return results


__all__ = ["DETECTORS", "Detector", "detect", "detect_batch", "get_detector"]
