"""`mask` and `predict` never write into or over an input, mirror the input tree, and never let two
inputs share an output."""

import os
import shutil

from click.testing import CliRunner

import maskgen as mg
from maskgen.cli import main

from .conftest import EXAMPLES


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_mask_refuses_to_write_over_its_input(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(EXAMPLES / "happy" / "astronaut.jpg", photos / "p.jpg")
    before = (photos / "p.jpg").read_bytes()
    res = run("mask", photos / "p.jpg", "-o", photos)
    assert res.exit_code == 1 and "never writes over its input" in res.output and "Traceback" not in res.output
    assert (photos / "p.jpg").read_bytes() == before and sorted(p.name for p in photos.iterdir()) == ["p.jpg"]
    res = run("mask", photos, "-o", photos / "masked")  # inside the input folder: refused too
    assert res.exit_code == 1 and "inside the input folder" in res.output and not (photos / "masked").exists()


def test_mask_reads_symlinked_folders_and_never_writes_into_them(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    shutil.copy(EXAMPLES / "happy" / "astronaut_48.png", store / "x.png")
    (store / ".hidden.png").write_bytes(b"not an input")
    src = tmp_path / "src"
    src.mkdir()
    os.symlink(store, src / "linked")
    res = run("mask", src, "-o", store / "masked")  # inside the linked folder: an input folder too
    assert res.exit_code == 1 and "an input folder" in res.output and not (store / "masked").exists()
    res = run("mask", src, "-o", tmp_path / "out", "--strategy", "zero", "--fallback", "aligned")
    assert res.exit_code == 0, res.output
    assert [p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")] == ["linked/x.png"]
    assert sorted(p.name for p in store.iterdir()) == [".hidden.png", "x.png"]


def test_mask_mirrors_subfolders(tmp_path):
    src = tmp_path / "src"
    for sub in ("a", "b"):
        (src / sub).mkdir(parents=True)
    shutil.copy(EXAMPLES / "happy" / "astronaut.jpg", src / "a" / "x.jpg")
    shutil.copy(EXAMPLES / "neutral" / "grace_hopper.jpg", src / "b" / "x.jpg")
    res = run("mask", src, "-o", tmp_path / "out", "--occlusion")
    assert res.exit_code == 0, res.output
    for sub, orig in (("a", "happy/astronaut.jpg"), ("b", "neutral/grace_hopper.jpg")):
        out = mg.read_image(tmp_path / "out" / sub / "x.jpg")
        assert (
            out.shape == mg.read_image(EXAMPLES / orig).shape and (tmp_path / "out" / sub / "x_occlusion.png").exists()
        )


def test_mask_keeps_inputs_that_differ_by_suffix_apart_and_never_overwrites(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    img = mg.read_image(EXAMPLES / "happy" / "astronaut.jpg")
    mg.write_image(src / "x.jpg", img)
    mg.write_image(src / "x.png", img)
    from PIL import Image

    Image.fromarray(img).save(src / "x.gif")  # GIF cannot be written: PNG, and x.png keeps its name
    res = run("mask", src / "x.gif", src / "x.jpg", src / "x.png", "-o", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.jpg", "x.png", "x_gif.png"]
    before = (tmp_path / "out" / "x.jpg").read_bytes()
    res = run("mask", src / "x.jpg", "-o", tmp_path / "out", "--color", "red")
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert (tmp_path / "out" / "x.jpg").read_bytes() == before
    res = run("mask", src / "x.jpg", "-o", tmp_path / "out", "--color", "red", "--overwrite")
    assert res.exit_code == 0 and (tmp_path / "out" / "x.jpg").read_bytes() != before


def test_mask_and_predict_reject_a_file_as_output_folder(tmp_path):
    target = tmp_path / "existing.png"
    target.write_bytes(b"not touched")
    res = run("mask", EXAMPLES / "happy" / "astronaut.jpg", "-o", target)
    assert res.exit_code == 1 and "is a file; give a folder" in res.output and "Traceback" not in res.output
    assert target.read_bytes() == b"not touched"
