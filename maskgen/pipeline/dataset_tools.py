"""Decisions that need the whole dataset before conversion: duplicates and stratified sampling."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..errors import MaskgenError
from .sources import Record, pixels_to_image, read_source


def dhash(img: np.ndarray) -> int:
    """64-bit difference hash: robust to re-encoding, resizing and small brightness changes."""
    gray = img if img.ndim == 2 else cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def thumbnail(img: np.ndarray) -> np.ndarray:
    """32x32 gray float32 copy: what two images are compared on."""
    gray = img if img.ndim == 2 else cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)


@dataclass
class Duplicates:
    """What `find_duplicates` found: inputs to skip, and near-identical pairs whose labels differ."""

    excluded: dict[str, str] = field(default_factory=dict)  # key -> "duplicate: ..."
    conflicts: list[dict[str, str]] = field(default_factory=list)


def find_duplicates(records: Iterable[Record], threshold: float = 2.0, max_bits: int = 4) -> Duplicates:
    """Exact and near duplicates; the first record (in source order) of a group is kept.

    Exact duplicates share their bytes. Near duplicates must be nearly the same pixels: dHashes within
    `max_bits` bits (found by pigeonhole: such hashes agree exactly on one of max_bits+1 bands), confirmed
    by a mean absolute difference of at most `threshold` (0-255) between 32x32 gray thumbnails. Two
    frames of one expression differ by more than that; a re-encoded or resized copy does not. A match
    whose labels differ is never dropped: it is reported as a label conflict and both inputs are kept.
    """
    out = Duplicates()
    by_bytes: dict[str, tuple[str, str]] = {}
    bands = max_bits + 1
    width = 64 // bands
    index: list[dict[int, list[tuple[int, str]]]] = [defaultdict(list) for _ in range(bands)]
    kept: dict[str, tuple[np.ndarray, str]] = {}  # key -> (thumbnail, label) of every image kept
    for rec in records:
        if rec.problem:
            continue
        try:
            if rec.pixels is not None:
                data, img = rec.pixels.encode(), pixels_to_image(rec.pixels)
            else:
                img, _, data = read_source(rec)
        except (MaskgenError, OSError):
            continue  # unreadable inputs are reported by the conversion itself
        digest = hashlib.sha256(data).hexdigest()
        if digest in by_bytes:
            first, label = by_bytes[digest]
            if label == rec.label:
                out.excluded[rec.key] = f"duplicate: same bytes as {first}"
            else:
                out.conflicts.append(_conflict(rec, first, label, "same bytes"))
            continue
        by_bytes[digest] = (rec.key, rec.label)
        h, thumb = dhash(img), thumbnail(img)
        match = None
        for b in range(bands):
            for other, key in index[b].get((h >> (b * width)) & ((1 << width) - 1), []):
                if (h ^ other).bit_count() <= max_bits and float(np.abs(kept[key][0] - thumb).mean()) <= threshold:
                    match = key
                    break
            if match:
                break
        if match and kept[match][1] == rec.label:
            out.excluded[rec.key] = f"duplicate: nearly the same pixels as {match} (within --dedup-threshold)"
            continue
        if match:
            out.conflicts.append(_conflict(rec, match, kept[match][1], "nearly the same pixels"))
        kept[rec.key] = (thumb, rec.label)
        for b in range(bands):
            index[b][(h >> (b * width)) & ((1 << width) - 1)].append((h, rec.key))
    return out


def _conflict(rec: Record, other: str, other_label: str, how: str) -> dict[str, str]:
    return {"source": rec.key, "label": rec.label, "other": other, "other_label": other_label, "how": how}


def stratified_sample(items: list[tuple[str, str]], n: int, seed: int) -> set[str]:
    """Pick n of (id, label) items, as balanced over labels as availability allows; deterministic per seed."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for item_id, label in items:
        by_label[label].append(item_id)
    rng = np.random.default_rng(seed)
    pools = {k: [v[i] for i in rng.permutation(len(v))] for k, v in sorted(by_label.items())}
    quota = dict.fromkeys(pools, 0)
    remaining = min(n, len(items))
    while remaining > 0:
        open_labels = [k for k in pools if quota[k] < len(pools[k])]
        share = max(1, remaining // len(open_labels))
        for k in open_labels:
            take = min(share, len(pools[k]) - quota[k], remaining)
            quota[k] += take
            remaining -= take
            if remaining == 0:
                break
    return {i for k, pool in pools.items() for i in pool[: quota[k]]}
