"""`convert`: stream records from SRC, process them in chunks (inline, a process pool or Dask), journal
every output and skip, resume after any interruption, and leave DST sorted and complete."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import BadParameter, MaskgenError
from ..io import WRITABLE_SUFFIXES, format_for, write_bytes_atomic
from ..strategies import check_params
from . import manifest as mf
from . import remote as rm
from . import shards as sh
from .dataset_tools import find_duplicates, stratified_sample
from .items import ConvertConfig, output_path, run_chunk, variant_tag
from .naming import plan_names, sidecars
from .sources import Record, iter_records, linked_folders

CHUNK = 64


class DestinationError(MaskgenError):
    code = "bad_destination"


@dataclass
class Summary:
    inputs: int = 0
    outputs: int = 0
    skipped: Counter = field(default_factory=Counter)
    resumed: int = 0
    complete: bool = False
    conflicts: int = 0  # near-identical inputs with different labels (--dedup), in DST/label_conflicts.jsonl


def source_id(src: Path) -> str:
    """SRC as the configuration records it: an absolute path, or the URL."""
    return str(src) if rm.is_remote(src) else str(src.resolve())


def check_paths(src: Path, dst: Path) -> None:
    if not src.exists():
        raise BadParameter(f"{src}: no such file or folder")
    if rm.is_remote(src):
        return
    s, d = src.resolve(), dst.resolve()
    if d == s or s in d.parents:
        raise DestinationError(f"{dst} is inside the source {src}; maskgen never writes into its input")
    if d in s.parents:
        raise DestinationError(f"the source {src} is inside {dst}; choose an output folder beside it")
    if s.is_dir():
        for link, target in linked_folders(src):
            t = Path(target)
            if d == t or t in d.parents or d in t.parents:
                raise DestinationError(
                    f"{link} in the source links to {t}, which holds or is inside {dst}; "
                    "maskgen never writes into its input: choose an output folder elsewhere"
                )


def prepare_destination(src: Path, dst: Path, cfg: ConvertConfig, overwrite: bool) -> None:
    """Refuse a DST made by another configuration (or not by maskgen) unless --overwrite; in a DST an
    earlier run made, delete the temp files a killed run left."""
    config = {"source": source_id(src), "maskgen": cfg.to_json()}
    old = mf.read_config(dst) if dst.exists() else None

    def empty() -> bool:
        return not dst.exists() or not any(dst.iterdir())

    mf.guard_destination(str(dst), old, config, empty, overwrite, lambda: clear_outputs(dst), DestinationError)
    if old is not None:
        sweep_partials(dst)
    mf.write_config(dst, config)


def sweep_partials(dst: Path) -> int:
    """Delete the temp files a killed run left beside its outputs (`.NAME.PID-TID.part`, written before
    each rename); returns how many. It walks the whole tree: for a DST an earlier run made."""
    swept = 0
    for dirpath, _, files in os.walk(dst):
        for f in files:
            if f.startswith(".") and f.endswith(".part"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, f))
                    swept += 1
    return swept


def clear_outputs(dst: Path) -> None:
    """Remove what an earlier maskgen run wrote (files in its manifest, its journals), nothing else."""
    for row in mf._read_jsonl(dst / mf.MANIFEST):
        for rel in (row["file_name"], *sidecars(row["file_name"], True, True)):
            (dst / rel).unlink(missing_ok=True)
        if row.get("shard"):
            (dst / row["shard"]).unlink(missing_ok=True)
    for split in mf.HF_SPLIT_FOLDERS:
        (dst / split / mf.SPLIT_METADATA).unlink(missing_ok=True)
    for name in (mf.MANIFEST, mf.SKIPS, mf.METADATA, mf.CONFLICTS):
        (dst / name).unlink(missing_ok=True)
    shutil.rmtree(dst / mf.STATE_DIR, ignore_errors=True)


def _chunks(it: Iterator[Record], size: int) -> Iterator[list[Record]]:
    while chunk := list(itertools.islice(it, size)):
        yield chunk


@contextmanager
def single_threaded_opencv() -> Iterator[None]:
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _importing_main_in_a_worker() -> bool:
    """True in a spawned worker while it imports the main script (as multiprocessing itself checks): a script
    without a main guard would otherwise start a second conversion of the same DST there."""
    import multiprocessing as mp

    return bool(getattr(mp.current_process(), "_inheriting", False))


def _local_executor(jobs: int) -> ProcessPoolExecutor:
    import multiprocessing as mp

    import cv2

    level = cv2.utils.logging.getLogLevel()  # workers log as this process does (the CLI silences OpenCV)
    return ProcessPoolExecutor(
        max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init, initargs=(os.getpid(), level)
    )


_BUSY = threading.Lock()  # held by a worker while it runs a chunk


def _worker_init(parent: int, log_level: int | None = None) -> None:
    import signal

    import cv2

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled once, by the main process
    cv2.setNumThreads(1)  # one process per core; OpenCV's own threads would oversubscribe
    if log_level is not None:
        cv2.utils.logging.setLogLevel(log_level)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="maskgen-parent-watch").start()


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """End this worker once its `convert` process is gone (kill -9, the OOM killer): a pool worker holds
    its own task queue's write end, so it would otherwise wait for work forever, holding its memory. It
    ends between chunks, so no file is left half-written; the next run redoes the unjournaled chunk."""
    while os.getppid() == parent:
        time.sleep(every)
    with _BUSY:
        os._exit(1)


def chunk_lines(records: list[Record], cfg: ConvertConfig, dst: str, excluded: dict[str, str]) -> list[tuple]:
    """`run_chunk`, its rows as (kind, source, row key, journal line, files): serialised where they are made, so
    a pool's main process only appends text (its share of the work is what limits the speed-up of --jobs).
    For a sharded output the last item is (file name, the sample packed for its shard), else None."""
    out = []
    pack = sh.SHARD_FORMATS.create(cfg.output_format).pack if cfg.sharded else None
    for ev in run_chunk(records, cfg, dst, excluded):
        kind = ev.pop("kind")
        files = ev.pop("_files", None)
        key = (mf.output_key if kind == "output" else mf.skip_key)(ev)
        packed = (ev["file_name"], pack(ev, files)) if pack is not None and files is not None else None
        out.append((kind, ev["source"], key, mf.journal_line(ev), packed))
    return out


def _worker_chunk(records: list[Record], cfg: ConvertConfig, dst: str, excluded: dict[str, str]) -> list[tuple]:
    with _BUSY:
        return chunk_lines(records, cfg, dst, excluded)


def check_config(cfg: ConvertConfig) -> None:
    """Every option checked once, before DST is touched: a bad value is one error, not a skip per item."""
    if cfg.sample is not None and cfg.sample < 1:
        raise BadParameter(f"--sample must be at least 1, got {cfg.sample}")
    if cfg.variants < 1:
        raise BadParameter("--variants-per-image must be at least 1")
    if cfg.output_format not in sh.OUTPUT_FORMATS:
        raise BadParameter(f"--output-format {cfg.output_format}: choose one of {', '.join(sh.OUTPUT_FORMATS)}")
    if cfg.sharded:
        if cfg.shard_mb <= 0:
            raise BadParameter(f"--shard-size must be above 0 MB, got {cfg.shard_mb:g}")
        if cfg.output_format == "parquet":
            sh.need_pyarrow("--output-format parquet")
    if cfg.dedup_threshold < 0:
        raise BadParameter(f"--dedup-threshold must be 0 or more, got {cfg.dedup_threshold}")
    if cfg.out_format is not None:
        try:
            format_for("x" + cfg.out_format)
        except MaskgenError:
            known = ", ".join(sorted(s.lstrip(".") for s in WRITABLE_SUFFIXES))
            raise BadParameter(f"--format {cfg.out_format.lstrip('.')}: maskgen writes {known}") from None
    for mask_type in dict.fromkeys(t for _, t in cfg.plan()):
        check_params(cfg.strategy, dict(cfg.params) | ({"type": mask_type} if mask_type else {}), cfg.seed)


def _changed(rec: Record, seen: tuple) -> bool:
    """Whether a source differs from what the journal recorded: size and mtime first, then the hash."""
    size, mtime, sha = seen
    if rec.pixels is not None:
        return sha is not None and hashlib.sha256(rec.pixels.encode()).hexdigest() != sha
    if rec.path is None or size is None:
        return False
    try:
        if rm.file_stat(rec.path) == (size, mtime):
            return False
    except OSError:
        return True
    try:
        if rec.member:  # in a shard that changed: this image may not have
            return sha is None or hashlib.sha256(sh.member_bytes(rec.path, rec.member, rec.version)).hexdigest() != sha
        with open(rec.path, "rb") as f:
            return sha is None or hashlib.sha256(f.read()).hexdigest() != sha
    except (OSError, MaskgenError):
        return True


def _stale(rec: Record, entry: mf.Entry, cfg: ConvertConfig, excluded: dict[str, str]) -> bool:
    """Whether a journalled source must be done again: the source changed, or a decision over the whole
    source (duplicates, sampling, output names) now falls otherwise."""
    rule = rec.problem or excluded.get(rec.key)
    if rule or entry.decided_before:
        return entry.whole != rule
    if entry.seen is not None and _changed(rec, entry.seen):
        return True
    for variant, mask_type in cfg.plan():
        kind, value = entry.variants.get(variant, ("", ""))
        want = excluded.get(f"{rec.key}#{variant}")
        if want or (kind == "skip" and value.partition(": ")[0] in mf.EXCLUSION_REASONS):
            if kind and (kind, value) != ("skip", want):
                return True
        elif kind == "file" and value != output_path(rec, cfg, variant, mask_type):
            return True
    return False


def _resume(
    journal: mf.Journal,
    dst: Path,
    records: Callable[[], Iterator[Record]],
    cfg: ConvertConfig,
    excluded: dict[str, str],
    names: dict[str, str],
) -> tuple[set[str], int]:
    """(sources already done, number of inputs): what the journal holds, less the sources changed or gone
    from SRC since, whose rows and files are removed first (so the result equals a fresh run)."""
    entries = journal.scan()
    redo: set[str] = set()
    alive: set[str] = set()
    total = 0
    for rec in records():
        total += 1
        entry = entries.get(rec.key)
        if entry is None:
            continue
        alive.add(rec.key)
        if rec.key in names:
            rec = replace(rec, out=names[rec.key])
        if _stale(rec, entry, cfg, excluded):
            redo.add(rec.key)
    redo |= entries.keys() - alive
    if redo:

        def drop(names: list[str]) -> None:
            for name in names:
                for rel in (name, *sidecars(name, True, True)):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(dst / rel)

        # files first, rows second: a kill in between leaves rows of sources that are still changed or
        # gone, so the next resume removes them again (never a file that no row claims)
        journal.purge(redo, drop)
        entries = journal.scan()
    planned = {v for v, _ in cfg.plan()}
    done = {k for k, e in entries.items() if e.whole is not None or e.variants.keys() >= planned}
    return done, total


def convert(
    src: Path | str,
    dst: Path | str,
    cfg: ConvertConfig,
    jobs: int = 1,
    overwrite: bool = False,
    executor: str = "local",
    scheduler: str | None = None,
    progress: Callable[[int], None] | None = None,
    total_callback: Callable[[int], None] | None = None,
) -> Summary:
    """Convert SRC into DST; safe to interrupt and run again with the same arguments.

    `jobs` is the number of cores to use (0: all); results do not depend on it. A resumed run redoes
    the sources that changed since and drops those that are gone. A file system error (disk full,
    read-only, permission denied) is one `MaskgenError` naming DST; the finished work stays journalled.
    SRC may be an fsspec URL of Parquet or WebDataset shards, DST one for a sharded output (see `remote`).
    """
    if jobs <= 0:
        jobs = os.cpu_count() or 1
    if jobs > 1 and executor == "local" and _importing_main_in_a_worker():
        raise MaskgenError(
            "convert(..., jobs > 1) ran while a worker process imported the script that calls it: put the call "
            'under `if __name__ == "__main__":`'
        )
    src = rm.as_path(src)
    check_config(cfg)
    store = None
    if rm.is_url(dst):
        if not cfg.sharded:
            raise BadParameter(
                f"{dst}: a remote DST takes --output-format parquet or webdataset (one object per image "
                "would be slow to write and to read back); write a folder locally instead"
            )
        store = rm.open_store(str(dst))
        dst = rm.state_dir(store.url)  # the journal's folder; the outputs go to the store
    elif isinstance(dst, str):
        dst = Path(dst)
    check_paths(src, dst)
    try:
        iter_records(src, cfg.format, cfg.naming)  # a source it cannot read fails here, before DST is made
        return _convert(src, dst, cfg, jobs, overwrite, executor, scheduler, progress, total_callback, store)
    except OSError as e:
        name, root = str(e.filename or "").strip("/"), src.path.strip("/") if rm.is_remote(src) else ""
        if root and (name == root or name.startswith(root + "/")):
            raise MaskgenError(f"cannot read {e.filename}: {e.strerror or e}") from None
        if store is not None:
            raise MaskgenError(
                f"cannot write to {store.url}: {e.strerror or e}; the finished work is journalled in {dst}, "
                "run the same command again to resume once this is fixed"
            ) from None
        where = Path(e.filename) if e.filename else dst
        if not rm.is_remote(src) and (where.resolve() == src.resolve() or src.resolve() in where.resolve().parents):
            raise MaskgenError(f"cannot read {where}: {e.strerror or e}") from None
        raise MaskgenError(
            f"cannot write to {where}: {e.strerror or e}; the finished work is saved in {dst}, "
            "run the same command again to resume once this is fixed"
        ) from None


def _convert(src, dst, cfg, jobs, overwrite, executor, scheduler, progress, total_callback, store=None) -> Summary:
    if store is not None:  # the state folder is maskgen's own: a stale one is cleared, the store is checked
        rm.prepare_store(store, {"source": source_id(src), "maskgen": cfg.to_json()}, overwrite)
        prepare_destination(src, dst, cfg, overwrite=True)
    else:
        prepare_destination(src, dst, cfg, overwrite)
    journal = mf.Journal(dst)

    # listed once: the decisions over the whole source (duplicates, sampling, names, what is done) and the
    # work itself all read it (name planning keeps every record in memory anyway)
    listing = list(iter_records(src, cfg.format, cfg.naming))

    def records() -> Iterator[Record]:
        return iter(listing)

    planned = {v for v, _ in cfg.plan()}
    excluded: dict[str, str] = {}
    conflicts = []
    if cfg.dedup:
        found = find_duplicates(records(), cfg.dedup_threshold)
        excluded |= found.excluded
        conflicts = found.conflicts
        mf.write_rows(dst / mf.CONFLICTS, conflicts)
    if cfg.sample is not None:
        kept = (r for r in records() if r.key not in excluded and not r.problem)
        items = [(f"{r.key}#{v}", r.label) for r in kept for v in sorted(planned)]
        chosen = stratified_sample(items, cfg.sample, cfg.seed)
        excluded |= {i: f"not_sampled: --sample {cfg.sample} kept other variants" for i, _ in items if i not in chosen}
    tags = [variant_tag(cfg, v, t) for v, t in cfg.plan()]
    named = (r for r in records() if r.key not in excluded and not r.problem)
    names = plan_names(named, cfg.out_format, tags, cfg.occlusion, cfg.keep_original)
    done, total = _resume(journal, dst, records, cfg, excluded, names)
    summary = Summary(resumed=len(done), conflicts=len(conflicts))
    shards: list[sh.Shard] = []
    if cfg.sharded:

        def makes_output(r: Record) -> bool:  # the rest are skips decided before any work
            return not r.problem and r.key not in excluded and any(f"{r.key}#{v}" not in excluded for v in planned)

        kept = (r for r in records() if makes_output(r))
        shards = sh.plan_shards(kept, cfg.output_format, cfg.shard_mb, _bytes_per_source(cfg))
        exists = store.exists if store is not None else (lambda name: (dst / name).exists())
        done = _finished_shards(journal, exists, shards, done)
        summary.resumed = len(done)
    if total_callback is not None:
        total_callback(total)
    if progress is not None and done:
        progress(len(done))
    shard_of = {k: s.name for s in shards for k in s.sources}
    todo = (
        replace(r, out=names.get(r.key, r.out), shard=shard_of.get(r.key, "")) for r in records() if r.key not in done
    )
    sub_excluded = excluded

    def journal_lines(lines: list[tuple]) -> None:
        journal.record([(kind, key, line) for kind, _, key, line, _ in lines])

    write = store.put if store is not None else (lambda name, data: write_bytes_atomic(dst / name, data))
    # Dask into a store: each worker makes whole shards and puts them itself; this process journals
    direct = executor == "dask" and store is not None
    sink = None
    if shards and not direct:
        sink = sh.ShardSink(write, cfg.output_format, shards, set(shard_of) - done, journal_lines)

    def handle(lines: list[tuple]) -> None:
        if sink is not None:
            sink.add(lines)
        else:
            journal_lines(lines)
        if progress is not None:
            progress(len({line[1] for line in lines}))

    with journal:
        if executor == "dask":
            _run_dask(todo, cfg, dst, sub_excluded, handle, scheduler, store.url if direct else None)
        elif jobs <= 1:
            with single_threaded_opencv():  # --jobs N means N cores
                for chunk in _chunks(todo, CHUNK):
                    handle(chunk_lines(chunk, cfg, str(dst), _subset(sub_excluded, chunk, cfg)))
        else:
            pool = _local_executor(jobs)
            try:
                _run_pool(pool, todo, cfg, dst, sub_excluded, handle, jobs)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    if sink is not None:
        sink.finish()
    if cfg.sharded:  # shards from an earlier plan (SRC changed since) go
        planned_names = {s.name for s in shards}
        if store is not None:
            for name in store.names(sh.DATA_DIR):
                if sh.SHARD_NAME.fullmatch(name) and f"{sh.DATA_DIR}/{name}" not in planned_names:
                    store.delete(f"{sh.DATA_DIR}/{name}")
        for stale in sh.shard_files(dst):
            if f"{sh.DATA_DIR}/{stale.name}" not in planned_names:
                stale.unlink()
    totals = mf.finalize(dst, journal, per_split=not cfg.sharded)
    if store is not None:
        rm.upload_tables(dst, store)
    summary.outputs, summary.skipped, summary.inputs = totals.outputs, totals.skipped, totals.inputs
    summary.complete = True
    return summary


def _bytes_per_source(cfg: ConvertConfig) -> float:
    """About how many bytes of output one source makes, per byte of its own (for sizing shards)."""
    return len(cfg.plan()) * (1 + cfg.keep_original + 0.2 * cfg.occlusion)


def _finished_shards(
    journal: mf.Journal, exists: Callable[[str], bool], shards: list[sh.Shard], done: set[str]
) -> set[str]:
    """The done sources whose whole shard is written; the rows of the others' sources are dropped, so their
    shards are made again whole (a run killed between writing a shard and journalling it, or a shard whose
    sources changed)."""
    entries = journal.scan()
    finished: set[str] = set()
    redo: set[str] = set()
    for shard in shards:
        named = set().union(*(entries[k].shards for k in shard.sources if k in entries))
        whole = all(k in done for k in shard.sources) and named <= {shard.name}
        if whole and (not named or exists(shard.name)):
            finished.update(shard.sources)
        else:
            redo.update(k for k in shard.sources if k in entries)
    if redo:
        journal.purge(redo, lambda names: None)  # the shards themselves are written again whole
        journal.scan()
    return finished


def _subset(excluded: dict[str, str], chunk: list[Record], cfg: ConvertConfig) -> dict[str, str]:
    """The exclusions that concern this chunk (so each task carries only its own)."""
    if not excluded:
        return {}
    keys = [k for r in chunk for k in (r.key, *(f"{r.key}#{v}" for v, _ in cfg.plan()))]
    return {k: excluded[k] for k in keys if k in excluded}


def _run_pool(pool, todo, cfg, dst, excluded, handle, jobs: int) -> None:
    """Keep 2 chunks per worker in flight: memory stays flat however large the dataset."""
    pending: set[Future] = set()
    chunks = _chunks(todo, CHUNK)
    try:
        for chunk in chunks:
            pending.add(pool.submit(_worker_chunk, chunk, cfg, str(dst), _subset(excluded, chunk, cfg)))
            if len(pending) >= 2 * jobs:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    handle(f.result())
        for f in pending:
            handle(f.result())
    except BrokenProcessPool:
        raise MaskgenError(
            "a worker process died (killed by the system: out of memory?, or it could not start: a script that "
            'calls convert with jobs > 1 needs it under `if __name__ == "__main__":`, as workers import the '
            "script); the finished work is journalled, run the same command again to resume"
        ) from None


def shard_task(records: list[Record], cfg: ConvertConfig, dst: str, excluded: dict[str, str], url: str) -> list[tuple]:
    """A Dask task that makes one whole shard (all of `records`) and puts it in the store at `url` itself;
    its lines come back without the samples, for the client to journal."""
    lines = chunk_lines(records, cfg, dst, excluded)
    rm.open_store(url).put(records[0].shard, sh.shard_bytes(sh.SHARD_FORMATS.create(cfg.output_format).join, lines))
    return [(*line[:4], None) for line in lines]


def _dask_tasks(todo: Iterator[Record], cfg: ConvertConfig, dst: str, excluded: dict[str, str], url: str | None):
    """(function, args) per task: chunks of CHUNK records, or with `url` one task per shard (and chunks
    of the sources that make no output, decided before any work)."""
    if url is None:
        for chunk in _chunks(todo, CHUNK):
            yield chunk_lines, (chunk, cfg, dst, _subset(excluded, chunk, cfg))
        return
    groups: dict[str, list[Record]] = {}
    for rec in todo:
        groups.setdefault(rec.shard, []).append(rec)
    for chunk in _chunks(iter(groups.pop("", [])), CHUNK):
        yield chunk_lines, (chunk, cfg, dst, _subset(excluded, chunk, cfg))
    for part in groups.values():
        yield shard_task, (part, cfg, dst, _subset(excluded, part, cfg), url)


def _run_dask(todo, cfg, dst, excluded, handle, scheduler: str | None, url: str | None = None) -> None:
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise MaskgenError("--executor dask needs the dask extra: pip install 'maskgen[dask]'") from None
    client = Client(scheduler) if scheduler else Client(processes=False)
    try:
        window = 2 * max(1, sum(client.nthreads().values()))
        tasks = _dask_tasks(todo, cfg, str(dst), excluded, url)
        futures = as_completed()
        for fn, args in itertools.islice(tasks, window):
            futures.add(client.submit(fn, *args, pure=False))
        for fut in futures:
            handle(fut.result())
            nxt = next(tasks, None)
            if nxt is not None:
                futures.add(client.submit(nxt[0], *nxt[1], pure=False))
    finally:
        client.close()
