"""Contact sheets: rows are images, columns the original and then each mask type or strategy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .detectors import detect
from .errors import MaskgenError
from .io import as_rgb
from .strategies import mask


@dataclass(frozen=True)
class Column:
    """One column of a sheet: a title and the mask() arguments that make it."""

    title: str
    strategy: str
    params: dict[str, Any] = field(default_factory=dict)


def columns_for(strategies: Sequence[str], types: Sequence[str]) -> list[Column]:
    cols = []
    for s in strategies:
        if s == "overlay":
            cols += [Column(t, "overlay", {"type": t}) for t in types]
        else:
            cols.append(Column(s, s))
    return cols


def _cell(img: np.ndarray, size: int) -> np.ndarray:
    rgb = as_rgb(img)
    h, w = rgb.shape[:2]
    k = size / max(h, w)
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_NEAREST if max(h, w) <= 64 else cv2.INTER_CUBIC
    small = cv2.resize(rgb, (max(1, round(w * k)), max(1, round(h * k))), interpolation=interp)
    out = np.full((size, size, 3), 245, np.uint8)
    y, x = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def _label(text: str, width: int, height: int = 22) -> np.ndarray:
    bar = np.full((height, width, 3), 255, np.uint8)
    scale = 0.45
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.putText(
        bar,
        text,
        (max(2, (width - tw) // 2), height - 7),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (30, 30, 30),
        1,
        cv2.LINE_AA,
    )
    return bar


def contact_sheet(
    images: Sequence[np.ndarray],
    columns: Sequence[Column],
    cell: int = 128,
    detector: str = "mtcnn",
    fallback: str | None = None,
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """An RGB sheet: one row per image, the original first, then one cell per column (or the reason it failed)."""
    header = [_label("original", cell)] + [_label(c.title, cell) for c in columns]
    rows = [np.hstack(header)]
    for i, img in enumerate(images):
        faces = detect(img, detector=detector, fallback=fallback)
        first = _cell(img, cell)
        if names is not None:
            first[-18:] = (first[-18:] * 0.4 + 150).astype(np.uint8)
            cv2.putText(
                first, str(names[i])[:18], (3, cell - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA
            )
        cells = [first]
        for c in columns:
            try:
                res = mask(img, c.strategy, faces=faces, seed=seed, **c.params)
                cells.append(_cell(res.image, cell))
            except MaskgenError as e:
                blank = np.full((cell, cell, 3), 230, np.uint8)
                cv2.putText(
                    blank,
                    "no face" if e.code == "no_face" else e.code,
                    (8, cell // 2),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.45,
                    (180, 0, 0),
                    1,
                    cv2.LINE_AA,
                )
                cells.append(blank)
        rows.append(np.hstack(cells))
    return np.vstack(rows)
