"""The wheel carries its data: build it, install it in a fresh venv, run `maskgen detect`."""

import os
import subprocess
import sys
import venv

import pytest

from .conftest import EXAMPLES, REPO


@pytest.mark.slow
def test_wheel_installs_and_detects(tmp_path):
    pytest.importorskip("build")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", tmp_path / "dist", REPO], check=True, capture_output=True
    )
    wheel = next((tmp_path / "dist").glob("maskgen-*.whl"))
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "maskgen/data/shapes.json" in names
    assert any(n.startswith("maskgen/mask_templates/") for n in names)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run(
        [py, "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    out = subprocess.run(
        [env_dir / "bin" / "maskgen", "detect", EXAMPLES / "neutral" / "grace_hopper.jpg"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "1 face(s)" in out.stdout and "fitted-5" in out.stdout
