"""Counts of a converted dataset (labels, splits, types, landmark sources, skip reasons) and a bar chart."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from ..errors import BadParameter
from . import manifest as mf

DIMENSIONS = (
    ("label", "label"),
    ("split", "split"),
    ("mask type", "mask_type"),
    ("landmark source", "landmark_source"),
)


def dataset_stats(dst: Path) -> dict[str, Counter]:
    if not (dst / mf.MANIFEST).exists():
        raise BadParameter(f"{dst} has no {mf.MANIFEST}; run `maskgen convert` first")
    rows = mf._read_jsonl(dst / mf.MANIFEST)
    skips = mf._read_jsonl(dst / mf.SKIPS)
    out = {title: Counter(r.get(key) or "(none)" for r in rows) for title, key in DIMENSIONS}
    out["skip reason"] = Counter(s["reason"] for s in skips)
    return out


def chart(stats: dict[str, Counter], width: int = 900) -> np.ndarray:
    """Horizontal bar panels, one per dimension, drawn with OpenCV (no plotting dependency)."""
    panels = []
    font = cv2.FONT_HERSHEY_SIMPLEX
    for title, counts in stats.items():
        items = counts.most_common(20)
        h = 34 + 22 * max(1, len(items))
        panel = np.full((h, width, 3), 255, np.uint8)
        cv2.putText(panel, f"{title} ({sum(counts.values())})", (10, 22), font, 0.6, (20, 20, 20), 1, cv2.LINE_AA)
        top = max((n for _, n in items), default=1)
        for i, (name, n) in enumerate(items):
            y = 34 + 22 * i
            cv2.putText(panel, str(name)[:22], (10, y + 15), font, 0.45, (40, 40, 40), 1, cv2.LINE_AA)
            bar = int((width - 320) * n / top)
            cv2.rectangle(panel, (220, y + 3), (220 + max(bar, 1), y + 18), (70, 130, 200), -1)
            cv2.putText(panel, str(n), (228 + bar, y + 15), font, 0.45, (40, 40, 40), 1, cv2.LINE_AA)
        panels.append(panel)
        panels.append(np.full((6, width, 3), 230, np.uint8))
    return np.vstack(panels)
