"""Leak-free splits of a converted dataset: subject-disjoint when subject ids exist, stratified by label.

Every variant made from one input always lands in the same split (a masked and an unmasked copy of
one photo in train and test would be a leak too).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadParameter
from . import manifest as mf

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class SplitReport:
    by: str
    groups: int
    counts: dict[str, int]
    label_counts: dict[str, dict[str, int]]
    missing_subjects: int
    note: str


def assign(groups: dict[str, Counter], ratios: tuple[float, ...], seed: int) -> dict[str, str]:
    """Greedy stratified assignment: largest groups first, each to the split whose label quotas it helps most."""
    names = SPLIT_NAMES[: len(ratios)]
    total = sum(groups.values(), Counter())
    target = {s: {lab: r * n for lab, n in total.items()} for s, r in zip(names, ratios, strict=True)}
    have = {s: Counter() for s in names}
    rng = np.random.default_rng(seed)
    order = sorted(groups, key=lambda g: (-sum(groups[g].values()), rng.random()))
    out = {}
    for i, g in enumerate(order):
        c = groups[g]

        def need(s: str, c: Counter = c) -> float:
            return sum((target[s][lab] - have[s][lab]) * n for lab, n in c.items()) / max(1, sum(c.values()))

        empty = [s for s in names if not have[s] and ratios[names.index(s)] > 0]
        if len(order) - i <= len(empty):  # just enough groups left: give every split at least one
            best = max(empty, key=lambda s: ratios[names.index(s)])
        else:
            best = max(names, key=lambda s: (need(s), ratios[names.index(s)]))
        out[g] = best
        have[best].update(c)
    return out


def split_dataset(
    dst: Path, by: str = "subject", ratios: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 0
) -> SplitReport:
    """Write a `split` column into DST's metadata.csv and manifest.jsonl."""
    if not (dst / mf.METADATA).exists():
        raise BadParameter(f"{dst} has no {mf.METADATA}; run `maskgen convert` first")
    if not 2 <= len(ratios) <= 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise BadParameter(f"--ratios must be 2 or 3 non-negative numbers summing to 1, got {ratios}")
    if by not in ("subject", "source"):
        raise BadParameter(f"--by must be subject or source, got {by!r}")
    rows = mf._read_jsonl(dst / mf.MANIFEST)
    if any(r.get("shard") for r in rows):
        raise BadParameter(
            f"{dst} holds shards, whose split columns cannot be rewritten in place; split the folder output "
            "(--output-format folder) or train with --split subject|random, which split on the fly"
        )
    missing = sum(1 for r in rows if not r.get("subject"))
    note = ""
    if by == "subject" and missing == len(rows):
        by, note = (
            "source",
            "no subject ids in this dataset: split by source image (a person may appear in several splits)",
        )
    elif by == "subject" and missing:
        note = f"{missing} outputs have no subject id: each of their source images is its own group"

    def group_of(r: dict) -> str:
        return f"subject:{r['subject']}" if by == "subject" and r.get("subject") else f"source:{r['source']}"

    groups: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        groups[group_of(r)][r.get("label", "")] += 1
    chosen = assign(groups, ratios, seed)
    for r in rows:
        r["split"] = chosen[group_of(r)]
    mf.write_rows(dst / mf.MANIFEST, rows)
    mf.finalize(dst)
    empty = [s for s, r in zip(SPLIT_NAMES, ratios, strict=False) if r > 0 and s not in set(chosen.values())]
    if empty:
        note = (note + "; " if note else "") + f"only {len(groups)} groups: {', '.join(empty)} left empty"
    label_counts: dict[str, dict[str, int]] = defaultdict(dict)
    for (s, lab), n in Counter((r["split"], r.get("label", "")) for r in rows).items():
        label_counts[s][lab] = n
    return SplitReport(by, len(groups), dict(Counter(r["split"] for r in rows)), dict(label_counts), missing, note)
