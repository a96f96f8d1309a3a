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
from collections.abc import Iterable
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
    rows = []
    if not path.exists():
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a crash: everything after it is redone
    return rows


class Journal:
    """Append-only manifest and skip log for one output folder."""

    def __init__(self, dst: Path) -> None:
        self.dst = dst
        self.manifest_path = dst / MANIFEST
        self.skips_path = dst / SKIPS
        self._files: list[io.TextIOWrapper] = []

    def load(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Rows already recorded (a resumed run), with any torn last line removed from disk."""
        rows, skips = _read_jsonl(self.manifest_path), _read_jsonl(self.skips_path)
        for path, kept in ((self.manifest_path, rows), (self.skips_path, skips)):
            if path.exists():
                write_bytes_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept).encode())
        return rows, skips

    def __enter__(self) -> Journal:
        self.dst.mkdir(parents=True, exist_ok=True)
        self._manifest = open(self.manifest_path, "a", encoding="utf-8")  # noqa: SIM115
        self._skips = open(self.skips_path, "a", encoding="utf-8")  # noqa: SIM115
        return self

    def __exit__(self, *exc: object) -> None:
        self._manifest.close()
        self._skips.close()

    def _append(self, f: io.TextIOWrapper, row: dict[str, Any]) -> None:
        f.write(json.dumps(row, sort_keys=True) + "\n")
        f.flush()

    def output(self, row: dict[str, Any]) -> None:
        self._append(self._manifest, row)

    def skip(self, row: dict[str, Any]) -> None:
        self._append(self._skips, row)


def metadata_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row.get(k, "") for k in METADATA_COLUMNS}
    out["params"] = json.dumps(row.get("params", {}), sort_keys=True)
    return out


def finalize(dst: Path, rows: Iterable[dict[str, Any]], skips: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """Rewrite manifest and skips sorted, and write metadata.csv from the manifest (all atomically)."""
    rows = sorted(rows, key=lambda r: r["file_name"])
    skips = sorted(skips, key=lambda r: (r["source"], r.get("variant", -1)))
    write_bytes_atomic(dst / MANIFEST, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
    write_bytes_atomic(dst / SKIPS, "".join(json.dumps(r, sort_keys=True) + "\n" for r in skips).encode())
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METADATA_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(metadata_row(r) for r in rows)
    write_bytes_atomic(dst / METADATA, buf.getvalue().encode())
    return len(rows), len(skips)


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
