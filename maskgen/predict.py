"""Inference: find faces, crop them the way the training data was framed, optionally zero the lower face
(the KAIST deploy-time idea, for people who really wear masks), classify, and draw the result."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .detectors import detect
from .errors import BadParameter, MaskgenError
from .io import as_rgb
from .strategies import mask
from .types import Faces

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
MASK_MODES = ("none", "zero")
# FER2013-style framing: a square 1.1x the face box, centred a little below the box centre.
CROP = {"box_scale": 1.1, "shift_y": 0.05}


@dataclass
class Prediction:
    box: tuple[float, float, float, float]
    label: str
    confidence: float
    probabilities: dict[str, float]
    landmark_source: str

    def to_json(self) -> dict[str, Any]:
        return {
            "box": [round(v, 1) for v in self.box],
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "landmark_source": self.landmark_source,
        }


def crop_face(
    image: np.ndarray, box: np.ndarray, landmarks: np.ndarray, size: int = 48
) -> tuple[np.ndarray, np.ndarray]:
    """A size x size grayscale crop framed like FER2013, and the landmarks moved into it."""
    x0, y0, x1, y1 = box
    side = CROP["box_scale"] * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + CROP["shift_y"] * side
    k = size / side
    m = np.array([[k, 0, size / 2 - k * cx], [0, k, size / 2 - k * cy]])
    gray = cv2.cvtColor(as_rgb(image), cv2.COLOR_RGB2GRAY)
    crop = cv2.warpAffine(gray, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    return crop, landmarks @ m[:, :2].T + m[:, 2]


class Predictor:
    """`Predictor(run).predict(image)` -> a Prediction per face (box, label, probabilities)."""

    def __init__(self, run: Any, detector: str = "mtcnn", mask_mode: str = "none", fallback: str | None = None):
        from .train import Run

        if mask_mode not in MASK_MODES:
            raise BadParameter(f"mask mode must be one of {', '.join(MASK_MODES)}, got {mask_mode!r}")
        self.run = run if isinstance(run, Run) else Run.load(run)
        self.size = int(self.run.meta.get("preprocess", {}).get("size", 48))
        self.detector, self.mask_mode, self.fallback = detector, mask_mode, fallback

    def crops(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        out = []
        for box, lm in zip(faces.xyxy, faces.landmarks, strict=True):
            crop, clm = crop_face(image, box, lm, self.size)
            if self.mask_mode == "zero":
                one = Faces(np.array([[0, 0, self.size, self.size]]), [1.0], clm[None], ["fitted-5"])
                crop = mask(crop, "zero", faces=one).image
            out.append(crop)
        return np.stack(out) if out else np.zeros((0, self.size, self.size), np.uint8)

    def predict_faces(self, image: np.ndarray, faces: Faces) -> list[Prediction]:
        if len(faces) == 0:
            return []
        proba = self.run.predict_proba(self.crops(image, faces))
        labels = self.run.labels
        return [
            Prediction(
                tuple(float(v) for v in box),
                labels[int(p.argmax())],
                float(p.max()),
                dict(zip(labels, map(float, p), strict=True)),
                str(src),
            )
            for box, p, src in zip(faces.xyxy, proba, faces.landmark_source, strict=True)
        ]

    def predict(self, image: np.ndarray) -> list[Prediction]:
        return self.predict_faces(image, detect(image, detector=self.detector, fallback=self.fallback))


def draw(image: np.ndarray, preds: list[Prediction]) -> np.ndarray:
    """RGB copy with each face's box and 'label 87%' drawn."""
    out = as_rgb(image).copy()
    thick = max(1, round(min(out.shape[:2]) / 240))
    for p in preds:
        x0, y0, x1, y1 = (int(round(v)) for v in p.box)
        colour = (40, 200, 90)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thick + 1, cv2.LINE_AA)
        text = f"{p.label} {p.confidence:.0%}"
        scale = max(0.4, (x1 - x0) / 180)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        h, w = out.shape[:2]
        ty = y0 - 4 if y0 - th - 6 > 0 else y1 + th + 4
        ty = min(max(ty, th + 3), h - base)  # the label stays inside the frame, whatever the box
        tx = min(max(x0, 0), max(w - tw - 4, 0))
        cv2.rectangle(out, (tx, ty - th - 3), (tx + tw + 4, ty + base - 1), colour, -1)
        cv2.putText(out, text, (tx + 2, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return out


def track(prev: np.ndarray, frame: np.ndarray, faces: Faces) -> Faces:
    """Move each box (and its landmarks) to where its face's pixels best match in the new frame."""
    if len(faces) == 0:
        return faces
    g0 = cv2.cvtColor(as_rgb(prev), cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(as_rgb(frame), cv2.COLOR_RGB2GRAY)
    h, w = g1.shape
    boxes, lms = faces.xyxy.copy(), faces.landmarks.copy()
    for i, (x0, y0, x1, y1) in enumerate(faces.xyxy.astype(int)):
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 8 or y1 - y0 < 8:
            continue
        tpl = g0[y0:y1, x0:x1]
        pad = max(8, (x1 - x0) // 3)
        sx0, sy0 = max(x0 - pad, 0), max(y0 - pad, 0)
        win = g1[sy0 : min(y1 + pad, h), sx0 : min(x1 + pad, w)]
        if win.shape[0] < tpl.shape[0] or win.shape[1] < tpl.shape[1]:
            continue
        _, score, _, loc = cv2.minMaxLoc(cv2.matchTemplate(win, tpl, cv2.TM_CCOEFF_NORMED))
        if score > 0.5:
            d = np.array([sx0 + loc[0] - x0, sy0 + loc[1] - y0], np.float32)
            boxes[i] += np.tile(d, 2)
            lms[i] += d
    return Faces(boxes, faces.score, lms, faces.landmark_source, faces.detector)


@dataclass
class VideoSummary:
    frames: int
    fps: float
    size: tuple[int, int]
    frames_with_faces: int
    detections: int


def iter_video(path: Path) -> tuple[cv2.VideoCapture, float, tuple[int, int], int]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise MaskgenError(f"{path}: not a video OpenCV can open")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    return cap, fps, size, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))


def frames(cap: cv2.VideoCapture) -> Iterator[np.ndarray]:
    while True:
        ok, bgr = cap.read()
        if not ok:
            return
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def predict_video(
    predictor: Predictor,
    path: Path,
    out: Path | None,
    every: int = 1,
    tracking: bool = False,
    on_frame: Any = None,
    progress: bool = False,
) -> VideoSummary:
    """Classify faces frame by frame; write a video with the same frame rate and size when `out` is given."""
    from tqdm import tqdm

    if every < 1:
        raise BadParameter("--every must be at least 1")
    cap, fps, size, total = iter_video(path)
    writer = None
    # written under a temp name (same suffix: it picks the container) and moved in when whole
    tmp = out.with_name(f".{out.stem}.part{out.suffix}") if out is not None else None
    n = with_faces = dets = 0
    faces, prev, preds = Faces.empty(), None, []
    try:
        for frame in tqdm(frames(cap), total=total or None, unit="frame", disable=not progress, desc=path.name):
            if n % every == 0:
                faces = detect(frame, detector=predictor.detector, fallback=predictor.fallback)
                preds = predictor.predict_faces(frame, faces)
            elif tracking and prev is not None:
                faces = track(prev, frame, faces)
                preds = predictor.predict_faces(frame, faces)
            prev = frame
            with_faces += bool(preds)
            dets += len(preds)
            if on_frame is not None:
                on_frame(n, preds)
            if out is not None:
                if writer is None:
                    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if out.suffix.lower() == ".avi" else "mp4v"))
                    out.parent.mkdir(parents=True, exist_ok=True)
                    writer = cv2.VideoWriter(str(tmp), fourcc, fps, (frame.shape[1], frame.shape[0]))
                writer.write(cv2.cvtColor(draw(frame, preds), cv2.COLOR_RGB2BGR))
            n += 1
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if n == 0:
        raise MaskgenError(f"{path}: no decodable frames")
    if tmp is not None and tmp.exists():
        os.replace(tmp, out)
    return VideoSummary(n, fps, size, with_faces, dets)
