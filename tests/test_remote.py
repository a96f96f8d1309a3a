"""Remote destinations through fsspec, against an S3 endpoint started here (moto's server on localhost):
the same shards and tables as a local run, resume after kill -9, lost state, one-line errors, and a Dask
cluster of scheduler and worker processes writing to S3 with no shared output folder."""

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from maskgen.cli import main
from maskgen.pipeline import convert
from maskgen.pipeline.shards import shard_files

from .conftest import EXAMPLES, SHARED, shared_set
from .test_pipeline import CONVERT
from .test_shards import cfg

pytest.importorskip("pyarrow")
pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")
TABLES = ("manifest.jsonl", "skips.jsonl", "metadata.csv")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """An S3 endpoint on localhost with a bucket; the environment points boto (and child processes) at it."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "MASKGEN_STATE": str(tmp_path_factory.mktemp("state")),
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir("masks")
        yield fs
    server.stop()


def remote_shards(fs, url: str) -> dict[str, bytes]:
    fs.invalidate_cache()
    root = url.removeprefix("s3://")
    return {p.rsplit("/", 1)[1]: fs.cat_file(p) for p in sorted(fs.ls(f"{root}/data")) if not p.endswith(".part")}


def same_as_local(fs, url: str, local: Path) -> None:
    shards = remote_shards(fs, url)
    assert list(shards) == [p.name for p in shard_files(local)] and len(shards) >= 2
    assert all(shards[p.name] == p.read_bytes() for p in shard_files(local))
    for name in TABLES:
        assert fs.cat_file(f"{url.removeprefix('s3://')}/{name}") == (local / name).read_bytes(), name


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
def test_s3_gets_the_same_shards_and_tables_as_a_local_run(tmp_path, s3, fmt):
    local = tmp_path / "local"
    convert(EXAMPLES, local, cfg(fmt))
    url = f"s3://masks/examples-{fmt}"
    summary = convert(EXAMPLES, url, cfg(fmt))
    assert summary.complete and summary.outputs == len((local / "manifest.jsonl").read_text().splitlines())
    same_as_local(s3, url, local)
    assert s3.exists(f"masks/examples-{fmt}/.maskgen/config.json")
    assert convert(EXAMPLES, url, cfg(fmt)).resumed == summary.inputs  # nothing redone


def test_a_deleted_shard_or_lost_state_is_written_again_the_same(tmp_path, s3, monkeypatch):
    local, url = tmp_path / "local", "s3://masks/again"
    convert(EXAMPLES, local, cfg("parquet"))
    convert(EXAMPLES, url, cfg("parquet"))
    first = sorted(s3.ls("masks/again/data"))[0]
    s3.rm_file(first)
    again = convert(EXAMPLES, url, cfg("parquet"))
    assert 0 < again.resumed < again.inputs  # only the deleted shard's sources were redone
    same_as_local(s3, url, local)
    monkeypatch.setenv("MASKGEN_STATE", str(tmp_path / "elsewhere"))  # another machine: no journal
    assert convert(EXAMPLES, url, cfg("parquet")).resumed == 0
    same_as_local(s3, url, local)


def test_kill_9_and_resume_on_s3(tmp_path, s3):
    src = SHARED / "fer2013-dev"
    shared_set("fer2013-dev")
    opts = ["--quiet", "--output-format", "webdataset", "--shard-size", "0.1", "--jobs", "2"]
    subprocess.run([*CONVERT, str(src), str(tmp_path / "full"), *opts], check=True, capture_output=True)
    url = "s3://masks/killed"
    proc = subprocess.Popen([*CONVERT, str(src), url, *opts], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while time.time() < deadline:
        s3.invalidate_cache()
        if s3.exists("masks/killed/data") and len(s3.ls("masks/killed/data")) >= 2:
            break
        assert proc.poll() is None, "the conversion ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(remote_shards(s3, url))
    assert 2 <= written < len(shard_files(tmp_path / "full"))
    out = subprocess.run([*CONVERT, str(src), url, *opts], check=True, capture_output=True, text=True)
    assert "already done" in out.stdout and url in out.stdout
    same_as_local(s3, url, tmp_path / "full")


@contextlib.contextmanager
def requests_to_s3():
    """The requests the S3 server (in this process) answers meanwhile, as its log lines."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    log = logging.getLogger("werkzeug")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def upload(fs, folder: Path, prefix: str) -> None:
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            fs.pipe_file(f"{prefix}/{p.relative_to(folder).as_posix()}", p.read_bytes())


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
def test_shards_on_s3_are_a_source_read_in_place(tmp_path, s3, fmt):
    from maskgen.pipeline import ConvertConfig

    convert(EXAMPLES, tmp_path / "shards", ConvertConfig(output_format=fmt, keep_original=True))  # one shard
    upload(s3, tmp_path / "shards" / "data", f"masks/src-{fmt}/data")
    zero = ConvertConfig(strategy="zero", fallback="aligned")
    local = convert(tmp_path / "shards", tmp_path / "from-local", zero)
    url = f"s3://masks/src-{fmt}"
    remote = convert(url, tmp_path / "from-s3", zero)
    assert remote.inputs == local.inputs and remote.outputs == local.outputs > 0
    a, b = tmp_path / "from-local", tmp_path / "from-s3"
    assert (a / "metadata.csv").read_bytes() == (b / "metadata.csv").read_bytes()
    names = [r.split(",")[0] for r in (a / "metadata.csv").read_text().splitlines()[1:]]
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    assert convert(url, tmp_path / "from-s3", zero).resumed == remote.inputs
    convert(EXAMPLES, tmp_path / "other", ConvertConfig(output_format=fmt, seed=1, keep_original=True))
    first = sorted(s3.ls(f"masks/src-{fmt}/data"))[0]  # the shard replaced in the store: its sources are redone
    s3.pipe_file(first, sorted((tmp_path / "other" / "data").iterdir())[0].read_bytes())
    again = convert(url, tmp_path / "from-s3", zero)
    assert again.resumed < remote.inputs == again.inputs  # the changed images redone, as a fresh run would
    convert(tmp_path / "other", tmp_path / "fresh", zero)
    a, b = tmp_path / "fresh", tmp_path / "from-s3"
    assert (a / "metadata.csv").read_bytes() == (b / "metadata.csv").read_bytes()
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    sharded = convert(url, f"s3://masks/src-to-s3-{fmt}", cfg(fmt))  # store to store
    assert sharded.inputs == again.inputs == sharded.outputs + sum(sharded.skipped.values())
    assert remote_shards(s3, f"s3://masks/src-to-s3-{fmt}")


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
def test_a_remote_source_is_read_in_a_few_requests(tmp_path, s3, fmt):
    import maskgen as mg
    from maskgen.pipeline import ConvertConfig

    crop = mg.read_image(EXAMPLES / "happy" / "astronaut_48.png")
    for i in range(200):  # 200 small crops, each a little different
        mg.write_image(tmp_path / "crops" / "happy" / f"{i:03d}.png", np.roll(crop, i % 7, axis=i % 2))
    convert(tmp_path / "crops", tmp_path / "shards", ConvertConfig(output_format=fmt, keep_original=True))
    upload(s3, tmp_path / "shards" / "data", f"masks/many-{fmt}/data")
    with requests_to_s3() as requests:
        zero = ConvertConfig(strategy="zero", fallback="aligned")
        summary = convert(f"s3://masks/many-{fmt}", tmp_path / "out", zero)
    assert summary.inputs == 200 and summary.outputs == 200
    assert 0 < len(requests) < 40, requests  # the images come in buffered blocks, not a request each


def test_remote_errors_are_one_line(tmp_path, s3):
    runner = CliRunner()

    def fails(*args: str, match: str) -> None:
        res = runner.invoke(main, ["convert", str(EXAMPLES), *args])
        assert res.exit_code == 1 and match in res.output and "Traceback" not in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1, res.output

    fails("s3://masks/folder", match="--output-format parquet or webdataset")
    s3.pipe_file("masks/theirs/notes.txt", b"someone else's")
    fails("s3://masks/theirs", "--output-format", "parquet", match="not made by maskgen")
    assert s3.cat_file("masks/theirs/notes.txt") == b"someone else's"
    made = runner.invoke(main, ["convert", str(EXAMPLES), "s3://masks/cfg", "--output-format", "parquet"])
    assert made.exit_code == 0, made.output
    fails("s3://masks/cfg", "--output-format", "parquet", "--seed", "1", match="another configuration (seed differ)")
    fails("nosuchprotocol://x/y", "--output-format", "parquet", match="nosuchprotocol")
    res = runner.invoke(main, ["convert", "s3://masks/theirs", str(tmp_path / "out")])  # no shards there
    assert res.exit_code == 1 and "no Parquet, WebDataset or Arrow shards" in res.output, res.output
    res = runner.invoke(main, ["convert", "s3://masks/cfg", str(tmp_path / "out"), "--source-format", "folder"])
    assert res.exit_code == 1 and "a remote SRC takes Parquet, WebDataset or Arrow" in res.output, res.output
    fails("s3://no-such-bucket/out", "--output-format", "parquet", match="cannot write to s3://no-such-bucket/out")
    res = runner.invoke(main, ["convert", "s3://masks/nothing-here", str(tmp_path / "out")])
    assert res.exit_code == 1 and "no such file" in res.output, res.output


def test_a_dask_cluster_of_worker_processes_writes_to_s3(tmp_path, s3, monkeypatch):
    distributed = pytest.importorskip("dask.distributed")
    convert(EXAMPLES, tmp_path / "local", cfg("webdataset"))
    dask = str(Path(sys.executable).parent / "dask")
    info = tmp_path / "scheduler.json"
    elsewhere = tmp_path / "workers"  # the workers run from a folder of their own, DST is on S3
    elsewhere.mkdir()
    common = {"cwd": elsewhere, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": os.environ.copy()}
    scheduler = [dask, "scheduler", "--scheduler-file", str(info), "--port", "0", "--no-dashboard"]
    procs = [subprocess.Popen(scheduler, **common)]
    try:
        deadline = time.time() + 60
        while not info.exists() and time.time() < deadline:
            time.sleep(0.1)
        worker = [dask, "worker", "--scheduler-file", str(info), "--nworkers", "2", "--nthreads", "1", "--no-dashboard"]
        procs.append(subprocess.Popen(worker, **common))
        with distributed.Client(scheduler_file=str(info), timeout=60) as client:
            client.wait_for_workers(2, timeout=90)
            address = client.scheduler.address
            workers = set(client.run(os.getpid).values())
        assert os.getpid() not in workers and len(workers) == 2
        from maskgen.pipeline.remote import Store

        puts, put = [], Store.put
        monkeypatch.setattr(Store, "put", lambda self, name, data: (puts.append(name), put(self, name, data))[1])
        url = "s3://masks/dask"
        convert(EXAMPLES, url, cfg("webdataset"), executor="dask", scheduler=address)
        same_as_local(s3, url, tmp_path / "local")
        assert puts and not [n for n in puts if n.startswith("data/")]  # the workers put every shard
        # SRC in the store too: the workers read their images from S3 themselves
        upload(s3, tmp_path / "local" / "data", "masks/dask-src/data")
        convert("s3://masks/dask-src", tmp_path / "inline", cfg("parquet"), jobs=1)
        convert("s3://masks/dask-src", "s3://masks/dask-again", cfg("parquet"), executor="dask", scheduler=address)
        same_as_local(s3, "s3://masks/dask-again", tmp_path / "inline")
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_training_reads_a_sharded_output_on_s3(tmp_path, s3):
    from maskgen.pipeline import ConvertConfig
    from maskgen.train.data import load_images, load_items

    shared_set("fer2013-dev")
    zero = ConvertConfig(output_format="webdataset", strategy="zero", fallback="aligned", shard_mb=0.2)
    convert(SHARED / "fer2013-dev", "s3://masks/fer-zero", zero)
    convert(SHARED / "fer2013-dev", tmp_path / "local", zero)
    remote, local = load_items("s3://masks/fer-zero"), load_items(tmp_path / "local")
    assert [i.member for i in remote] == [i.member for i in local] and len(remote) > 300
    assert np.array_equal(load_images(remote), load_images(local))
    run = tmp_path / "run"
    train = [*CONVERT[:-1], "train", "s3://masks/fer-zero", "-o", str(run), "--model", "compact-cnn", "--epochs", "1"]
    out = subprocess.run([*train, "--quiet"], capture_output=True, text=True)
    assert out.returncode == 0 and (run / "model.pt").exists(), out.stderr[-500:]
    out = subprocess.run([*CONVERT[:-1], "evaluate", str(run), "s3://masks/fer-zero"], capture_output=True, text=True)
    assert out.returncode == 0 and (run / "eval-fer-zero" / "report.html").exists(), out.stderr[-500:]
    res = CliRunner().invoke(main, ["train", str(tmp_path / "nowhere"), "-o", str(run)])
    assert res.exit_code == 2 and "does not exist" in res.output
