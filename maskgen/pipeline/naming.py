"""Output names: SRC's tree mirrored into DST, one distinct name (and sidecar names) for every input.

Two inputs may map to one output name: `a.gif` and `a.bmp` with `--format png`, CSV paths `../d1/f.jpg`
and `/d2/f.jpg` (both placed under their label), a path listed twice, or `x_original.jpg` beside
`x.jpg` with `--keep-original`. `plan_names` gives every later one of a clash a name of its own, in
source order, so no output overwrites another and every input gets its outputs.
"""

from __future__ import annotations

import itertools
import posixpath
from collections.abc import Iterable, Iterator

from ..io import WRITABLE_SUFFIXES, name_suffix
from .sources import Record


def suffix_of(path: str) -> str:
    """A POSIX path's file suffix, as pathlib has it (`a/b.tar.gz` -> `.gz`, `.hidden` -> ``)."""
    return name_suffix(posixpath.basename(path))


FALLBACK_SUFFIX = ".png"  # lossless, for sources whose format cannot be written as it came (GIF, PPM, ...)


def mirrored(rec: Record, out_format: str | None) -> str:
    """The DST-relative name SRC's tree gives `rec`'s output (before clashes and variant tags).

    Paths that would leave DST (absolute, "..") are placed under their label instead."""
    rel = rec.name or rec.key
    if rel.startswith("/") or ".." in rel.split("/"):
        rel = posixpath.join(rec.label or "unlabelled", posixpath.basename(rel))
    rel = posixpath.normpath(rel)
    old = suffix_of(rel)
    suffix = out_format or (old if old.lower() in WRITABLE_SUFFIXES else FALLBACK_SUFFIX)
    return rel[: len(rel) - len(old)] + suffix


def variant_name(base: str, tag: str | None) -> str:
    """`base` with a variant tag before its suffix (`x.png` -> `x__kn95.png`)."""
    if not tag:
        return base
    suffix = suffix_of(base)
    return f"{base[: len(base) - len(suffix)]}__{tag}{suffix}"


def sidecars(name: str, occlusion: bool, original: bool) -> list[str]:
    """The files written beside output `name`: its occlusion map and unmasked copy, when asked for."""
    suffix = suffix_of(name)
    stem = name[: len(name) - len(suffix)]
    return ([f"{stem}_occlusion.png"] if occlusion else []) + ([f"{stem}_original{suffix}"] if original else [])


def plan_names(
    records: Iterable[Record], out_format: str | None, tags: list[str | None], occlusion: bool, original: bool
) -> dict[str, str]:
    """{key: base name} for the records whose mirrored name clashes with another record's files.

    Names are compared case-blind (for case-insensitive file systems). Inputs keep their own names first:
    a record whose output name is its source's name claims it before one whose name changed (`a.png`
    before `a.bmp` with `--format png`), and main images before sidecars (an input `x_original.jpg`
    keeps its name; `x.jpg`, whose unmasked copy would take it, makes way). A record that makes way gets
    its stem with the source's suffix added (`a.bmp` -> `a_bmp.png`), then a number (`x_2.jpg`).
    """
    recs = [(r.key, mirrored(r, out_format), r) for r in records]
    mains: dict[str, str] = {}  # image name (casefolded) -> key
    base_of: dict[str, str] = {}

    def images(base: str) -> list[str]:
        return [variant_name(base, tag).casefold() for tag in tags]

    def extras(base: str) -> list[str]:
        return [s.casefold() for tag in tags for s in sidecars(variant_name(base, tag), occlusion, original)]

    for own in (True, False):
        for key, base, rec in recs:
            if (base == posixpath.normpath(rec.name or rec.key)) != own:
                continue
            names = images(base)
            if not any(n in mains for n in names):
                mains.update(dict.fromkeys(names, key))
                base_of[key] = base
    side: set[str] = set()
    renamed: dict[str, str] = {}
    for key, base, rec in recs:
        chosen = base_of.get(key)
        if chosen is not None:
            more = extras(chosen)
            if not any(n in side or n in mains for n in more):
                side.update(more)
                continue
            for n in images(chosen):
                del mains[n]
        for cand in _candidates(base, rec):
            names, more = images(cand), extras(cand)
            if not any(n in mains or n in side for n in (*names, *more)):
                break
        mains.update(dict.fromkeys(names, key))
        side.update(more)
        renamed[key] = cand
    return renamed


def _candidates(base: str, rec: Record) -> Iterator[str]:
    """Other names for `base`: the source's suffix added to the stem, then numbers."""
    suffix = suffix_of(base)
    stem = base[: len(base) - len(suffix)]
    src_suffix = suffix_of(rec.name or rec.key).lstrip(".").lower()
    if src_suffix and f".{src_suffix}" != suffix.lower():
        stem = f"{stem}_{src_suffix}"
        yield stem + suffix
    for n in itertools.count(2):
        yield f"{stem}_{n}{suffix}"
