"""Dataset sources: stream `Record`s (one input image with its label, subject and split) from a folder
tree, FER2013's CSV, a path/label CSV, or file names that carry labels and subject ids (CK+, JAFFE, KDEF).

Values a source cannot read stay empty: maskgen never guesses a label or a subject.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadParameter, NotAnImage
from ..io import IMAGE_SUFFIXES, ImageInfo, decode_image_with_info, read_image_with_info
from ..registry import Registry

FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER2013_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val"}
SPLIT_NAMES |= {"test": "test", "testing": "test", "publictest": "val", "privatetest": "test"}
EMOTION_CODES = {"AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral", "SA": "sad"}
EMOTION_CODES |= {"SU": "surprise", "AF": "fear"}
KDEF_POSES = {"S": "straight", "HL": "half_left", "HR": "half_right", "FL": "full_left", "FR": "full_right"}


@dataclass(frozen=True)
class Record:
    """One input item. `key` is unique and stable (the relative path); `pixels` is set for CSV rows.

    `name` is the path its outputs mirror when that is not the key (a CSV row listing a path again);
    `out` the DST-relative output name `convert` planned for it (unique across the run); `problem`
    ("reason: message") marks an item its source could not make sense of, logged as a skip.
    """

    key: str
    path: Path | None = None  # a local path, or (in a remote SRC) a universal_pathlib UPath
    label: str = ""
    subject: str = ""
    split: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    pixels: str | None = None  # FER2013 CSV: space-separated gray values
    name: str = ""
    out: str = ""
    problem: str = ""
    shard: str = ""  # the shard `convert` planned for its outputs (--output-format parquet|webdataset)
    member: str = ""  # in a sharded SRC: the image inside the shard `path` (`column:row`, `KEY.ext`)
    version: str = ""  # in a sharded SRC: the shard's size and mtime when listed (a changed shard is reopened)


# -- file-name schemes -------------------------------------------------------------------------------
NAMINGS: Registry[Callable[[str], dict[str, str] | None]] = Registry("naming scheme")


@NAMINGS.register("ckplus", "CK+: S005_001_00000011.png -> subject S005, sequence 001")
def parse_ckplus(name: str) -> dict[str, str] | None:
    m = re.fullmatch(r"(S\d{3})_(\d{3})_(\d{8})(\.\w+)?", name)
    return {"subject": m[1], "sequence": m[2]} if m else None


@NAMINGS.register("jaffe", "JAFFE: KA.AN1.39.tiff -> subject KA, label angry")
def parse_jaffe(name: str) -> dict[str, str] | None:
    m = re.fullmatch(r"([A-Z]{2})\.([A-Z]{2})(\d)\.(\d+)(\.\w+)?", name)
    if not m or m[2] not in EMOTION_CODES or m[2] == "AF":
        return None
    return {"subject": m[1], "label": EMOTION_CODES[m[2]]}


@NAMINGS.register("kdef", "KDEF: AF01ANS.JPG -> subject AF01, label angry, pose straight")
def parse_kdef(name: str) -> dict[str, str] | None:
    m = re.fullmatch(r"([AB])([FM]\d{2})(AF|AN|DI|HA|NE|SA|SU)(S|HL|HR|FL|FR)(\.\w+)?", name, re.IGNORECASE)
    if not m:
        return None
    code = m[3].upper()
    return {
        "subject": m[1].upper() + m[2].upper(),
        "label": EMOTION_CODES[code],
        "pose": KDEF_POSES[m[4].upper()],
        "series": m[1].upper(),  # KDEF photographed everyone twice, in series A and B
    }


def detect_naming(names: list[str]) -> str | None:
    """The scheme every one of these file names follows, if exactly one does."""
    if not names:
        return None
    fits = [n for n in NAMINGS.names() if all(NAMINGS.get(n)(x) is not None for x in names)]
    return fits[0] if len(fits) == 1 else None


# -- sources -----------------------------------------------------------------------------------------
def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(os.path.join(folder, ""))


def _walk(root: Path) -> Iterator[tuple[str, list[str], dict[str, str], list[tuple[str, str]]]]:
    """os.walk that follows symlinked folders, each folder once: (folder, its files, {refused link: problem},
    its followed links as (name, real target)). A link into SRC (its files are read where they are), to a
    folder already read or to one holding a folder already read (a loop) is refused."""
    top = os.path.realpath(root)
    walked: list[str] = []  # the real paths of the folders read
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        walked.append(os.path.realpath(dirpath))
        keep, refused, followed = [], {}, []
        for d in sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX"):
            if os.path.islink(full := os.path.join(dirpath, d)):
                real = os.path.realpath(full)
                if _inside(real, top):
                    refused[d] = f"linked_folder: links to {real}, inside SRC, read there; not followed"
                    continue
                if any(_inside(w, real) for w in walked):
                    refused[d] = f"linked_folder: links to {real}, which is or holds a folder read already"
                    continue
                followed.append((d, real))
            keep.append(d)
        dirnames[:] = keep
        yield dirpath, filenames, refused, followed


def _walk_files(root: Path) -> Iterator[tuple[str, tuple[str, ...], str, str]]:
    """(folder, folder's parts relative to root, name, problem) of every non-hidden file under root, sorted;
    a refused symlinked folder is an entry with its problem ("linked_folder: ..."), logged as a skip."""
    base = len(os.path.join(os.fspath(root), ""))
    for dirpath, filenames, refused, _ in _walk(root):
        rel = tuple(dirpath[base:].split(os.sep)) if len(dirpath) > base else ()
        for f in sorted([*filenames, *refused]):
            if not f.startswith("."):
                yield dirpath, rel, f, refused.get(f, "")


def linked_folders(root: Path) -> Iterator[tuple[Path, str]]:
    """(link, its real target) of every symlinked folder that reading `root` follows."""
    for dirpath, _, _, followed in _walk(root):
        for d, real in followed:
            yield Path(dirpath, d), real


def all_files(root: Path) -> Iterator[Path]:
    """Every non-hidden file under root (images or not), for accounting: nothing is silently ignored."""
    for dirpath, _, f, _ in _walk_files(root):
        yield Path(dirpath, f)


def folder_records(root: Path, naming: str | None = None) -> Iterator[Record]:
    """SRC/<label>/*, SRC/<split>/<label>/*, or a flat folder (labels then come only from the naming)."""
    files = list(_walk_files(root))
    if naming is None:
        naming = detect_naming([f for _, _, f, _ in files if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES])
    parse = NAMINGS.get(naming) if naming else None
    for dirpath, parts, name, problem in files:
        split, label = "", ""
        if parts and parts[0].lower() in SPLIT_NAMES:  # SRC/<split>/<label>/[any/sub/folders/]file
            split, label = SPLIT_NAMES[parts[0].lower()], parts[1] if len(parts) >= 2 else ""
        elif parts:  # SRC/<label>/[any/sub/folders/]file: the label folder's label
            label = parts[0]
        info = (parse(name) if parse else None) or {}
        extra = {k: v for k, v in info.items() if k not in ("label", "subject")}
        key = "/".join((*parts, name))
        yield Record(
            key,
            Path(dirpath, name),
            label or info.get("label", ""),
            info.get("subject", ""),
            split,
            extra,
            problem=problem,
        )


def fer2013_csv_records(path: Path) -> Iterator[Record]:
    """FER2013's `emotion,pixels,Usage` CSV: labels from the standard index, split from Usage."""
    with open(path, newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            emotion, label, problem = (row.get("emotion") or "").strip(), "", ""
            if emotion.isdigit() and int(emotion) < len(FER2013_LABELS):
                label = FER2013_LABELS[int(emotion)]
            else:
                problem = f"bad_label: row {i + 2}: emotion {emotion!r} is not one of FER2013's 0-6"
            usage = (row.get("Usage") or "").strip()
            split = FER2013_SPLITS.get(usage, usage.lower())
            key = f"{split or 'all'}/{label or 'unlabelled'}/fer{i:05d}.png"
            yield Record(key, None, label, "", split, {"row": str(i)}, row.get("pixels") or "", problem=problem)


def table_csv_records(path: Path) -> Iterator[Record]:
    """A CSV with path,label[,subject][,split] columns; paths relative to the CSV's folder."""
    base = path.parent
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        if not {"path", "label"} <= cols:
            raise BadParameter(f"{path}: a CSV source needs path and label columns (found: {', '.join(sorted(cols))})")
        seen: set[str] = set()
        for i, row in enumerate(reader):
            rel = (row["path"] or "").strip()
            extra = {k: v for k, v in row.items() if k not in ("path", "label", "subject", "split") and v}
            # a path listed twice is two items (each row's label kept), so keys carry the row when repeated
            key = rel if rel not in seen else f"{rel}@row{i + 2}"
            seen.add(rel)
            problem = "" if rel else f"unreadable: row {i + 2}: empty path"
            label, subject, split = row["label"] or "", row.get("subject") or "", row.get("split") or ""
            yield Record(key, base / rel, label, subject, split, extra, name=rel if key != rel else "", problem=problem)


def read_source(rec: Record) -> tuple[np.ndarray, ImageInfo, bytes]:
    """A file record's image, its info and its bytes: from its file, or from inside its shard."""
    assert rec.path is not None
    if rec.member:
        from .shards import member_bytes

        data = member_bytes(rec.path, rec.member, rec.version)
        return (*decode_image_with_info(data, f"{rec.path}:{rec.member}"), data)
    return read_image_with_info(rec.path)


def pixels_to_image(pixels: str) -> np.ndarray:
    """A FER2013 row's space-separated values as a square uint8 image."""
    try:
        values = np.array(pixels.split(), dtype=np.int64)
    except ValueError:
        bad = next(v for v in pixels.split() if not v.lstrip("-").isdigit())
        raise NotAnImage(f"pixels: {bad[:20]!r} is not a whole number from 0 to 255") from None
    side = int(round(len(values) ** 0.5))
    if side * side != len(values) or side == 0 or values.min() < 0 or values.max() > 255:
        raise NotAnImage(f"pixels: expected a square of 0-255 values, got {len(values)} values")
    return values.astype(np.uint8).reshape(side, side)


FORMATS = ("folder", "fer2013-csv", "csv", "parquet", "webdataset", "arrow")
SHARD_SUFFIXES = ((".parquet", "parquet"), (".tar", "webdataset"), (".arrow", "arrow"))


def detect_format(src: Path) -> str:
    from .remote import is_remote

    by_suffix = dict(SHARD_SUFFIXES)
    if src.suffix.lower() in by_suffix and src.is_file():
        return by_suffix[src.suffix.lower()]
    if is_remote(src):  # a store: shards only (one object per image would be slow to list and read)
        for suffix, fmt in SHARD_SUFFIXES if src.is_dir() else ():
            if next(iter(src.rglob(f"*{suffix}")), None) is not None:
                return fmt
        raise BadParameter(f"{src}: no Parquet, WebDataset or Arrow shards there (a remote SRC holds shards)")
    if src.is_dir():
        images = any(p.suffix.lower() in IMAGE_SUFFIXES for p in all_files(src) if p.is_file())
        if not images:
            for suffix, fmt in SHARD_SUFFIXES:
                if any(src.rglob(f"*{suffix}")):
                    return fmt
        return "folder"
    if src.suffix.lower() == ".csv":
        with open(src, newline="") as f:
            header = next(csv.reader(f), [])
        if {"emotion", "pixels"} <= set(header):
            return "fer2013-csv"
        return "csv"
    raise BadParameter(
        f"{src}: not a folder, a CSV or a shard; give a folder of images, FER2013's CSV, a path,label CSV "
        "or Parquet/WebDataset/Arrow shards "
        f"(--source-format {'|'.join(FORMATS)})"
    )


def iter_records(src: Path, fmt: str | None = None, naming: str | None = None) -> Iterator[Record]:
    from .remote import is_remote

    fmt = fmt or detect_format(src)
    if is_remote(src) and fmt not in dict(SHARD_SUFFIXES).values():
        raise BadParameter(f"{src}: a remote SRC takes Parquet, WebDataset or Arrow shards, not --source-format {fmt}")
    if fmt == "folder":
        return folder_records(src, naming)
    if fmt == "fer2013-csv":
        return fer2013_csv_records(src)
    if fmt == "csv":
        return table_csv_records(src)
    if fmt in ("parquet", "webdataset", "arrow"):
        from . import shards

        if fmt in ("parquet", "arrow"):
            shards.need_pyarrow(f"{'a Parquet' if fmt == 'parquet' else 'an Arrow (save_to_disk)'} SRC")
            return shards.parquet_records(src, f".{fmt}")
        return shards.webdataset_records(src)
    raise BadParameter(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
