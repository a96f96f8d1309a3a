"""Public-domain face photos that ship inside pip packages (scikit-image, matplotlib), for tests and demos."""

from __future__ import annotations

import numpy as np


def sample_faces() -> dict[str, np.ndarray]:
    """astronaut (NASA), camera (CC0), grace_hopper (US Navy) as uint8 arrays; those not installed are left out."""
    out: dict[str, np.ndarray] = {}
    try:
        from skimage import data

        out["astronaut"] = data.astronaut()
        out["camera"] = data.camera()
    except ImportError:
        pass
    try:
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            from PIL import Image

            out["grace_hopper"] = np.asarray(Image.open(f).convert("RGB"))
    except (ImportError, OSError):
        pass
    return out
