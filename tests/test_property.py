"""Property: over randomly generated messy sources (odd formats, names that collide after conversion,
nested and split folders, broken files, CSV lists with repeats and paths outside their folder), every
input ends in the manifest or the skip log, no two outputs share a name, and SRC is never touched."""

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import maskgen as mg
from maskgen.pipeline import ConvertConfig, convert
from maskgen.pipeline.sources import all_files

from .conftest import EXAMPLES

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

FACE = mg.read_image(EXAMPLES / "happy" / "astronaut_48.png")
FOLDERS = ["happy", "sad", "happy/sub", "train/happy", "test/sad", "happy/a/b", ""]
STEMS = ["a", "A", "x", "x_original", "x_occlusion", "x__v1", "a.b"]
SUFFIXES = [".png", ".jpg", ".gif", ".bmp", ".webp", ".tif", ".PNG", ".txt", ""]
KINDS = ["face", "face16", "facergba", "noise", "empty", "garbage", "truncated"]


def content(kind: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    if kind == "empty":
        return b""
    if kind == "garbage":
        return rng.bytes(int(rng.integers(1, 200)))
    img = np.roll(FACE, int(rng.integers(-3, 4)), axis=1)
    if kind == "noise":
        img = rng.integers(0, 256, (int(rng.integers(8, 40)),) * 2, dtype=np.uint8)
    buf = io.BytesIO()
    if kind == "face16":
        Image.fromarray(img.astype(np.uint16) * 257).save(buf, format="PNG")
    elif kind == "facergba":
        Image.fromarray(np.dstack([img] * 3 + [np.full_like(img, 200)]), "RGBA").save(buf, format="PNG")
    else:
        Image.fromarray(img).save(buf, format="PNG")
    data = buf.getvalue()
    return data[: len(data) // 2] if kind == "truncated" else data


entries = st.lists(
    st.tuples(st.sampled_from(FOLDERS), st.sampled_from(STEMS), st.sampled_from(SUFFIXES), st.sampled_from(KINDS)),
    min_size=1,
    max_size=9,
)
configs = st.fixed_dictionaries(
    {
        "out_format": st.sampled_from([None, ".png", ".jpg"]),
        "occlusion": st.booleans(),
        "keep_original": st.booleans(),
        "dedup": st.booleans(),
        "types": st.sampled_from([("random",), ("surgical", "kn95")]),
        "variants": st.integers(1, 2),
        "as_csv": st.booleans(),
    }
)


def digest(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@hypothesis.settings(max_examples=80, deadline=None, derandomize=True, database=None)
@hypothesis.given(entries=entries, cfg=configs)
def test_every_input_is_accounted_for_and_outputs_never_clash(tmp_path_factory, entries, cfg):
    base = tmp_path_factory.mktemp("messy")
    src = base / "src"
    src.mkdir()
    for i, (folder, stem, suffix, kind) in enumerate(entries):
        path = src / folder / f"{stem}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content(kind, i))
    files = sorted(all_files(src))
    source = src
    expected = len(files)
    if cfg.pop("as_csv"):  # a path,label list: repeats, paths from outside its folder, a missing file
        lst = base / "lists" / "items.csv"
        lst.parent.mkdir()
        rows = [f"../src/{p.relative_to(src).as_posix()},l{i % 2}" for i, p in enumerate(files)]
        rows += [rows[0].rsplit(",", 1)[0] + ",other", f"{files[-1]},l0", "../src/missing.png,l1"]
        lst.write_text("path,label\n" + "\n".join(rows) + "\n")
        source, expected = lst, len(rows)
    before = digest(base / "src")
    dst = base / "dst"
    summary = convert(source, dst, ConvertConfig(seed=1, fallback="aligned", **cfg))
    rows = [json.loads(x) for x in (dst / "manifest.jsonl").read_text().splitlines()]
    skips = [json.loads(x) for x in (dst / "skips.jsonl").read_text().splitlines()]
    assert summary.inputs == expected == len({r["source"] for r in rows} | {s["source"] for s in skips})
    assert all(s["reason"] and s["message"] for s in skips)
    planned = len(ConvertConfig(**{k: cfg[k] for k in ("types", "variants")}).plan())
    per_source: dict[str, int] = {}
    for r in rows:
        per_source[r["source"]] = per_source.get(r["source"], 0) + 1
    for s in skips:  # a source is whole in the skip log, or each of its variants is accounted for once
        per_source[s["source"]] = planned if s["variant"] < 0 else per_source.get(s["source"], 0) + 1
    assert set(per_source.values()) <= {planned}
    names = [r["file_name"].casefold() for r in rows]
    assert len(names) == len(set(names))
    written = {str(p.relative_to(dst)).casefold() for p in dst.rglob("*") if p.is_file() and ".maskgen" not in p.parts}
    per_output = 1 + cfg["occlusion"] + cfg["keep_original"]
    images = {n for n in written if not n.endswith((".jsonl", ".csv"))}
    assert set(names) <= images and len(images) == per_output * len(rows)
    assert digest(base / "src") == before  # the source is never touched
