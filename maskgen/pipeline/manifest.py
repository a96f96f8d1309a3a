"""Run outputs: manifest.jsonl (one row per output), skips.jsonl (one row per input with no output),
metadata.csv (Hugging Face `imagefolder` layout) and the run configuration.

Rows are appended as work completes and flushed at once, so a killed run loses at most a half-written
last line; `Journal.load` drops such a line. `finalize` rewrites every file sorted, so the result does
not depend on worker count or on interruptions.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import write_bytes_atomic

STATE_DIR = ".maskgen"
MANIFEST = "manifest.jsonl"
SKIPS = "skips.jsonl"
METADATA = "metadata.csv"
CONFIG = "config.json"
METADATA_COLUMNS = [
    "file_name",
    "label",
    "subject",
    "split",
    "strategy",
    "mask_type",
    "color",
    "seed",
    "landmark_source",
    "source",
    "variant",
    "params",
]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All rows of a (small) JSONL file; a torn last line is ignored."""
    return [row for _, _, row in _scan(path)]


def _scan(path: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(byte offset, length, row) for each complete line; stops at a line cut by a crash."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        offset = 0
        for line in f:
            if not line.endswith(b"\n"):
                return
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                return
            yield offset, len(line), row
            offset += len(line)


class Journal:
    """Append-only manifest and skip log for one output folder."""

    def __init__(self, dst: Path) -> None:
        self.dst = dst
        self.manifest_path = dst / MANIFEST
        self.skips_path = dst / SKIPS

    def done(self) -> tuple[set[tuple[str, int]], set[str]]:
        """What a resumed run need not redo: (source, variant) pairs recorded, and sources skipped whole.

        Cuts any torn last line off the files first, so new rows start on a fresh line.
        """
        pairs: set[tuple[str, int]] = set()
        whole: set[str] = set()
        for path in (self.manifest_path, self.skips_path):
            good = 0
            for offset, length, row in _scan(path):
                good = offset + length
                if row.get("variant", -1) < 0:
                    whole.add(row["source"])
                else:
                    pairs.add((row["source"], row["variant"]))
            if path.exists() and good != path.stat().st_size:
                with open(path, "r+b") as f:
                    f.truncate(good)
        return pairs, whole

    def __enter__(self) -> Journal:
        self.dst.mkdir(parents=True, exist_ok=True)
        self._manifest = open(self.manifest_path, "a", encoding="utf-8")  # noqa: SIM115
        self._skips = open(self.skips_path, "a", encoding="utf-8")  # noqa: SIM115
        return self

    def __exit__(self, *exc: object) -> None:
        self._manifest.close()
        self._skips.close()

    @staticmethod
    def _append(f: io.TextIOWrapper, row: dict[str, Any]) -> None:
        f.write(json.dumps(row, sort_keys=True) + "\n")
        f.flush()  # a killed run loses at most the line being written

    def output(self, row: dict[str, Any]) -> None:
        self._append(self._manifest, row)

    def skip(self, row: dict[str, Any]) -> None:
        self._append(self._skips, row)


def metadata_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row.get(k, "") for k in METADATA_COLUMNS}
    out["params"] = json.dumps(row.get("params", {}), sort_keys=True)
    return out


@dataclass
class Totals:
    outputs: int = 0
    inputs: int = 0
    skipped: Counter = field(default_factory=Counter)


def _sorted_rewrite(
    path: Path, key: Callable[[dict[str, Any]], Any], each: Callable[[dict], None] | None = None
) -> None:
    """Rewrite a JSONL file sorted by `key`, keeping the last row per key; memory: one small index entry per row."""
    index: dict[Any, int] = {}
    for offset, _, row in _scan(path):
        index[key(row)] = offset
    tmp = path.with_name(path.name + ".sorted.part")
    with open(path, "rb") as src, open(tmp, "wb") as out:
        for k in sorted(index):
            src.seek(index[k])
            line = src.readline()
            out.write(line)
            if each is not None:
                each(json.loads(line))
    os.replace(tmp, path)


def finalize(dst: Path) -> Totals:
    """Sort manifest and skips, drop rows repeated by a resumed run, and write metadata.csv (streaming)."""
    totals = Totals()
    sources: set[str] = set()
    meta_tmp = dst / (METADATA + ".part")
    for path in (dst / MANIFEST, dst / SKIPS):
        path.touch()
    with open(meta_tmp, "w", newline="", encoding="utf-8") as meta:
        writer = csv.DictWriter(meta, fieldnames=METADATA_COLUMNS, lineterminator="\n")
        writer.writeheader()

        def on_row(row: dict) -> None:
            writer.writerow(metadata_row(row))
            totals.outputs += 1
            sources.add(row["source"])

        def on_skip(row: dict) -> None:
            totals.skipped[row["reason"]] += 1
            sources.add(row["source"])

        _sorted_rewrite(dst / MANIFEST, lambda r: r["file_name"], on_row)
        _sorted_rewrite(dst / SKIPS, lambda r: (r["source"], r.get("variant", -1)), on_skip)
    os.replace(meta_tmp, dst / METADATA)
    totals.inputs = len(sources)
    return totals


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    write_bytes_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())


def read_metadata(dst: Path) -> list[dict[str, str]]:
    with open(dst / METADATA, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_metadata(dst: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(dst / METADATA, buf.getvalue().encode())


def read_config(dst: Path) -> dict[str, Any] | None:
    path = dst / STATE_DIR / CONFIG
    return json.loads(path.read_text()) if path.exists() else None


def write_config(dst: Path, config: dict[str, Any]) -> None:
    write_bytes_atomic(dst / STATE_DIR / CONFIG, (json.dumps(config, indent=1, sort_keys=True) + "\n").encode())
