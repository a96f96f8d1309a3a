"""Training data: read a maskgen output (metadata.csv) or a labelled folder into 48x48 gray arrays, and
split it honestly (subject-disjoint when subject ids exist; variants of one source never straddle splits)."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import BadParameter, MaskgenError
from ..io import IMAGE_SUFFIXES, decode_image, read_image
from ..pipeline.manifest import MANIFEST
from ..pipeline.remote import as_path, is_remote
from ..pipeline.shards import read_shard, shard_files
from ..pipeline.sources import folder_records
from ..pipeline.splits import assign


@dataclass(frozen=True)
class Item:
    path: Path
    label: str
    subject: str = ""
    split: str = ""
    source: str = ""  # the input an output was made from: groups variants together
    member: str = ""  # for a sharded output: the image's name inside the shard `path`

    @property
    def group_source(self) -> str:
        return self.source or str(self.path)


def load_items(data: str | Path) -> list[Item]:
    """Items of a maskgen output (its metadata.csv; local, or sharded at a URL) or of a labelled folder."""
    data = as_path(data)
    meta = data / "metadata.csv"
    if meta.exists():
        with meta.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        shard = _shard_of(data)
        items = [
            Item(
                data / shard[r["file_name"]] if r["file_name"] in shard else data / r["file_name"],
                r.get("label", ""),
                r.get("subject", ""),
                r.get("split", ""),
                r.get("source", ""),
                r["file_name"] if r["file_name"] in shard else "",
            )
            for r in rows
        ]
    elif data.is_dir() and not is_remote(data):
        items = [
            Item(r.path, r.label, r.subject, r.split, r.key)
            for r in folder_records(data)
            if r.path is not None and not r.problem and r.path.suffix.lower() in IMAGE_SUFFIXES
        ]
    else:
        raise BadParameter(f"{data}: not a maskgen output (metadata.csv) or a labelled folder")
    items = [it for it in items if it.label]
    if not items:
        raise BadParameter(f"{data}: no labelled images found")
    return items


def _shard_of(data: Path) -> dict[str, str]:
    """file_name -> shard for a sharded maskgen output (--output-format parquet|webdataset); else empty."""
    if not shard_files(data):
        return {}
    with (data / MANIFEST).open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return {r["file_name"]: r["shard"] for r in rows if r.get("shard")}


def to_gray(img: np.ndarray, size: int) -> np.ndarray:
    gray = img if img.ndim == 2 else cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2GRAY)
    if gray.shape != (size, size):
        interp = cv2.INTER_AREA if min(gray.shape) > size else cv2.INTER_CUBIC
        gray = cv2.resize(gray, (size, size), interpolation=interp)
    return gray


def load_images(items: Sequence[Item], size: int = 48) -> np.ndarray:
    """(N, size, size) uint8 grayscale, read in parallel threads (decoding releases the GIL)."""

    packed: dict[tuple[Path, str], bytes] = {}
    wanted = {(it.path, it.member) for it in items if it.member}
    for shard in sorted({path for path, _ in wanted}, key=str):  # each shard read once, whole
        for row, data in read_shard(shard):
            if (shard, row["file_name"]) in wanted:
                packed[shard, row["file_name"]] = data

    def one(it: Item) -> np.ndarray:
        try:
            if it.member:
                if (it.path, it.member) not in packed:
                    raise MaskgenError(f"not in its shard {it.path}")
                return to_gray(decode_image(packed[it.path, it.member], it.member), size)
            return to_gray(read_image(it.path), size)
        except MaskgenError as e:
            raise MaskgenError(f"cannot read training image {it.member or it.path}: {e}") from None

    with ThreadPoolExecutor(max_workers=4) as pool:
        return np.stack(list(pool.map(one, items))) if items else np.zeros((0, size, size), np.uint8)


@dataclass
class Split:
    mode: str  # subject | random | given
    note: str
    index: dict[str, list[int]]  # split name -> item indices

    def describe(self) -> str:
        counts = ", ".join(f"{k} {len(v)}" for k, v in self.index.items())
        return f"{self.mode} split ({counts})" + (f"; {self.note}" if self.note else "")


def make_split(
    items: Sequence[Item], mode: str = "subject", seed: int = 0, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> Split:
    """Train/val/test indices. `subject`: no person in two splits (falls back to source images when there
    are no subject ids, and says so); `random`: by source image; `given`: the items' own split column
    (val carved from train by source image when the data has none)."""
    note = ""
    if mode == "subject" and not any(it.subject for it in items):
        mode, note = "random", "no subject ids: split by source image instead (a person may be in several splits)"
    if mode == "given":
        given = {it.split for it in items}
        if not given - {""}:
            raise BadParameter("--split given: the data has no split column; use --split subject or random")
        names = {"training": "train", "publictest": "val", "privatetest": "test", "validation": "val"}
        idx: dict[str, list[int]] = defaultdict(list)
        for i, it in enumerate(items):
            idx[names.get(it.split.lower(), it.split.lower())].append(i)
        if "val" not in idx and "train" in idx:
            sub = make_split([items[i] for i in idx["train"]], "random", seed, (0.9, 0.1, 0.0))
            train = idx["train"]
            idx["train"], idx["val"] = [train[i] for i in sub.index["train"]], [train[i] for i in sub.index["val"]]
            note = "no validation split given: 10% of train (by source image) held out for early stopping"
        return Split("given", note, {k: idx.get(k, []) for k in ("train", "val", "test")})
    if mode not in ("subject", "random"):
        raise BadParameter(f"--split must be subject, random or given, got {mode!r}")
    keys = [f"s:{it.subject}" if mode == "subject" and it.subject else f"g:{it.group_source}" for it in items]
    groups: dict[str, Counter] = defaultdict(Counter)
    for k, it in zip(keys, items, strict=True):
        groups[k][it.label] += 1
    ratios_used = tuple(r for r in ratios if r > 0) if ratios[2] == 0 else ratios
    chosen = assign(groups, ratios_used, seed)
    idx = defaultdict(list)
    for i, k in enumerate(keys):
        idx[chosen[k]].append(i)
    return Split(mode, note, {k: idx.get(k, []) for k in ("train", "val", "test")})


def make_folds(items: Sequence[Item], k: int, mode: str = "subject", seed: int = 0) -> list[Split]:
    """k-fold cross-validation: fold f tests on the f-th part and trains on the rest, less a tenth held out
    (by group) for early stopping. Parts are groups (subjects when the data has ids and `mode` is subject,
    else source images, so every variant of an input stays in one part), stratified by label."""
    from sklearn.model_selection import StratifiedGroupKFold

    if k < 2:
        raise BadParameter(f"--folds must be at least 2, got {k}")
    note = ""
    if mode == "subject" and not any(it.subject for it in items):
        mode, note = "random", "no subject ids: folds by source image (a person may be in several folds)"
    if mode not in ("subject", "random"):
        raise BadParameter(f"--folds works with --split subject or random, not {mode!r}")
    groups = [f"s:{it.subject}" if mode == "subject" and it.subject else f"g:{it.group_source}" for it in items]
    if len(set(groups)) < k:
        raise BadParameter(
            f"--folds {k}: the data has only {len(set(groups))} {'subjects' if mode == 'subject' else 'sources'}"
        )
    labels = [it.label for it in items]
    outer = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = []
    for f, (rest, test) in enumerate(outer.split(np.zeros(len(items)), labels, groups)):
        inner = make_split([items[i] for i in rest], mode, seed + f, (0.9, 0.1, 0.0))
        index = {
            "train": [int(rest[i]) for i in inner.index["train"]],
            "val": [int(rest[i]) for i in inner.index["val"]],
            "test": [int(i) for i in test],
        }
        folds.append(Split(mode, note, index))
    return folds


def label_set(items: Sequence[Item]) -> list[str]:
    return sorted({it.label for it in items})
