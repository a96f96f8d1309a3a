"""Draw maskgen's seven mask templates (RGBA PNG + JSON anchors) into mask_templates/.

All art is drawn here from geometry: outlines follow the project's mean face in the template
frame (maskgen.templates.frame_landmarks), details are lines, ellipses, gradients and procedural
fabric textures. Drawn at 2x and downsampled for anti-aliased edges; alpha is clipped to the
anchors' hull so that every opaque pixel is covered by the fitting triangulation.
Usage: python scripts/draw_templates.py
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from maskgen.templates import FRAME, RING_CENTRE, anchor_names, anchors_from_landmarks, delaunay, frame_landmarks

SS = 2  # supersampling
N = FRAME * SS
OUT = Path(__file__).resolve().parents[1] / "mask_templates"
P = frame_landmarks() * SS
C = P[RING_CENTRE]
U = float(np.linalg.norm(P[30] - (P[36:42].mean(0) + P[42:48].mean(0)) / 2))  # eye-to-nose distance


def out(i: int, f: float) -> np.ndarray:
    return C + f * (P[i] - C)


def spline(points: list[np.ndarray], n: int = 24) -> np.ndarray:
    """A Catmull-Rom curve through the points (endpoints included)."""
    pts = [points[0], *points, points[-1]]
    res = []
    for i in range(1, len(pts) - 2):
        p0, p1, p2, p3 = pts[i - 1], pts[i], pts[i + 1], pts[i + 2]
        for t in np.linspace(0, 1, n, endpoint=False):
            t2, t3 = t * t, t * t * t
            cubic = (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t3
            res.append(0.5 * (2 * p1 + (-p0 + p2) * t + cubic))
    res.append(points[-1])
    return np.array(res)


def outline(apex_y: float, cheek_drop: float, side: float, chin: float, pointed: bool = False) -> np.ndarray:
    """Mask outline: a top edge from the left jaw over the nose bridge to the right jaw, then down the jaw."""
    apex = np.array([P[28, 0], apex_y])
    cl = np.array([P[40:42, 0].mean(), P[40:42, 1].mean() + cheek_drop * U])
    cr = np.array([P[46:48, 0].mean(), P[46:48, 1].mean() + cheek_drop * U])
    tl, tr = out(1, side) + [0, 0.15 * U], out(15, side) + [0, 0.15 * U]
    top = np.array([tl, cl, apex, cr, tr]) if pointed else spline([tl, cl, apex, cr, tr])
    jaw = [out(i, side + (chin - side) * max(0.0, 1 - abs(i - 8) / 5)) for i in range(15, 0, -1)]
    return np.vstack([top, spline(jaw, 8)])


def fill(poly: np.ndarray) -> np.ndarray:
    m = np.zeros((N, N), np.uint8)
    cv2.fillPoly(m, [np.round(poly * 8).astype(np.int32)], 255, cv2.LINE_AA, 3)
    return m.astype(np.float32) / 255


def line(img: np.ndarray, pts: np.ndarray, colour, width: float) -> None:
    cv2.polylines(img, [np.round(pts * 8).astype(np.int32)], False, colour, max(1, int(width)), cv2.LINE_AA, 3)


def shading(alpha: np.ndarray, strength: float = 0.28) -> np.ndarray:
    """Darker towards the sides and the bottom, like cloth curving around a face."""
    ys, xs = np.mgrid[0:N, 0:N].astype(np.float32)
    half = (P[15, 0] - P[1, 0]) / 2
    s = 1 - strength * np.clip(np.abs(xs - C[0]) / half, 0, 1.3) ** 2
    s -= 0.08 * np.clip((ys - P[57, 1]) / U, 0, 2)
    edge = cv2.GaussianBlur(alpha, (0, 0), 0.12 * U)
    return (s * (0.8 + 0.2 * edge))[..., None]


def weave(seed: int, period: float, amount: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:N, 0:N].astype(np.float32)
    w = np.sin(2 * np.pi * xs / period) * np.sin(2 * np.pi * ys / period)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (N, N)).astype(np.float32), (0, 0), period / 4)
    return (1 + amount * (0.6 * w + 0.8 * noise / (noise.std() + 1e-6)))[..., None]


def loops(img: np.ndarray, poly_alpha: np.ndarray, colour, width: float) -> np.ndarray:
    """Ear loops from the mask's upper and lower side corners towards the ears; returns their alpha."""
    a = np.zeros((N, N), np.float32)
    for side, sgn in ((1, -1), (15, 1)):
        top, low = out(side, 1.06) + [0, 0.15 * U], out(side + sgn * -4, 1.07)
        ear = out(side, 1.2) + [0, 0.1 * U]
        for p in (top, low):
            pts = spline([p, (p + ear) / 2 + [0, -0.05 * U], ear], 10)
            line(img, pts, colour, width)
            line(a, pts, 1.0, width)
    return np.maximum(a, poly_alpha)


def pleats(img: np.ndarray, poly: np.ndarray, base: np.ndarray) -> None:
    ys = np.linspace(P[30, 1], P[57, 1] + 0.35 * U, 3)
    for y in ys:
        xs = np.linspace(out(2, 1.1)[0], out(14, 1.1)[0], 30)
        bow = 0.12 * U * (1 - ((xs - C[0]) / (xs[-1] - C[0])) ** 2)
        pts = np.stack([xs, y + bow], 1)
        line(img, pts, tuple(float(c) for c in base * 0.72), 0.07 * U)
        line(img, pts - [0, 0.07 * U], tuple(float(c) for c in np.minimum(base * 1.12, 255)), 0.04 * U)


def draw(kind: str) -> tuple[np.ndarray, np.ndarray, str, bool]:
    """Return (RGB float 0-255, alpha 0-1, base colour hex, recolourable) at 2x."""
    rgb = np.zeros((N, N, 3), np.float32)
    if kind == "surgical":
        base = np.array([168, 200, 226], np.float32)
        poly = outline(P[28, 1] + 0.12 * U, 0.5, 1.06, 1.07)
        alpha = fill(poly)
        rgb[:] = base
        pleats(rgb, poly, base)
        line(rgb, poly[:120], (240, 244, 248), 0.12 * U)  # white binding along the top edge
        line(rgb, np.array([P[28] + [-0.6 * U, 0.25 * U], P[28] + [0.6 * U, 0.25 * U]]), (190, 215, 235), 0.05 * U)
        rgb *= shading(alpha) * weave(1, 5, 0.025)
        alpha = loops(rgb, alpha, (245, 245, 245), 0.06 * U)
        return rgb, alpha, "#a8c8e2", True
    if kind in ("cloth", "black"):
        base = np.array([59, 74, 107] if kind == "cloth" else [28, 28, 30], np.float32)
        poly = outline(P[28, 1], 0.55, 1.04, 1.12)
        alpha = fill(poly)
        rgb[:] = base
        seam = spline([np.array([P[28, 0], P[28, 1]]), P[30] + [0, 0.1 * U], P[57] + [0, 0.2 * U], out(8, 1.12)], 12)
        line(rgb, seam, tuple(float(c) for c in base * 0.6), 0.05 * U)
        line(rgb, poly, tuple(float(c) for c in base * 0.7), 0.08 * U)  # hem
        rgb *= shading(alpha, 0.3) * weave(2 if kind == "cloth" else 3, 4, 0.07 if kind == "cloth" else 0.12)
        if kind == "black":
            rgb += 10 * (1 - shading(alpha, 0.3))  # a faint sheen so the folds read
        alpha = loops(rgb, alpha, tuple(float(c) for c in base * 0.9), 0.08 * U)
        return rgb, alpha, "#3b4a6b" if kind == "cloth" else "#1c1c1e", True
    if kind == "n95":
        base = np.array([236, 236, 230], np.float32)
        poly = outline(P[28, 1] - 0.05 * U, 0.6, 1.0, 1.1)
        alpha = fill(poly)
        rgb[:] = base
        ys, xs = np.mgrid[0:N, 0:N].astype(np.float32)
        centre = (P[30] + P[57]) / 2
        r = np.hypot((xs - centre[0]) / (1.5 * U), (ys - centre[1]) / (1.6 * U))
        rgb *= (1.05 - 0.22 * np.clip(r, 0, 1.4) ** 2)[..., None]  # the dome
        line(rgb, poly, (205, 205, 198), 0.14 * U)  # moulded rim
        line(rgb, np.array([P[28] + [-0.45 * U, 0.2 * U], P[28] + [0.45 * U, 0.2 * U]]), (180, 180, 180), 0.08 * U)
        rgb *= weave(4, 3, 0.02)
        a = alpha
        for y_off in (0.35, 1.6):  # head straps
            for sgn in (-1, 1):
                p = out(8 - sgn * 6 if y_off < 1 else 8 - sgn * 3, 1.0) + [0, 0]
                q = out(8 - sgn * 7 if y_off < 1 else 8 - sgn * 5, 1.2)
                pts = np.array([p, q])
                line(rgb, pts, (200, 170, 60), 0.09 * U)
                strap = np.zeros((N, N), np.float32)
                line(strap, pts, 1.0, 0.09 * U)
                a = np.maximum(a, strap)
        return rgb, a, "#ececE6".lower(), True
    if kind == "kn95":
        base = np.array([240, 240, 240], np.float32)
        poly = outline(P[28, 1] - 0.1 * U, 0.55, 1.04, 1.14, pointed=True)
        alpha = fill(poly)
        rgb[:] = base
        seam = np.array([[P[28, 0], P[28, 1] - 0.1 * U], out(8, 1.14)])
        line(rgb, seam, (200, 200, 200), 0.06 * U)
        ys, xs = np.mgrid[0:N, 0:N].astype(np.float32)
        side = np.sign(xs - C[0])
        rgb *= (1.0 - 0.08 * (side > 0) - 0.12 * np.clip(np.abs(xs - C[0]) / (2.5 * U), 0, 1))[..., None]
        edge = np.zeros((N, N), np.float32)
        line(edge, poly, 1.0, 0.1 * U)
        dots = (np.sin(xs / 2.5) * np.sin(ys / 2.5) > 0.3).astype(np.float32)
        rgb *= (1 - 0.12 * edge * dots)[..., None]  # welded edge
        rgb *= weave(5, 3, 0.02)
        alpha = loops(rgb, alpha, (235, 235, 235), 0.05 * U)
        return rgb, alpha, "#f0f0f0", True
    if kind == "gas":
        base = np.array([58, 60, 64], np.float32)
        poly = outline(P[28, 1] + 0.05 * U, 0.6, 1.02, 1.06)
        alpha = fill(poly)
        rgb[:] = base
        rgb *= shading(alpha, 0.35)
        for sgn, i in ((-1, 4), (1, 12)):
            c = out(i, 0.98) + [-sgn * 0.15 * U, -0.1 * U]
            ax = (int(0.55 * U * 8), int(0.62 * U * 8))
            cc = tuple(int(v * 8) for v in c)
            for col, scale in (((40, 40, 44), 1.0), ((92, 92, 96), 0.8), ((70, 70, 74), 0.55)):
                cv2.ellipse(rgb, cc, (int(ax[0] * scale), int(ax[1] * scale)), 0, 0, 360, col, -1, cv2.LINE_AA, 3)
            m = np.zeros((N, N), np.float32)
            cv2.ellipse(m, cc, ax, 0, 0, 360, 1.0, -1, cv2.LINE_AA, 3)
            alpha = np.maximum(alpha, m)
            for k in range(6):  # filter grille
                y = c[1] - 0.35 * U + k * 0.14 * U
                line(rgb, np.array([[c[0] - 0.3 * U, y], [c[0] + 0.3 * U, y]]), (50, 50, 54), 0.03 * U)
        v = P[57] + [0, 0.45 * U]
        cv2.circle(rgb, tuple(int(x * 8) for x in v), int(0.32 * U * 8), (80, 82, 86), -1, cv2.LINE_AA, 3)
        cv2.circle(rgb, tuple(int(x * 8) for x in v), int(0.18 * U * 8), (45, 45, 48), -1, cv2.LINE_AA, 3)
        line(rgb, poly, (30, 30, 32), 0.1 * U)
        return rgb, alpha, "#3a3c40", False
    if kind == "inpaint":
        alpha = fill(outline(P[28, 1], 0.5, 1.06, 1.12))
        rgb[:] = 255
        return rgb, alpha, "#ffffff", True
    raise ValueError(kind)


def hull_alpha(anchors: np.ndarray) -> np.ndarray:
    m = np.zeros((N, N), np.float32)
    cv2.fillConvexPoly(
        m, np.round(cv2.convexHull(anchors.astype(np.float32))[:, 0] * SS * 8).astype(np.int32), 1.0, cv2.LINE_8, 3
    )
    return cv2.erode(m, np.ones((5, 5), np.uint8))


def main() -> None:
    OUT.mkdir(exist_ok=True)
    anchors = anchors_from_landmarks(frame_landmarks())
    tris = delaunay(anchors)
    clip = hull_alpha(anchors)
    for kind in ("surgical", "cloth", "n95", "kn95", "gas", "black", "inpaint"):
        rgb, alpha, base, recolourable = draw(kind)
        alpha = np.clip(alpha, 0, 1) * clip
        rgba = np.dstack([np.clip(rgb, 0, 255) * alpha[..., None], alpha * 255])
        rgba = cv2.resize(rgba, (FRAME, FRAME), interpolation=cv2.INTER_AREA)
        a = rgba[..., 3:] / 255
        rgb8 = np.where(a > 0, rgba[..., :3] / np.maximum(a, 1e-6), 0)
        png = np.dstack([rgb8, rgba[..., 3]]).round().clip(0, 255).astype(np.uint8)
        cv2.imwrite(str(OUT / f"{kind}.png"), cv2.cvtColor(png, cv2.COLOR_RGBA2BGRA), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        meta = {
            "name": kind,
            "frame": FRAME,
            "base_colour": base,
            "recolourable": recolourable,
            "description": f"drawn by scripts/draw_templates.py ({kind})",
            "anchors": {n: [round(float(v), 2) for v in p] for n, p in zip(anchor_names(), anchors, strict=True)},
            "triangles": tris.tolist(),
        }
        (OUT / f"{kind}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {OUT}: 7 templates, {len(anchors)} anchors, {len(tris)} triangles")


if __name__ == "__main__":
    main()
