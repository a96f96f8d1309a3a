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
import os
import posixpath
import re
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MaskgenError, MissingExtra
from ..io import write_bytes_atomic
from ..registry import Registry
from . import manifest as mf
from .naming import suffix_of
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
        return os.stat(rec.path).st_size if rec.path is not None else 0
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
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtra("--output-format parquet needs pyarrow: pip install 'maskgen[shards]'") from None
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


class ShardSink:
    """Collects a run's finished sources and writes each shard once all its sources are in.

    `add` takes `chunk_lines` results (for outputs, the last item is (file name, packed sample)); `journal`
    is called with the lines of each shard after the shard file is in place (so the journal never names a
    source whose shard is not written).
    """

    def __init__(
        self, dst: Path, fmt: str, shards: list[Shard], todo: set[str], journal: Callable[[list[tuple]], None]
    ) -> None:
        self.join = SHARD_FORMATS.create(fmt).join
        self.dst, self.journal = dst, journal
        self.shard_of = {k: s for s in shards for k in s.sources}
        self.waiting = {s.name: {k for k in s.sources if k in todo} for s in shards}
        self.lines: dict[str, list[tuple]] = {s.name: [] for s in shards}
        self.written = 0

    def add(self, lines: list[tuple]) -> None:
        touched = set()
        for line in lines:
            shard = self.shard_of[line[1]].name
            self.lines[shard].append(line)
            self.waiting[shard].discard(line[1])
            touched.add(shard)
        for shard in sorted(touched):
            if not self.waiting[shard]:
                self._write(shard)

    def _write(self, shard: str) -> None:
        lines = self.lines.pop(shard)
        packed = sorted((line[4] for line in lines if line[0] == "output"), key=lambda x: x[0])
        write_bytes_atomic(self.dst / shard, self.join([p for _, p in packed]))
        self.written += 1
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

        table = pq.read_table(path)
        columns = [c for c in table.column_names if c not in ROLES]
        meta = table.select(columns).to_pylist()
        for row, image in zip(meta, table.column("image").to_pylist(), strict=True):
            yield row, image["bytes"]
        return
    with tarfile.open(path) as tar:
        key, fields = None, {}
        for member in [*tar, None]:  # a sample's members are consecutive (as WebDataset requires)
            name = member.name.partition(".") if member is not None else (None, "", "")
            if name[0] != key and fields:
                yield json.loads(fields["json"]), next(v for k, v in fields.items() if "." not in k and k != "json")
                fields = {}
            if member is None:
                break
            key = name[0]
            f = tar.extractfile(member)
            fields[name[2]] = f.read() if f is not None else b""


def check_writer(fmt: str) -> None:
    """A clear error before any work when the format's library is missing."""
    if fmt == "parquet":
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise MissingExtra("--output-format parquet needs pyarrow: pip install 'maskgen[shards]'") from None
