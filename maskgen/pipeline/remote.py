"""Remote sources and destinations through fsspec (`s3://`, `gs://`, `az://`, `memory://`, `file://`...).

SRC may be a URL of Parquet or WebDataset shards (a shard or a folder of them): they are listed and read
through fsspec, each image when it is processed, by whichever process (or Dask worker) processes it.

`convert SRC s3://bucket/masked --output-format parquet|webdataset` writes its shards and, when the run
ends, manifest.jsonl, skips.jsonl and metadata.csv to the URL.

The run's journal stays in a local state folder ($MASKGEN_STATE, else ~/.cache/maskgen/remote, one folder
per URL): a run resumes from it, and a shard the journal names but the store lacks is written again. Every
object is written whole: an object store's put shows all of an object or none of it; other file systems
get a temporary name and a move. Local worker processes return packed samples and the process that plans
the run puts each shard once all its samples are in; Dask workers make and put whole shards themselves.
A `file://` SRC is a local path (any source format).

Credentials and endpoints come from the usual places (for S3: the AWS variables and files,
AWS_ENDPOINT_URL for a non-AWS endpoint), or from FSSPEC_<PROTOCOL>_<OPTION> variables.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadParameter, MissingExtra
from ..io import write_bytes_atomic
from . import manifest as mf

OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "memory"}  # whole-object puts
UPLOADED = (mf.MANIFEST, mf.SKIPS, mf.METADATA, mf.CONFLICTS)  # the run's tables, copied when it ends


def is_url(path: object) -> bool:
    """Whether a SRC or DST names a store through fsspec (`protocol://...`) rather than a local path."""
    return isinstance(path, str) and "://" in path


def is_remote(path: object) -> bool:
    """Whether a path object is a remote one (`source_path` of a URL), not a local `Path`."""
    return path is not None and not isinstance(path, (str, os.PathLike))


@contextmanager
def _fsspec_errors(url: str) -> Iterator[None]:
    """One-line errors for a URL fsspec cannot open: the protocol's package missing, or no such protocol."""
    try:
        yield
    except ImportError as e:  # fsspec names the package (s3fs, gcsfs, adlfs...)
        raise MissingExtra(f"{url}: {str(e).splitlines()[0]}") from None
    except ValueError as e:
        raise BadParameter(f"{url}: {e}") from None


def source_path(url: str) -> Any:
    """A pathlib-like object for a SRC URL (universal_pathlib over fsspec): listed, read and pickled to
    workers, which open the store themselves."""
    try:
        from upath import UPath
    except ImportError:
        raise MissingExtra(f"{url}: remote sources need universal_pathlib: pip install 'maskgen[remote]'") from None
    with _fsspec_errors(url):
        path = UPath(url)
        path.fs.invalidate_cache()  # listings from before this run are stale
    return path


def as_path(value: str | os.PathLike) -> Any:
    """A SRC or DATA argument as a path: `source_path` for a URL, else a local `Path`."""
    return source_path(value) if is_url(value) else Path(value)


def file_stat(path: Any) -> tuple[int, int]:
    """(size in bytes, version) of a local or remote file: its modification time in ns, or, where the store
    gives an ETag, a number made from that (an object store's times have whole seconds: an object replaced
    by one of the same size within a second would otherwise look unchanged)."""
    if not is_remote(path):
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    info = path.fs.info(path.path)
    tag = info.get("ETag") or info.get("etag")
    if tag:
        return int(info["size"]), int.from_bytes(hashlib.blake2b(str(tag).encode(), digest_size=7).digest(), "big")
    st = path.stat()
    return int(st.st_size), int(float(st.st_mtime or 0) * 1e9)


def read_range(path: Any, start: int, size: int) -> bytes:
    """`size` bytes from `start` of a local or remote file (one ranged read on an object store)."""
    if is_remote(path):
        return path.fs.cat_file(path.path, start=start, end=start + size)
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(size)


@dataclass
class Store:
    """A folder in an fsspec file system: whole-object writes, reads and listings relative to `root`."""

    url: str
    fs: Any
    root: str

    def path(self, name: str) -> str:
        return posixpath.join(self.root, name)

    @property
    def local(self) -> bool:
        return "file" in _protocols(self.fs)

    def put(self, name: str, data: bytes) -> None:
        """Write an object whole: a reader sees all of it or nothing."""
        target = self.path(name)
        if self.local:
            write_bytes_atomic(target, data)
        elif _protocols(self.fs) & OBJECT_STORES:
            self.fs.pipe_file(target, data)
        else:
            part = f"{target}.{os.getpid()}.part"
            self.fs.pipe_file(part, data)
            self.fs.mv(part, target)

    def get(self, name: str) -> bytes | None:
        try:
            return self.fs.cat_file(self.path(name))
        except FileNotFoundError:
            return None

    def exists(self, name: str) -> bool:
        return bool(self.fs.exists(self.path(name)))

    def delete(self, name: str) -> None:
        with suppress(FileNotFoundError):
            self.fs.rm_file(self.path(name))

    def names(self, folder: str = "") -> list[str]:
        """The files directly in `folder` (relative to the root), by name."""
        try:
            found = self.fs.ls(self.path(folder), detail=True)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(f["name"].rstrip("/")) for f in found if f.get("type") == "file")

    def is_empty(self) -> bool:
        try:
            return not self.fs.ls(self.root)
        except FileNotFoundError:
            return True


def _protocols(fs: Any) -> set[str]:
    p = fs.protocol
    return {p} if isinstance(p, str) else set(p)


def open_store(url: str) -> Store:
    """The store behind `url`; a one-line error when fsspec or the protocol's package is missing."""
    try:
        import fsspec
    except ImportError:
        raise MissingExtra(f"{url}: remote destinations need fsspec: pip install 'maskgen[remote]'") from None
    with _fsspec_errors(url):
        fs, root = fsspec.core.url_to_fs(url)
    fs.invalidate_cache()  # fsspec reuses file system objects: listings from before this run are stale
    return Store(url, fs, root.rstrip("/"))


def state_dir(url: str) -> Path:
    """The local folder that keeps a remote run's journal (one per URL)."""
    base = Path(os.environ.get("MASKGEN_STATE") or Path.home() / ".cache" / "maskgen" / "remote")
    tag = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return base / f"{posixpath.basename(url.rstrip('/')) or 'dst'}-{tag}"


def prepare_store(store: Store, config: dict[str, Any], overwrite: bool) -> None:
    """Refuse a store folder made by another configuration or not by maskgen (unless `overwrite`, which
    removes what an earlier run wrote, nothing else); then record this run's configuration there."""
    raw = store.get(posixpath.join(mf.STATE_DIR, mf.CONFIG))
    old = json.loads(raw) if raw else None
    mf.guard_destination(
        store.url, old, config, store.is_empty, overwrite, lambda: clear_store(store), BadParameter, "URL"
    )
    store.put(posixpath.join(mf.STATE_DIR, mf.CONFIG), (json.dumps(config, indent=1, sort_keys=True) + "\n").encode())


def clear_store(store: Store) -> None:
    """Remove the shards an earlier run's manifest names and its tables."""
    raw = store.get(mf.MANIFEST) or b""
    for line in raw.decode().splitlines():
        shard = json.loads(line).get("shard") if line.strip() else None
        if shard:
            store.delete(shard)
    for name in UPLOADED:
        store.delete(name)


def upload_tables(local: Path, store: Store) -> None:
    """Copy the finished run's tables from the state folder to the store (each written whole)."""
    for name in UPLOADED:
        if (local / name).exists():
            store.put(name, (local / name).read_bytes())
        else:
            store.delete(name)
