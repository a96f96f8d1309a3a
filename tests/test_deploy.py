"""Deploy mode: real landmarks on photos of people who really wear masks, and the zeroing applied there."""

import subprocess
import sys

import numpy as np

import maskgen as mg
from maskgen.landmarks import landmarks_are_sane
from maskgen.quality import coverage

from .conftest import REPO, SHARED


def test_landmarks_survive_a_mask_on_the_astronaut(astronaut):
    masked = mg.mask(astronaut, type="cloth").image
    face = mg.detect(masked).largest()
    assert len(face) and face.landmark_source[0] == "fitted-5"
    cov = coverage(mg.mask(masked, "zero", faces=face).occlusion, face.landmarks[0])
    assert cov.mouth and cov.eyes_clear


def test_real_masked_photos(shared_data):
    paths = sorted(p for p in (SHARED / "maskedreal-dev").glob("*") if p.is_file())
    assert len(paths) == 40
    ok = 0
    for p in paths:
        img = mg.read_image(p)
        face = mg.detect(img).largest()
        if not len(face) or not landmarks_are_sane(face.landmarks[0], img.shape[1], img.shape[0]):
            continue
        cov = coverage(mg.mask(img, "zero", faces=face).occlusion, face.landmarks[0])
        ok += cov.mouth and cov.eyes_clear and face.landmark_source[0] != "prior"
    assert ok / len(paths) >= 0.90, f"{ok}/{len(paths)}"


def test_deploy_example_runs(tmp_path):
    out = subprocess.run(
        [sys.executable, REPO / "examples" / "deploy_zeroing.py", "-o", tmp_path],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "landmarks fitted-5" in out.stdout
    img = mg.read_image(tmp_path / "astronaut_zeroed.png")
    assert (img[-20:] == 0).all() and np.asarray(img[:60]).std() > 10
