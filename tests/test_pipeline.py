"""Bulk conversion on real data: counts, labels and subjects kept; bad inputs logged; resume; parallel."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import maskgen as mg
from maskgen.cli import main
from maskgen.pipeline import ConvertConfig, convert
from maskgen.pipeline.convert import DestinationError
from maskgen.pipeline.sources import parse_ckplus, parse_jaffe, parse_kdef

from .conftest import EXAMPLES, SHARED, shared_set


def rows_of(dst: Path) -> list[dict]:
    return [json.loads(line) for line in (dst / "manifest.jsonl").read_text().splitlines()]


def skips_of(dst: Path) -> list[dict]:
    return [json.loads(line) for line in (dst / "skips.jsonl").read_text().splitlines()]


CONVERT = [sys.executable, "-m", "maskgen", "convert"]  # the CLI in a child process, to kill or interrupt it


def wait_for_rows(proc: subprocess.Popen, manifest: Path, rows: int, timeout: float = 60) -> None:
    """Wait until a running conversion has journalled `rows` outputs (it must still be running then)."""
    deadline = time.time() + timeout
    while time.time() < deadline and (not manifest.exists() or manifest.read_text().count("\n") < rows):
        assert proc.poll() is None, "the conversion ended before it could be interrupted"
        time.sleep(0.02)


def shared_manifest(dataset: str) -> dict[str, dict]:
    with open(SHARED / "manifest.csv", newline="") as f:
        return {r["path"]: r for r in csv.DictReader(f) if r["dataset"] == dataset}


def test_naming_schemes():
    assert parse_ckplus("S005_001_00000011.png") == {"subject": "S005", "sequence": "001"}
    assert parse_jaffe("KA.AN1.39.tiff") == {"subject": "KA", "label": "angry"}
    assert parse_kdef("AF01ANS.JPG") == {"subject": "AF01", "label": "angry", "pose": "straight", "series": "A"}
    assert parse_kdef("BM22SUHR.jpg")["pose"] == "half_right"
    assert parse_jaffe("holiday.jpg") is None and parse_ckplus("S5_1.png") is None


@pytest.mark.parametrize("name, dataset", [("ckplus48-dev", "ckplus48"), ("jaffe-dev", "jaffe")])
def test_convert_keeps_labels_and_subjects(tmp_path, name, dataset):
    paths = shared_set(name)
    summary = convert(SHARED / name, tmp_path / "out", ConvertConfig())
    truth = shared_manifest(dataset)
    rows, skips = rows_of(tmp_path / "out"), skips_of(tmp_path / "out")
    assert summary.inputs == len(paths) == len(rows) + len(skips)
    for r in rows:
        t = truth[f"{name}/{r['source']}"]
        assert (r["label"], r["subject"]) == (t["label"], t["subject"])
        img = mg.read_image(tmp_path / "out" / r["file_name"])
        assert img.shape == mg.read_image(SHARED / name / r["source"]).shape
    assert len(rows) >= 0.97 * len(paths)


def test_fer2013_csv_and_folder_agree(tmp_path):
    shared_set("fer2013-dev")
    a = convert(SHARED / "fer2013-dev.csv", tmp_path / "csv", ConvertConfig(strategy="zero"))
    b = convert(SHARED / "fer2013-dev", tmp_path / "folder", ConvertConfig(strategy="zero"))
    assert a.inputs == b.inputs == 350
    csv_rows = rows_of(tmp_path / "csv")
    assert Counter(r["label"] for r in csv_rows) == Counter(r["label"] for r in rows_of(tmp_path / "folder"))
    assert all(r["split"] == "train" and r["file_name"].startswith("train/") for r in csv_rows)
    # the CSV's pixels decode to the same faces as the JPEGs: nearly the same detection rate
    assert abs(a.outputs - b.outputs) <= 5


def test_load_dataset_reads_labels(tmp_path):
    datasets = pytest.importorskip("datasets")
    convert(EXAMPLES, tmp_path / "out", ConvertConfig(occlusion=True, keep_original=True))
    ds = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "out"), split="train")
    assert len(ds) == len(rows_of(tmp_path / "out")) == 6
    assert sorted(set(ds["label"])) == ["happy", "neutral"]
    assert ds[0]["image"].size[0] > 0


def make_messy_folder(root: Path, astronaut: np.ndarray) -> dict[str, str]:
    """Good images beside every kind of bad entry; returns the expected reason per bad entry."""
    good = root / "happy"
    good.mkdir(parents=True)
    for i, size in enumerate((256, 128, 64)):
        Image.fromarray(astronaut).resize((size, size)).save(good / f"good{i}.png")
    bad = root / "sad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notes.jpg").write_text("this is not an image")
    (bad / "readme.txt").write_text("a stray text file")
    buf = (good / "good0.png").read_bytes()
    (bad / "truncated.png").write_bytes(buf[: len(buf) // 3])
    Image.new("1", (10000, 10000)).save(bad / "huge.png")
    Image.fromarray(np.full((10, 10), 128, np.uint8)).save(bad / "tiny.png")
    Image.fromarray(np.full((96, 96, 3), 128, np.uint8)).save(bad / "blank.png")
    os.symlink(bad / "loop.png", bad / "loop.png")
    os.symlink(root, bad / "parent_link")
    return {
        "sad/empty.jpg": "unreadable",
        "sad/notes.jpg": "unreadable",
        "sad/readme.txt": "unreadable",
        "sad/truncated.png": "unreadable",
        "sad/huge.png": "too_large",
        "sad/tiny.png": "too_small",
        "sad/blank.png": "no_face",
        "sad/loop.png": "unreadable",
        "sad/parent_link": "linked_folder",
    }


def test_bad_inputs_are_logged_with_reasons(tmp_path, astronaut):
    expected = make_messy_folder(tmp_path / "src", astronaut)
    summary = convert(tmp_path / "src", tmp_path / "dst", ConvertConfig())
    rows, skips = rows_of(tmp_path / "dst"), skips_of(tmp_path / "dst")
    assert sorted(r["source"] for r in rows) == ["happy/good0.png", "happy/good1.png", "happy/good2.png"]
    assert {s["source"]: s["reason"] for s in skips} == expected
    assert all(s["message"] and "\n" not in s["message"] for s in skips)
    assert summary.inputs == 3 + len(expected)


def test_destination_rules(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    mg.write_image(src / "a.png", mg.read_image(EXAMPLES / "happy" / "astronaut_48.png"))
    with pytest.raises(DestinationError, match="inside the source"):
        convert(src, src / "masked", ConvertConfig())
    with pytest.raises(DestinationError, match="inside the source"):
        convert(src, src, ConvertConfig())
    convert(src, tmp_path / "dst", ConvertConfig(strategy="zero"))
    with pytest.raises(DestinationError, match="another configuration \\(strategy"):
        convert(src, tmp_path / "dst", ConvertConfig(strategy="overlay"))
    convert(src, tmp_path / "dst", ConvertConfig(strategy="overlay"), overwrite=True)
    assert rows_of(tmp_path / "dst")[0]["strategy"] == "overlay"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("user data")
    with pytest.raises(DestinationError, match="not made by maskgen"):
        convert(src, tmp_path / "other", ConvertConfig())
    assert sorted(p.name for p in src.iterdir()) == ["a.png"]  # nothing written into SRC


def test_symlinked_folders_are_followed_once(tmp_path):
    """A dataset assembled from symlinked label folders is read through the links; a link back into SRC
    and a loop are logged with a reason, never followed (no duplicates, no endless walk)."""
    store = tmp_path / "store"
    (store / "happy_imgs").mkdir(parents=True)
    for name in ("astronaut_48.png", "astronaut.jpg"):
        (store / "happy_imgs" / name).write_bytes((EXAMPLES / "happy" / name).read_bytes())
    os.symlink(store, store / "happy_imgs" / "up")  # a loop: back to a folder holding this one
    src = tmp_path / "src"
    (src / "sad").mkdir(parents=True)
    (src / "sad" / "camera_48.png").write_bytes((EXAMPLES / "neutral" / "grace_hopper_48.png").read_bytes())
    os.symlink(store / "happy_imgs", src / "happy")
    os.symlink(src / "sad", src / "sad_again")  # inside SRC: its files are read where they are
    summary = convert(src, tmp_path / "dst", ConvertConfig(strategy="zero", fallback="aligned"))
    rows = {r["source"]: r for r in rows_of(tmp_path / "dst")}
    assert sorted(rows) == ["happy/astronaut.jpg", "happy/astronaut_48.png", "sad/camera_48.png"]
    assert rows["happy/astronaut_48.png"]["label"] == "happy"
    assert (tmp_path / "dst" / "happy" / "astronaut_48.png").is_file() and not (tmp_path / "dst" / "happy").is_symlink()
    skips = {s["source"]: s for s in skips_of(tmp_path / "dst")}
    assert {k: s["reason"] for k, s in skips.items()} == {"happy/up": "linked_folder", "sad_again": "linked_folder"}
    assert "inside SRC" in skips["sad_again"]["message"] and "read already" in skips["happy/up"]["message"]
    assert summary.inputs == 5 and summary.outputs == 3
    assert len(mg.precompute_faces(src)) == 3  # the face cache walks SRC the same way
    assert sorted(p.name for p in (store / "happy_imgs").iterdir()) == ["astronaut.jpg", "astronaut_48.png", "up"]


def test_destination_inside_a_linked_folder_is_refused(tmp_path):
    store = tmp_path / "lib" / "store"
    store.mkdir(parents=True)
    (store / "a.png").write_bytes((EXAMPLES / "neutral" / "grace_hopper_48.png").read_bytes())
    src = tmp_path / "src"
    src.mkdir()
    os.symlink(store, src / "sad")
    for dst in (store / "masked", tmp_path / "lib"):
        with pytest.raises(DestinationError, match="links to"):
            convert(src, dst, ConvertConfig(strategy="zero"))
    assert not (store / "masked").exists()
    result = CliRunner().invoke(main, ["convert", str(src), str(store / "out"), "--quiet"])
    assert result.exit_code == 1 and "links to" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in store.iterdir()) == ["a.png"]


def test_variants_sample_occlusion_size(tmp_path):
    cfg = ConvertConfig(
        types=("surgical", "cloth"), variants=2, occlusion=True, keep_original=True, size=(40, 40), out_format=".png"
    )
    convert(EXAMPLES, tmp_path / "v", cfg)
    rows = rows_of(tmp_path / "v")
    assert len(rows) == 6 * 4
    assert Counter(r["mask_type"] for r in rows) == {"surgical": 12, "cloth": 12}
    r = next(r for r in rows if r["source"] == "happy/astronaut.jpg" and r["variant"] == 3)
    assert r["file_name"] == "happy/astronaut__cloth-1.png"
    for suffix in ("", "_occlusion", "_original"):
        img = mg.read_image(tmp_path / "v" / f"happy/astronaut__cloth-1{suffix}.png")
        assert img.shape[:2] == (40, 40)
    convert(EXAMPLES, tmp_path / "s", ConvertConfig(types=("surgical", "cloth", "kn95"), sample=6))
    rows = rows_of(tmp_path / "s")
    assert len(rows) == 6 and Counter(r["label"] for r in rows) == {"happy": 3, "neutral": 3}
    assert Counter(s["reason"] for s in skips_of(tmp_path / "s")) == {"not_sampled": 12}


def test_dedup(tmp_path, astronaut):
    src = tmp_path / "src" / "happy"
    src.mkdir(parents=True)
    Image.fromarray(astronaut).save(src / "a.png")
    Image.fromarray(astronaut).save(src / "b_copy.png")
    Image.fromarray(astronaut).save(src / "c_reencoded.jpg", quality=85)
    Image.fromarray(astronaut[:, ::-1]).save(src / "d_mirrored.png")  # a different image: kept
    convert(tmp_path / "src", tmp_path / "dst", ConvertConfig(dedup=True))
    assert sorted(r["source"] for r in rows_of(tmp_path / "dst")) == ["happy/a.png", "happy/d_mirrored.png"]
    reasons = {s["source"]: s["message"] for s in skips_of(tmp_path / "dst") if s["reason"] == "duplicate"}
    assert set(reasons) == {"happy/b_copy.png", "happy/c_reencoded.jpg"}
    assert "same bytes" in reasons["happy/b_copy.png"] and "nearly the same pixels" in reasons["happy/c_reencoded.jpg"]


def test_jobs_do_not_change_results(tmp_path):
    shared_set("ckplus48-dev")
    convert(SHARED / "ckplus48-dev", tmp_path / "j1", ConvertConfig(), jobs=1)
    convert(SHARED / "ckplus48-dev", tmp_path / "j2", ConvertConfig(), jobs=2)
    assert (tmp_path / "j1" / "manifest.jsonl").read_bytes() == (tmp_path / "j2" / "manifest.jsonl").read_bytes()
    for r in rows_of(tmp_path / "j1")[::10]:
        assert (tmp_path / "j1" / r["file_name"]).read_bytes() == (tmp_path / "j2" / r["file_name"]).read_bytes()


def test_dask_local_cluster(tmp_path):
    pytest.importorskip("dask.distributed")
    convert(EXAMPLES, tmp_path / "local", ConvertConfig())
    convert(EXAMPLES, tmp_path / "dask", ConvertConfig(), executor="dask")
    assert (tmp_path / "local" / "metadata.csv").read_bytes() == (tmp_path / "dask" / "metadata.csv").read_bytes()


def children(pid: int) -> list[int]:
    """Live child processes of `pid`, from /proc (Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find worker processes")
def test_kill_and_resume_equals_uninterrupted(tmp_path):
    src = SHARED / "fer2013-dev"
    shared_set("fer2013-dev")
    cmd = [
        *CONVERT,
        str(src),
        "--quiet",
        "--types",
        "random",
        "--color",
        "random",
        "--jobs",
        "2",
    ]
    done = subprocess.run([*cmd, str(tmp_path / "full")], check=True, capture_output=True, text=True)
    assert "350 inputs" in done.stdout
    assert len(rows_of(tmp_path / "full")) > 300
    proc = subprocess.Popen([*cmd, str(tmp_path / "killed")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = tmp_path / "killed" / "manifest.jsonl"
    wait_for_rows(proc, manifest, 100)
    workers = children(proc.pid)
    assert len(workers) >= 2  # the pool's two workers (and perhaps multiprocessing's resource tracker)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # its pool workers end too (between chunks) instead of waiting for work forever
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "orphaned workers still running"
    done_before = manifest.read_text().count("\n")
    assert 0 < done_before < 350 and not (tmp_path / "killed" / "metadata.csv").exists()
    out = subprocess.run([*cmd, str(tmp_path / "killed")], check=True, capture_output=True, text=True)
    assert "already done" in out.stdout
    for name in ("manifest.jsonl", "skips.jsonl", "metadata.csv"):
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "killed" / name).read_bytes(), name
    for r in rows_of(tmp_path / "full"):
        assert (tmp_path / "full" / r["file_name"]).read_bytes() == (tmp_path / "killed" / r["file_name"]).read_bytes()
    assert not list((tmp_path / "killed").rglob("*.part"))  # no half-written files


def test_a_script_without_a_main_guard_is_told_what_to_do(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import maskgen\n"
        "from maskgen.pipeline import ConvertConfig, convert\n"
        f"try:\n    convert({str(EXAMPLES)!r}, {str(tmp_path / 'out')!r}, ConvertConfig(strategy='zero'), jobs=2)\n"
        "except maskgen.MaskgenError as e:\n    print('ERROR', e)\n"
    )
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    # each worker, importing the script, is stopped before it touches DST and told why; the run itself goes on
    assert "ERROR convert(..., jobs > 1) ran while a worker process imported" in res.stdout, res.stdout
    assert len(rows_of(tmp_path / "out")) == 6 and not skips_of(tmp_path / "out")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find worker processes")
def test_a_dead_worker_is_a_one_line_error_and_the_run_resumes(tmp_path):
    src = SHARED / "fer2013-dev"
    shared_set("fer2013-dev")
    cmd = [*CONVERT, str(src), str(tmp_path / "out"), "--quiet", "--types", "all", "--jobs", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_rows(proc, tmp_path / "out" / "manifest.jsonl", 150)
    workers = [p for p in children(proc.pid) if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]
    os.kill(workers[0], signal.SIGKILL)  # as the OOM killer would
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip().count("\n") == 0 and "worker process died" in err and "Traceback" not in err, err
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0 and "350 inputs -> " in res.stdout, res.stderr
    rows = rows_of(tmp_path / "out")
    assert len(rows) + 7 * len({s["source"] for s in skips_of(tmp_path / "out")}) == 7 * 350
    assert len({r["file_name"] for r in rows}) == len(rows)  # nothing twice
    assert all((tmp_path / "out" / r["file_name"]).exists() for r in rows)


def test_cli_convert_split_stats(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["convert", str(EXAMPLES), str(tmp_path / "d"), "--types", "all", "-q"])
    assert res.exit_code == 0, res.output
    assert "6 inputs -> 42 outputs" in res.output
    res = runner.invoke(main, ["split", str(tmp_path / "d"), "--ratios", "0.5,0.5"])
    assert res.exit_code == 0 and "no subject ids" in res.output
    rows = rows_of(tmp_path / "d")
    by_source = {}
    for r in rows:
        by_source.setdefault(r["source"], set()).add(r["split"])
    assert all(len(v) == 1 for v in by_source.values())  # variants of one input never straddle splits
    res = runner.invoke(main, ["stats", str(tmp_path / "d")])
    assert res.exit_code == 0 and "kn95" in res.output
    assert mg.read_image(tmp_path / "d" / "stats.png").shape[1] == 900
    res = runner.invoke(main, ["convert", str(EXAMPLES), str(EXAMPLES / "out")])
    assert res.exit_code == 1 and "inside the source" in res.output and "Traceback" not in res.output


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_exit_cleanly_with_a_hint(tmp_path, sig):
    shared_set("fer2013-dev")
    cmd = [
        *CONVERT,
        str(SHARED / "fer2013-dev"),
        str(tmp_path / "dst"),
        "--jobs",
        "2",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_rows(proc, tmp_path / "dst" / "manifest.jsonl", 64)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig
    assert "run the same command again to resume" in err and "Traceback" not in err
    assert "leaked" not in err  # the worker pool was shut down, not abandoned
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "350 inputs" in done.stdout and "already done" in done.stdout
    assert len(rows_of(tmp_path / "dst")) + len(skips_of(tmp_path / "dst")) == 350


@pytest.mark.parametrize(
    "cfg",
    [
        ConvertConfig(strategy="overlay", types=("random", "gas"), params={"color": "random"}, occlusion=True),
        ConvertConfig(strategy="zero", occlusion=True),
        ConvertConfig(strategy="zero", params={"fill": "noise"}, occlusion=True),  # not batchable: one by one
    ],
)
def test_chunk_masking_equals_mask_one_by_one(tmp_path, monkeypatch, cfg):
    """convert masks a chunk's small crops in one batch: every output must equal `mg.mask` on that image
    with the same faces, seed and params (the manifest's), pixel for pixel, occlusion included."""
    from maskgen.detectors import detect_batch
    from maskgen.pipeline.items import run_chunk
    from maskgen.pipeline.sources import Record
    from maskgen.strategies import batch

    sizes: list[int] = []
    real = batch.apply_batch
    monkeypatch.setattr(batch, "apply_batch", lambda s, stack, jobs: sizes.append(len(stack)) or real(s, stack, jobs))

    paths = shared_set("ckplus48-dev")[:40]
    records = [Record(key=f"{p.parent.name}/{p.name}", path=p, label=p.parent.name) for p in paths]
    events = run_chunk(records, cfg, str(tmp_path), {})
    imgs = {r.key: mg.read_image(r.path) for r in records}
    faces = dict(zip(imgs, detect_batch(list(imgs.values())), strict=True))
    rows = [e for e in events if e["kind"] == "output"]
    assert len(rows) >= 0.95 * len(records) * len(cfg.plan())
    for row in rows:
        res = mg.mask(
            imgs[row["source"]], cfg.strategy, faces=faces[row["source"]].largest(), seed=row["seed"], **row["params"]
        )
        out = tmp_path / row["file_name"]
        assert np.array_equal(mg.read_image(out), res.image), row["file_name"]
        assert np.array_equal(mg.read_image(out.with_name(f"{out.stem}_occlusion.png")), res.occlusion)
    batched = cfg.params.get("fill") != "noise"
    assert (sum(sizes) == len(rows)) if batched else not sizes


def test_chunk_falls_back_to_one_by_one_when_a_batch_fails(tmp_path, monkeypatch):
    from maskgen.errors import BadParameter
    from maskgen.pipeline import items
    from maskgen.pipeline.sources import Record
    from maskgen.strategies import batch

    paths = shared_set("ckplus48-dev")[:12]
    records = [Record(key=f"{p.parent.name}/{p.name}", path=p, label=p.parent.name) for p in paths]
    cfg = ConvertConfig(strategy="zero")
    plain = items.run_chunk(records, cfg, str(tmp_path / "a"), {})

    def broken(*a, **k):
        raise BadParameter("simulated")

    monkeypatch.setattr(batch, "apply_batch", broken)
    fallback = items.run_chunk(records, cfg, str(tmp_path / "b"), {})
    names = sorted(e["file_name"] for e in plain if e["kind"] == "output")
    assert names and names == sorted(e["file_name"] for e in fallback if e["kind"] == "output")
    for n in names:
        assert np.array_equal(mg.read_image(tmp_path / "a" / n), mg.read_image(tmp_path / "b" / n))


def test_resume_sweeps_temp_files_a_killed_run_left(tmp_path):
    cfg = ConvertConfig(strategy="zero")
    convert(EXAMPLES, tmp_path / "d", cfg)
    rows = rows_of(tmp_path / "d")
    out = tmp_path / "d" / rows[0]["file_name"]
    before = out.read_bytes()
    left = out.with_name(f".{out.name}.4242-17.part")  # what a write cut by kill -9 leaves
    left.write_bytes(before[:10])
    summary = convert(EXAMPLES, tmp_path / "d", cfg)
    assert summary.resumed == len({r["source"] for r in rows})
    assert not left.exists() and out.read_bytes() == before
    assert not list((tmp_path / "d").rglob("*.part"))


def test_output_paths_mirror_sources_and_stay_inside_dst():
    from maskgen.pipeline.items import output_path
    from maskgen.pipeline.sources import Record

    one, types2 = ConvertConfig(), ConvertConfig(types=("surgical", "n95"), variants=2)
    cases = [
        ("happy/a.jpg", None, one, 0, "random", "happy/a.jpg"),
        ("x.v1/noext", None, one, 0, "random", "x.v1/noext.png"),
        ("a//./b.JPG", None, ConvertConfig(out_format=".png"), 0, "random", "a/b.png"),
        ("/abs/p.jpg", "sad", one, 0, "random", "sad/p.jpg"),
        ("a/../b.png", None, one, 0, "random", "unlabelled/b.png"),
        ("d/.hidden", None, types2, 3, "n95", "d/.hidden__n95-1.png"),
        (
            "s/f.tar.gz",
            None,
            ConvertConfig(strategy="zero", variants=2),
            1,
            None,
            "s/f.tar__v1.png",
        ),  # .gz cannot be written: PNG
    ]
    for key, label, cfg, variant, mask_type, want in cases:
        assert output_path(Record(key=key, label=label), cfg, variant, mask_type) == want


def test_finalize_from_the_journal_index_equals_a_fresh_scan(tmp_path):
    from maskgen.pipeline import manifest as mf

    def out(i: int, variant: int = 0) -> dict:
        folder = "ab"[i % 2]
        return {"file_name": f"{folder}/ü{i}.png", "source": f"s{i}", "variant": variant, "label": "x"}

    rows = [out(i) for i in (5, 2, 9, 2, 7)] + [out(1, variant=1)]  # s2 twice: a resumed run redid it
    skips = [{"source": "s3", "variant": -1, "reason": "no_face"}, {"source": "s0", "variant": 1, "reason": "x"}]
    made = {}
    for name in ("indexed", "scanned", "stale"):
        d = made[name] = tmp_path / name
        journal = mf.Journal(d)
        journal.scan()
        with journal:
            for part in (rows[:3], rows[3:]):
                journal.record([("output", mf.output_key(r), mf.journal_line(r)) for r in part])
            journal.record([("skip", mf.skip_key(r), mf.journal_line(r)) for r in skips])
        if name == "stale":
            journal.index[d / mf.MANIFEST]["b/ü9.png"] = 0  # points at another row: finalize must notice
        mf.finalize(d, journal if name != "scanned" else None)
    for name in (mf.MANIFEST, mf.SKIPS, mf.METADATA):
        ref = (made["scanned"] / name).read_bytes()
        assert ref == (made["indexed"] / name).read_bytes() == (made["stale"] / name).read_bytes(), name
    names = [r["file_name"] for r in rows_of(made["indexed"])]
    assert names == ["a/ü2.png", "b/ü1.png", "b/ü5.png", "b/ü7.png", "b/ü9.png"]  # sorted, s2 once
    assert [(r["source"], r["variant"]) for r in skips_of(made["indexed"])] == [("s0", 1), ("s3", -1)]


def test_a_damaged_file_is_logged_once_not_echoed_by_opencv(tmp_path):
    src = tmp_path / "src" / "happy"
    src.mkdir(parents=True)
    good = (EXAMPLES / "happy" / "astronaut_48.png").read_bytes()
    (src / "good.png").write_bytes(good)
    (src / "cut.png").write_bytes(good[: len(good) // 2])  # OpenCV would warn "PNG input buffer is incomplete"
    for jobs in ("1", "2"):
        res = subprocess.run(
            [*CONVERT, str(tmp_path / "src"), str(tmp_path / f"out{jobs}"), "--jobs", jobs],
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0 and re.search(r"skipped\s+1\s+unreadable", res.stdout), res.stdout
        assert "WARN" not in res.stderr and "grfmt" not in res.stderr, res.stderr
        assert [s["source"] for s in skips_of(tmp_path / f"out{jobs}")] == ["happy/cut.png"]
