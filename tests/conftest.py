"""Shared fixtures: real faces from pip packages and ../shared/data when present."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskgen.samples import sample_faces

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MASKGEN_SHARED_DATA", REPO.parent / "shared" / "data"))
EXAMPLES = REPO / "examples" / "faces"


@pytest.fixture(scope="session")
def samples() -> dict[str, np.ndarray]:
    s = sample_faces()
    if "astronaut" not in s:
        pytest.skip("scikit-image is not installed")
    return s


@pytest.fixture(scope="session")
def astronaut(samples) -> np.ndarray:
    return samples["astronaut"]


@pytest.fixture(scope="session")
def astronaut_sizes(astronaut) -> dict[str, np.ndarray]:
    """The astronaut at 512, 128 and 48 px, grayscale, and rotated +-20 degrees."""

    def rotate(img, deg):
        h, w = img.shape[:2]
        return cv2.warpAffine(
            img, cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0), (w, h), borderMode=cv2.BORDER_REFLECT
        )

    face = astronaut[0:260, 100:360]  # the head and shoulders: a 48 px copy keeps a detectable face
    return {
        "512": astronaut,
        "128": cv2.resize(face, (128, 128), interpolation=cv2.INTER_AREA),
        "48": cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA),
        "gray": cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY),
        "rot+20": rotate(astronaut, 20),
        "rot-20": rotate(astronaut, -20),
    }


def shared_set(name: str) -> list[Path]:
    paths = sorted(p for p in (SHARED / name).glob("*/*") if p.is_file())
    if not paths:
        pytest.skip(f"{SHARED / name} is not present")
    return paths


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not present")
    return SHARED
