"""Run outputs: manifest.jsonl (one row per output), skips.jsonl (one row per input with no output),
metadata.csv (Hugging Face `imagefolder` layout) and the run configuration.

Rows are appended as work completes and flushed at once, so a killed run loses at most a half-written
last line; `Journal.scan` drops such a line. `finalize` rewrites every file sorted, so the result does
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
CONFLICTS = "label_conflicts.jsonl"
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


def output_key(row: dict[str, Any]) -> str:
    """What a manifest row is sorted and deduplicated by."""
    return row["file_name"]


def skip_key(row: dict[str, Any]) -> tuple[str, int]:
    """What a skip-log row is sorted and deduplicated by."""
    return row["source"], row.get("variant", -1)


EXCLUSION_REASONS = frozenset({"duplicate", "not_sampled", "bad_label"})  # decided before reading an item


class Entry:
    """What the journal holds for one source: its skip (whole), its variants, and what it was read as."""

    __slots__ = ("seen", "shards", "variants", "whole")

    def __init__(self) -> None:
        self.shards: set[str] = set()  # the shards its outputs are in (sharded outputs)
        self.whole: str | None = None  # "reason: message" when skipped whole
        self.variants: dict[int, tuple[str, str]] = {}  # variant -> ("file", file_name) or ("skip", rule)
        self.seen: tuple[int | None, int | None, str | None] | None = None  # size, mtime_ns, sha256

    def add(self, row: dict[str, Any]) -> None:
        rule = f"{row['reason']}: {row.get('message', '')}" if "reason" in row else None
        if row.get("variant", -1) < 0:
            self.whole = rule
        else:
            self.variants[row["variant"]] = ("skip", rule) if rule else ("file", row["file_name"])
        if "shard" in row:
            self.shards.add(row["shard"])
        if "source_sha256" in row or "source_size" in row:
            self.seen = (row.get("source_size"), row.get("source_mtime_ns"), row.get("source_sha256"))

    @property
    def decided_before(self) -> bool:
        """Skipped whole for a reason decided over the whole source (a duplicate, not sampled, a bad label)."""
        return self.whole is not None and self.whole.partition(": ")[0] in EXCLUSION_REASONS


class Journal:
    """Append-only manifest and skip log for one output folder.

    After `scan`, it also keeps each file's index (row key -> byte offset of its last row), so that
    `finalize` need not read the files twice.
    """

    def __init__(self, dst: Path) -> None:
        self.dst = dst
        self.manifest_path = dst / MANIFEST
        self.skips_path = dst / SKIPS
        self.index: dict[Path, dict[Any, int]] | None = None
        self._end: dict[Path, int] = {}

    def scan(self) -> dict[str, Entry]:
        """Every source the journal has rows for, with what they say (for a resumed run).

        Cuts any torn last line off the files first, so new rows start on a fresh line.
        """
        entries: dict[str, Entry] = {}
        self.index = {}
        for path, key in ((self.manifest_path, output_key), (self.skips_path, skip_key)):
            good = 0
            index = self.index[path] = {}
            for offset, length, row in _scan(path):
                good = offset + length
                index[key(row)] = offset
                entry = entries.get(row["source"])
                if entry is None:
                    entry = entries[row["source"]] = Entry()
                entry.add(row)
            if path.exists() and good != path.stat().st_size:
                with open(path, "r+b") as f:
                    f.truncate(good)
            self._end[path] = good
        return entries

    def purge(self, sources: set[str], drop_files: Callable[[list[str]], None]) -> None:
        """Drop every row of these sources (changed or gone from SRC), after `drop_files` has been given
        their output file names. Each journal is rewritten whole under a temp name and moved in."""
        drop_files([row["file_name"] for _, _, row in _scan(self.manifest_path) if row["source"] in sources])
        for path in (self.manifest_path, self.skips_path):
            if not path.exists():
                continue
            tmp = path.with_name(path.name + ".purge.part")
            try:
                with open(path, "rb") as src, open(tmp, "wb") as out:
                    out.writelines(line for line in src if json.loads(line)["source"] not in sources)
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

    def __enter__(self) -> Journal:
        self.dst.mkdir(parents=True, exist_ok=True)
        # no newline translation: the index counts bytes, and JSON lines are "\n"-terminated everywhere
        self._manifest = open(self.manifest_path, "a", encoding="utf-8", newline="")  # noqa: SIM115
        self._skips = open(self.skips_path, "a", encoding="utf-8", newline="")  # noqa: SIM115
        return self

    def __exit__(self, *exc: object) -> None:
        self._manifest.close()
        self._skips.close()

    def record(self, lines: list[tuple[str, Any, str]]) -> None:
        """Append a chunk's (kind, row key, `journal_line`): outputs to the manifest, the rest to the skip log.

        One write and flush per file: a killed run loses at most the rows being written, whose outputs
        the next run makes again (the same bytes, written atomically) before journalling them.
        """
        for f, path, out in ((self._manifest, self.manifest_path, True), (self._skips, self.skips_path, False)):
            mine = [(key, line) for kind, key, line in lines if (kind == "output") == out]
            if not mine:
                continue
            if self.index is not None:
                index, end = self.index[path], self._end[path]
                for key, line in mine:
                    index[key] = end
                    end += len(line)  # JSON lines are ASCII: characters are bytes
                self._end[path] = end
            f.write("".join(line for _, line in mine))
            f.flush()


def journal_line(row: dict[str, Any]) -> str:
    """A row as the journal stores it: one line of JSON with sorted keys."""
    return json.dumps(row, sort_keys=True) + "\n"


def metadata_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row.get(k, "") for k in METADATA_COLUMNS}
    out["params"] = json.dumps(row.get("params", {}), sort_keys=True)
    return out


@dataclass
class Totals:
    outputs: int = 0
    inputs: int = 0
    skipped: Counter = field(default_factory=Counter)


class _StaleIndex(Exception):
    """A journal index that does not match its file."""


def _sorted_rewrite(
    path: Path,
    key: Callable[[dict[str, Any]], Any],
    each: Callable[[dict], None],
    index: dict[Any, int] | None = None,
) -> None:
    """Rewrite a JSONL file sorted by `key`, keeping the last row per key; memory: one small index entry per row.

    `index` (key -> offset of the key's last row, as the journal kept it) saves reading the file twice;
    a row found through it with another key raises `_StaleIndex` (the caller starts again without it).
    """
    if index is None:
        index = {key(row): offset for offset, _, row in _scan(path)}
    tmp = path.with_name(path.name + ".sorted.part")
    with open(path, "rb") as src, open(tmp, "wb") as out:
        for k in sorted(index):
            src.seek(index[k])
            line = src.readline()
            row = json.loads(line)
            if key(row) != k:
                raise _StaleIndex
            out.write(line)
            each(row)
    os.replace(tmp, path)


def finalize(dst: Path, journal: Journal | None = None, per_split: bool = True) -> Totals:
    """Sort manifest and skips, drop rows repeated by a resumed run, and write metadata.csv (streaming).

    `journal`: the run's journal, whose index saves reading the files twice. Every file is written under
    a temp name and moved in; a failure (a full disk) removes the temp files and leaves the old ones.
    `per_split`: also `<split>/metadata.jsonl` where the layout has split folders (not for shards)."""
    try:
        return _finalize(dst, journal, per_split)
    except BaseException:
        for part in (*dst.glob("*.sorted.part"), dst / (METADATA + ".part")):
            part.unlink(missing_ok=True)
        raise


def _finalize(dst: Path, journal: Journal | None = None, per_split: bool = True) -> Totals:
    totals = Totals()
    sources: set[str] = set()
    meta_tmp = dst / (METADATA + ".part")
    for path in (dst / MANIFEST, dst / SKIPS):
        path.touch()
    splits = SplitMetadata(dst, per_split)
    with open(meta_tmp, "w", newline="", encoding="utf-8") as meta, splits:
        writer = csv.DictWriter(meta, fieldnames=METADATA_COLUMNS, lineterminator="\n")
        writer.writeheader()

        def on_row(row: dict) -> None:
            out = metadata_row(row)
            writer.writerow(out)
            splits.add(out)
            totals.outputs += 1
            sources.add(row["source"])

        def on_skip(row: dict) -> None:
            totals.skipped[row["reason"]] += 1
            sources.add(row["source"])

        index = journal.index if journal is not None and journal.index is not None else {}
        try:
            _sorted_rewrite(dst / MANIFEST, output_key, on_row, index.get(dst / MANIFEST))
            _sorted_rewrite(dst / SKIPS, skip_key, on_skip, index.get(dst / SKIPS))
        except _StaleIndex:
            stale = True
        else:
            stale = False
    if stale:  # never expected; the files are whole, so read them afresh
        for part in dst.glob("*.sorted.part"):
            part.unlink()
        return _finalize(dst, None, per_split)
    os.replace(meta_tmp, dst / METADATA)
    splits.commit()
    totals.inputs = len(sources)
    return totals


# folder names Hugging Face's imagefolder reads as splits
HF_SPLIT_FOLDERS = frozenset({"train", "training", "val", "valid", "validation", "dev", "test", "testing", "eval"})
SPLIT_METADATA = "metadata.jsonl"


class SplitMetadata:
    """`<split>/metadata.jsonl` beside `metadata.csv` when every output lies in a split folder
    (`train/<label>/...`): Hugging Face's imagefolder reads metadata per split folder, so every column
    then loads with each split (and JSON keeps empty text columns as text)."""

    def __init__(self, dst: Path, wanted: bool = True) -> None:
        self.dst, self.files, self.usable = dst, {}, wanted

    def __enter__(self) -> SplitMetadata:
        return self

    def add(self, row: dict[str, Any]) -> None:
        top, sep, rest = row["file_name"].partition("/")
        if not self.usable or not sep or top not in HF_SPLIT_FOLDERS:
            self.usable = False
            return
        if top not in self.files:
            (self.dst / top).mkdir(parents=True, exist_ok=True)
            self.files[top] = open(self.dst / top / (SPLIT_METADATA + ".part"), "w", encoding="utf-8")  # noqa: SIM115
        typed = {**row, "file_name": rest, "seed": int(row["seed"]), "variant": int(row["variant"])}
        self.files[top].write(json.dumps(typed, sort_keys=False) + "\n")

    def __exit__(self, *exc: object) -> None:
        for f in self.files.values():
            f.close()
        if exc[0] is not None:
            self._drop()

    def _drop(self) -> None:
        for top in self.files:
            (self.dst / top / (SPLIT_METADATA + ".part")).unlink(missing_ok=True)

    def commit(self) -> None:
        """Move the files in (or remove them, and any an earlier run left, when the layout has no splits)."""
        for top in HF_SPLIT_FOLDERS - set(self.files) if self.usable else HF_SPLIT_FOLDERS:
            (self.dst / top / SPLIT_METADATA).unlink(missing_ok=True)
        if not self.usable:
            self._drop()
            return
        for top in self.files:
            os.replace(self.dst / top / (SPLIT_METADATA + ".part"), self.dst / top / SPLIT_METADATA)


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


def guard_destination(
    where: str,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    empty: Callable[[], bool],
    overwrite: bool,
    clear: Callable[[], None],
    error: type[Exception],
    noun: str = "folder",
) -> None:
    """The rule for writing into a DST (a folder or a store): one made with another configuration, or one
    not made by maskgen and not empty, is refused unless `overwrite`; with it, what an earlier run wrote
    is cleared (`clear`), nothing else."""
    if old is not None and old != new:
        if not overwrite:
            was, now = old["maskgen"], new["maskgen"]
            diff = ", ".join(sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))) or "source"
            raise error(
                f"{where} was made with another configuration ({diff} differ); use another {noun} or --overwrite"
            )
        clear()
    elif old is None and not overwrite and not empty():
        raise error(f"{where} is not empty and was not made by maskgen; use --overwrite to write into it")


def read_config(dst: Path) -> dict[str, Any] | None:
    path = dst / STATE_DIR / CONFIG
    return json.loads(path.read_text()) if path.exists() else None


def write_config(dst: Path, config: dict[str, Any]) -> None:
    write_bytes_atomic(dst / STATE_DIR / CONFIG, (json.dumps(config, indent=1, sort_keys=True) + "\n").encode())
