"""`maskgen predict` frames per second on a 640x480 video, with and without --every 2 (and --track).

Trains a small Deep-Emotion run on the CK+48 dev set when present (else on the shipped examples), writes a
60-frame 640x480 clip of the public-domain astronaut moving, and times prediction with the video written.
Usage: python bench/predict.py [RUN]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from maskgen.predict import Predictor, predict_video
from maskgen.train import TrainArgs, train

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "ckplus48-dev"


def clip(path: Path, n: int = 60) -> Path:
    face = cv2.resize(data.astronaut()[0:300, 80:380], (260, 260))
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (640, 480))
    for i in range(n):
        frame = np.full((480, 640, 3), 70, np.uint8)
        x, y = 40 + 5 * i, 100 + int(20 * np.sin(i / 8))
        frame[y : y + 260, x : x + 260] = face
        w.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    w.release()
    return path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = Path(sys.argv[1]) if len(sys.argv) > 1 else tmp / "run"
        if len(sys.argv) == 1:
            train(
                SHARED if SHARED.is_dir() else ROOT / "examples" / "faces",
                run,
                TrainArgs(model="deep-emotion", epochs=2),
                progress=False,
            )
        video = clip(tmp / "clip.avi")
        p = Predictor(run)
        print(f"{'mode':<22} {'fps':>6}")
        for label, every, tracking in (
            ("every frame", 1, False),
            ("--every 2", 2, False),
            ("--every 2 --track", 2, True),
        ):
            t = time.perf_counter()
            s = predict_video(p, video, tmp / "out.avi", every=every, tracking=tracking)
            print(f"{label:<22} {s.frames / (time.perf_counter() - t):>6.1f}")


if __name__ == "__main__":
    main()
