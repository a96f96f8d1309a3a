"""Masking many same-size small images at once: the per-image draws and placements stay per image, the
pixel work runs once for the whole stack. The same bytes as `Strategy.apply` one image at a time
(tests compare them); `MaskFaces.batch` and `convert` use it for 48x48-style crops."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import MaskgenError
from ..types import Faces
from . import functional as F
from .zero import split_point, split_points

MAX_PIXELS = 160 * 160  # larger images take the one-image path (a float canvas per image would be big)


def batchable_image(shape: tuple[int, ...], dtype: np.dtype) -> bool:
    """Whether images of this shape and dtype can be batched: uint8 gray/RGB(A), at most MAX_PIXELS."""
    return (
        dtype == np.uint8
        and shape[0] * shape[1] <= MAX_PIXELS
        and (len(shape) == 2 or len(shape) == 3 and shape[2] in (3, 4))
    )


def batchable_job(strategy: str, faces: Faces, params: dict[str, Any]) -> bool:
    """Whether a batchable image's masking can be batched: one face, and `overlay` or a constant-fill
    `zero` over the whole image."""
    if len(faces) != 1:
        return False
    if strategy == "overlay":
        return True
    fill = params.get("fill")
    return (
        strategy == "zero" and params["extent"] == "image" and not (isinstance(fill, str) and fill in ("mean", "noise"))
    )


def batchable(strategy: str, image: np.ndarray, faces: Faces, params: dict[str, Any]) -> bool:
    """Whether `apply_batch` handles this image: `batchable_image` and `batchable_job`."""
    return batchable_image(image.shape, image.dtype) and batchable_job(strategy, faces, params)


def apply_batch(strategy: str, images: np.ndarray, jobs: list[tuple[Faces, dict[str, Any]]]) -> np.ndarray:
    """Mask a (B,H,W) or (B,H,W,3|4) uint8 stack in place, image i with jobs[i] = (faces, resolved params),
    each `batchable`; returns the (B,H,W) bool occlusion."""
    if strategy == "zero":
        if len(jobs) == 1:  # one crop (`MaskFaces` per item): the one-face arithmetic, without array set-up
            points, normals = (np.array([v]) for v in split_point(jobs[0][0].landmarks[0], jobs[0][1]["ratio"]))
        else:
            lms = np.stack([faces.landmarks[0] for faces, _ in jobs])
            points, normals = split_points(lms, np.array([p["ratio"] for _, p in jobs], np.float64))
        colours: dict[str, np.ndarray] = {}  # each fill's colour once: a constant, float32 (1, 1, 3)
        for _, p in jobs:
            if (key := str(p["fill"])) not in colours:
                fill = F.fill_image(images[0], p["fill"])
                colours[key] = fill @ F.LUMA if images.ndim == 3 else fill
        fills = np.stack([colours[str(p["fill"])] for _, p in jobs])
        return F.composite_batch(images, F.half_planes(images.shape[1:3], points, normals), fills)
    from . import get_strategy
    from .overlay import is_plain, paint_plain

    strat = get_strategy(strategy)
    shape = images.shape[1:]
    gray = images.ndim == 3
    # gray: (luminance, alpha) planes, so the blend's every pass is contiguous; RGB: (B,H,W,4) pixels
    canvas = np.zeros((2, *images.shape[:3]) if gray else (*images.shape[:3], 4), np.float32)
    plain = [(j, faces, p) for j, (faces, p) in enumerate(jobs) if is_plain(p)]
    paint_plain(canvas, plain, gray)
    if len(plain) < len(jobs):  # masks with light, finishing or an eye margin: each face's patches in turn
        for j in sorted(set(range(len(jobs))) - {j for j, _, _ in plain}, key=lambda j: str(jobs[j][1]["type"])):
            faces, p = jobs[j]
            for patch, offset in strat.patches(shape, faces, image=images[j], **p):
                F.paste_into_canvas(canvas, j, patch, offset)
    return F.blend_premultiplied_batch(images, canvas)


def apply_grouped(
    strategy: str, jobs: list[tuple[np.ndarray, Faces, dict[str, Any]]]
) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """For each (image, faces, resolved params): (masked copy, bool occlusion) if it is `batchable`, done
    with one `apply_batch` per image shape; None for the rest, and for a group whose batch failed, so
    the caller masks those one at a time (where each failure can be reported on its own)."""
    groups: dict[tuple, list[int]] = {}
    for i, (img, faces, p) in enumerate(jobs):
        if batchable(strategy, img, faces, p):
            groups.setdefault((img.shape, img.dtype), []).append(i)
    results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(jobs)
    for idx in groups.values():
        stack = np.stack([jobs[i][0] for i in idx])
        try:
            occ = apply_batch(strategy, stack, [jobs[i][1:] for i in idx])
        except MaskgenError:
            continue
        for i, out, o in zip(idx, stack, occ, strict=True):
            results[i] = (out, o)
    return results
