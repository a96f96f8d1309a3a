"""Mask templates: RGBA images drawn in the mean-face frame, with named anchor points (JSON).

Every template is drawn by scripts/draw_templates.py in one frame: the project's mean face shape
scaled into a 512x512 canvas. A template's anchors are therefore landmark positions of the mean
face (nose bridge, nose tip, chin, jaw, cheeks below the eyes) plus a ring pushed out beyond the
jaw so that the mask's edge and loops are covered. Fitting maps template anchors onto the same
anchors computed from a detected face, triangle by triangle (a piecewise-affine warp).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from .errors import MaskgenError
from .landmarks import mean_shape
from .registry import Registry

FRAME = 512
RING_FACTOR = 1.22
RING_CENTRE = 29  # nose bridge, middle
# name -> iBUG index. Anchors with a "ring_" twin are also pushed out from RING_CENTRE by RING_FACTOR.
ANCHORS: dict[str, int] = {
    "nose_bridge": 28,
    "nose_mid": 29,
    "nose_tip": 30,
    "nose_base": 33,
    "nostril_left": 31,
    "nostril_right": 35,
    "mouth_left": 48,
    "mouth_right": 54,
    "lip_top": 51,
    "lip_bottom": 57,
    "eye_left_bottom": 41,
    "eye_left_inner_bottom": 40,
    "eye_right_inner_bottom": 47,
    "eye_right_bottom": 46,
    "jaw_left_1": 1,
    "jaw_left_3": 3,
    "jaw_left_5": 5,
    "jaw_left_7": 7,
    "chin": 8,
    "jaw_right_9": 9,
    "jaw_right_11": 11,
    "jaw_right_13": 13,
    "jaw_right_15": 15,
}
RING = ("jaw_left_1", "jaw_left_3", "jaw_left_5", "jaw_left_7", "chin", "jaw_right_9", "jaw_right_11")
RING += ("jaw_right_13", "jaw_right_15")
TEMPLATE_DIRS = (Path(__file__).parent / "mask_templates", Path(__file__).resolve().parents[1] / "mask_templates")


def anchor_names() -> list[str]:
    return list(ANCHORS) + [f"ring_{n}" for n in RING]


_ANCHOR_IDX = np.array(list(ANCHORS.values()))
_RING_IDX = np.array([ANCHORS[n] for n in RING])


def _anchor_matrix() -> np.ndarray:
    """(K, 68) weights: anchors = W @ landmarks (a landmark each, then the ring pushed out from RING_CENTRE)."""
    w = np.zeros((len(_ANCHOR_IDX) + len(_RING_IDX), 68))
    w[np.arange(len(_ANCHOR_IDX)), _ANCHOR_IDX] = 1.0
    for j, i in enumerate(_RING_IDX, start=len(_ANCHOR_IDX)):
        w[j, RING_CENTRE] += 1 - RING_FACTOR
        w[j, i] += RING_FACTOR
    w.setflags(write=False)
    return w


ANCHOR_MATRIX = _anchor_matrix()


def anchors_from_landmarks(lm: np.ndarray) -> np.ndarray:
    """All anchor points (in `anchor_names()` order) computed from 68 landmarks: one matrix product."""
    return ANCHOR_MATRIX @ np.asarray(lm, dtype=np.float64)


def frame_landmarks() -> np.ndarray:
    """The mean face placed in the template frame: jaw 62% of the width, nose bridge top at 30% height."""
    s = mean_shape()
    k = 0.62 * FRAME / (s[16, 0] - s[0, 0])
    return s * k + (np.array([FRAME / 2, 0.30 * FRAME]) - k * s[27])


def delaunay(pts: np.ndarray) -> np.ndarray:
    """Triangles (K,3) of a Delaunay triangulation of `pts` (OpenCV's Subdiv2D)."""
    lo, hi = pts.min(0) - 10, pts.max(0) + 10
    sub = cv2.Subdiv2D((int(lo[0]), int(lo[1]), int(hi[0] - lo[0]) + 1, int(hi[1] - lo[1]) + 1))
    for p in pts:
        sub.insert((float(p[0]), float(p[1])))
    tris = []
    for t in sub.getTriangleList().reshape(-1, 3, 2):
        idx = [int(np.argmin(np.linalg.norm(pts - v, axis=1))) for v in t]
        if len(set(idx)) == 3 and np.allclose(pts[idx], t, atol=1e-3):
            tris.append(idx)
    return np.array(sorted(tris), dtype=np.int32)


@dataclass(frozen=True)
class Template:
    """One mask type: RGBA image levels (mipmaps) in the frame, anchors, triangles, colour facts."""

    name: str
    levels: tuple[np.ndarray, ...]  # float32 RGBA, FRAME, FRAME/2, ...
    anchors: np.ndarray
    triangles: np.ndarray
    base_colour: str
    recolourable: bool
    description: str

    @property
    def jaw_width(self) -> float:
        """Distance between the outermost jaw anchors, in frame pixels."""
        return _jaw_width(self.name)

    @property
    def anchor_key(self) -> bytes:
        """Identifies the anchor set (all shipped templates share one): placements are shared by it."""
        return _anchor_key(self.name)

    def level_fit(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Anchors scaled to mip level `k` and the pseudo-inverse of [those anchors, 1] (cached)."""
        return _level_fit(self.name, k)

    def level_index(self, scale: float) -> int:
        """The smallest mip level (index k, size FRAME / 2**k) at least as detailed as `scale`."""
        k = 0
        while k + 1 < len(self.levels) and scale <= 0.5 ** (k + 1):
            k += 1
        return k


MASK_TYPES: Registry[Template] = Registry("mask type")


@cache
def _pinv(name: str) -> np.ndarray:
    a = load_template(name).anchors
    return np.linalg.pinv(np.hstack([a, np.ones((len(a), 1))]))


@cache
def _anchor_key(name: str) -> bytes:
    import hashlib

    t = load_template(name)
    return hashlib.blake2b(t.anchors.tobytes() + str(len(t.levels)).encode(), digest_size=16).digest()


@cache
def _jaw_width(name: str) -> float:
    a, names = load_template(name).anchors, anchor_names()
    return float(np.linalg.norm(a[names.index("jaw_right_15")] - a[names.index("jaw_left_1")]))


@cache
def _level_fit(name: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = 0.5**k
    anchors = load_template(name).anchors * s
    pinv = _pinv(name) * np.array([[1 / s], [1 / s], [1.0]])
    anchors.setflags(write=False)
    pinv.setflags(write=False)
    return anchors, pinv


def _template_dir() -> Path:
    for d in TEMPLATE_DIRS:
        if (d / "surgical.json").exists():
            return d
    raise MaskgenError("mask templates are missing; reinstall maskgen or run scripts/draw_templates.py")


@cache
def load_template(name: str) -> Template:
    MASK_TYPES.get(name)  # a clear error for unknown names
    d = _template_dir()
    meta = json.loads((d / f"{name}.json").read_text())
    bgra = cv2.imread(str(d / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    rgba = cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA).astype(np.float32)
    rgba[..., 3] /= 255.0
    rgba[..., :3] *= rgba[..., 3:]  # premultiplied alpha: no dark fringe when resampled
    levels = [rgba]
    while levels[-1].shape[0] > 32:
        levels.append(cv2.resize(levels[-1], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    for lv in levels:
        lv.setflags(write=False)
    names = anchor_names()
    anchors = np.array([meta["anchors"][n] for n in names], dtype=np.float64)
    return Template(
        name,
        tuple(levels),
        anchors,
        np.asarray(meta["triangles"], dtype=np.int32),
        meta["base_colour"],
        bool(meta["recolourable"]),
        meta["description"],
    )


_DESCRIPTIONS = {
    "surgical": "pleated surgical mask, light blue, ear loops",
    "cloth": "fitted cloth mask with a centre seam and woven texture",
    "n95": "moulded N95 cup respirator with head straps",
    "kn95": "folded KN95 respirator with a centre seam and welded edges",
    "gas": "rubber half-face respirator with two filter cartridges",
    "black": "black cloth mask",
    "inpaint": "the mask's shape as a flat fill (for inpainting research)",
}
for _name, _doc in _DESCRIPTIONS.items():
    MASK_TYPES.register(_name, _doc)(lambda _n=_name: load_template(_n))
