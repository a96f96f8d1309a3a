"""Decisions that need the whole dataset before conversion: duplicates and stratified sampling."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import cv2
import numpy as np

from ..errors import MaskgenError
from ..io import read_image_with_info
from .sources import Record, pixels_to_image


def dhash(img: np.ndarray) -> int:
    """64-bit difference hash: robust to re-encoding, resizing and small brightness changes."""
    gray = img if img.ndim == 2 else cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def find_duplicates(records: Iterable[Record], max_distance: int = 2) -> dict[str, str]:
    """{duplicate key: "duplicate: same as KEY ..."}; the first record (in source order) of a group is kept.

    Exact duplicates share a byte hash; near duplicates have dHashes within `max_distance` bits
    (found by pigeonhole: two hashes that close agree exactly on at least one of max_distance+1 bands).
    """
    import hashlib

    out: dict[str, str] = {}
    by_bytes: dict[str, str] = {}
    bands = max_distance + 1
    width = 64 // bands
    index: list[dict[int, list[tuple[int, str]]]] = [defaultdict(list) for _ in range(bands)]
    for rec in records:
        try:
            if rec.pixels is not None:
                data, img = rec.pixels.encode(), pixels_to_image(rec.pixels)
            else:
                img, _, data = read_image_with_info(rec.path)  # type: ignore[arg-type]
        except (MaskgenError, OSError):
            continue  # unreadable inputs are reported by the conversion itself
        digest = hashlib.sha256(data).hexdigest()
        if digest in by_bytes:
            out[rec.key] = f"duplicate: same bytes as {by_bytes[digest]}"
            continue
        by_bytes[digest] = rec.key
        h = dhash(img)
        match = None
        for b in range(bands):
            band = (h >> (b * width)) & ((1 << width) - 1)
            for other, key in index[b].get(band, []):
                if (h ^ other).bit_count() <= max_distance:
                    match = key
                    break
            if match:
                break
        if match:
            out[rec.key] = f"duplicate: looks the same as {match} (perceptual hash)"
            continue
        for b in range(bands):
            index[b][(h >> (b * width)) & ((1 << width) - 1)].append((h, rec.key))
    return out


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
