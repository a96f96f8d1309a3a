"""Data integrity of `convert`: no output overwrites another, every input accounted for, resumes that
notice a changed SRC, modes kept, duplicates only when they really are the same pixels."""

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import maskgen as mg
from maskgen.pipeline import ConvertConfig, convert
from maskgen.pipeline.dataset_tools import find_duplicates
from maskgen.pipeline.sources import iter_records

from .conftest import EXAMPLES, SHARED, shared_set


def rows_of(dst: Path) -> list[dict]:
    return [json.loads(line) for line in (dst / "manifest.jsonl").read_text().splitlines()]


def skips_of(dst: Path) -> list[dict]:
    return [json.loads(line) for line in (dst / "skips.jsonl").read_text().splitlines()]


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root (but maskgen's state folder) with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".maskgen" not in p.parts
    }


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return mg.read_image(EXAMPLES / "happy" / "astronaut.jpg")


def test_formats_that_map_to_one_name_all_get_outputs(tmp_path, face):
    src = tmp_path / "src" / "happy"
    src.mkdir(parents=True)
    small = cv2.resize(face, (160, 160), interpolation=cv2.INTER_AREA)
    for ext in ("gif", "bmp", "webp", "png"):
        Image.fromarray(small).save(src / f"a.{ext}")
    s = convert(tmp_path / "src", tmp_path / "dst", ConvertConfig(out_format=".png", seed=1))
    rows = rows_of(tmp_path / "dst")
    assert s.inputs == 4 and len(rows) == 4 and not skips_of(tmp_path / "dst")
    names = sorted(r["file_name"] for r in rows)
    assert names == ["happy/a.png", "happy/a_bmp.png", "happy/a_gif.png", "happy/a_webp.png"]
    on_disk = sorted(str(p.relative_to(tmp_path / "dst")) for p in (tmp_path / "dst").rglob("*.png"))
    assert on_disk == names


def test_a_gif_is_written_as_png_and_the_run_goes_on(tmp_path, face):
    src = tmp_path / "src" / "happy"
    src.mkdir(parents=True)
    Image.fromarray(face).convert("P").save(src / "anim.gif")
    Image.fromarray(face).save(src / "b.jpg")
    s = convert(tmp_path / "src", tmp_path / "dst", ConvertConfig(seed=2))
    rows = {r["source"]: r for r in rows_of(tmp_path / "dst")}
    assert s.outputs == 2 and rows["happy/anim.gif"]["file_name"] == "happy/anim.png"
    assert any("written as PNG" in n for n in rows["happy/anim.gif"]["notes"])
    assert Image.open(tmp_path / "dst" / "happy" / "anim.png").format == "PNG"
    assert rows["happy/b.jpg"]["notes"] == []


def test_csv_paths_that_share_a_name_and_repeated_rows_all_get_outputs(tmp_path, face):
    base = tmp_path / "csv"
    for d in ("d1", "d2", "list"):
        (base / d).mkdir(parents=True)
    Image.fromarray(face).save(base / "d1" / "f.jpg")
    Image.fromarray(face[:, ::-1]).save(base / "d2" / "f.jpg")
    table = base / "list" / "labels.csv"
    table.write_text(
        f"path,label\n../d1/f.jpg,happy\n{base / 'd2' / 'f.jpg'},happy\n../d1/f.jpg,sad\n../d1/f.jpg,happy\n"
    )
    s = convert(table, tmp_path / "dst", ConvertConfig(seed=3))
    rows = rows_of(tmp_path / "dst")
    assert s.inputs == 4 and len(rows) == 4
    assert len({r["file_name"] for r in rows}) == 4
    assert sorted(r["label"] for r in rows) == ["happy", "happy", "happy", "sad"]
    for r in rows:  # each output is the masked copy of its own source
        assert (tmp_path / "dst" / r["file_name"]).is_file()


def test_sidecar_names_never_overwrite_an_input_s_output(tmp_path, face):
    src = tmp_path / "src" / "happy"
    src.mkdir(parents=True)
    shifted = np.ascontiguousarray(np.roll(face, 12, axis=1))
    for name, img in (("x.jpg", face), ("x_original.jpg", face[:, ::-1]), ("x_occlusion.png", shifted)):
        Image.fromarray(img).save(src / name)
    convert(tmp_path / "src", tmp_path / "dst", ConvertConfig(occlusion=True, keep_original=True, seed=4))
    rows = rows_of(tmp_path / "dst")
    assert len(rows) == 3
    files = set(tree(tmp_path / "dst")) - {"manifest.jsonl", "skips.jsonl", "metadata.csv"}
    assert len(files) == 9  # three images, each with its occlusion map and original: none written twice
    for r in rows:  # the kept original is the source's own pixels
        stem, suffix = os.path.splitext(r["file_name"])
        original = mg.read_image(tmp_path / "dst" / f"{stem}_original{suffix}")
        source = mg.read_image(tmp_path / "src" / r["source"])
        assert np.abs(original.astype(int) - source).mean() < 3


def _two_labels_folder(root: Path, face: np.ndarray) -> None:
    shifted = np.ascontiguousarray(np.roll(face, 12, axis=1))
    for label, imgs in (("happy", {"a.jpg": face, "b.jpg": face[:, ::-1]}), ("sad", {"c.jpg": shifted})):
        (root / label).mkdir(parents=True, exist_ok=True)
        for name, img in imgs.items():
            Image.fromarray(img).save(root / label / name, quality=92)


def test_resume_redoes_changed_sources_and_drops_deleted_ones(tmp_path, face):
    src, dst, fresh = tmp_path / "src", tmp_path / "dst", tmp_path / "fresh"
    _two_labels_folder(src, face)
    cfg = ConvertConfig(occlusion=True, seed=5)
    convert(src, dst, cfg)
    old_a = rows_of(dst)
    # replace a (same size on purpose is not needed: the hash decides), delete b, add d
    Image.fromarray(np.ascontiguousarray(face[:, ::-1])).rotate(8).save(src / "happy" / "a.jpg", quality=92)
    (src / "happy" / "b.jpg").unlink()
    Image.fromarray(cv2.resize(face, (300, 300))).save(src / "sad" / "d.jpg", quality=92)
    s = convert(src, dst, cfg)
    convert(src, fresh, cfg)
    assert s.inputs == 3 and s.resumed == 1  # only c was still as it was
    assert tree(dst) == tree(fresh)
    new_a = next(r for r in rows_of(dst) if r["source"] == "happy/a.jpg")
    assert new_a["source_sha256"] != next(r for r in old_a if r["source"] == "happy/a.jpg")["source_sha256"]
    assert not (dst / "happy" / "b.jpg").exists() and not (dst / "happy" / "b_occlusion.png").exists()


def test_resume_keeps_a_source_that_was_only_touched(tmp_path, face):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _two_labels_folder(src, face)
    convert(src, dst, ConvertConfig(seed=6))
    before = tree(dst)
    os.utime(src / "happy" / "a.jpg", ns=(1, 1))  # new mtime, same bytes: the hash says unchanged
    s = convert(src, dst, ConvertConfig(seed=6))
    assert s.resumed == 3 and tree(dst) == before


def test_sixteen_bit_and_alpha_are_kept(tmp_path, face):
    src = tmp_path / "src" / "happy"
    src.mkdir(parents=True)
    gray16 = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257 + 3  # low bits in use
    cv2.imwrite(str(src / "deep.png"), gray16)
    rgba = np.dstack([face, np.full(face.shape[:2], 200, np.uint8)])
    rgba[:40, :40, 3] = 0
    Image.fromarray(rgba, "RGBA").save(src / "clear.png")
    convert(tmp_path / "src", tmp_path / "dst", ConvertConfig(occlusion=True, seed=7))
    rows = {r["source"]: r for r in rows_of(tmp_path / "dst")}
    assert rows["happy/deep.png"]["mode"] == "I;16" and rows["happy/clear.png"]["mode"] == "RGBA"
    deep = cv2.imread(str(tmp_path / "dst" / "happy" / "deep.png"), cv2.IMREAD_UNCHANGED)
    occ = cv2.imread(str(tmp_path / "dst" / "happy" / "deep_occlusion.png"), cv2.IMREAD_UNCHANGED) > 0
    assert deep.dtype == np.uint16 and occ.any()
    assert np.array_equal(deep[~occ], gray16[~occ])  # untouched pixels keep their exact 16-bit values
    assert not np.array_equal(deep[occ], gray16[occ])
    clear = np.asarray(Image.open(tmp_path / "dst" / "happy" / "clear.png"))
    occ = cv2.imread(str(tmp_path / "dst" / "happy" / "clear_occlusion.png"), cv2.IMREAD_UNCHANGED) > 0
    assert clear.shape[2] == 4 and np.array_equal(clear[~occ], rgba[~occ])
    assert (clear[occ, 3] == 255).all() and (clear[:40, :40, 3] == 0).all()


def test_a_jpeg_output_of_an_rgba_source_says_alpha_was_dropped(tmp_path, face):
    src = tmp_path / "src" / "happy"
    src.mkdir(parents=True)
    Image.fromarray(np.dstack([face, np.full(face.shape[:2], 255, np.uint8)]), "RGBA").save(src / "a.png")
    convert(tmp_path / "src", tmp_path / "dst", ConvertConfig(out_format=".jpg", seed=8))
    (row,) = rows_of(tmp_path / "dst")
    assert row["mode"] == "RGB" and row["source_mode"] == "RGBA"
    assert row["notes"] == ["RGBA written as RGB: JPEG cannot hold it"]


@pytest.mark.parametrize("name", ["jaffe-dev", "ckplus48-dev"])
def test_dedup_never_flags_another_expression(name):
    shared_set(name)
    recs = list(iter_records(SHARED / name))
    found = find_duplicates(recs)
    labels = {r.key: r.label for r in recs}
    for key, why in found.excluded.items():
        other = why.split(" as ", 1)[1].split(" (")[0]
        assert labels[other] == labels[key], (key, why)
        if name == "ckplus48-dev":  # a near duplicate is a neighbouring frame of the same sequence
            assert key.split("/")[1][:8] == other.split("/")[1][:8]
    assert len(found.excluded) <= 0.1 * len(recs) and not found.conflicts


def test_dedup_reports_label_conflicts_and_keeps_both(tmp_path, face):
    src = tmp_path / "src"
    for label in ("happy", "sad"):
        (src / label).mkdir(parents=True)
    Image.fromarray(face).save(src / "happy" / "a.png")
    Image.fromarray(face).save(src / "sad" / "a_again.jpg", quality=95)  # re-encoded: near, not exact
    Image.fromarray(face).save(src / "happy" / "a_copy.png")
    s = convert(src, tmp_path / "dst", ConvertConfig(dedup=True, seed=9))
    assert s.outputs == 2 and s.conflicts == 1
    (conflict,) = [json.loads(x) for x in (tmp_path / "dst" / "label_conflicts.jsonl").read_text().splitlines()]
    assert {conflict["label"], conflict["other_label"]} == {"happy", "sad"}
    assert {r["source"] for r in skips_of(tmp_path / "dst")} == {"happy/a_copy.png"}


def test_dedup_threshold_is_an_option(tmp_path, face):
    src = tmp_path / "src" / "happy"
    src.mkdir(parents=True)
    Image.fromarray(face).save(src / "a.png")
    brighter = np.clip(face.astype(int) + 6, 0, 255).astype(np.uint8)  # ~6 gray levels apart
    Image.fromarray(brighter).save(src / "b.png")
    assert convert(tmp_path / "src", tmp_path / "d1", ConvertConfig(dedup=True)).outputs == 2
    assert convert(tmp_path / "src", tmp_path / "d2", ConvertConfig(dedup=True, dedup_threshold=8)).outputs == 1
    shutil.rmtree(tmp_path / "d1")


def test_split_layouts_load_every_column_with_hugging_face(tmp_path):
    datasets = pytest.importorskip("datasets")
    shared_set("fer2013-dev")
    lines = (SHARED / "fer2013-dev.csv").read_text().splitlines()
    rows = [lines[0]] + [
        ln.rsplit(",", 1)[0] + (",PublicTest" if i % 4 == 0 else ",Training") for i, ln in enumerate(lines[1:41])
    ]
    (tmp_path / "fer.csv").write_text("\n".join(rows) + "\n")
    convert(tmp_path / "fer.csv", tmp_path / "dst", ConvertConfig(strategy="zero", fallback="aligned"))
    ds = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "dst"))
    assert set(ds) == {"train", "validation"}
    for split in ds.values():
        for column in ("label", "subject", "split", "strategy", "landmark_source", "params"):
            assert split.features[column] == datasets.Value("string"), column  # empty subject: text, not float
        assert split.features["seed"].dtype == "int64"
    assert len(ds["train"]) + len(ds["validation"]) == len(rows_of(tmp_path / "dst"))
    assert set(ds["validation"]["split"]) == {"val"}


def test_load_hf_gives_class_labels_and_the_split_column_s_splits(tmp_path):
    pytest.importorskip("datasets")
    from click.testing import CliRunner

    from maskgen.cli import main

    convert(EXAMPLES, tmp_path / "dst", ConvertConfig(fallback="aligned"))
    res = CliRunner().invoke(main, ["split", str(tmp_path / "dst"), "--by", "source", "--ratios", "0.5,0.5"])
    assert res.exit_code == 0, res.output
    dd = mg.load_hf(tmp_path / "dst")
    assert set(dd) == {"train", "val"} and sum(len(d) for d in dd.values()) == 6
    train = dd["train"]
    assert train.features["label"].names == ["happy", "neutral"]
    assert train.features["subject"].dtype == "string" and train[0]["image"].size[0] > 0


def test_bad_fer2013_rows_are_skips_with_reasons(tmp_path):
    shared_set("fer2013-dev")
    lines = (SHARED / "fer2013-dev.csv").read_text().splitlines()
    good = lines[1:4]
    emotion, pixels, usage = good[0].split(",")
    bad = [
        f"{emotion},{pixels.replace(pixels.split()[5], 'abc', 1)},{usage}",
        f"9,{pixels},{usage}",
        f",{pixels},{usage}",
    ]
    (tmp_path / "fer.csv").write_text("\n".join([lines[0], *good, *bad]) + "\n")
    s = convert(tmp_path / "fer.csv", tmp_path / "dst", ConvertConfig(strategy="zero", fallback="aligned"))
    skips = sorted((sk["reason"], sk["message"]) for sk in skips_of(tmp_path / "dst"))
    assert s.inputs == 6 and s.outputs == 3 and [r for r, _ in skips] == ["bad_label", "bad_label", "unreadable"]
    assert "'abc' is not a whole number" in skips[2][1]
    assert "emotion '9'" in skips[0][1] and "emotion ''" in skips[1][1]
    assert not (tmp_path / "dst" / "train" / "unlabelled").exists()


def test_nested_folders_keep_their_label_folder_s_label(tmp_path, face):
    for rel in ("happy/a/b/x.png", "sad/y.png", "train/happy/deep/z.png"):
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(tmp_path / "src" / rel)
    convert(tmp_path / "src", tmp_path / "dst", ConvertConfig(seed=1))
    got = {r["source"]: (r["label"], r["split"]) for r in rows_of(tmp_path / "dst")}
    assert got == {
        "happy/a/b/x.png": ("happy", ""),
        "sad/y.png": ("sad", ""),
        "train/happy/deep/z.png": ("happy", "train"),
    }
