"""Sharded outputs (--output-format parquet|webdataset): the same samples as a folder output, readable by
`datasets` and `webdataset`, whole shards only, and a killed run resumed to the same bytes."""

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from maskgen.cli import main
from maskgen.pipeline import ConvertConfig, convert
from maskgen.pipeline.shards import read_shard, shard_files
from maskgen.train.data import load_images, load_items

from .conftest import EXAMPLES, SHARED, shared_set
from .test_pipeline import CONVERT, rows_of

pytest.importorskip("pyarrow")
ROLES = {"image": "", "occlusion": "_occlusion", "original": "_original"}


def cfg(fmt: str, **kw) -> ConvertConfig:
    base = {"types": ("random",), "params": {"color": "random"}, "occlusion": True, "keep_original": True}
    return ConvertConfig(output_format=fmt, shard_mb=0.05, **(base | kw))


def folder_files(dst: Path, row: dict) -> dict[str, bytes]:
    stem, suffix = row["file_name"].rsplit(".", 1)
    names = {"image": row["file_name"], "occlusion": f"{stem}_occlusion.png", "original": f"{stem}_original.{suffix}"}
    return {role: (dst / name).read_bytes() for role, name in names.items()}


def parquet_samples(dst: Path) -> dict[str, dict]:
    import pyarrow.parquet as pq

    out = {}
    for shard in shard_files(dst):
        for row in pq.read_table(shard).to_pylist():
            out[row["file_name"]] = row
    return out


def tar_samples(dst: Path) -> dict[str, dict[str, bytes]]:
    import tarfile

    out: dict[str, dict[str, bytes]] = {}
    for shard in shard_files(dst):
        with tarfile.open(shard) as tar:
            for m in tar:
                key, _, field = m.name.partition(".")
                out.setdefault(key, {})[field] = tar.extractfile(m).read()
    return out


@pytest.mark.parametrize("source", ["examples", "fer2013-dev"])
def test_folder_parquet_and_webdataset_hold_the_same_samples(tmp_path, source):
    src = EXAMPLES if source == "examples" else SHARED / source
    if source != "examples":
        shared_set(source)
    for fmt in ("folder", "parquet", "webdataset"):  # 80 of fer2013-dev's 350 crops, the same in each
        sample = {} if source == "examples" else {"sample": 80}
        convert(src, tmp_path / fmt, cfg(fmt, **sample), jobs=1 if fmt == "folder" else 2)
    folder = {r["file_name"]: r for r in rows_of(tmp_path / "folder")}
    assert len(folder) >= 6
    for fmt in ("parquet", "webdataset"):
        rows = rows_of(tmp_path / fmt)
        assert len(shard_files(tmp_path / fmt)) >= 2  # 0.05 MB shards
        assert {r["shard"] for r in rows} == {f"data/{p.name}" for p in shard_files(tmp_path / fmt)}
        assert {r["file_name"]: {k: v for k, v in r.items() if k != "shard"} for r in rows} == folder
        assert (tmp_path / fmt / "skips.jsonl").read_bytes() == (tmp_path / "folder" / "skips.jsonl").read_bytes()
        assert not list((tmp_path / fmt).rglob("*.jpg")) and not list((tmp_path / fmt).rglob("*.png"))
    pq_rows = parquet_samples(tmp_path / "parquet")
    tars = tar_samples(tmp_path / "webdataset")
    meta = (tmp_path / "folder" / "metadata.csv").read_text().splitlines()[1:]
    assert len(pq_rows) == len(folder) == len(meta) and len(tars) == len(folder)
    for name, row in folder.items():
        files = folder_files(tmp_path / "folder", row)
        got = pq_rows[name]
        assert {role: got[role]["bytes"] for role in ROLES} == files, name
        assert (got["label"], got["seed"], got["source"]) == (row["label"], row["seed"], row["source"])
        key, suffix = name.rsplit(".", 1)
        sample = tars[key.replace("%", "%25").replace(".", "%2E")]
        assert sample[suffix.lower()] == files["image"] and sample["occlusion.png"] == files["occlusion"]
        assert sample[f"original.{suffix.lower()}"] == files["original"]
        assert {k: v for k, v in json.loads(sample["json"]).items() if k != "shard"} == row


def test_parquet_loads_with_datasets_and_tars_with_webdataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    wds = pytest.importorskip("webdataset")
    convert(EXAMPLES, tmp_path / "pq", cfg("parquet"))
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "pq"))
    rows = rows_of(tmp_path / "pq")
    assert ds["train"].num_rows == len(rows)
    first = ds["train"][0]
    assert first["image"].size == (first["original"].size) and first["occlusion"].mode == "L"
    assert isinstance(ds["train"].features["image"], datasets.Image) and ds["train"].features["seed"].dtype == "int64"
    import maskgen as mg

    typed = mg.load_hf(tmp_path / "pq")
    assert typed["train"].features["label"].names == sorted({r["label"] for r in rows})
    convert(EXAMPLES, tmp_path / "wds", cfg("webdataset"))
    urls = [str(p) for p in shard_files(tmp_path / "wds")]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb8"))
    assert len(samples) == len(rows)
    assert {s["json"]["file_name"] for s in samples} == {r["file_name"] for r in rows}
    img = next(v for k, v in samples[0].items() if k in ("jpg", "png"))
    assert img.ndim == 3 and img.dtype == np.uint8


def test_jobs_do_not_change_the_shards(tmp_path):
    for jobs in (1, 2):
        convert(EXAMPLES, tmp_path / f"j{jobs}", cfg("parquet"), jobs=jobs)
    one, two = shard_files(tmp_path / "j1"), shard_files(tmp_path / "j2")
    assert [p.name for p in one] == [p.name for p in two] and len(one) >= 2
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two, strict=True))


def test_a_lost_or_unjournalled_shard_is_written_again(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    convert(EXAMPLES, full, cfg("webdataset"))
    convert(EXAMPLES, cut, cfg("webdataset"))
    shards = shard_files(cut)
    shards[0].unlink()  # a shard gone (its rows still journalled)
    manifest = (cut / "manifest.jsonl").read_text().splitlines(keepends=True)
    in_last = f"data/{shards[-1].name}"
    kept = [line for line in manifest if json.loads(line)["shard"] != in_last]
    (cut / "manifest.jsonl").write_text("".join(kept))  # killed after writing the shard, before its rows
    summary = convert(EXAMPLES, cut, cfg("webdataset"))
    assert summary.resumed and summary.resumed < summary.inputs
    assert [p.read_bytes() for p in shard_files(cut)] == [p.read_bytes() for p in shard_files(full)]
    assert (cut / "manifest.jsonl").read_bytes() == (full / "manifest.jsonl").read_bytes()


def test_kill_9_and_resume_gives_the_same_shards(tmp_path):
    src = SHARED / "fer2013-dev"
    shared_set("fer2013-dev")
    cmd = [*CONVERT, str(src), "--quiet", "--output-format", "parquet", "--shard-size", "0.1", "--jobs", "2"]
    subprocess.run([*cmd, str(tmp_path / "full")], check=True, capture_output=True)
    proc = subprocess.Popen([*cmd, str(tmp_path / "killed")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while len(shard_files(tmp_path / "killed")) < 2 and time.time() < deadline:
        assert proc.poll() is None, "the conversion ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(shard_files(tmp_path / "killed"))
    assert 2 <= written < len(shard_files(tmp_path / "full"))
    out = subprocess.run([*cmd, str(tmp_path / "killed")], check=True, capture_output=True, text=True)
    assert "already done" in out.stdout
    for name in ("manifest.jsonl", "skips.jsonl", "metadata.csv"):
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "killed" / name).read_bytes(), name
    full, killed = shard_files(tmp_path / "full"), shard_files(tmp_path / "killed")
    assert [p.name for p in full] == [p.name for p in killed]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(full, killed, strict=True))
    assert not [p for p in (tmp_path / "killed").rglob("*") if p.name.endswith(".part")]


def test_training_reads_a_sharded_output_as_the_folder(tmp_path):
    convert(EXAMPLES, tmp_path / "folder", cfg("folder"))
    convert(EXAMPLES, tmp_path / "tars", cfg("webdataset"))
    a, b = load_items(tmp_path / "folder"), load_items(tmp_path / "tars")
    assert [i.member for i in b] == [i.path.relative_to(tmp_path / "folder").as_posix() for i in a]
    assert all(i.path.suffix == ".tar" for i in b)
    assert np.array_equal(load_images(a), load_images(b))
    row, data = next(read_shard(b[0].path))
    assert row["file_name"] and data[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb")


def test_sharded_output_errors_are_one_line(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["convert", str(EXAMPLES), str(tmp_path / "x"), "--output-format", "zip"])
    assert res.exit_code == 2 and "zip" in res.output
    res = runner.invoke(main, ["convert", str(EXAMPLES), str(tmp_path / "x"), "--output-format", "parquet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["split", str(tmp_path / "x")])
    assert res.exit_code != 0 and "shards" in res.output and "Traceback" not in res.output
    res = runner.invoke(main, ["convert", str(EXAMPLES), str(tmp_path / "x")])  # folder into a parquet DST
    assert res.exit_code != 0 and "output_format" in res.output


def test_webdataset_keys_stay_distinct_and_tars_stay_standard(tmp_path):
    import tarfile

    from maskgen.pipeline.shards import join_tar, sample_key, tar_sample

    names = ["a/x.b.png", "a/x_b.png", "a/x%2Eb.png", "a/x.png"]
    keys = [sample_key(n) for n in names]
    assert len(set(keys)) == len(names) and all("." not in k for k in keys)
    blob = join_tar([tar_sample({"file_name": n}, {"image": (n, n.encode() * 3)}) for n in names])
    (tmp_path / "t.tar").write_bytes(blob)
    with tarfile.open(tmp_path / "t.tar") as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar}
    assert len(got) == 2 * len(names) and got[f"{keys[0]}.png"] == b"a/x.b.png" * 3
    assert len(blob) % tarfile.RECORDSIZE == 0


def output_pixels(dst: Path) -> list[bytes]:
    """The decoded pixels of every output, sorted (names and seeds aside)."""
    import maskgen as mg

    return sorted(mg.read_image(dst / r["file_name"]).tobytes() for r in rows_of(dst))


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
def test_maskgen_shards_are_a_source_too(tmp_path, fmt):
    zero = ConvertConfig(strategy="zero", fallback="aligned")
    convert(EXAMPLES, tmp_path / "shards", cfg(fmt))
    convert(EXAMPLES, tmp_path / "originals", ConvertConfig(strategy="zero", fallback="aligned", keep_original=True))
    summary = convert(tmp_path / "shards", tmp_path / "again", zero)
    rows = rows_of(tmp_path / "again")
    assert summary.inputs == len(rows_of(tmp_path / "shards")) and len(rows) == summary.outputs
    first = {r["file_name"]: r for r in rows_of(tmp_path / "shards")}
    for r in rows:  # the shard's own names, labels and data come through
        assert r["file_name"] in first and r["label"] == first[r["file_name"]]["label"]
        assert r["source"].split("#")[0].startswith("data/")
    again = convert(tmp_path / "shards", tmp_path / "again", zero)  # resumed: nothing to redo
    assert again.resumed == summary.inputs


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
def test_a_source_shard_replaced_between_runs_in_one_process_is_read_anew(tmp_path, fmt):
    zero = ConvertConfig(strategy="zero", fallback="aligned")
    for name, seed in (("src", 0), ("other", 1)):
        convert(EXAMPLES, tmp_path / name, ConvertConfig(output_format=fmt, seed=seed, keep_original=True))
    convert(tmp_path / "src", tmp_path / "out", zero)  # the shard stays open in this process afterwards
    (shard,) = shard_files(tmp_path / "src")
    shard.write_bytes(shard_files(tmp_path / "other")[0].read_bytes())
    convert(tmp_path / "src", tmp_path / "out", zero)
    convert(tmp_path / "other", tmp_path / "fresh", zero)
    assert output_pixels(tmp_path / "out") == output_pixels(tmp_path / "fresh")
    assert (tmp_path / "out" / "metadata.csv").read_bytes() == (tmp_path / "fresh" / "metadata.csv").read_bytes()


def test_a_hugging_face_parquet_dataset_is_a_source(tmp_path):
    datasets = pytest.importorskip("datasets")
    files = sorted(p for p in EXAMPLES.rglob("*") if p.is_file())
    names = sorted({p.parent.name for p in files})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    labels = [names.index(p.parent.name) for p in files]
    zero = ConvertConfig(strategy="zero", fallback="aligned")
    convert(EXAMPLES, tmp_path / "from-folder", zero)
    embedded = [{"bytes": p.read_bytes(), "path": p.name} for p in files]  # as on the Hub
    for kind, images in (("bytes", embedded), ("paths", [str(p) for p in files])):  # as to_parquet leaves paths
        ds = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
        (tmp_path / kind / "data").mkdir(parents=True)
        ds.to_parquet(str(tmp_path / kind / "data" / "test-00000-of-00001.parquet"))
        convert(tmp_path / kind, tmp_path / f"from-{kind}", zero)
        rows = rows_of(tmp_path / f"from-{kind}")
        assert sorted(r["label"] for r in rows) == sorted(r["label"] for r in rows_of(tmp_path / "from-folder"))
        assert {r["split"] for r in rows} == {"test"}  # from the shard's name, as the Hub lays splits out
        assert output_pixels(tmp_path / f"from-{kind}") == output_pixels(tmp_path / "from-folder")


def test_a_hugging_face_save_to_disk_folder_is_a_source(tmp_path):
    datasets = pytest.importorskip("datasets")
    files = sorted(p for p in EXAMPLES.rglob("*") if p.is_file())
    names = sorted({p.parent.name for p in files})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    ds = datasets.Dataset.from_dict(
        {"image": [str(p) for p in files], "label": [names.index(p.parent.name) for p in files]}, features=features
    )
    datasets.DatasetDict(train=ds.select(range(4)), test=ds.select(range(4, len(files)))).save_to_disk(tmp_path / "hf")
    zero = ConvertConfig(strategy="zero", fallback="aligned")
    convert(EXAMPLES, tmp_path / "from-folder", zero)
    summary = convert(tmp_path / "hf", tmp_path / "from-disk", zero)
    rows = rows_of(tmp_path / "from-disk")
    assert summary.inputs == len(files) and len(rows) == summary.outputs
    assert sorted(r["label"] for r in rows) == sorted(r["label"] for r in rows_of(tmp_path / "from-folder"))
    assert sorted(r["split"] for r in rows) == ["test"] * (len(files) - 4) + ["train"] * 4  # the split folders
    assert output_pixels(tmp_path / "from-disk") == output_pixels(tmp_path / "from-folder")
    assert convert(tmp_path / "hf", tmp_path / "from-disk", zero).resumed == len(files)


def test_a_broken_sharded_source_is_logged_not_fatal(tmp_path):
    import tarfile

    (tmp_path / "src").mkdir()
    with tarfile.open(tmp_path / "src" / "train-000000.tar", "w") as tar:
        for name, data in [("a.cls", b"happy"), ("a.png", b"not a png"), ("b.json", b'{"label": "sad"}')]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, __import__("io").BytesIO(data))
    summary = convert(tmp_path / "src", tmp_path / "out", ConvertConfig(strategy="zero", fallback="aligned"))
    assert summary.inputs == 2 and summary.outputs == 0
    reasons = sorted(json.loads(line)["reason"] for line in (tmp_path / "out" / "skips.jsonl").read_text().splitlines())
    assert reasons == ["unreadable", "unreadable"]


def test_dask_writes_the_same_shards(tmp_path):
    pytest.importorskip("dask.distributed")
    convert(EXAMPLES, tmp_path / "local", cfg("webdataset"), jobs=1)
    convert(EXAMPLES, tmp_path / "dask", cfg("webdataset"), executor="dask")
    local, dask = shard_files(tmp_path / "local"), shard_files(tmp_path / "dask")
    assert [p.name for p in local] == [p.name for p in dask] and len(local) >= 2
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(local, dask, strict=True))
    assert (tmp_path / "local" / "manifest.jsonl").read_bytes() == (tmp_path / "dask" / "manifest.jsonl").read_bytes()
