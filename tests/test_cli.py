import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import maskgen as mg
from maskgen.cli import main

from .conftest import EXAMPLES


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_version_and_list():
    assert run("--version").output.strip() == f"maskgen, version {mg.__version__}"
    out = run("list").output
    for name in ("mtcnn", "dlib", "aligned"):
        assert name in out


def test_detect_prints_and_draws(tmp_path):
    img = EXAMPLES / "happy" / "astronaut.jpg"
    res = run("detect", img, "--draw", tmp_path)
    assert res.exit_code == 0 and "1 face(s)" in res.output and "fitted-5" in res.output
    drawn = mg.read_image(tmp_path / "astronaut_faces.png")
    assert drawn.shape[:2] == mg.read_image(img).shape[:2]
    assert (drawn != mg.io.as_rgb(mg.read_image(img))).any()


def test_detect_json_has_68_points():
    res = run("detect", EXAMPLES / "happy" / "astronaut_48.png", "--json")
    rec = json.loads(res.output)
    assert rec["width"] == 48 and len(rec["faces"]) == 1
    assert len(rec["faces"][0]["landmarks"]) == 68


def test_detect_fallback_is_recorded(tmp_path):
    mg.write_image(tmp_path / "flat.png", mg.io.to_uint8(__import__("numpy").full((48, 48), 0.5)))
    assert "0 face(s)" in run("detect", tmp_path / "flat.png").output
    assert "prior (aligned)" in run("detect", tmp_path / "flat.png", "--fallback", "aligned").output


def test_errors_are_one_line_without_traceback(tmp_path):
    (tmp_path / "bad.jpg").write_text("not an image")
    res = CliRunner().invoke(main, ["detect", str(tmp_path / "bad.jpg")])
    assert res.exit_code == 1
    assert "Traceback" not in res.output and "not an image file" in res.output
    res = CliRunner().invoke(main, ["detect", str(EXAMPLES / "happy" / "astronaut.jpg"), "--detector", "haar"])
    assert res.exit_code == 1 and "choose one of" in res.output


def test_list_shows_strategies_and_types():
    out = run("list").output
    for name in ("overlay", "zero", "bands", "surgical", "kn95", "inpaint"):
        assert name in out


def test_mask_writes_images_and_occlusions(tmp_path):
    res = run("mask", EXAMPLES / "happy", "-o", tmp_path, "--type", "random", "--color", "random", "--occlusion")
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "astronaut_48.png" in names and "astronaut_48_occlusion.png" in names
    src = mg.read_image(EXAMPLES / "happy" / "astronaut_48.png")
    out = mg.read_image(tmp_path / "astronaut_48.png")
    occ = mg.read_image(tmp_path / "astronaut_48_occlusion.png")
    assert out.shape == src.shape and occ.shape == src.shape[:2] and (occ > 0).any()
    assert len({line.split("type=")[1].split(",")[0] for line in res.output.splitlines()}) > 1  # per-image seeds


def test_mask_zero_with_params(tmp_path):
    res = run(
        "mask",
        EXAMPLES / "neutral" / "grace_hopper.jpg",
        "-o",
        tmp_path,
        "--strategy",
        "zero",
        "--param",
        "ratio=0.7",
        "--param",
        "fill=noise",
    )
    assert res.exit_code == 0 and "ratio=0.7" in res.output


def test_mask_bad_param_is_one_line(tmp_path):
    res = CliRunner().invoke(main, ["mask", str(EXAMPLES / "happy"), "-o", str(tmp_path), "--type", "bandana"])
    assert res.exit_code == 1 and "choose one of" in res.output and "Traceback" not in res.output


def test_preview_sheet(tmp_path):
    res = run("preview", EXAMPLES, "-o", tmp_path / "sheet.png", "-n", "3", "--cell", "64")
    assert res.exit_code == 0, res.output
    sheet = mg.read_image(tmp_path / "sheet.png")
    # a header row plus three image rows; the original plus seven mask types
    assert sheet.shape[1] == 8 * 64 and sheet.shape[0] == 22 + 3 * 64


def test_train_commands_name_the_extra_when_torch_is_missing(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'", name="torch")
        return real_import(name, *args, **kwargs)

    import sys

    for mod in [m for m in sys.modules if m.startswith("maskgen.train") or m == "maskgen.predict"]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.delattr(mg, "train", raising=False)  # `from . import train` would find the cached attribute
    monkeypatch.setattr(builtins, "__import__", no_torch)
    res = CliRunner().invoke(main, ["train", str(EXAMPLES), "-o", "/tmp/never"])
    assert res.exit_code == 1 and "pip install torch==2.13.0 'maskgen[train]'" in res.output
    assert "Traceback" not in res.output


def test_list_is_quick_and_does_not_import_torch():
    code = (
        "import sys; from click.testing import CliRunner; from maskgen.cli import main; "
        "r = CliRunner().invoke(main, ['list']); assert r.exit_code == 0, r.output; "
        "assert 'deep-emotion-c50' in r.output and 'random-forest' in r.output; "
        "assert 'torch' not in sys.modules, 'list imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_model_catalogue_matches_the_registry():
    pytest.importorskip("torch")
    from maskgen.catalog import MODEL_DOCS
    from maskgen.train import MODELS

    assert MODELS.describe() == MODEL_DOCS
