"""The aligned-crop prior: for pre-aligned crops where the whole image is the face (FER2013, CK+48)."""

from __future__ import annotations

import numpy as np

from ..landmarks import aligned_prior
from ..types import Faces
from . import DETECTORS


@DETECTORS.register(
    "aligned",
    "prior for pre-aligned crops: places the mean face in the frame (landmark_source=prior)",
)
class AlignedPrior:
    """Not a detector: it asserts the usual FER-crop face position, and always says so."""

    name = "aligned"

    def __call__(self, image: np.ndarray) -> Faces:
        h, w = np.asarray(image).shape[:2]
        lm = aligned_prior() * np.array([w, h])
        return Faces(
            np.array([[0, 0, w, h]]),
            np.zeros(1),
            lm[None],
            np.array(["prior"], dtype=object),
            self.name,
        )
