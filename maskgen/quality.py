"""Geometry checks of an occlusion against landmarks: does it cover the mouth and nose and spare the eyes?"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .landmarks import EYES, MOUTH, NOSE_LOWER


@dataclass(frozen=True)
class Coverage:
    mouth: bool  # every in-frame mouth point (48-67) is occluded
    nose: bool  # every in-frame lower-nose point (30-35) is occluded
    eyes_clear: bool  # no eye point (36-47) is occluded

    @property
    def ok(self) -> bool:
        return self.mouth and self.nose and self.eyes_clear


def _hits(occlusion: np.ndarray, pts: np.ndarray) -> np.ndarray | None:
    h, w = occlusion.shape
    p = np.round(np.asarray(pts)).astype(int)
    inside = (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)
    if not inside.any():
        return None
    return occlusion[p[inside, 1], p[inside, 0]] > 0


def coverage(occlusion: np.ndarray, landmarks: np.ndarray) -> Coverage:
    """Check one face's landmarks against an occlusion map (points outside the frame are not counted)."""
    mouth, nose, eyes = (_hits(occlusion, landmarks[idx]) for idx in (MOUTH, NOSE_LOWER, EYES))
    return Coverage(
        mouth=mouth is not None and bool(mouth.all()),
        nose=nose is not None and bool(nose.all()),
        eyes_clear=eyes is None or not bool(eyes.any()),
    )
