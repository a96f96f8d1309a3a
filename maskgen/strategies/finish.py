"""Making a warped mask look photographed in the image it goes into: the scene's light on it, edges as soft
as the image's own, and the image's grain. Pure functions on a premultiplied patch and the image region
under it (read before anything is drawn), so one image at a time and a whole batch give the same bytes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..seeds import generator
from .functional import LUMA


def luminance(region: np.ndarray) -> np.ndarray:
    """Float32 luminance (0-255) of a uint8 gray or RGB(A) region."""
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
    ref = float((small * weight).sum() / weight.sum()) if weight.sum() > 0 else float(small.mean())
    gain = np.clip(small / max(ref, 1.0), 0.35, 1.8) ** np.float32(strength)
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
    """A premultiplied patch ((luminance, alpha) or RGBA, colour 0-255, alpha 0-1) at `offset` in `image`,
    shaded by the light under it, its edges blurred by `soften` pixels, with `grain` times the image's
    noise; grown by the blur's reach (inside the frame). Returns (new patch, new offset)."""
    h, w = image.shape[:2]
    ox, oy = offset
    ph, pw = patch.shape[:2]
    pad = math.ceil(2.5 * soften) if soften > 0 else 0
    x0, y0, x1, y1 = max(ox - pad, 0), max(oy - pad, 0), min(ox + pw + pad, w), min(oy + ph + pad, h)
    out = np.zeros((y1 - y0, x1 - x0, patch.shape[2]), np.float32)
    out[oy - y0 : oy - y0 + ph, ox - x0 : ox - x0 + pw] = patch
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
