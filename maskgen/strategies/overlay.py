"""`overlay`: textured mask templates fitted to the landmarks with a piecewise-affine warp."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterator
from functools import lru_cache
from itertools import accumulate
from typing import Any, NamedTuple

import numpy as np

from ..errors import BadParameter
from ..landmarks import face_axes, inter_ocular
from ..seeds import CounterRng, unit_draws_array
from ..templates import MASK_TYPES, Template, anchors_from_landmarks, load_template
from ..types import Faces
from . import functional as F
from .base import STRATEGIES, check_keys
from .finish import finish_patch, relieve_patch

PATTERNS = ("none", "stripes", "dots", "checks", "noise")
# The colours of real masks and how often each is worn, for color="random": median colours of the masks in
# 536 photos of ../shared/data/realism-dev/masked grouped by k-means (scripts/measure_palette.py). Mostly
# white, light grey, black and dark grey; light blue shows as a blue-grey under real light.
PALETTE = {
    "#cacdcf": 15,
    "#18191a": 15,
    "#2e2e36": 14,
    "#e4e8ed": 13,
    "#aeaeb6": 12,
    "#464648": 10,
    "#879299": 8,
    "#706b6e": 8,
    "#dbb367": 3,
    "#ae2e58": 2,
}
DEFAULT_WEIGHTS = {"surgical": 3, "cloth": 2, "n95": 1, "kn95": 2, "gas": 0.5, "black": 2, "inpaint": 0}


def pattern_layer(kind: str, shape: tuple[int, int], period: float, seed: int) -> np.ndarray:
    """A 0..1 pattern (1 = second colour) in template-level pixels."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    period = max(period, 2.0)
    if kind == "stripes":
        angle = np.deg2rad(30 + (seed % 4) * 30)
        t = (xs * np.cos(angle) + ys * np.sin(angle)) / period
        return np.clip((np.abs((t % 1) - 0.5) - 0.25) * 4 + 0.5, 0, 1)
    if kind == "dots":
        dx, dy = (xs / period) % 1 - 0.5, (ys / period) % 1 - 0.5
        return np.clip((0.28 - np.hypot(dx, dy)) * period, 0, 1)
    if kind == "checks":
        return (((xs // period) + (ys // period)) % 2).astype(np.float32)
    if kind == "noise":
        import cv2

        n = np.random.default_rng(seed).normal(0, 1, (h, w)).astype(np.float32)
        n = cv2.GaussianBlur(n, (0, 0), period / 3)
        return np.clip(0.5 + n / (4 * n.std() + 1e-6), 0, 1)
    return np.zeros(shape, np.float32)


@lru_cache(maxsize=128)
def gray_level(
    name: str, k: int, color: str | None, strength: float, pattern: str, scale: float, pcolor: str, pseed: int
) -> np.ndarray:
    """`styled_level` for gray images as (luminance, alpha, luminance, alpha) (premultiplied, cached).

    Warped as four channels (two-channel warps are inexact: see `warp_into_box`; each channel's values
    do not depend on the others'), then channels 0 and 1 are the (luminance, alpha) patch, as a view
    whose pairs sit side by side (a batch pastes each pair as one 8-byte value).
    """
    rgba = styled_level(name, k, color, strength, pattern, scale, pcolor, pseed)
    lum = rgba[..., :3] @ F.LUMA
    out = np.dstack([lum, rgba[..., 3], lum, rgba[..., 3]])
    out.setflags(write=False)
    return out


@lru_cache(maxsize=128)
def styled_level(
    name: str, k: int, color: str | None, strength: float, pattern: str, scale: float, pcolor: str, pseed: int
) -> np.ndarray:
    """Mip level `k` of a template, recoloured and patterned (premultiplied RGBA, cached, read-only)."""
    tpl = load_template(name)
    level, lscale = tpl.levels[k], 0.5**k
    if (color is None or not tpl.recolourable) and (pattern == "none" or name == "inpaint"):
        return level
    p = {"color": color, "strength": strength, "pattern": pattern, "pattern_scale": scale, "pattern_color": pcolor}
    p["pattern_seed"] = pseed
    rgba = level.copy()
    a = rgba[..., 3:]
    rgb = np.where(a > 0, rgba[..., :3] / np.maximum(a, 1e-6), 0)
    if p["color"] is not None and tpl.recolourable:
        target = np.array(F.parse_colour(p["color"]), np.float32)
        base = np.array(F.parse_colour(tpl.base_colour), np.float32)
        lum = (rgb @ np.array([0.299, 0.587, 0.114], np.float32)) / max(float(base @ [0.299, 0.587, 0.114]), 8.0)
        new = np.clip(target * lum[..., None] if tpl.name != "inpaint" else np.broadcast_to(target, rgb.shape), 0, 255)
        rgb = (1 - p["strength"]) * rgb + p["strength"] * new
    if p["pattern"] != "none" and tpl.name != "inpaint":
        pat = pattern_layer(p["pattern"], rgb.shape[:2], p["pattern_scale"] * lscale, p["pattern_seed"])[..., None]
        second = np.array(F.parse_colour(p["pattern_color"]), np.float32)
        lum = rgb.mean(2, keepdims=True) / max(float(rgb[a[..., 0] > 0.5].mean()) if (a > 0.5).any() else 1.0, 1.0)
        rgb = rgb * (1 - pat) + np.clip(second * lum, 0, 255) * pat
    rgba[..., :3] = rgb * a
    rgba.setflags(write=False)
    return rgba


# `eye_margin`: how far below each fitted eye (in inter-ocular distances, plus EYE_PIXELS) a mask may reach
# at most; off by default. MTCNN's five points give fitted eyelids; dlib's independent 68 points put the
# lowest eye point further down by 0.08 of the inter-ocular distance (median) and 0.21 (99th percentile)
# on FER2013, CK+48 and JAFFE faces (498 found by both). With eye_margin=0.15 no mask covers one of
# dlib's eye points on >= 99% of those faces for every type (tested; n95 and kn95 cover one on ~9% of
# FER2013 crops without it). But real masks ride up to the lower eyelids: on realism-dev, a CNN tells
# masks cut this way from real ones 97-98% of the time against 81% uncut (bench/realism.py).
EYE_PIXELS = 3.0  # landmarks on small crops are a pixel or two off either way


def below_eyes(patch: np.ndarray, offset: tuple[int, int], lm: np.ndarray, margin: float) -> np.ndarray:
    """The premultiplied patch with each eye's surroundings cut out (soft-edged ellipses): `margin`
    inter-ocular distances (and a pixel) below the eye's lowest point and a quarter of that distance beyond
    its corners. The mask keeps its rise over the nose bridge and its reach over the cheeks."""
    eyes, down, right = face_axes(lm)
    pts = np.asarray(lm, np.float64)
    iod = inter_ocular(pts)
    h, w = patch.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs += np.float32(offset[0])
    ys += np.float32(offset[1])
    keep = np.ones((h, w), np.float32)
    for eye in (pts[36:42], pts[42:48]):
        centre = eye.mean(0)
        along, across = (eye - centre) @ right, (eye - centre) @ down
        # one pixel more: the cut's soft edge and a point's pixel reach half a pixel each
        a = (along.max() - along.min()) / 2 + iod / 4 + EYE_PIXELS
        b = across.max() + margin * iod + EYE_PIXELS
        u = (
            (xs - np.float32(centre[0])) * np.float32(right[0]) + (ys - np.float32(centre[1])) * np.float32(right[1])
        ) / np.float32(a)
        v = (
            (xs - np.float32(centre[0])) * np.float32(down[0]) + (ys - np.float32(centre[1])) * np.float32(down[1])
        ) / np.float32(b)
        r = np.sqrt(u * u + v * v)  # 1 on the ellipse; its edge softened over about a pixel
        keep = np.minimum(keep, np.clip((r - np.float32(1.0)) * np.float32(b) + np.float32(0.5), 0, 1))
    if keep.min() >= 1.0:
        return patch
    return patch * keep[..., None]


_PLACEMENTS: dict[tuple, tuple] = {}
_PLACEMENTS_MAX = 1 << 15  # about 30 MB (FER2013's 28,709 faces fit), and the piecewise maps below; cleared when full
_MAPS_MAX = 64 << 20  # bytes of piecewise maps kept in _PLACEMENTS before it is cleared
_maps_bytes = 0


# `fit`: per-face variety in how a mask sits, as fractions of the inter-ocular distance (IOD) per unit of
# each drawn value in [-1, 1]: higher or lower on the nose bridge, further below the chin or shorter,
# wider or narrower, and one side lower than the other (a shear along the face's axes). Affine in the
# face's frame, so a placement that was one affine warp stays one.
FIT_TOP, FIT_CHIN, FIT_WIDTH, FIT_SKEW = 0.08, 0.12, 0.10, 0.06
# `relief`: the light drawn per face (degrees): its azimuth in the image plane (0 from the right, 270 from
# above: real masks in realism-dev are lighter at the top, by 8 gray levels from under the nose to the
# chin, median) and its angle off the camera's axis
LIGHT_AZIMUTH = (200.0, 340.0)
LIGHT_ELEVATION = (15.0, 55.0)


def fit_points(pts: np.ndarray, lm: np.ndarray, fit: tuple[float, float, float, float]) -> np.ndarray:
    """Anchor points moved by a drawn fit (top, chin, width, skew), in the face's own axes from the top of
    the nose bridge: the whole mask up by `top`, its lower part stretched by `chin`, widened by `width`,
    sheared by `skew` (one side lower)."""
    top, chin, width, skew = fit
    _, down, right = face_axes(lm)
    origin = np.asarray(lm[27], np.float64)
    iod = inter_ocular(lm)
    rel = np.asarray(pts, np.float64) - origin
    u, v = rel @ right, rel @ down
    u2 = u * (1 + FIT_WIDTH * width)
    v2 = v * (1 + FIT_CHIN * chin) - FIT_TOP * top * iod + FIT_SKEW * skew * u
    return origin + np.outer(u2, right) + np.outer(v2, down)


def _placement(
    tpl: Template,
    lm: np.ndarray,
    scale: float,
    shift: tuple[float, float],
    h: int,
    w: int,
    fit: tuple[float, float, float, float] | None = None,
) -> tuple[int, tuple[np.ndarray, tuple[int, int, int, int]] | None, tuple | None]:
    """Where a face's mask goes: (mip level, (affine, box) or None, if no affine fits the piecewise warp's maps).

    Every template shares one anchor set, so this depends on the face, not on the mask type, and is
    memoised per face: training masks the same faces every epoch with new types and colours.
    """
    global _maps_bytes
    key = (tpl.anchor_key, lm.tobytes(), scale, shift, h, w, fit)  # the points' bytes: hashed by the dict
    hit = _PLACEMENTS.get(key)
    if hit is not None:
        return hit
    dst = anchors_from_landmarks(lm)
    (x0, y0), (x1, y1) = lm[0].tolist(), lm[16].tolist()
    size = math.hypot(x1 - x0, y1 - y0)
    if scale != 1.0 or shift[0] or shift[1]:
        c = dst.mean(0)
        dst = c + scale * (dst - c) + np.array(shift) * size
    if fit is not None:
        dst = fit_points(dst, lm, fit)
    k = tpl.level_index(size / tpl.jaw_width * 1.6)
    anchors, pinv = tpl.level_fit(k)
    placed = F.affine_placement(anchors, dst, (h, w), pinv=pinv)
    if placed is not None:
        placed[0].setflags(write=False)
    maps = None
    if placed is None:  # the few faces no affine fits: per-pixel maps, built once (they cost 30x a warp)
        maps = F.piecewise_maps(anchors, dst, tpl.triangles, (h, w))
    if len(_PLACEMENTS) >= _PLACEMENTS_MAX or _maps_bytes >= _MAPS_MAX:
        _PLACEMENTS.clear()
        _maps_bytes = 0
    _PLACEMENTS[key] = result = (k, placed, maps)
    _maps_bytes += 0 if maps is None else maps[0].nbytes * 2
    return result


class _Plan(NamedTuple):
    """`Overlay.resolve`'s parameters checked, with what is left to draw: `type_weights` (names and
    cumulative weights) when the type is drawn, "random" for a drawn colour or pattern, None for a drawn
    pattern colour, pattern seed, offset and scale, fit or light."""

    type: str | None
    type_weights: tuple[tuple[str, ...], tuple[float, ...]] | None
    color: str | None
    strength: float
    pattern: str
    pattern_scale: float
    pattern_color: str | None
    pattern_seed: int | None
    jitter: float
    offset: tuple[float, float] | None
    scale: float | None
    shade: float
    soften: float
    grain: float
    eye_margin: float | None
    fit: float
    fit_shape: tuple[float, ...] | None
    relief: float
    light: tuple[float, float] | None


def _plan(
    type: str = "surgical",
    weights: dict[str, float] | None = None,
    color: Any = None,
    strength: float | None = None,
    pattern: str = "none",
    pattern_scale: float = 18.0,
    pattern_color: Any = None,
    pattern_seed: int | None = None,
    jitter: float = 0.0,
    offset: tuple[float, float] | None = None,
    scale: float | None = None,
    shade: float = 0.0,
    soften: float = 0.0,
    grain: float = 0.0,
    eye_margin: float | None = None,
    fit: float = 0.0,
    fit_shape: Any = None,
    relief: float = 0.0,
    light: Any = None,
    **kw: Any,
) -> _Plan:
    """`Overlay.resolve`'s parameters checked: a one-line error for a bad one, before anything is drawn."""
    check_keys("overlay", kw, _plan)
    type_weights = None
    if type == "random":
        type_weights = _cumulative({**DEFAULT_WEIGHTS, **(weights or {})})
        for name in type_weights[0]:
            MASK_TYPES.get(name)
    else:
        MASK_TYPES.get(type)
    if color is not None and not (isinstance(color, str) and color == "random"):
        color = F.colour_hex(F.parse_colour(color))
    if pattern != "random" and pattern not in PATTERNS:
        raise BadParameter(f"unknown pattern {pattern!r}; choose one of: {', '.join(PATTERNS)}, random")
    if isinstance(pattern_color, str) and pattern_color == "random":
        pattern_color = None
    if pattern_color is not None:
        pattern_color = F.colour_hex(F.parse_colour(pattern_color))
    strength = 1.0 if strength is None else float(strength)
    if not 0 <= strength <= 1:
        raise BadParameter(f"strength must be in [0, 1], got {strength}")
    for name, value, top in (
        ("shade", shade, 1.0),
        ("soften", soften, 5.0),
        ("grain", grain, 3.0),
        ("relief", relief, 1.0),
    ):
        if not 0 <= float(value) <= top:
            raise BadParameter(f"{name} must be between 0 and {top:g}, got {value}")
    if eye_margin is not None and not 0 <= float(eye_margin) <= 1:
        raise BadParameter(f"eye_margin must be between 0 and 1 (or None: no cut), got {eye_margin}")
    if offset is not None and scale is not None:
        offset, scale = (float(offset[0]), float(offset[1])), float(scale)
    else:
        offset = scale = None
    if not 0 <= float(fit) <= 1:
        raise BadParameter(f"fit must be between 0 and 1 (0: every mask of a type sits alike), got {fit}")
    if fit_shape is not None:
        if len(fit_shape) != 4 or not all(-1 <= float(x) <= 1 for x in fit_shape):
            raise BadParameter(f"fit_shape takes [top, chin, width, skew], each in [-1, 1]; got {fit_shape}")
        fit_shape = tuple(float(x) for x in fit_shape)
    if light is not None and not float(relief):
        raise BadParameter("light sets the light of relief: give relief too (0 < relief <= 1)")
    if light is not None:
        try:
            azimuth, elevation = (float(x) for x in light)
        except (TypeError, ValueError):
            azimuth, elevation = 0.0, -1.0
        if not 0 <= elevation <= 80:
            raise BadParameter(f"light takes [azimuth, elevation] in degrees, elevation 0-80; got {light}")
        light = (azimuth % 360, elevation)
    return _Plan(
        type=None if type_weights else type,
        type_weights=type_weights,
        color=color,
        strength=strength,
        pattern=pattern,
        pattern_scale=float(pattern_scale),
        pattern_color=pattern_color,
        pattern_seed=None if pattern_seed is None else int(pattern_seed),
        jitter=float(jitter),
        offset=offset,
        scale=scale,
        shade=float(shade),
        soften=float(soften),
        grain=float(grain),
        eye_margin=None if eye_margin is None else float(eye_margin),
        fit=float(fit),
        fit_shape=fit_shape,
        relief=float(relief),
        light=light,
    )


_PLANS: dict[tuple, _Plan] = {}  # a run resolves millions of items with a handful of parameter sets


def _planned(params: dict[str, Any]) -> _Plan:
    """`_plan`, remembered per parameter set (values compared with their types: 1, 1.0 and True differ)."""
    try:
        key = tuple((k, v.__class__, _frozen(v)) for k, v in params.items())
        plan = _PLANS.get(key)
    except TypeError:  # an unhashable value (an array): checked every time
        return _plan(**params)
    if plan is None:
        if len(_PLANS) >= 256:
            _PLANS.clear()
        plan = _PLANS[key] = _plan(**params)
    return plan


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a parameter value (lists, tuples and dicts as tuples, with their types)."""
    if isinstance(value, dict):
        return tuple((k, v.__class__, _frozen(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple((v.__class__, _frozen(v)) for v in value)
    return value


def _cumulative(weights: dict[str, float]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    w = [float(v) for v in weights.values()]
    if min(w) < 0 or sum(w) <= 0:
        raise BadParameter("type weights must be non-negative and not all zero")
    return tuple(weights), tuple(accumulate(w))


def _pick(rng: np.random.Generator, table: tuple[tuple[str, ...], tuple[float, ...]]) -> str:
    """A name drawn with the table's cumulative weights (one draw)."""
    names, cum = table
    return names[min(bisect_right(cum, rng.random() * cum[-1]), len(names) - 1)]


_PALETTE_CUM = _cumulative(PALETTE)


def _resolved(
    plan: _Plan,
    type: str,
    color: str | None,
    pattern: str,
    pattern_color: str,
    pattern_seed: int,
    offset: tuple[float, float],
    scale: float,
    fit_shape: tuple[float, ...] | None,
    light: tuple[float, float] | None,
) -> dict[str, Any]:
    """The resolved parameters as `params` records them (fit and light only when used)."""
    resolved = {
        "type": type,
        "color": color,
        "strength": plan.strength,
        "pattern": pattern,
        "pattern_scale": plan.pattern_scale,
        "pattern_color": pattern_color,
        "pattern_seed": int(pattern_seed),
        "offset": [float(offset[0]), float(offset[1])],
        "scale": float(scale),
        "shade": plan.shade,
        "soften": plan.soften,
        "grain": plan.grain,
        "eye_margin": plan.eye_margin,
    }
    if plan.relief:
        resolved |= {"relief": plan.relief, "light": list(light)}
    if fit_shape is not None:
        resolved["fit_shape"] = list(fit_shape)
    return resolved


def _style(p: dict[str, Any]) -> tuple:
    """What a mask's template level and placement depend on, from resolved parameters: (type, the level's
    colour, strength, pattern, pattern scale, pattern colour and seed, then scale, offset, fit)."""
    fit = p.get("fit_shape")
    seed = p["pattern_seed"] if p["pattern"] != "none" else 0  # unpatterned styles share one cache entry
    look = (p["type"], p["color"], p["strength"], p["pattern"], p["pattern_scale"], p["pattern_color"], seed)
    return (*look, p["scale"], tuple(p["offset"]), tuple(fit) if fit else None)


def _warp(
    layer: np.ndarray, placed: tuple | None, maps: tuple | None, gray: bool
) -> tuple[np.ndarray, tuple[int, int]]:
    patch, offset = F.warp_into_box(layer, *placed) if placed is not None else F.remap_into_box(layer, maps)
    return (patch[..., :2] if gray else patch), offset


def warped(p: dict[str, Any], lm: np.ndarray, h: int, w: int, gray: bool) -> tuple[np.ndarray, tuple[int, int]]:
    """One face's template warped into an (h, w) frame, before any finishing: (premultiplied patch, (x, y)
    offset), the patch (luminance, alpha) if `gray` else RGBA, possibly empty."""
    *look, scale, offset, fit = _style(p)
    tpl = load_template(look[0])
    k, placed, maps = _placement(tpl, lm, scale, offset, h, w, fit)
    return _warp((gray_level if gray else styled_level)(*look[:1], k, *look[1:]), placed, maps, gray)


def paint_plain(canvas: np.ndarray, jobs: list[tuple[int, Faces, dict[str, Any]]], gray: bool) -> None:
    """Paste `warped` for each face of each (image index j, faces, `is_plain` params) into a batch canvas:
    (2,B,H,W) (luminance, alpha) planes if `gray`, else (B,H,W,4); an image's faces in order, each over
    the last. Jobs of one style share the template and level lookups, and run one after another (their
    warps read the same template level, still in the CPU's cache)."""
    h, w = canvas.shape[2:4] if gray else canvas.shape[1:3]
    groups: dict[tuple, list[tuple[int, Faces]]] = {}
    for j, faces, p in jobs:
        groups.setdefault(_style(p), []).append((j, faces))
    level_of = gray_level if gray else styled_level
    for (name, *look), members in groups.items():
        *look, scale, offset, fit = look
        tpl, layers = load_template(name), {}
        for j, faces in members:
            for lm in faces.landmarks:
                k, placed, maps = _placement(tpl, lm, scale, offset, h, w, fit)
                layer = layers.get(k)
                if layer is None:
                    layer = layers[k] = level_of(name, k, *look)
                if placed is None:  # a piecewise warp
                    F.paste_into_canvas(canvas, j, *_warp(layer, None, maps, gray))
                    continue
                fwd, (x0, y0, x1, y1) = placed
                if x1 <= x0 or y1 <= y0:  # off the frame
                    continue
                if gray:  # warped as (luminance, alpha) twice, pasted into the planes
                    patch, _ = F.warp_into_box(layer, fwd, (x0, y0, x1, y1))
                    canvas[:, j, y0:y1, x0:x1] = patch[..., :2].transpose(2, 0, 1)
                else:  # RGBA warped straight into the canvas
                    F.warp_into_box(layer, fwd, (x0, y0, x1, y1), out=canvas[j, y0:y1, x0:x1])


def is_plain(p: dict[str, Any]) -> bool:
    """Whether resolved parameters draw the warped template as it is (no light, finishing or eye margin):
    then `warped` is each face's whole patch."""
    return not (p.get("relief") or p.get("shade") or p.get("soften") or p.get("grain")) and p.get("eye_margin") is None


@STRATEGIES.register("overlay", "textured mask templates (7 types) fitted to the landmarks (MaskTheFace-style)")
class Overlay:
    name = "overlay"

    def needs_faces(self, params: dict[str, Any]) -> bool:
        return True

    def resolve(self, rng: np.random.Generator, **params: Any) -> dict[str, Any]:
        """The parameters checked (once per distinct set: `_plan`) and the random ones drawn from `rng`, in a
        fixed order: type, colour, pattern, pattern colour, pattern seed, offset and scale, fit, light."""
        plan = _planned(params)
        type = plan.type if plan.type_weights is None else _pick(rng, plan.type_weights)
        color = plan.color if plan.color != "random" else _pick(rng, _PALETTE_CUM)
        pattern = plan.pattern if plan.pattern != "random" else PATTERNS[int(rng.integers(len(PATTERNS)))]
        pattern_color = plan.pattern_color
        if pattern_color is None:
            pattern_color = _pick(rng, _PALETTE_CUM) if pattern != "none" else "#ffffff"
        pattern_seed = plan.pattern_seed
        if pattern_seed is None:
            pattern_seed = int(rng.bit_generator.random_raw()) >> 33  # 31 bits
        offset, scale = plan.offset, plan.scale
        if offset is None or scale is None:
            j = plan.jitter
            offset = (float(rng.uniform(-j, j)) * 0.1, float(rng.uniform(-j, j)) * 0.1) if j else (0.0, 0.0)
            scale = 1.0 + float(rng.uniform(-j, j)) * 0.08 if j else 1.0
        fit_shape = plan.fit_shape
        if fit_shape is None and plan.fit:  # drawn after the others: their draws unchanged
            fit_shape = tuple(float(rng.uniform(-plan.fit, plan.fit)) for _ in range(4))
        light = plan.light
        if light is None and plan.relief:  # drawn after the fit
            light = (float(rng.uniform(*LIGHT_AZIMUTH)) % 360, float(rng.uniform(*LIGHT_ELEVATION)))
        return _resolved(plan, type, color, pattern, pattern_color, pattern_seed, offset, scale, fit_shape, light)

    def resolve_many(self, seeds: np.ndarray, **params: Any) -> list[dict[str, Any]]:
        """`resolve(CounterRng(seed), **params)` for each seed (the same dicts), the draws made for all seeds
        at once when only the type and the pattern seed are drawn (the default; else one at a time)."""
        plan = _planned(params)
        if (
            plan.color == "random"
            or plan.pattern == "random"
            or plan.pattern_color is None
            and plan.pattern != "none"
            or plan.offset is None
            and plan.jitter
            or plan.fit_shape is None
            and plan.fit
            or plan.light is None
            and plan.relief
        ):
            return [self.resolve(CounterRng(int(s)), **params) for s in seeds]
        n = len(seeds)
        if not n:
            return []
        raw = unit_draws_array(seeds, int(plan.type_weights is not None) + int(plan.pattern_seed is None))
        types, pattern_seeds = [plan.type] * n, [plan.pattern_seed] * n
        if plan.type_weights is not None:  # _pick's draw: the same float arithmetic, searched at once
            names, cum = plan.type_weights
            r = (raw[0] >> np.uint64(11)).astype(np.float64) * 2.0**-53 * cum[-1]
            types = [names[i] for i in np.minimum(np.searchsorted(cum, r, side="right"), len(names) - 1).tolist()]
        if plan.pattern_seed is None:
            pattern_seeds = (raw[-1] >> np.uint64(33)).tolist()
        pattern_color = plan.pattern_color or "#ffffff"
        offset, scale = plan.offset or (0.0, 0.0), 1.0 if plan.scale is None else plan.scale
        base = _resolved(
            plan, types[0], plan.color, plan.pattern, pattern_color, 0, offset, scale, plan.fit_shape, plan.light
        )
        lists = [k for k, v in base.items() if isinstance(v, list)]  # the offset (fit, light): a copy each
        # what differs per seed set in a copy of one dict: the same dicts as _resolved's, keys in its order
        return [
            {**base, "type": t, "pattern_seed": int(ps), **{k: list(base[k]) for k in lists}}
            for t, ps in zip(types, pattern_seeds, strict=True)
        ]

    def patches(
        self, shape: tuple[int, ...], faces: Faces, image: np.ndarray | None = None, **p: Any
    ) -> Iterator[tuple[np.ndarray, tuple[int, int]]]:
        """The warped template of each face as (premultiplied patch, (x, y) offset), in drawing order.

        Patches are (luminance, alpha) for gray shapes (H,W), (H,W,1), (H,W,2), RGBA otherwise; each lies
        inside the frame. With the unmasked `image` (uint8, or float32 on the 0-255 scale), each is finished
        in it: shaded by its light, softened and grained (`shade`, `soften`, `grain`). `apply` blends them
        one by one;
        `MaskFaces.batch` and `convert` blend a whole batch at once.
        """
        h, w = shape[:2]
        gray = len(shape) == 2 or shape[2] in (1, 2)
        for lm in faces.landmarks:
            patch, offset = warped(p, lm, h, w, gray)
            if not patch.size:
                continue
            if p.get("relief"):
                patch = relieve_patch(patch, offset, lm, tuple(p["light"]), p["relief"], p["pattern_seed"])
            if p.get("eye_margin") is not None:
                patch = below_eyes(patch, offset, lm, p["eye_margin"])
            if image is not None and (p.get("shade") or p.get("soften") or p.get("grain")):
                patch, offset = finish_patch(
                    patch, offset, image, p["shade"], p["soften"], p["grain"], p["pattern_seed"]
                )
            yield patch, offset

    def apply(self, image: np.ndarray, faces: Faces, **p: Any) -> tuple[np.ndarray, np.ndarray]:
        out, occlusion = image.copy(), np.zeros(image.shape[:2], np.uint8)
        finish = None  # light, edges and grain are measured on the 0-255 scale, whatever the dtype
        if p.get("shade") or p.get("soften") or p.get("grain"):
            finish = (
                image if image.dtype == np.uint8 else image.astype(np.float32) * np.float32(255 / F.value_top(image))
            )
        for patch, offset in self.patches(image.shape, faces, image=finish, **p):  # later faces on top
            F.blend_premultiplied(out, occlusion, patch, offset)
        return out, occlusion
