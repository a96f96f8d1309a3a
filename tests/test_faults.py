"""Fault injection: `convert` meets write errors (a patched writer: ENOSPC, EIO, EROFS, EACCES at random
points; a real small file system filling up) with one line and exit 1, leaves nothing half-written, and
a resume ends identical to a fresh run."""

import errno
import os
import random
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import maskgen as mg
from maskgen.cli import main
from maskgen.pipeline import manifest as mf

from .conftest import EXAMPLES

STATE = {".maskgen"}


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not STATE & set(p.relative_to(root).parts)
    }


def assert_nothing_half_written(dst: Path) -> None:
    """No temp file left, every image decodes, every journalled output exists."""
    assert not [p for p in dst.rglob("*") if p.name.endswith(".part")]
    for p in dst.rglob("*"):
        if p.suffix.lower() in (".png", ".jpg") and p.is_file():
            mg.read_image(p)  # raises on a truncated file
    if (dst / mf.MANIFEST).exists():
        for row in mf._read_jsonl(dst / mf.MANIFEST):
            assert (dst / row["file_name"]).is_file()


def one_line_error(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: cannot write to"), output
    assert "resume" in lines[0] and "Traceback" not in output
    return lines[0]


ARGS = ["--occlusion", "--keep-original", "--seed", "3", "-q"]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict[str, bytes]:
    dst = tmp_path_factory.mktemp("fresh") / "dst"
    res = CliRunner().invoke(main, ["convert", str(EXAMPLES), str(dst), "--jobs", "1", *ARGS])
    assert res.exit_code == 0, res.output
    return tree(dst)


CASES = [
    (code, where, k)
    for code in (errno.ENOSPC, errno.EIO, errno.EROFS, errno.EACCES)
    for where in ("image", "journal")
    for k in random.Random(code).sample(range(1, 12 if where == "image" else 3), 2)
]


@pytest.mark.parametrize("code, where, k", CASES)
def test_a_write_error_is_one_line_and_the_resume_equals_a_fresh_run(tmp_path, monkeypatch, fresh, code, where, k):
    """The k-th image write (any file maskgen writes atomically) or journal append fails with `code`."""
    calls = {"n": 0}
    monkeypatch.setattr(sys.modules["maskgen.pipeline.convert"], "CHUNK", 2)  # three chunks: three appends

    def failing(real):
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == k:
                raise OSError(code, os.strerror(code), str(tmp_path / "dst"))
            return real(*args, **kwargs)

        return wrapper

    if where == "image":
        monkeypatch.setattr("maskgen.io._write_all", failing(mg.io._write_all))
    else:
        monkeypatch.setattr(mf.Journal, "record", failing(mf.Journal.record))
    dst = tmp_path / "dst"
    res = CliRunner().invoke(main, ["convert", str(EXAMPLES), str(dst), "--jobs", "1", *ARGS])
    assert res.exit_code == 1
    assert os.strerror(code) in one_line_error(res.output)
    assert_nothing_half_written(dst)
    monkeypatch.undo()
    res = CliRunner().invoke(main, ["convert", str(EXAMPLES), str(dst), "--jobs", "1", *ARGS])
    assert res.exit_code == 0, res.output
    assert tree(dst) == fresh
    assert calls["n"] >= k


def test_a_write_error_under_dask_is_one_line(tmp_path, monkeypatch, fresh):
    pytest.importorskip("dask.distributed")
    real = mg.io._write_all
    calls = {"n": 0}

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 4:  # an image, written by a Dask worker thread
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "dst"))
        return real(*args)

    monkeypatch.setattr("maskgen.io._write_all", failing)
    dst = tmp_path / "dst"
    res = CliRunner().invoke(main, ["convert", str(EXAMPLES), str(dst), "--executor", "dask", *ARGS])
    assert res.exit_code == 1 and "No space left on device" in one_line_error(res.output)
    assert_nothing_half_written(dst)
    monkeypatch.undo()
    res = CliRunner().invoke(main, ["convert", str(EXAMPLES), str(dst), "--jobs", "1", *ARGS])
    assert res.exit_code == 0 and tree(dst) == fresh


@pytest.fixture
def small_disk(tmp_path):
    """A 160 KiB tmpfs (root only; skipped elsewhere), unmounted afterwards."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("this machine cannot mount a tmpfs")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_full_disk_stops_the_run_cleanly_and_more_space_resumes_it(tmp_path, small_disk, jobs):
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    face = mg.read_image(EXAMPLES / "happy" / "astronaut.jpg")
    for i in range(24):  # ~14 KB each as JPEG: the 160 KiB disk fills up a third of the way in
        shifted = np.roll(face, int(rng.integers(-20, 20)), axis=1)
        mg.write_image(src / ["happy", "sad"][i % 2] / f"f{i:02d}.jpg", shifted, quality=90)
    dst = small_disk / "dst"
    cmd = [
        sys.executable,
        "-m",
        "maskgen",
        "convert",
        str(src),
        str(dst),
        "--jobs",
        jobs,
        "--fallback",
        "aligned",
        "-q",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "No space left on device" in one_line_error(run.stderr)
    assert_nothing_half_written(dst)
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    fresh = tmp_path / "fresh"
    subprocess.run([*cmd[:5], str(fresh), *cmd[6:]], check=True, capture_output=True, timeout=300)
    assert tree(dst) == tree(fresh)
