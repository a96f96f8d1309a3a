"""Pure image operations used by the strategies: no randomness, no state.

Layers are float32 alpha maps in [0, 1] and fill images in the input's value range; `composite`
blends them into a copy of the input, preserving its size, dtype and channels (gray stays gray,
an alpha channel is left alone), and returns the occlusion: 255 exactly where pixels were changed.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import BadParameter

ALPHA_EPS = 1.0 / 512.0  # below this an anti-aliased edge changes no 8-bit value: treat as untouched

NAMED_COLOURS = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "blue": (60, 110, 200),
    "lightblue": (168, 200, 226),
    "navy": (35, 45, 85),
    "green": (70, 130, 90),
    "teal": (50, 140, 140),
    "red": (190, 50, 50),
    "pink": (230, 160, 185),
    "purple": (120, 80, 160),
    "beige": (215, 195, 165),
    "yellow": (230, 200, 80),
}


def max_value(dtype: np.dtype) -> float:
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    return 1.0


def parse_colour(value: object) -> tuple[int, int, int]:
    """An RGB triple from a name, '#rrggbb', a gray level or an (r, g, b) sequence."""
    if isinstance(value, str):
        v = value.strip().lower()
        if v in NAMED_COLOURS:
            return NAMED_COLOURS[v]
        if v.startswith("#") and len(v) == 7:
            try:
                return tuple(int(v[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
            except ValueError:
                pass
        raise BadParameter(f"colour {value!r} is not a name ({', '.join(NAMED_COLOURS)}), '#rrggbb' or a number")
    if isinstance(value, (int, float)) and 0 <= value <= 255:
        return (int(value),) * 3  # type: ignore[return-value]
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(0 <= float(c) <= 255 for c in value):
        return tuple(int(c) for c in value)  # type: ignore[return-value]
    raise BadParameter(f"colour {value!r} is not a name, '#rrggbb', a 0-255 gray level or an (r, g, b) triple")


def colour_hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def channels_of(image: np.ndarray) -> int:
    return 1 if image.ndim == 2 else image.shape[2]


def to_channels(rgb: np.ndarray, channels: int) -> np.ndarray:
    """Float RGB (..., 3) to the image's colour channels: luminance for gray, RGB otherwise (alpha excluded)."""
    if channels in (1, 2):
        return (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    return rgb


def composite(image: np.ndarray, alpha: np.ndarray, fill: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blend `fill` (H,W,3 float RGB in 0-255, or broadcastable) over `image` where `alpha` > 0.

    Returns (new image, occlusion). Pixels outside the occlusion are bit-for-bit unchanged.
    """
    alpha = np.where(alpha >= ALPHA_EPS, alpha, 0).astype(np.float32)
    occ = alpha > 0
    out = image.copy()
    if not occ.any():
        return out, np.zeros(image.shape[:2], np.uint8)
    ys, xs = np.nonzero(occ)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    a = alpha[y0:y1, x0:x1, None]
    ch = channels_of(image)
    colour_ch = 1 if ch in (1, 2) else 3
    f = np.broadcast_to(np.asarray(fill, dtype=np.float32), (*image.shape[:2], 3))[y0:y1, x0:x1]
    f = to_channels(f, colour_ch) * (max_value(image.dtype) / 255.0)
    view = out[y0:y1, x0:x1]
    src = view.reshape(*view.shape[:2], -1)[..., :colour_ch].astype(np.float32)
    blended = src * (1 - a) + f * a
    if np.issubdtype(image.dtype, np.integer):
        blended = np.clip(np.rint(blended), 0, max_value(image.dtype))
    blended = blended.astype(image.dtype)
    if image.ndim == 2:
        view[...] = blended[..., 0]
    else:
        view[..., :colour_ch] = blended
    occlusion = np.zeros(image.shape[:2], np.uint8)
    occlusion[occ] = 255
    return out, occlusion


def half_plane(shape: tuple[int, int], point: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """1.0 where (p - point) . normal > 0, with a one-pixel anti-aliased edge."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    d = (xs - point[0]) * normal[0] + (ys - point[1]) * normal[1]  # pixel centres sit on integer coordinates
    return np.clip(d + 0.5, 0, 1).astype(np.float32)


def polygon(shape: tuple[int, int], pts: np.ndarray, aa: bool = True) -> np.ndarray:
    """Float alpha of a filled polygon, anti-aliased at 1/16 px precision."""
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(np.asarray(pts) * 16).astype(np.int32)], 255, cv2.LINE_AA if aa else cv2.LINE_8, 4)
    return m.astype(np.float32) / 255.0


def fill_image(
    image: np.ndarray, fill: object, rng_seed: int | None = None, region: np.ndarray | None = None
) -> np.ndarray:
    """The fill layer (float RGB 0-255) for a named fill: a number, a colour, 'mean' or 'noise'."""
    h, w = image.shape[:2]
    if isinstance(fill, str) and fill == "noise":
        rng = np.random.default_rng(rng_seed)
        g = rng.integers(0, 256, size=(h, w, 1 if channels_of(image) in (1, 2) else 3)).astype(np.float32)
        return np.broadcast_to(g, (h, w, 3)) if g.shape[2] == 1 else g
    if isinstance(fill, str) and fill == "mean":
        scale = 255.0 / max_value(image.dtype)
        px = image.reshape(h * w, -1)[:, : 1 if channels_of(image) in (1, 2) else 3].astype(np.float64)
        m = px.mean(0) * scale
        return np.full((1, 1, 3), m if m.size == 3 else m[0], dtype=np.float32)
    return np.array(parse_colour(fill), dtype=np.float32).reshape(1, 1, 3)


def piecewise_affine_warp(
    src: np.ndarray, src_pts: np.ndarray, dst_pts: np.ndarray, triangles: np.ndarray, out_shape: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int]]:
    """Warp `src` (H,W,C float) so each source triangle lands on its destination triangle.

    Only the destination's bounding box (clipped to the frame) is computed; returns the warped
    patch and its (x0, y0) offset in the output. One remap over an inverse map built per pixel.
    """
    h, w = out_shape
    x0 = max(int(np.floor(dst_pts[:, 0].min())), 0)
    y0 = max(int(np.floor(dst_pts[:, 1].min())), 0)
    x1 = min(int(np.ceil(dst_pts[:, 0].max())) + 1, w)
    y1 = min(int(np.ceil(dst_pts[:, 1].max())) + 1, h)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0, src.shape[2]), np.float32), (0, 0)
    ph, pw = y1 - y0, x1 - x0
    local = dst_pts - np.array([x0, y0])
    index = np.full((ph, pw), -1, np.int32)
    inv = np.zeros((len(triangles), 2, 3), np.float32)
    for k, tri in enumerate(triangles):
        d = local[tri].astype(np.float32)
        area = (d[1, 0] - d[0, 0]) * (d[2, 1] - d[0, 1]) - (d[2, 0] - d[0, 0]) * (d[1, 1] - d[0, 1])
        if abs(area) < 1e-6:
            continue
        inv[k] = cv2.getAffineTransform(d, src_pts[tri].astype(np.float32))
        cv2.fillConvexPoly(index, np.round(d * 16).astype(np.int32), k, cv2.LINE_8, 4)
    ys, xs = np.mgrid[0:ph, 0:pw].astype(np.float32)
    valid = index >= 0
    m = inv[np.maximum(index, 0)]
    map_x = np.where(valid, m[..., 0, 0] * xs + m[..., 0, 1] * ys + m[..., 0, 2], -1e4).astype(np.float32)
    map_y = np.where(valid, m[..., 1, 0] * xs + m[..., 1, 1] * ys + m[..., 1, 2], -1e4).astype(np.float32)
    patch = cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if patch.ndim == 2:
        patch = patch[..., None]
    return patch, (x0, y0)
