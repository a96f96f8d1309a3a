"""iBUG-68 landmark layout, the project's mean face shape, and fitting five points to 68."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
NOSE_BRIDGE = np.arange(27, 31)
NOSE_LOWER = np.arange(30, 36)
LEFT_EYE = np.arange(36, 42)  # on the image's left for a frontal face (the subject's right eye)
RIGHT_EYE = np.arange(42, 48)
EYES = np.arange(36, 48)
MOUTH = np.arange(48, 68)
NOSE_TIP = 30
MOUTH_LEFT, MOUTH_RIGHT = 48, 54
CHIN = 8

_DATA = Path(__file__).parent / "data" / "shapes.json"


@lru_cache(maxsize=1)
def _shapes() -> dict[str, np.ndarray]:
    raw = json.loads(_DATA.read_text())
    out = {k: np.asarray(raw[k], dtype=np.float64) for k in ("mean_shape", "aligned_prior", "mtcnn5") if k in raw}
    for v in out.values():
        v.setflags(write=False)
    return out


def mean_shape() -> np.ndarray:
    """The mean 68-point shape: centred, unit RMS radius, eye line horizontal (from dlib on real faces)."""
    return _shapes()["mean_shape"]


def aligned_prior() -> np.ndarray:
    """Mean landmark positions as fractions of a pre-aligned 48x48 crop (FER2013, CK+48)."""
    return _shapes()["aligned_prior"]


def mtcnn_five() -> np.ndarray:
    """Where MTCNN's five points fall on the mean shape, learned from faces both MTCNN and dlib found.

    MTCNN's points are not iBUG points (its 'nose' sits below iBUG's nose tip): fitting against
    these learned positions removes that bias. Falls back to the iBUG equivalents before derivation.
    """
    shapes = _shapes()
    return shapes["mtcnn5"] if "mtcnn5" in shapes else five_points(mean_shape())


def five_points(shape68: np.ndarray) -> np.ndarray:
    """MTCNN's five points from a 68-point shape: eye centres, nose tip, mouth corners (image left first)."""
    s = np.asarray(shape68, dtype=np.float64)
    return np.stack(
        [
            s[LEFT_EYE].mean(0),
            s[RIGHT_EYE].mean(0),
            s[NOSE_TIP],
            s[MOUTH_LEFT],
            s[MOUTH_RIGHT],
        ]
    )


def fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2x3 affine map taking src points onto dst points."""
    a = np.hstack([src, np.ones((len(src), 1))])
    m, *_ = np.linalg.lstsq(a, dst, rcond=None)
    return m.T


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2x3 similarity (rotation, uniform scale, shift) taking src onto dst (Umeyama)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / (s**2).sum(1).mean()
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


@lru_cache(maxsize=4)
def _five_to_68_operator(blend: float) -> np.ndarray:
    """The (68*2, 5*2) linear map from five points to 68: with fixed source points both least-squares
    fits (similarity and affine) are linear in the destination points, so their blend is one matrix."""
    basis = np.eye(10).reshape(10, 5, 2)
    src, shape = mtcnn_five(), mean_shape()
    cols = [
        apply((1 - blend) * fit_similarity(src, b) + blend * fit_affine(src, b), shape).ravel()
        - (apply((1 - blend) * fit_similarity(src, 0 * b) + blend * fit_affine(src, 0 * b), shape).ravel())
        for b in basis
    ]
    return np.stack(cols, axis=1)


def fit_68_from_5(points5: np.ndarray, blend: float = 0.5) -> np.ndarray:
    """Complete five detected points to 68 by fitting the mean shape: (5,2) -> (68,2), (N,5,2) -> (N,68,2).

    The map is a blend of the similarity fit (robust) and the affine fit (follows pitch and yaw
    foreshortening); `blend` is the affine share. Both fits are linear in the points, so this is
    one precomputed matrix, applied as a product and a sum rather than through BLAS, so that a face's
    numbers do not depend on the batch it came in.
    """
    p = np.asarray(points5, dtype=np.float64)
    out = (p.reshape(-1, 1, 10) * _five_to_68_operator(blend)).sum(-1)
    return out.reshape(p.shape[:-2] + (68, 2))


_AXES_W = np.zeros((3, 68))
_AXES_W[0, 36:42], _AXES_W[1, 42:48], _AXES_W[2, 48:68] = 1 / 6, 1 / 6, 1 / 20  # eye centres, mouth centre


def inter_ocular(lm: np.ndarray) -> float:
    """The distance between the two eye centres (the mean of each eye's six points)."""
    pts = np.asarray(lm, np.float64)
    return float(np.linalg.norm(pts[LEFT_EYE].mean(0) - pts[RIGHT_EYE].mean(0)))


def face_axes(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eye centre, unit 'down' vector (eyes -> mouth, perpendicular to the eye line) and unit 'right' vector."""
    (lx, ly), (rx, ry), (mx, my) = (_AXES_W @ np.asarray(lm, dtype=np.float64)).tolist()  # one product: runs per face
    dx, dy = rx - lx, ry - ly
    n = math.hypot(dx, dy)
    dx, dy = (dx / n, dy / n) if n > 0 else (1.0, 0.0)
    ex, ey = (lx + rx) / 2, (ly + ry) / 2
    sign = -1.0 if (mx - ex) * -dy + (my - ey) * dx < 0 else 1.0
    return np.array([ex, ey]), np.array([-dy * sign, dx * sign]), np.array([dx, dy])


def face_axes_many(lms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`face_axes` of each face of (N, 68, 2): (N, 2) eye centres, 'down' and 'right' vectors, the same
    numbers (the same float operations, one face's product at a time, the rest at once)."""
    pts = np.asarray(lms, dtype=np.float64)
    c = np.stack([_AXES_W @ p for p in pts]) if len(pts) else np.zeros((0, 3, 2))
    (lx, ly), (rx, ry), (mx, my) = c[:, 0].T, c[:, 1].T, c[:, 2].T
    dx, dy = rx - lx, ry - ly
    n = np.hypot(dx, dy)
    ok = n > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        dx, dy = np.where(ok, dx / n, 1.0), np.where(ok, dy / n, 0.0)
    ex, ey = (lx + rx) / 2, (ly + ry) / 2
    sign = np.where((mx - ex) * -dy + (my - ey) * dx < 0, -1.0, 1.0)
    return np.stack([ex, ey], 1), np.stack([-dy * sign, dx * sign], 1), np.stack([dx, dy], 1)


_SANE_W = np.zeros((6, 68))  # rows: left eye, right eye, nose tip, mouth corners, mouth centre
_SANE_W[0, LEFT_EYE], _SANE_W[1, RIGHT_EYE] = 1 / len(LEFT_EYE), 1 / len(RIGHT_EYE)
_SANE_W[2, NOSE_TIP], _SANE_W[3, MOUTH_LEFT], _SANE_W[4, MOUTH_RIGHT] = 1, 1, 1
_SANE_W[5, MOUTH] = 1 / len(MOUTH)


def landmarks_sane(lms: np.ndarray, width, height, tol: float = 0.02) -> np.ndarray:
    """Per face of (..., 68, 2): key points inside the frame (`width`, `height` broadcast per face), in
    order eyes above nose above mouth along the face axis.

    The key points are the eye centres, nose tip, mouth corners and mouth centre; brows, jaw and
    lip outlines are not checked, since tight crops such as FER2013 often cut them off.
    """
    lms = np.asarray(lms, dtype=np.float64)
    finite = np.isfinite(lms).all(axis=(-2, -1))
    inner = _SANE_W @ np.where(np.isfinite(lms), lms, 0.0)  # (..., 6, 2): one product per face
    size = np.stack(np.broadcast_arrays(np.asarray(width, np.float64), np.asarray(height, np.float64)), -1)
    inside = ((inner.min(-2) >= -tol * size) & (inner.max(-2) <= (1 + tol) * size)).all(-1)
    left, right, nose, centre = inner[..., 0, :], inner[..., 1, :], inner[..., 2, :], inner[..., 5, :]
    eye_line = right - left
    with np.errstate(divide="ignore", invalid="ignore"):
        u = eye_line / np.hypot(eye_line[..., 0], eye_line[..., 1])[..., None]
    down = np.stack([-u[..., 1], u[..., 0]], -1)
    mid = (left + right) / 2
    nose_d, mouth_d = ((nose - mid) * down).sum(-1), ((centre - mid) * down).sum(-1)
    return finite & inside & (eye_line[..., 0] > 0) & (nose_d > 0) & (nose_d < mouth_d)


def landmarks_are_sane(lm: np.ndarray, width: int, height: int, tol: float = 0.02) -> bool:
    """`landmarks_sane` for one face's (68, 2) points."""
    return bool(landmarks_sane(lm, width, height, tol))
