"""Sharded outputs: `convert --output-format parquet|webdataset` writes a few large files instead of one
file per image (creating a small file costs more than masking a 48x48 crop on many disks).

Which source goes into which shard is planned from SRC's listing before any work (about `--shard-size`
MB each, estimated from the sources' sizes), so the shards are the same whatever the number of workers
or interruptions. A shard is written whole, under a temp name, once every one of its sources is done,
and only then are its sources journalled: a killed run leaves finished shards and no half-written one,
and the next run redoes exactly the sources of the unfinished shards.

- `parquet`: `DST/data/<split>-NNNNN-of-MMMMM.parquet`, an `image` column ({bytes, path}) and every
  `metadata.csv` column (plus `occlusion` and `original` images when asked for), with the Hugging Face
  features in the schema: `datasets.load_dataset("parquet", data_dir=DST)` reads it typed.
- `webdataset`: `DST/data/<split>-NNNNNN.tar`, per sample `KEY.<ext>` (the image), `KEY.json` (its
  manifest row), `KEY.occlusion.png` and `KEY.original.<ext>` when asked for; KEY is the output path
  without its suffix, `.` written `%2E` (WebDataset splits a name at its first dot).
"""

from __future__ import annotations

import io
import json
import posixpath
import re
import tarfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadParameter, MaskgenError, MissingExtra, NotAnImage
from ..io import read_bytes
from ..registry import Registry
from . import manifest as mf
from .naming import suffix_of
from .remote import file_stat, is_remote, read_range
from .sources import Record

OUTPUT_FORMATS = ("folder", "parquet", "webdataset")
DATA_DIR = "data"
ROLES = ("image", "occlusion", "original")  # the files of one output
INT_COLUMNS = ("seed", "variant")
PNG_PER_PIXEL = 0.6  # bytes per pixel of a FER-style gray PNG: the estimate for CSV rows (no file to stat)


@dataclass(frozen=True)
class Shard:
    name: str  # DST-relative, e.g. data/train-00000-of-00003.parquet
    split: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Sample:
    """One output as a shard holds it: its manifest row and its files by role ("image", "occlusion",
    "original") as (DST-relative name, bytes)."""

    row: dict[str, Any]
    files: dict[str, tuple[str, bytes]]


@dataclass(frozen=True)
class ShardFormat:
    """How one output format names its shards, packs a sample (in the worker that made it) and joins the
    packed samples of a shard, sorted by output name, into the shard's bytes (in the process that writes)."""

    pattern: str
    pack: Callable[[dict[str, Any], dict[str, tuple[str, bytes]]], Any]
    join: Callable[[list[Any]], bytes]


SHARD_FORMATS: Registry[ShardFormat] = Registry("output format")


def source_bytes(rec: Record) -> int:
    """A source's size in bytes (an estimate for CSV rows), for sizing shards."""
    if rec.pixels is not None:
        return int(rec.pixels.count(" ") * PNG_PER_PIXEL) + 64
    try:
        return file_stat(rec.path)[0] if rec.path is not None else 0
    except OSError:
        return 0


def plan_shards(records: Iterable[Record], fmt: str, shard_mb: float, outputs_per_source: float) -> list[Shard]:
    """Consecutive sources of each split (SRC's order) grouped into shards of about `shard_mb` MB."""
    limit = shard_mb * 1e6
    groups: dict[str, list[list[str]]] = {}
    filled: dict[str, float] = {}
    for rec in records:
        split = rec.split or "train"
        size = source_bytes(rec) * outputs_per_source
        parts = groups.setdefault(split, [[]])
        if parts[-1] and filled.get(split, 0.0) + size > limit:
            parts.append([])
            filled[split] = 0.0
        parts[-1].append(rec.key)
        filled[split] = filled.get(split, 0.0) + size
    pattern = SHARD_FORMATS.create(fmt).pattern
    return [
        Shard(posixpath.join(DATA_DIR, pattern.format(split=split, i=i, n=len(parts))), split, tuple(keys))
        for split, parts in groups.items()
        for i, keys in enumerate(parts)
    ]


def _hf_features(images: list[str]) -> dict[str, Any]:
    """The `datasets` features of a shard's columns, as its schema metadata carries them."""
    features: dict[str, Any] = {name: {"_type": "Image"} for name in images}
    for c in mf.METADATA_COLUMNS:
        features[c] = {"dtype": "int64" if c in INT_COLUMNS else "string", "_type": "Value"}
    return {"info": {"features": features}}


@SHARD_FORMATS.register("parquet", "Parquet shards with an image column (Hugging Face layout)")
def _parquet_format() -> ShardFormat:
    return ShardFormat("{split}-{i:05d}-of-{n:05d}.parquet", Sample, write_parquet)


def write_parquet(samples: list[Sample]) -> bytes:
    """One Parquet file: `image` ({bytes, path}), the sidecar images, then the metadata columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    roles = [r for r in ROLES if samples and r in samples[0].files]
    columns: dict[str, Any] = {
        role: [{"bytes": s.files[role][1], "path": s.files[role][0]} for s in samples] for role in roles
    }
    rows = [mf.metadata_row(s.row) for s in samples]
    for c in mf.METADATA_COLUMNS:
        columns[c] = [int(r[c]) if c in INT_COLUMNS else str(r[c]) for r in rows]
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema(
        [pa.field(role, image_type) for role in roles]
        + [pa.field(c, pa.int64() if c in INT_COLUMNS else pa.string()) for c in mf.METADATA_COLUMNS],
        metadata={b"huggingface": json.dumps(_hf_features(roles)).encode()},
    )
    buf = io.BytesIO()
    pq.write_table(pa.table(columns, schema=schema), buf, compression="none")  # the images are compressed
    return buf.getvalue()


@SHARD_FORMATS.register("webdataset", "WebDataset tar shards (image, .json metadata, sidecars per sample)")
def _webdataset_format() -> ShardFormat:
    return ShardFormat("{split}-{i:06d}.tar", tar_sample, join_tar)


def sample_key(file_name: str) -> str:
    """A WebDataset key for an output path: the path without its suffix, `%` and `.` percent-encoded
    (WebDataset splits a name at its first dot; distinct output names keep distinct keys)."""
    stem = file_name[: len(file_name) - len(suffix_of(file_name))]
    return stem.replace("%", "%25").replace(".", "%2E")


def tar_sample(row: dict[str, Any], files: dict[str, tuple[str, bytes]]) -> bytes:
    """One sample's tar members (`KEY.json`, `KEY.<ext>`, `KEY.occlusion.png`, `KEY.original.<ext>`), as
    `tarfile` writes them in PAX format with fixed times and owners: the same sample, the same bytes."""
    key = sample_key(row["file_name"])
    members = [(f"{key}.json", (json.dumps(row, sort_keys=True) + "\n").encode())]
    for role, (name, data) in files.items():
        members.append((f"{key}{'' if role == 'image' else '.' + role}{suffix_of(name).lower()}", data))
    out = []
    for name, data in members:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        out += [info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"), data]
        out.append(bytes(-len(data) % tarfile.BLOCKSIZE))
    return b"".join(out)


def join_tar(samples: list[bytes]) -> bytes:
    """A tar of packed samples: the members, the end-of-archive blocks, padding to a whole record."""
    body = b"".join(samples) + bytes(2 * tarfile.BLOCKSIZE)
    return body + bytes(-len(body) % tarfile.RECORDSIZE)


def shard_bytes(join: Callable[[list[Any]], bytes], lines: list[tuple]) -> bytes:
    """A shard's bytes from the `chunk_lines` of all its sources: the samples sorted by output name."""
    packed = sorted((line[4] for line in lines if line[0] == "output"), key=lambda x: x[0])
    return join([p for _, p in packed])


class ShardSink:
    """Collects a run's finished sources and writes each shard once all its sources are in.

    `add` takes `chunk_lines` results (for outputs, the last item is (file name, packed sample));
    `write(name, bytes)` writes a shard whole (atomically); `journal` is called with the lines of each
    shard after the shard is in place (so the journal never names a source whose shard is not written).
    """

    def __init__(
        self,
        write: Callable[[str, bytes], None],
        fmt: str,
        shards: list[Shard],
        todo: set[str],
        journal: Callable[[list[tuple]], None],
    ) -> None:
        self.join = SHARD_FORMATS.create(fmt).join
        self.write, self.journal = write, journal
        self.shard_of = {k: s for s in shards for k in s.sources}
        self.waiting = {s.name: {k for k in s.sources if k in todo} for s in shards}
        self.lines: dict[str, list[tuple]] = {s.name: [] for s in shards}

    def add(self, lines: list[tuple]) -> None:
        touched = set()
        unsharded = [line for line in lines if line[1] not in self.shard_of]  # excluded before any work
        if unsharded:
            self.journal(unsharded)
        for line in lines:
            if line[1] not in self.shard_of:
                continue
            shard = self.shard_of[line[1]].name
            self.lines[shard].append(line)
            self.waiting[shard].discard(line[1])
            touched.add(shard)
        for shard in sorted(touched):
            if not self.waiting[shard]:
                self._write(shard)

    def _write(self, shard: str) -> None:
        lines = self.lines.pop(shard)
        self.write(shard, shard_bytes(self.join, lines))
        self.journal(lines)

    def finish(self) -> None:
        """Check that every shard with work in this run was written (a source missing from the results
        would otherwise leave its shard out silently)."""
        left = sorted(name for name, keys in self.waiting.items() if keys)
        if left:
            raise MaskgenError(f"internal error: shard {left[0]} never received {sorted(self.waiting[left[0]])[:3]}")


SHARD_NAME = re.compile(r"[^/]+-\d{5}-of-\d{5}\.parquet|[^/]+-\d{6}\.tar")


def shard_files(dst: Path) -> list[Path]:
    """The shard files in DST/data (named as maskgen names them; other files there are not ours)."""
    folder = dst / DATA_DIR
    return sorted(p for p in folder.iterdir() if SHARD_NAME.fullmatch(p.name)) if folder.is_dir() else []


def read_shard(path: Path) -> Iterator[tuple[dict[str, Any], bytes]]:
    """(metadata, image bytes) of every sample in a shard of either format, in shard order."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        if is_remote(path):
            with path.open("rb") as f:
                table = pq.read_table(f)
        else:
            table = pq.read_table(path)
        columns = [c for c in table.column_names if c not in ROLES]
        meta = table.select(columns).to_pylist()
        for row, image in zip(meta, table.column("image").to_pylist(), strict=True):
            yield row, image["bytes"]
        return
    for _, fields in _tar_samples(path, images=True):
        yield json.loads(fields["json"]), next(v for k, v in fields.items() if k.lower() in IMAGE_SUFFIX_FIELDS)


# -- sharded sources -------------------------------------------------------------------------------
IMAGE_COLUMNS = ("image", "img", "jpg", "png", "jpeg", "webp")
LABEL_COLUMNS = ("label", "labels", "emotion", "cls", "class")
SPLIT_PREFIX = re.compile(r"^([A-Za-z]+)[-_]\d")  # train-00000-of-00004.parquet, test_0001.tar


def shard_inputs(src: Path, suffix: str) -> list[Path]:
    """The shards of a sharded SRC: the file itself, or every `suffix` file under the folder, sorted."""
    if src.is_file():
        return [src]
    found = (p for p in src.rglob(f"*{suffix}") if not any(part.startswith(".") for part in p.relative_to(src).parts))
    return sorted(found, key=str)


def _split_of(shard: Path, root: Path) -> str:
    from .sources import SPLIT_NAMES

    m = SPLIT_PREFIX.match(shard.name)
    words = [m.group(1)] if m else []
    words += [part for part in shard.relative_to(root).parts[:-1]] if shard != root else []
    return next((SPLIT_NAMES[w.lower()] for w in words if w.lower() in SPLIT_NAMES), "")


def _class_names(schema: Any, column: str) -> list[str] | None:
    """A Hugging Face ClassLabel's names, from a Parquet schema's `huggingface` metadata."""
    meta = (schema.metadata or {}).get(b"huggingface")
    if not meta:
        return None
    feature = json.loads(meta).get("info", {}).get("features", {}).get(column, {})
    return feature.get("names") if feature.get("_type") == "ClassLabel" else None


def _read_arrow(shard: Path) -> Any:
    """A Hugging Face `save_to_disk` file (Arrow IPC stream) as a table; memory-mapped when local."""
    import pyarrow as pa

    if is_remote(shard):
        with shard.open("rb") as f:
            return pa.ipc.open_stream(f).read_all()
    return pa.ipc.open_stream(pa.memory_map(str(shard))).read_all()


class _ArrowFile:
    """The few `pyarrow.parquet.ParquetFile` members `parquet_records` uses, over an Arrow stream file."""

    def __init__(self, shard: Path) -> None:
        self.table = _read_arrow(shard)
        self.schema_arrow = self.table.schema
        self.num_rows = self.table.num_rows

    def read(self, columns: list[str]) -> Any:
        import pyarrow as pa

        cols = {}
        for c in columns:
            top, _, field = c.partition(".")
            col = self.table.column(top).combine_chunks()
            cols[c] = pa.StructArray.from_arrays([col.field(field)], [field]) if field else col  # as Parquet reads
        return pa.table(cols) if cols else pa.table({"_": [None] * self.num_rows}).select([])


def parquet_records(src: Path, suffix: str = ".parquet") -> Iterator[Record]:
    """A Parquet dataset (a Hugging Face `to_parquet` or Hub layout, or maskgen's own shards), or with
    `suffix=".arrow"` a Hugging Face `save_to_disk` folder: one record per row; the image column is a
    {bytes, path} struct or raw bytes; labels as text or a ClassLabel."""
    import pyarrow.parquet as pq

    root = src if src.is_dir() else src.parent
    for shard in shard_inputs(src, suffix):
        if suffix == ".arrow":
            f: Any = _ArrowFile(shard)
            n = f.num_rows
        else:
            f = pq.ParquetFile(shard.open("rb") if is_remote(shard) else shard)  # closed with the object
            n = f.metadata.num_rows
        names = f.schema_arrow.names
        image = next((c for c in IMAGE_COLUMNS if c in names), None)
        label = next((c for c in LABEL_COLUMNS if c in names), None)
        if image is None:
            raise BadParameter(
                f"{shard}: no image column (one of {', '.join(IMAGE_COLUMNS)}; columns: {', '.join(names)})"
            )
        classes = _class_names(f.schema_arrow, label) if label else None
        meta = [c for c in ("subject", "split", "file_name") if c in names]
        table = f.read(columns=[c for c in dict.fromkeys([label, *meta]) if c])  # the images are read later
        cols = {c: table.column(c).to_pylist() for c in table.column_names}
        subjects, splits = cols.get("subject", [""] * n), cols.get("split", [""] * n)
        struct = f.schema_arrow.field(image).type
        if hasattr(struct, "get_field_index") and struct.get_field_index("path") >= 0:  # only the paths, not the bytes
            paths = [p["path"] for p in f.read(columns=[f"{image}.path"]).column(0).to_pylist()]
        else:
            paths = [None] * n
        rel = shard.relative_to(root).as_posix() if shard != root else shard.name
        split = _split_of(shard, root)
        version = shard_version(shard)
        for i in range(n):
            value = cols[label][i] if label else None
            text = classes[value] if classes and isinstance(value, int) and 0 <= value < len(classes) else value
            text = "" if text is None else str(text)
            own = cols.get("file_name", paths)[i] or paths[i]
            # a path leaving SRC (absolute, "..") is placed under its label by `mirrored`, as for CSV sources
            name = own or f"{text or 'unlabelled'}/{shard.stem}-{i:06d}.png"
            yield Record(
                f"{rel}#{i}",
                shard,
                text,
                str(subjects[i] or ""),
                str(splits[i] or split),
                name=name,
                member=f"{image}:{i}",
                version=version,
            )


def webdataset_records(src: Path) -> Iterator[Record]:
    """WebDataset tar shards: one record per sample key with an image; the label from `KEY.json` (its
    `label`), `KEY.cls` or `KEY.txt`; subject and split from the JSON when it has them."""
    root = src if src.is_dir() else src.parent
    for shard in shard_inputs(src, ".tar"):
        split = _split_of(shard, root)
        version = shard_version(shard)
        for key, fields in _tar_samples(shard):
            image = next((k for k in fields if k.lower() in IMAGE_SUFFIX_FIELDS), None)
            meta = json.loads(fields["json"]) if "json" in fields else {}
            label = meta.get("label") or fields.get("cls", fields.get("txt", b"")).decode().strip()
            name = meta.get("file_name") or f"{key}.{image or 'png'}"
            rel = shard.relative_to(root).as_posix() if shard != root else shard.name
            problem = "" if image else f"unreadable: sample {key} in {rel} has no image"
            yield Record(
                f"{rel}#{key}",
                shard,
                str(label),
                str(meta.get("subject", "")),
                str(meta.get("split") or split),
                name=name,
                member=f"{key}.{image}" if image else "",
                problem=problem,
                version=version,
            )


IMAGE_SUFFIX_FIELDS = {"png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "ppm", "pgm"}


def _tar_samples(shard: Path, images: bool = False) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {field: bytes}) per sample (its members are consecutive, as WebDataset requires); image fields
    hold empty bytes unless `images` (a source's images are read when each is processed)."""
    with _open_tar(shard) as tar:
        key, fields = None, {}
        for member in [*tar, None]:
            k, _, field = member.name.partition(".") if member is not None else (None, "", "")
            if k != key and fields:
                yield key, fields
                fields = {}
            if member is None:
                break
            key = k
            wanted = member.isfile() and (images or field.lower() not in IMAGE_SUFFIX_FIELDS)
            f = tar.extractfile(member) if wanted else None
            fields[field] = f.read() if f is not None else b""


_OPEN: dict[str, Any] = {}
REMOTE_BLOCK = 8 << 20  # bytes fetched per request from a remote tar


@contextmanager
def _open_tar(shard: Path) -> Iterator[tarfile.TarFile]:
    """A tar shard, local or remote (read through fsspec's buffered file)."""
    if not is_remote(shard):
        with tarfile.open(shard) as tar:
            yield tar
        return
    with shard.open("rb") as f, tarfile.open(fileobj=f) as tar:
        yield tar


def _open_source_shard(shard: Path) -> Any:
    """What `member_bytes` keeps of an open source shard: its table (Parquet, Arrow), or for a tar
    (member offsets, a file open on it or None: local tars are opened per read)."""
    if shard.suffix == ".arrow":
        return _read_arrow(shard)
    if shard.suffix == ".parquet":
        import pyarrow.parquet as pq

        if not is_remote(shard):
            return pq.read_table(shard, memory_map=True)
        with shard.open("rb") as f:
            return pq.read_table(f)
    with _open_tar(shard) as tar:
        index = {m.name: (m.offset_data, m.size) for m in tar if m.isfile()}
    if not is_remote(shard):
        return index, None
    # a remote tar stays open with a read-ahead buffer: records come in shard order, so one request
    # brings many small images instead of one request each
    return index, shard.fs.open(shard.path, "rb", block_size=REMOTE_BLOCK, cache_type="readahead")


def member_bytes(shard: Path, member: str, version: str = "") -> bytes:
    """The bytes of one image in a sharded source (`column:row` of a Parquet file, `KEY.ext` of a tar).
    The last shard opened stays open per process (records come in shard order) while its `version`
    (`shard_version` when it was listed) stays the same."""
    key = f"{shard}@{version}"
    if key not in _OPEN:
        for held in _OPEN.values():  # the shard before: its remote file is closed
            if isinstance(held, tuple) and held[1] is not None:
                held[1].close()
        _OPEN.clear()
        _OPEN[key] = _open_source_shard(shard)
    held = _OPEN[key]
    try:
        if shard.suffix in (".parquet", ".arrow"):
            column, _, row = member.rpartition(":")
            value = held.column(column)[int(row)].as_py()
            data = value.get("bytes") if isinstance(value, dict) else value
            if not data and isinstance(value, dict) and value.get("path"):  # a path without bytes (HF to_parquet)
                data = _referenced(shard, value["path"])
        else:
            index, f = held
            offset, size = index[member]
            if f is None:
                data = read_range(shard, offset, size)
            else:
                f.seek(offset)
                data = f.read(size)
    except (KeyError, IndexError):
        raise MaskgenError(f"{shard}: no {member} in it (the shard changed since it was listed?)") from None
    if not data:
        raise NotAnImage(f"{shard}: {member} holds no image bytes")
    return data


def shard_version(shard: Path) -> str:
    """A shard's size and modification time, as the records listed from it carry them."""
    try:
        return "{}:{}".format(*file_stat(shard))
    except OSError:
        return ""


def _referenced(shard: Path, path: str) -> bytes | None:
    """The file a Parquet row names instead of holding its bytes: as given (absolute, or relative to the
    working folder, as `datasets` reads it), else relative to the shard's folder."""
    for candidate in (Path(path), shard.parent / path):
        if candidate.is_file():
            return candidate.read_bytes() if is_remote(candidate) else read_bytes(candidate)
    raise NotAnImage(f"{shard}: the image {path} it names is not there (and the row holds no bytes)")


def need_pyarrow(what: str) -> None:
    """A clear error before any work when pyarrow (the shards extra) is missing."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise MissingExtra(f"{what} needs pyarrow: pip install 'maskgen[shards]'") from None
