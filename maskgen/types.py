"""Core value types: Faces (N detections as parallel arrays) and MaskResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

LANDMARK_SOURCES = ("detector-68", "fitted-5", "prior")


@dataclass(frozen=True)
class Faces:
    """N faces as parallel arrays; landmarks are always (N, 68, 2) in iBUG-68 order (x, y)."""

    xyxy: np.ndarray
    score: np.ndarray
    landmarks: np.ndarray
    landmark_source: np.ndarray
    detector: str = ""

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        object.__setattr__(self, "xyxy", np.asarray(self.xyxy, dtype=np.float32).reshape(n, 4))
        object.__setattr__(self, "score", np.asarray(self.score, dtype=np.float32).reshape(n))
        object.__setattr__(
            self,
            "landmarks",
            np.asarray(self.landmarks, dtype=np.float32).reshape(n, 68, 2),
        )
        src = np.asarray(self.landmark_source, dtype=object).reshape(n)
        bad = set(src) - set(LANDMARK_SOURCES)
        if bad:
            raise ValueError(f"landmark_source must be one of {LANDMARK_SOURCES}, got {sorted(bad)}")
        object.__setattr__(self, "landmark_source", src)

    @classmethod
    def empty(cls, detector: str = "") -> Faces:
        return cls(
            np.zeros((0, 4)),
            np.zeros(0),
            np.zeros((0, 68, 2)),
            np.zeros(0, dtype=object),
            detector,
        )

    @classmethod
    def concat(cls, items: list[Faces]) -> Faces:
        if not items:
            return cls.empty()
        return cls(
            np.concatenate([f.xyxy for f in items]),
            np.concatenate([f.score for f in items]),
            np.concatenate([f.landmarks for f in items]),
            np.concatenate([f.landmark_source for f in items]),
            items[0].detector,
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Faces:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Faces(
            self.xyxy[index],
            self.score[index],
            self.landmarks[index],
            self.landmark_source[index],
            self.detector,
        )

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def area(self) -> np.ndarray:
        w = self.xyxy[:, 2] - self.xyxy[:, 0]
        h = self.xyxy[:, 3] - self.xyxy[:, 1]
        return np.clip(w, 0, None) * np.clip(h, 0, None)

    def largest(self) -> Faces:
        """The single largest face (by box area); empty stays empty."""
        if len(self) <= 1:
            return self
        return self[int(np.argmax(self.area))]

    def filter(self, min_score: float = 0.0, sources: tuple[str, ...] = LANDMARK_SOURCES) -> Faces:
        keep = (self.score >= min_score) & np.isin(self.landmark_source, list(sources))
        return self[keep]

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-ready dicts, one per face."""
        return [
            {
                "box": [round(float(v), 2) for v in self.xyxy[i]],
                "score": round(float(self.score[i]), 4),
                "landmark_source": str(self.landmark_source[i]),
                "detector": self.detector,
                "landmarks": np.round(self.landmarks[i], 2).tolist(),
            }
            for i in range(len(self))
        ]


@dataclass
class MaskResult:
    """A masked image, the 0/255 map of exactly the changed pixels, and the params that replay it."""

    image: np.ndarray
    occlusion: np.ndarray
    faces: Faces
    strategy: str
    params: dict[str, Any] = field(default_factory=dict)
