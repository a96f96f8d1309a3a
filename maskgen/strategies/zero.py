"""`zero`: the KAIST recipe. Fill everything below the line that splits eye centre -> nose tip 8:2."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import BadParameter
from ..landmarks import JAW, NOSE_TIP, face_axes, face_axes_many
from ..types import Faces
from . import functional as F
from .base import STRATEGIES, check_keys

FILLS = ("0", "value", "colour", "mean", "noise")


def resolve_fill(rng: np.random.Generator, fill: Any, noise_seed: int | None = None) -> dict[str, Any]:
    """Check a fill spec; for a noise fill, keep the given noise seed or draw one (so replays match)."""
    if isinstance(fill, str) and fill in ("mean", "noise"):
        if fill == "noise":
            return {"fill": fill, "noise_seed": int(rng.integers(2**31)) if noise_seed is None else int(noise_seed)}
        return {"fill": fill, "noise_seed": None}
    F.parse_colour(fill)  # raises a one-line error for bad values
    return {"fill": fill, "noise_seed": None}


def split_point(lm: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """The point `ratio` of the way from the eye centre to the nose tip, and the face's 'down' axis."""
    eyes, down, _ = face_axes(lm)
    return eyes + ratio * (np.asarray(lm[NOSE_TIP], np.float64) - eyes), down


def split_points(lms: np.ndarray, ratios: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`split_point` of each face of (N, 68, 2) with its ratio: (N, 2) points and 'down' axes, the same numbers."""
    eyes, down, _ = face_axes_many(lms)
    nose = np.asarray(lms, np.float64)[:, NOSE_TIP]
    return eyes + np.asarray(ratios, np.float64)[:, None] * (nose - eyes), down


def region_alpha(shape: tuple[int, int], lm: np.ndarray, ratio: float, extent: str) -> np.ndarray:
    point, down = split_point(lm, ratio)
    alpha = F.half_plane(shape, point, down)
    if extent == "face":  # only below the line within the face's jaw width, down past the chin
        _, _, right = face_axes(lm)
        rel = (lm[JAW] - point) @ right
        width = rel.max() - rel.min()
        lo, hi = rel.min() - 0.12 * width, rel.max() + 0.12 * width
        depth = float(((lm[8] - point) @ down) * 1.25)
        corners = [point + lo * right, point + hi * right, point + hi * right + depth * down]
        corners.append(point + lo * right + depth * down)
        alpha = alpha * F.polygon(shape, np.array(corners))
    return alpha


@STRATEGIES.register("zero", "fill below the line splitting eyes->nose tip 8:2, along the face's own axis (KAIST)")
class Zero:
    name = "zero"

    def needs_faces(self, params: dict[str, Any]) -> bool:
        return True

    def resolve(
        self,
        rng: np.random.Generator,
        ratio: float = 0.8,
        fill: Any = 0,
        extent: str = "image",
        noise_seed: int | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        check_keys(self.name, kw, self.resolve)
        if not 0.0 <= float(ratio) <= 1.5:
            raise BadParameter(f"ratio must be between 0 and 1.5 (0.8 splits eye-to-nose 8:2), got {ratio}")
        if extent not in ("image", "face"):
            raise BadParameter(f"extent must be 'image' or 'face', got {extent!r}")
        f = resolve_fill(rng, fill, noise_seed)
        return {"ratio": float(ratio), "extent": extent, **f}

    def apply(
        self, image: np.ndarray, faces: Faces, ratio: float, fill: Any, extent: str, noise_seed: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        alphas = [region_alpha(image.shape[:2], lm, ratio, extent) for lm in faces.landmarks]
        alpha = alphas[0] if len(alphas) == 1 else np.maximum.reduce(alphas)
        return F.composite(image, alpha, F.fill_image(image, fill, noise_seed))
