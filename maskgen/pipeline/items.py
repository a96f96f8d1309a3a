"""The per-chunk work of a conversion: load, detect (batched), mask and write each record's variants.

Pure apart from the files it writes under DST: the same record and configuration always give the
same bytes, so a resumed or parallel run equals a plain one.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

from ..detectors import detect_batch
from ..errors import MaskgenError, NotAnImage
from ..io import name_suffix, read_image_with_info, write_image
from ..seeds import generator, item_seed
from ..strategies import get_strategy
from ..strategies.batch import apply_grouped
from ..templates import load_template
from ..types import Faces
from .sources import Record, pixels_to_image


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
    naming: str | None = None
    format: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["types"] = list(self.types)
        d["size"] = list(self.size) if self.size else None
        return d

    def plan(self) -> list[tuple[int, str | None]]:
        """(variant index, mask type or None) for every output made from one input."""
        if self.strategy != "overlay":
            return [(i, None) for i in range(self.variants)]
        return [(i, t) for i, t in enumerate(t for t in self.types for _ in range(self.variants))]


def output_path(rec: Record, cfg: ConvertConfig, variant: int, mask_type: str | None) -> str:
    """DST-relative POSIX output path: SRC's tree mirrored; several variants get a suffix each.

    Plain string operations (this runs for every output; pathlib's cost ~4x as much)."""
    rel = rec.key
    if rel.startswith("/") or ".." in rel.split("/"):
        rel = posixpath.join(rec.label or "unlabelled", posixpath.basename(rel))
    rel = posixpath.normpath(rel)
    folder, name = posixpath.split(rel)
    old = name_suffix(name)
    stem = name[: len(name) - len(old)]
    suffix = cfg.out_format or old or ".png"
    if len(cfg.plan()) > 1:
        tag = mask_type if mask_type and mask_type != "random" else f"v{variant}"
        if mask_type and mask_type != "random" and cfg.variants > 1:
            tag = f"{mask_type}-{variant % cfg.variants}"
        stem = f"{stem}__{tag}"
    return posixpath.join(folder, stem + suffix)


def effective_colour(params: dict[str, Any]) -> str:
    """The colour a viewer sees: the requested one, else the template's own (empty for zero/bands fills)."""
    if params.get("color"):
        return str(params["color"])
    if "type" in params:
        return load_template(params["type"]).base_colour
    return ""


def _skip(rec: Record, reason: str, message: str, variant: int | None = None) -> dict[str, Any]:
    return {
        "kind": "skip",
        "source": rec.key,
        "variant": -1 if variant is None else variant,
        "reason": reason,
        "message": message,
        "label": rec.label,
        "subject": rec.subject,
    }


def _load(rec: Record) -> tuple[np.ndarray, str, int | None]:
    """(image, source sha256, JPEG quality or None)."""
    if rec.pixels is not None:
        return pixels_to_image(rec.pixels), hashlib.sha256(rec.pixels.encode()).hexdigest(), None
    assert rec.path is not None
    if rec.path.is_symlink() and rec.path.is_dir():
        raise NotAnImage(f"{rec.path}: a symlinked folder; not followed (it could loop)")
    img, info, data = read_image_with_info(rec.path)
    return img, hashlib.sha256(data).hexdigest(), info.quality


def _resize(img: np.ndarray, size: tuple[int, int] | None, nearest: bool = False) -> np.ndarray:
    if size is None or (img.shape[1], img.shape[0]) == size:
        return img
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA if img.shape[1] > size[0] else cv2.INTER_CUBIC
    return cv2.resize(img, size, interpolation=interp)


@dataclass
class _Job:
    """One output to make: a record's image, its faces, and the resolved parameters of one variant."""

    rec: Record
    img: np.ndarray
    digest: str
    quality: int | None
    faces: Faces
    variant: int
    mask_type: str | None
    seed: int
    params: dict[str, Any]
    out: np.ndarray | None = None  # set when masked in a batch, else masked when written
    occlusion: np.ndarray | None = None


def _write(job: _Job, cfg: ConvertConfig, root: str) -> dict[str, Any]:
    """Write a masked job's files (atomically) and return its manifest row."""
    rec, use, res_params = job.rec, job.faces, job.params
    rel = output_path(rec, cfg, job.variant, job.mask_type)
    base = os.path.join(root, rel)
    out = _resize(job.out, cfg.size)
    write_image(base, out, quality=job.quality)
    suffix = name_suffix(posixpath.basename(rel))
    stem = base[: len(base) - len(suffix)]
    if cfg.occlusion:
        write_image(f"{stem}_occlusion.png", _resize(job.occlusion, cfg.size, True))
    if cfg.keep_original:
        write_image(f"{stem}_original{suffix}", _resize(job.img, cfg.size), quality=job.quality)
    sources = sorted(set(use.landmark_source))
    return {
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
        "source_sha256": job.digest,
        "variant": job.variant,
        "params": json.loads(json.dumps(res_params)),
        "detector": use.detector,
        "faces": len(use),
        "boxes": [[round(float(v), 1) for v in box] for box in use.xyxy],
        "width": int(out.shape[1]),
        "height": int(out.shape[0]),
        "extra": rec.extra,
    }


def run_chunk(records: list[Record], cfg: ConvertConfig, dst: str, excluded: dict[str, str]) -> list[dict]:
    """Process a chunk of records; returns manifest rows ("output") and skip rows ("skip").

    `excluded` maps keys decided elsewhere (duplicates, unsampled variants "key#i") to a reason: message.
    """
    events: list[dict] = []
    loaded: list[tuple[Record, np.ndarray, str, int | None]] = []
    for rec in records:
        if rec.key in excluded:
            reason, _, msg = excluded[rec.key].partition(": ")
            events.append(_skip(rec, reason, msg))
            continue
        try:
            img, digest, quality = _load(rec)
        except MaskgenError as e:
            events.append(
                _skip(rec, "unreadable" if e.code in ("not_found", "unreadable", "truncated") else e.code, str(e))
            )
            continue
        if min(img.shape[:2]) < cfg.min_size:
            events.append(_skip(rec, "too_small", f"{img.shape[1]}x{img.shape[0]} is under --min-size {cfg.min_size}"))
            continue
        loaded.append((rec, img, digest, quality))
    faces_list = detect_batch([x[1] for x in loaded], detector=cfg.detector, fallback=cfg.fallback)
    strat = get_strategy(cfg.strategy)
    jobs: list[_Job] = []
    for (rec, img, digest, quality), faces in zip(loaded, faces_list, strict=True):
        if len(faces) == 0:
            hint = "" if cfg.fallback else "; --fallback aligned masks pre-aligned crops with the recorded prior"
            events.append(_skip(rec, "no_face", f"{cfg.detector} found no face{hint}"))
            continue
        if cfg.faces == "single" and len(faces) > 1:
            events.append(_skip(rec, "extra_faces", f"{len(faces)} faces found; --faces single keeps one-face images"))
            continue
        use = faces.largest() if cfg.faces in ("largest", "single") else faces
        for variant, mask_type in cfg.plan():
            vkey = f"{rec.key}#{variant}"
            if vkey in excluded:
                reason, _, msg = excluded[vkey].partition(": ")
                events.append(_skip(rec, reason, msg, variant))
                continue
            params = dict(cfg.params)
            if mask_type is not None:
                params["type"] = mask_type
            seed = item_seed(cfg.seed, rec.key, variant)
            try:  # as `mask` does: draw the parameters first, apply them second
                resolved = strat.resolve(generator(seed), **params)
            except MaskgenError as e:
                events.append(_skip(rec, e.code, str(e), variant))
                continue
            jobs.append(_Job(rec, img, digest, quality, use, variant, mask_type, seed, resolved))
    # small same-size crops: masked in one array pass (same bytes); the rest one by one as they are
    # written, so a large image's output is the only one in memory
    batched = apply_grouped(cfg.strategy, [(j.img, j.faces, j.params) for j in jobs])
    for job, done in zip(jobs, batched, strict=True):
        if done is not None:
            job.out, job.occlusion = done[0], done[1].astype(np.uint8) * 255
    for job in jobs:
        if job.out is None:
            try:
                job.out, job.occlusion = strat.apply(job.img, job.faces, **job.params)
            except MaskgenError as e:
                events.append(_skip(job.rec, e.code, str(e), job.variant))
                continue
        events.append(_write(job, cfg, dst))
        job.out = job.occlusion = None
    return events
