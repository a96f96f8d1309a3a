"""The per-chunk work of a conversion: load, detect (batched), mask and write each record's variants.

Pure apart from the files it writes under DST: the same record and configuration always give the
same bytes, so a resumed or parallel run equals a plain one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

from ..detectors import detect_batch
from ..errors import MaskgenError, NotAnImage
from ..io import encode_image, format_for, write_image
from ..seeds import generator, item_seed
from ..strategies import get_strategy
from ..strategies.batch import apply_grouped
from ..templates import load_template
from ..types import Faces
from .naming import mirrored, sidecars, suffix_of, variant_name
from .native import kept_in, native_array, restore
from .remote import file_stat
from .sources import Record, pixels_to_image, read_source


@dataclass(frozen=True)
class ConvertConfig:
    """Everything that determines a conversion's output (stored in DST/.maskgen/config.json)."""

    strategy: str = "overlay"
    types: tuple[str, ...] = ("random",)  # overlay mask types; ("random",) draws one per variant
    variants: int = 1
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    detector: str = "mtcnn"
    fallback: str | None = None
    faces: str = "largest"  # largest | all | single (more than one face: skipped as extra_faces)
    out_format: str | None = None  # e.g. ".png"; None keeps each source's format
    size: tuple[int, int] | None = None
    occlusion: bool = False
    keep_original: bool = False
    min_size: int = 16
    sample: int | None = None
    dedup: bool = False
    dedup_threshold: float = 2.0  # mean absolute difference (0-255) of 32x32 gray thumbnails
    naming: str | None = None
    format: str | None = None
    output_format: str = "folder"  # folder | parquet | webdataset
    shard_mb: float = 256.0  # about this many MB per shard (parquet, webdataset)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["types"] = list(self.types)
        d["size"] = list(self.size) if self.size else None
        if self.output_format == "folder":  # as a folder DST's config always read
            del d["output_format"], d["shard_mb"]
        return d

    @property
    def sharded(self) -> bool:
        return self.output_format != "folder"

    def plan(self) -> list[tuple[int, str | None]]:
        """(variant index, mask type or None) for every output made from one input."""
        if self.strategy != "overlay":
            return [(i, None) for i in range(self.variants)]
        return [(i, t) for i, t in enumerate(t for t in self.types for _ in range(self.variants))]


def variant_tag(cfg: ConvertConfig, variant: int, mask_type: str | None) -> str | None:
    """The suffix that tells one input's outputs apart when it has several (`kn95`, `kn95-1`, `v2`)."""
    if len(cfg.plan()) <= 1:
        return None
    if mask_type and mask_type != "random":
        return f"{mask_type}-{variant % cfg.variants}" if cfg.variants > 1 else mask_type
    return f"v{variant}"


def output_path(rec: Record, cfg: ConvertConfig, variant: int, mask_type: str | None) -> str:
    """DST-relative POSIX output path: SRC's tree mirrored (or the name `convert` planned for this
    record), with a tag per variant when an input has several. Plain string operations: this runs for
    every output."""
    return variant_name(rec.out or mirrored(rec, cfg.out_format), variant_tag(cfg, variant, mask_type))


def effective_colour(params: dict[str, Any]) -> str:
    """The colour a viewer sees: the requested one, else the template's own (empty for zero/bands fills)."""
    if params.get("color"):
        return str(params["color"])
    if "type" in params:
        return load_template(params["type"]).base_colour
    return ""


def _skip(rec: Record, reason: str, message: str, variant: int | None = None, **more: Any) -> dict[str, Any]:
    return {
        "kind": "skip",
        "source": rec.key,
        "variant": -1 if variant is None else variant,
        "reason": reason,
        "message": message,
        "label": rec.label,
        "subject": rec.subject,
        **more,
    }


def fingerprint(rec: Record) -> dict[str, Any]:
    """What tells a resumed run that a source changed: size and modification time (then the hash)."""
    if rec.path is None:
        return {}
    try:
        size, mtime = file_stat(rec.path)
    except OSError:
        return {}
    return {"source_size": size, "source_mtime_ns": mtime}


@dataclass
class _Source:
    """A loaded input: its 8-bit image, and what its outputs need to keep of it."""

    img: np.ndarray
    digest: str
    quality: int | None = None
    mode: str = "L"
    native: np.ndarray | None = None  # the source's own pixels when 16-bit or transparent
    native_mode: str = ""
    fingerprint: dict[str, Any] = field(default_factory=dict)


def _load(rec: Record) -> _Source:
    if rec.pixels is not None:
        return _Source(pixels_to_image(rec.pixels), hashlib.sha256(rec.pixels.encode()).hexdigest())
    assert rec.path is not None
    if rec.path.is_symlink() and rec.path.is_dir():
        raise NotAnImage(f"{rec.path}: a symlinked folder; not followed (it could loop)")
    stat = fingerprint(rec)
    img, info, data = read_source(rec)
    src = _Source(img, hashlib.sha256(data).hexdigest(), info.quality, info.mode, fingerprint=stat)
    plain = info.mode in ("L", "RGB") and data[:4] != b"\x89PNG"  # (a 16-bit RGB PNG opens as RGB)
    if not plain and (native := native_array(data, info, img)) is not None:
        src.native, src.native_mode = native
    return src


def _resize(img: np.ndarray, size: tuple[int, int] | None, nearest: bool = False) -> np.ndarray:
    if size is None or (img.shape[1], img.shape[0]) == size:
        return img
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA if img.shape[1] > size[0] else cv2.INTER_CUBIC
    return cv2.resize(img, size, interpolation=interp)


@dataclass
class _Job:
    """One output to make: a loaded record, its faces, and the resolved parameters of one variant."""

    rec: Record
    src: _Source
    faces: Faces
    variant: int
    mask_type: str | None
    seed: int
    params: dict[str, Any]
    out: np.ndarray | None = None  # set when masked in a batch, else masked when written
    occlusion: np.ndarray | None = None


def _in_mode(
    src: _Source, out8: np.ndarray, occlusion: np.ndarray, fmt: str, notes: list[str]
) -> tuple[np.ndarray, str]:
    """The image to write for a masked 8-bit `out8`, in the source's own mode where `fmt` holds it."""
    plain = "L" if out8.ndim == 2 else "RGB"
    if src.native is not None:
        if kept_in(src.native, fmt):
            return restore(src.native, src.img, out8, occlusion), src.native_mode
        notes.append(f"{src.native_mode} written as {plain}: {fmt} cannot hold it")
    elif src.mode not in ("L", "RGB"):
        notes.append(f"{src.mode} written as {plain}")
    return out8, plain


def _write(job: _Job, cfg: ConvertConfig, root: str) -> dict[str, Any]:
    """Write a masked job's files (atomically) and return its manifest row."""
    rec, src, use, res_params = job.rec, job.src, job.faces, job.params
    rel = output_path(rec, cfg, job.variant, job.mask_type)
    fmt = format_for(rel)
    notes: list[str] = []
    if cfg.out_format is None and rec.pixels is None:
        given = suffix_of(rec.name or rec.key)
        if given.lower() != suffix_of(rel).lower():
            notes.append(f"{given or 'no suffix'} cannot be written; written as {fmt} (lossless)")
    out, mode = _in_mode(src, job.out, job.occlusion, fmt, notes)
    out = _resize(out, cfg.size)
    files: dict[str, tuple[str, np.ndarray, int | None]] = {"image": (rel, out, src.quality)}
    extra = sidecars(rel, cfg.occlusion, cfg.keep_original)
    if cfg.occlusion:
        files["occlusion"] = (extra.pop(0), _resize(job.occlusion, cfg.size, True), None)
    if cfg.keep_original:
        original = src.native if src.native is not None and mode == src.native_mode else src.img
        files["original"] = (extra[0], _resize(original, cfg.size), src.quality)
    encoded: dict[str, tuple[str, bytes]] = {}
    for role, (name, arr, quality) in files.items():
        if cfg.sharded:  # kept for the shard: the parent writes it with the rest of its shard
            try:
                encoded[role] = (name, encode_image(arr, format_for(name), quality))
            except OSError as e:
                raise MaskgenError(f"{name}: cannot encode as {format_for(name)} ({e})") from None
        else:
            write_image(os.path.join(root, name), arr, quality=quality)
    sources = sorted(set(use.landmark_source))
    row = {
        "kind": "output",
        "file_name": rel,
        "label": rec.label,
        "subject": rec.subject,
        "split": rec.split,
        "strategy": cfg.strategy,
        "mask_type": res_params.get("type", ""),
        "color": effective_colour(res_params),
        "seed": job.seed,
        "landmark_source": sources[0] if len(sources) == 1 else "+".join(sources),
        "source": rec.key,
        "source_sha256": src.digest,
        **src.fingerprint,
        "variant": job.variant,
        "params": json.loads(json.dumps(res_params)),
        "detector": use.detector,
        "faces": len(use),
        "boxes": [[round(float(v), 1) for v in box] for box in use.xyxy],
        "width": int(out.shape[1]),
        "height": int(out.shape[0]),
        "source_mode": src.mode,
        "mode": mode,
        "notes": notes,
        "extra": rec.extra,
    }
    if cfg.sharded:
        row["shard"] = rec.shard
        row["_files"] = encoded
    return row


def _excluded_skip(rec: Record, rule: str, variant: int | None = None) -> dict[str, Any]:
    reason, _, msg = rule.partition(": ")
    return _skip(rec, reason, msg, variant)


def run_chunk(records: list[Record], cfg: ConvertConfig, dst: str, excluded: dict[str, str]) -> list[dict]:
    """Process a chunk of records; returns manifest rows ("output") and skip rows ("skip").

    `excluded` maps keys decided elsewhere (duplicates, unsampled variants "key#i") to a reason: message.
    """
    events: list[dict] = []
    loaded: list[tuple[Record, _Source]] = []
    for rec in records:
        if rec.problem or rec.key in excluded:
            events.append(_excluded_skip(rec, rec.problem or excluded[rec.key]))
            continue
        try:
            src = _load(rec)
        except MaskgenError as e:
            reason = "unreadable" if e.code in ("not_found", "unreadable", "truncated") else e.code
            events.append(_skip(rec, reason, str(e), **fingerprint(rec)))
            continue
        if min(src.img.shape[:2]) < cfg.min_size:
            w, h = src.img.shape[1], src.img.shape[0]
            msg = f"{w}x{h} is under --min-size {cfg.min_size}"
            events.append(_skip(rec, "too_small", msg, source_sha256=src.digest, **src.fingerprint))
            continue
        loaded.append((rec, src))
    faces_list = detect_batch([x[1].img for x in loaded], detector=cfg.detector, fallback=cfg.fallback)
    strat = get_strategy(cfg.strategy)
    jobs: list[_Job] = []
    for (rec, src), faces in zip(loaded, faces_list, strict=True):
        seen = {"source_sha256": src.digest, **src.fingerprint}
        if len(faces) == 0:
            hint = "" if cfg.fallback else "; --fallback aligned masks pre-aligned crops with the recorded prior"
            events.append(_skip(rec, "no_face", f"{cfg.detector} found no face{hint}", **seen))
            continue
        if cfg.faces == "single" and len(faces) > 1:
            msg = f"{len(faces)} faces found; --faces single keeps one-face images"
            events.append(_skip(rec, "extra_faces", msg, **seen))
            continue
        use = faces.largest() if cfg.faces in ("largest", "single") else faces
        for variant, mask_type in cfg.plan():
            vkey = f"{rec.key}#{variant}"
            if vkey in excluded:
                events.append(_excluded_skip(rec, excluded[vkey], variant))
                continue
            params = dict(cfg.params)
            if mask_type is not None:
                params["type"] = mask_type
            seed = item_seed(cfg.seed, rec.key, variant)
            try:  # as `mask` does: draw the parameters first, apply them second
                resolved = strat.resolve(generator(seed), **params)
            except MaskgenError as e:
                events.append(_skip(rec, e.code, str(e), variant, **seen))
                continue
            jobs.append(_Job(rec, src, use, variant, mask_type, seed, resolved))
    # small same-size crops: masked in one array pass (same bytes); the rest one by one as they are
    # written, so a large image's output is the only one in memory
    batched = apply_grouped(cfg.strategy, [(j.src.img, j.faces, j.params) for j in jobs])
    for job, done in zip(jobs, batched, strict=True):
        if done is not None:
            job.out, job.occlusion = done[0], done[1].astype(np.uint8) * 255
    for job in jobs:
        if job.out is None:
            try:
                job.out, job.occlusion = strat.apply(job.src.img, job.faces, **job.params)
            except MaskgenError as e:
                events.append(_skip(job.rec, e.code, str(e), job.variant, source_sha256=job.src.digest))
                continue
        events.append(_write(job, cfg, dst))
        job.out = job.occlusion = None
    return events
