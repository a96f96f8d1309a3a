"""Pure image operations used by the strategies: no randomness, no state.

Layers are float32 alpha maps in [0, 1] and fill images in the input's value range; `composite`
blends them into a copy of the input, preserving its size, dtype and channels (gray stays gray,
an alpha channel is left alone), and returns the occlusion: 255 exactly where pixels were changed.
"""

from __future__ import annotations

from functools import lru_cache

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


def value_top(image: np.ndarray) -> float:
    """The value of white: the dtype's maximum for integers; for floats 1.0 or 255.0, from the data
    (`check_image` has made sure a float image lies in 0-1 or 0-255)."""
    if image.dtype.kind in "ui":
        return _MAX_VALUE.get(image.dtype) or _MAX_VALUE.setdefault(image.dtype, max_value(image.dtype))
    return 255.0 if image.size and float(image.max()) > 1.0 else 1.0


def parse_colour(value: object) -> tuple[int, int, int]:
    """An RGB triple from a name, '#rrggbb', a gray level or an (r, g, b) sequence."""
    if isinstance(value, str):
        return _parse_colour_name(value)
    if isinstance(value, (int, float)) and 0 <= value <= 255:
        return (int(value),) * 3  # type: ignore[return-value]
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(0 <= float(c) <= 255 for c in value):
        return tuple(int(c) for c in value)  # type: ignore[return-value]
    raise BadParameter(f"colour {value!r} is not a name, '#rrggbb', a 0-255 gray level or an (r, g, b) triple")


@lru_cache(maxsize=1024)  # masks draw from a small palette millions of times
def _parse_colour_name(value: str) -> tuple[int, int, int]:
    v = value.strip().lower()
    if v in NAMED_COLOURS:
        return NAMED_COLOURS[v]
    if v.startswith("#") and len(v) == 7:
        try:
            return tuple(int(v[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
        except ValueError:
            pass
    raise BadParameter(f"colour {value!r} is not a name ({', '.join(NAMED_COLOURS)}), '#rrggbb' or a number")


def colour_hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_MAX_VALUE: dict[np.dtype, float] = {}


def channels_of(image: np.ndarray) -> int:
    return 1 if image.ndim == 2 else image.shape[2]


def to_channels(rgb: np.ndarray, channels: int) -> np.ndarray:
    """Float RGB (..., 3) to the image's colour channels: luminance for gray, RGB otherwise (alpha excluded)."""
    if channels in (1, 2):
        return (rgb @ LUMA)[..., None]
    return rgb


def composite(
    image: np.ndarray, alpha: np.ndarray, fill: np.ndarray, offset: tuple[int, int] = (0, 0)
) -> tuple[np.ndarray, np.ndarray]:
    """Blend `fill` (float RGB 0-255, broadcastable to alpha's shape) over `image` where `alpha` > 0.

    `alpha` and `fill` may be a patch placed at `offset` (x, y); the patch must lie inside the image.
    Returns (new image, occlusion). Pixels outside the occlusion are bit-for-bit unchanged.
    """
    occ = alpha >= ALPHA_EPS
    out = image.copy()
    occlusion = np.zeros(image.shape[:2], np.uint8)
    rows = np.flatnonzero(occ.any(1))
    if not rows.size:
        return out, occlusion
    cols = np.flatnonzero(occ.any(0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    box_occ = occ[y0:y1, x0:x1]
    gray = channels_of(image) in (1, 2)
    a = alpha[y0:y1, x0:x1]
    top = value_top(image)
    fill = np.asarray(fill, dtype=np.float32)
    if fill.ndim == 3 and fill.shape[:2] != (1, 1):
        fill = fill[y0:y1, x0:x1]
    f = (fill @ LUMA) if gray else fill
    if top != 255.0:
        f = f * np.float32(top / 255.0)
    ox, oy = offset
    view = out[oy + y0 : oy + y1, ox + x0 : ox + x1]
    if gray:
        src = view if image.ndim == 2 else view[..., 0]
    else:
        src, a = view[..., :3], a[..., None]
    # in bands of rows, so a large region (zeroing below the line of a 70-megapixel photo) needs a few MB of
    # float temporaries instead of gigabytes; each pixel's arithmetic is the same
    band = max(1, (1 << 21) // max(1, (x1 - x0) * (1 if gray else 3)))
    for r in range(0, y1 - y0, band):
        rows_ = slice(r, r + band)
        s_, f_ = src[rows_], f[rows_] if f.ndim >= 2 and f.shape[0] > 1 else f
        blended = s_ + (f_ - s_) * a[rows_]
        if image.dtype.kind in "ui":
            np.rint(blended, out=blended)
            np.clip(blended, 0, top, out=blended)
        keep = box_occ[rows_]
        np.copyto(s_, blended.astype(image.dtype, copy=False), where=keep if s_.ndim == 2 else keep[..., None])
    occlusion[oy + y0 : oy + y1, ox + x0 : ox + x1][box_occ] = 255
    return out, occlusion


def blend_premultiplied(out: np.ndarray, occlusion: np.ndarray, patch: np.ndarray, offset: tuple[int, int]) -> None:
    """Blend a premultiplied float patch into `out` at `offset` (x, y), in place: RGBA (colour 0-255,
    alpha 0-1), or (luminance, alpha) for a gray `out`. The patch must lie inside the frame.

    `occlusion` gets 255 where pixels changed; pixels whose alpha is below ALPHA_EPS are left bit-for-bit.
    An alpha channel of `out` is left alone. This is `composite` for warped templates, with fewer passes.
    """
    ph, pw = patch.shape[:2]
    ox, oy = offset
    a = patch[..., -1]
    occ = a >= ALPHA_EPS
    if not occ.any():
        return
    view = out[oy : oy + ph, ox : ox + pw]
    top = value_top(out)
    if out.ndim == 2 or out.shape[2] in (1, 2):
        src = view if out.ndim == 2 else view[..., 0]
        rgb = patch[..., 0] if patch.shape[2] == 2 else patch[..., :3] @ LUMA
        keep = 1.0 - a
    else:
        src = view[..., :3]
        rgb, keep = patch[..., :3], (1.0 - a)[..., None]
    blended = src * keep + (rgb * np.float32(top / 255.0) if top != 255.0 else rgb)
    if out.dtype.kind in "ui":
        np.rint(blended, out=blended)
        np.clip(blended, 0, top, out=blended)
    src[occ] = blended[occ]
    occlusion[oy : oy + ph, ox : ox + pw][occ] = 255


def half_plane(shape: tuple[int, int], point: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """1.0 where (p - point) . normal > 0, with a one-pixel anti-aliased edge (pixel centres on integers)."""
    return half_planes(shape, np.asarray(point)[None], np.asarray(normal)[None])[0]


def half_planes(shape: tuple[int, int], points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """`half_plane` for B (point, normal) pairs at once: (B, H, W), element for element the same values."""
    h, w = shape
    px, py = np.asarray(points, np.float32).T
    nx, ny = np.asarray(normals, np.float32).T
    xs = (np.arange(w, dtype=np.float32)[None, :] - px[:, None]) * nx[:, None]
    ys = (np.arange(h, dtype=np.float32)[None, :] - py[:, None]) * ny[:, None]
    alpha = ys[:, :, None] + xs[:, None, :]  # one (B,H,W) array, then in place
    alpha += np.float32(0.5)
    return np.clip(alpha, np.float32(0), np.float32(1), out=alpha)  # float32 bounds: no casting, faster


def composite_batch(images: np.ndarray, alphas: np.ndarray, fills: np.ndarray) -> np.ndarray:
    """`composite` of B uint8 images at once, in place: fills are (B, 1, 1) luminance for gray (B,H,W)
    images, (B, 1, 1, 3) RGB otherwise. Returns the (B,H,W) occlusion as bool. Same bytes as `composite`."""
    occ = alphas >= ALPHA_EPS
    src = images if images.ndim == 3 else images[..., :3]
    a = alphas if images.ndim == 3 else alphas[..., None]
    blended = np.subtract(fills, src, dtype=np.float32)  # src + (fill - src) * a, as `composite` has it
    blended *= a
    blended += src
    np.rint(blended, out=blended)
    np.clip(blended, np.float32(0), np.float32(255), out=blended)
    np.copyto(src, blended.astype(np.uint8), where=occ if images.ndim == 3 else occ[..., None])
    return occ


def blend_premultiplied_batch(images: np.ndarray, canvas: np.ndarray) -> np.ndarray:
    """`blend_premultiplied` of B uint8 images at once, in place, from a canvas of pasted patches (zero
    elsewhere): (2,B,H,W) luminance and alpha planes for gray images, (B,H,W,4) for RGB(A). Returns the
    (B,H,W) occlusion as bool. Same bytes as the one-image blend."""
    if images.ndim == 3:
        rgb, a = canvas
        occ = a >= ALPHA_EPS
        if images.flags.c_contiguous and canvas.flags.c_contiguous:  # OpenCV's fused passes on 2-D views
            rows = (images.shape[0] * images.shape[1], images.shape[2])
            src = images.reshape(rows)
            # float32(src) * (1 - a) + rgb, rounded half to even and clipped to 0-255: numpy's arithmetic
            blended = cv2.add(
                cv2.multiply(src, (1.0 - a).reshape(rows), dtype=cv2.CV_32F), rgb.reshape(rows), dtype=cv2.CV_8U
            )
            cv2.copyTo(blended, occ.view(np.uint8).reshape(rows), src)
            return occ
        src, keep = images, 1.0 - a
    else:
        a = canvas[..., -1]
        occ = a >= ALPHA_EPS
        src, rgb, keep = images[..., :3], canvas[..., :3], (1.0 - a)[..., None]
    blended = src * keep
    blended += rgb
    np.rint(blended, out=blended)
    np.clip(blended, np.float32(0), np.float32(255), out=blended)
    np.copyto(src, blended.astype(np.uint8), where=occ if images.ndim == 3 else occ[..., None])
    return occ


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
        scale = 255.0 / value_top(image)
        px = image.reshape(h * w, -1)[:, : 1 if channels_of(image) in (1, 2) else 3].astype(np.float64)
        m = px.mean(0) * scale
        return np.full((1, 1, 3), m if m.size == 3 else m[0], dtype=np.float32)
    return np.array(parse_colour(fill), dtype=np.float32).reshape(1, 1, 3)


def _dst_box(dst_pts: np.ndarray, out_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    h, w = out_shape
    (lx, ly), (hx, hy) = np.floor(dst_pts.min(0)).tolist(), np.ceil(dst_pts.max(0)).tolist()
    return max(int(lx), 0), max(int(ly), 0), min(int(hx) + 1, w), min(int(hy) + 1, h)


def affine_placement(
    src_pts: np.ndarray,
    dst_pts: np.ndarray,
    out_shape: tuple[int, int],
    tol: float = 0.05,
    pinv: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The single affine taking `src_pts` onto `dst_pts`, as (2x3 map into the box, box x0 y0 x1 y1), or
    None when no affine fits within `tol` pixels (then the warp must be piecewise).

    Landmarks fitted from five points (and the prior) are an affine image of the mean face, as are the
    template anchors, so for them the piecewise warp equals this one affine: one warpAffine.
    `pinv` (the pseudo-inverse of [src_pts, 1]) may be given to skip the least-squares solve.
    """
    if pinv is None:
        pinv = np.linalg.pinv(np.hstack([src_pts, np.ones((len(src_pts), 1))]))
    m = pinv @ dst_pts
    if np.abs(src_pts @ m[:2] + m[2] - dst_pts).max() > tol:
        return None
    box = _dst_box(dst_pts, out_shape)
    fwd = m.T.copy()
    fwd[:, 2] -= box[:2]
    return fwd, box


def paste(dst: np.ndarray, src: np.ndarray) -> None:
    """`dst[...] = src` for (h, w, C) float32 pixels. (luminance, alpha) pairs cut from a 4-channel warp
    are copied as one 8-byte value each: numpy copies a strided axis of two values several times slower."""
    if src.shape[-1] == 2 and src.dtype == dst.dtype == np.float32 and src.strides[-1] == dst.strides[-1] == 4:
        dst.view(np.complex64)[...] = src.view(np.complex64)
    else:
        dst[...] = src


def paste_into_canvas(canvas: np.ndarray, j: int, patch: np.ndarray, offset: tuple[int, int]) -> None:
    """Put image j's patch (its top-left at `offset` (x, y)) into a batch canvas: (2,B,H,W) (luminance,
    alpha) planes for a (h,w,2) patch, (B,H,W,4) for RGBA."""
    (ox, oy), (ph, pw) = offset, patch.shape[:2]
    if patch.shape[2] == 2:
        canvas[:, j, oy : oy + ph, ox : ox + pw] = patch.transpose(2, 0, 1)
    else:
        canvas[j, oy : oy + ph, ox : ox + pw] = patch


def warp_into_box(
    src: np.ndarray, fwd: np.ndarray, box: tuple[int, int, int, int], out: np.ndarray | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """`src` warped by the affine `fwd` into the box (empty when the box is): (patch (h,w,C), (x0, y0)).
    With `out` (a (h,w,C) float32 view the box's size, e.g. into a batch canvas) the patch is written there.

    Warp one, three or four channels: OpenCV 5.0 warps (and remaps) two-channel float images through a
    fixed-point table, off by up to 0.02, and slower; one, three and four channels are exact to 1e-5.
    """
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0, src.shape[2]), np.float32), (0, 0)
    patch = cv2.warpAffine(
        src, fwd, (x1 - x0, y1 - y0), dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    return (patch[..., None] if patch.ndim == 2 else patch), (x0, y0)


def piecewise_maps(
    src_pts: np.ndarray, dst_pts: np.ndarray, triangles: np.ndarray, out_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]] | None:
    """The inverse maps of a piecewise-affine warp taking each source triangle onto its destination
    triangle: (map_x, map_y, (x0, y0)) over the destination's bounding box (clipped to the frame), or None
    when that box is empty. Built per pixel; `remap_into_box` applies them (to any layer, any number of times).
    """
    x0, y0, x1, y1 = _dst_box(dst_pts, out_shape)
    if x1 <= x0 or y1 <= y0:
        return None
    ph, pw = y1 - y0, x1 - x0
    local = dst_pts - np.array([x0, y0])
    d = local[triangles]  # (K, 3, 2)
    a = np.concatenate([d, np.ones((len(triangles), 3, 1))], axis=2)  # rows [x y 1]
    ok = np.abs(np.linalg.det(a)) > 1e-6  # degenerate (collapsed) triangles are skipped
    inv = np.zeros((len(triangles), 2, 3), np.float32)
    inv[ok] = np.linalg.solve(a[ok], src_pts[triangles][ok]).transpose(0, 2, 1)
    index = np.full((ph, pw), -1, np.int32)
    fixed = np.round(d * 16).astype(np.int32)
    for k in np.nonzero(ok)[0]:
        cv2.fillConvexPoly(index, fixed[k], int(k), cv2.LINE_8, 4)
    xs = np.arange(pw, dtype=np.float32)[None, :]
    ys = np.arange(ph, dtype=np.float32)[:, None]
    inv = np.concatenate([inv, np.full((1, 2, 3), [[0, 0, -1e4], [0, 0, -1e4]], np.float32)])  # -1: outside
    m = inv[index]
    map_x = m[..., 0, 0] * xs + m[..., 0, 1] * ys + m[..., 0, 2]
    map_y = m[..., 1, 0] * xs + m[..., 1, 1] * ys + m[..., 1, 2]
    for arr in (map_x, map_y):
        arr.setflags(write=False)
    return map_x, map_y, (x0, y0)


def remap_into_box(
    src: np.ndarray, maps: tuple[np.ndarray, np.ndarray, tuple[int, int]] | None
) -> tuple[np.ndarray, tuple[int, int]]:
    """`src` (H,W,C float) through `piecewise_maps`' maps: (patch (h,w,C), (x0, y0)); empty for None."""
    if maps is None:
        return np.zeros((0, 0, src.shape[2]), np.float32), (0, 0)
    map_x, map_y, offset = maps
    patch = cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return (patch[..., None] if patch.ndim == 2 else patch), offset


def piecewise_affine_warp(
    src: np.ndarray, src_pts: np.ndarray, dst_pts: np.ndarray, triangles: np.ndarray, out_shape: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int]]:
    """Warp `src` (H,W,C float) so each source triangle lands on its destination triangle.

    Only the destination's bounding box (clipped to the frame) is computed; returns the warped
    patch and its (x0, y0) offset in the output. One remap over an inverse map built per pixel.
    """
    return remap_into_box(src, piecewise_maps(src_pts, dst_pts, triangles, out_shape))
