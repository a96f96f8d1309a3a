"""Making a warped mask look photographed in the image it goes into: the scene's light on it, edges as soft
as the image's own, and the image's grain. Pure functions on a premultiplied patch and the image region
under it (read before anything is drawn), so one image at a time and a whole batch give the same bytes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..landmarks import face_axes, inter_ocular
from ..seeds import generator
from .functional import LUMA, paste


def luminance(region: np.ndarray) -> np.ndarray:
    """Float32 luminance (0-255) of a gray or RGB(A) region, uint8 or float on the 0-255 scale."""
    if region.ndim == 2:
        return region.astype(np.float32)
    if region.shape[2] in (1, 2):
        return region[..., 0].astype(np.float32)
    return region[..., :3].astype(np.float32) @ LUMA


def noise_level(lum: np.ndarray) -> float:
    """The image's grain: the standard deviation of what a 1-pixel blur takes away (from its mean
    absolute value, as for Gaussian noise; edges raise it a little, as they would a camera's)."""
    if lum.size < 16:
        return 0.0
    residual = cv2.absdiff(lum, cv2.GaussianBlur(lum, (3, 3), 0.8))
    return 1.2533 * float(cv2.mean(residual)[0])


def shading(lum: np.ndarray, alpha: np.ndarray, strength: float) -> np.ndarray:
    """How much lighter or darker each pixel of the covered region is lit than its average, raised to
    `strength` (0: flat): the low frequencies of the skin under the mask (a 4x4 summary, smoothly
    enlarged), so a face lit from the left gives a mask lit from the left, while the mouth and nostrils
    (high frequencies) leave no trace."""
    h, w = lum.shape
    small = cv2.resize(lum, (4, 4), interpolation=cv2.INTER_AREA)
    weight = cv2.resize(alpha, (4, 4), interpolation=cv2.INTER_AREA)
    total = weight.sum()
    ref = float((small * weight).sum() / total) if total > 0 else float(small.mean())
    gain = np.minimum(np.maximum(small / max(ref, 1.0), np.float32(0.35)), np.float32(1.8))  # np.clip, leaner
    if strength != 1.0:
        gain **= np.float32(strength)
    return cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)


def finish_patch(
    patch: np.ndarray,
    offset: tuple[int, int],
    image: np.ndarray,
    shade: float,
    soften: float,
    grain: float,
    seed: int,
) -> tuple[np.ndarray, tuple[int, int]]:
    """A premultiplied patch ((luminance, alpha) or RGBA, colour 0-255, alpha 0-1) at `offset` in `image`
    (uint8, or float on the 0-255 scale: an image and its 16-bit or float twin get the same finish),
    shaded by the light under it, its edges blurred by `soften` pixels, with `grain` times the image's
    noise; grown by the blur's reach (inside the frame). Returns (new patch, new offset)."""
    h, w = image.shape[:2]
    ox, oy = offset
    ph, pw = patch.shape[:2]
    pad = math.ceil(2.5 * soften) if soften > 0 else 0
    x0, y0, x1, y1 = max(ox - pad, 0), max(oy - pad, 0), min(ox + pw + pad, w), min(oy + ph + pad, h)
    out = np.zeros((y1 - y0, x1 - x0, patch.shape[2]), np.float32)
    paste(out[oy - y0 : oy - y0 + ph, ox - x0 : ox - x0 + pw], patch)
    colour, alpha = out[..., :-1], out[..., -1]
    lum = luminance(image[y0:y1, x0:x1])
    if shade > 0:
        colour *= shading(lum, alpha, shade)[..., None]
    if grain > 0:
        sigma = grain * noise_level(lum)
        if sigma > 0.05:
            n = generator(seed).standard_normal(alpha.shape, dtype=np.float32)
            n *= alpha
            n *= np.float32(sigma)
            colour += n[..., None]
    if soften > 0:
        out = cv2.GaussianBlur(out, (0, 0), soften)
        if out.ndim == 2:
            out = out[..., None]
    return out, (x0, y0)  # colour may leave 0..255*alpha by a little: the blend clips to the pixel range


# `relief`: the mask's own shape under a light. In the face's axes, in inter-ocular distances (IOD) from the
# top of the nose bridge, the mask is a height field: curving back towards the ears and under the chin,
# raised along the nose and tented below it, with a few shallow creases; lit by a directional light it
# shades like a real mask (lit side lighter, far side darker, the ridge and creases drawn by the light).
RELIEF_AMBIENT = 0.3
CROSS, CHIN_CURL, RIDGE, RIDGE_WIDTH = 0.45, 0.6, 0.3, 0.22


def light_vector(azimuth: float, elevation: float) -> np.ndarray:
    """A unit light direction in image axes (x right, y down, z towards the camera) from its azimuth in
    the image plane (degrees, 0 = from the right, 90 = from below) and its angle off the camera's axis."""
    a, e = math.radians(azimuth), math.radians(elevation)
    return np.array([math.sin(e) * math.cos(a), math.sin(e) * math.sin(a), math.cos(e)], np.float32)


def relief_gain(
    shape: tuple[int, int],
    offset: tuple[int, int],
    lm: np.ndarray,
    light: tuple[float, float],
    strength: float,
    seed: int,
) -> np.ndarray:
    """Per-pixel brightness factor (1 on a surface facing the camera) of a (h, w) patch at `offset`: the
    mask's height field (see above), shaded by a Lambertian light from `light` = (azimuth, elevation)
    with ambient light, then scaled towards 1 by `strength` (0: flat). Creases come from `seed`."""
    h, w = shape
    pts = np.asarray(lm, np.float64)
    _, down, right = face_axes(pts)
    iod = max(inter_ocular(pts), 1.0)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs += np.float32(offset[0] - pts[27, 0])
    ys += np.float32(offset[1] - pts[27, 1])
    u = (xs * np.float32(right[0]) + ys * np.float32(right[1])) / np.float32(iod)
    v = (xs * np.float32(down[0]) + ys * np.float32(down[1])) / np.float32(iod)
    ridge = RIDGE * np.clip(1.0 - np.maximum(v - 0.7, 0) / 1.2, 0.3, 1.0) * np.clip(v + 0.3, 0, 1)
    height = -CROSS * u * u - CHIN_CURL * np.maximum(v - 1.6, 0) ** 2 + ridge * np.exp(-u * u / (2 * RIDGE_WIDTH**2))
    rng = np.random.default_rng(seed)
    for _ in range(int(rng.integers(2, 6))):  # creases: shallow folds across the mask
        at, slope, width = rng.uniform(0.5, 1.9), rng.normal(0, 0.08), rng.uniform(0.03, 0.08)
        depth = rng.choice([-1.0, 1.0]) * rng.uniform(0.01, 0.03)
        height = height + depth * np.exp(-((v - at - slope * u) ** 2) / (2 * width * width))
    gy, gx = np.gradient(height.astype(np.float32))  # per pixel; the height is in IOD, the pixels are iod/IOD
    gx *= np.float32(iod)
    gy *= np.float32(iod)
    lx, ly, lz = light_vector(*light)
    lit = (-gx * lx - gy * ly + lz) / np.sqrt(gx * gx + gy * gy + 1)
    gain = (RELIEF_AMBIENT + (1 - RELIEF_AMBIENT) * np.maximum(lit, 0)) / (RELIEF_AMBIENT + (1 - RELIEF_AMBIENT) * lz)
    return (1 + np.float32(strength) * (gain - 1)).astype(np.float32)


def relieve_patch(
    patch: np.ndarray, offset: tuple[int, int], lm: np.ndarray, light: tuple[float, float], strength: float, seed: int
) -> np.ndarray:
    """A premultiplied patch ((luminance, alpha) or RGBA) with its colour shaded by `relief_gain`."""
    out = np.array(patch, np.float32, copy=True)
    out[..., :-1] *= relief_gain(out.shape[:2], offset, lm, light, strength, seed)[..., None]
    return out
