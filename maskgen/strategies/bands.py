"""`bands`: the Duke recipe. Occlude image-fraction bands of aligned crops, or landmark-relative regions."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import BadParameter
from ..landmarks import BROWS, EYES, JAW, MOUTH, NOSE_BRIDGE, NOSE_LOWER, face_axes
from ..types import Faces
from . import functional as F
from .base import STRATEGIES, check_keys
from .zero import resolve_fill

FRACTION_BANDS = {"top": (0.0, 0.25), "middle": (0.25, 0.5), "bottom": (0.5, 1.0)}
LANDMARK_REGIONS = ("eyes", "nose_mouth", "lower_face")


def landmark_band(lm: np.ndarray, region: str) -> np.ndarray:
    """The region's corners: a band across the jaw width, bounded along the face's own axis."""
    origin, down, right = face_axes(lm)
    u = (lm - origin) @ right
    v = (lm - origin) @ down
    unit = float(v[MOUTH].mean())  # eye-to-mouth distance
    m = 0.12 * unit
    if region == "eyes":
        v0, v1 = v[BROWS].min() - m, v[EYES].max() + m
        u0, u1 = u[JAW].min(), u[JAW].max()
    elif region == "nose_mouth":
        nm = np.concatenate([NOSE_BRIDGE, NOSE_LOWER, MOUTH])
        v0, v1 = v[NOSE_BRIDGE[1]], v[MOUTH].max() + m  # from point 28: 27 sits level with the eyes
        u0, u1 = u[nm].min() - 2 * m, u[nm].max() + 2 * m
    else:  # lower_face
        v0, v1 = v[NOSE_BRIDGE[2]], v[JAW].max() + m
        u0, u1 = u[JAW].min() - m, u[JAW].max() + m
    return np.array([origin + a * right + b * down for a, b in ((u0, v0), (u1, v0), (u1, v1), (u0, v1))])


@STRATEGIES.register("bands", "occlude image-fraction bands (top/middle/bottom) or landmark regions (Duke)")
class Bands:
    name = "bands"

    def needs_faces(self, params: dict[str, Any]) -> bool:
        return params["fractions"] is None  # landmark regions; image-fraction bands need no face

    def resolve(
        self,
        rng: np.random.Generator,
        region: str = "bottom",
        fractions: Any = None,
        fill: Any = 0,
        noise_seed: int | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        check_keys(self.name, kw, self.resolve)
        if fractions is not None:
            fr = [float(x) for x in np.ravel(fractions)]
            if len(fr) % 2 or any(not 0 <= x <= 1 for x in fr):
                raise BadParameter("fractions must be pairs of image-height fractions in [0, 1], e.g. [0.5, 1.0]")
            region = "fractions"
        elif region in FRACTION_BANDS:
            fr = list(FRACTION_BANDS[region])
        elif region in LANDMARK_REGIONS:
            fr = None
        else:
            choices = ", ".join([*FRACTION_BANDS, *LANDMARK_REGIONS])
            raise BadParameter(f"unknown band region {region!r}; choose one of: {choices}, or give fractions")
        f = resolve_fill(rng, fill, noise_seed)
        return {"region": region, "fractions": fr, **f}

    def apply(
        self,
        image: np.ndarray,
        faces: Faces,
        region: str,
        fractions: list[float] | None,
        fill: Any,
        noise_seed: int | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        alpha = np.zeros((h, w), np.float32)
        if fractions is not None:
            for a, b in zip(fractions[0::2], fractions[1::2], strict=True):
                alpha[int(round(a * h)) : int(round(b * h)), :] = 1.0
        else:
            if len(faces) == 0:
                raise BadParameter(f"band region {region!r} needs a face; use an image-fraction band for crops")
            for lm in faces.landmarks:
                alpha = np.maximum(alpha, F.polygon((h, w), landmark_band(lm, region)))
        return F.composite(image, alpha, F.fill_image(image, fill, noise_seed))
