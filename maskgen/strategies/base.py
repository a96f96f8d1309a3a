"""The strategy protocol and registry (kept apart from __init__ so strategy modules can import them)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..errors import BadParameter
from ..registry import Registry
from ..types import Faces


class Strategy(Protocol):
    name: str

    def needs_faces(self, params: dict[str, Any]) -> bool:
        """Whether these resolved params need detected faces (image-fraction bands do not)."""

    def resolve(self, rng: np.random.Generator, **params: Any) -> dict[str, Any]:
        """Every parameter made concrete: the given ones checked, the random ones drawn from `rng`."""

    def apply(self, image: np.ndarray, faces: Faces, **params: Any) -> tuple[np.ndarray, np.ndarray]:
        """Deterministic: (masked image, occlusion) from resolved params."""


STRATEGIES: Registry[Strategy] = Registry("strategy")


def check_keys(name: str, given: dict[str, Any], allowed: set[str]) -> None:
    extra = set(given) - allowed
    if extra:
        valid = ", ".join(sorted(allowed)) or "none"
        raise BadParameter(f"strategy {name!r} has no parameter {sorted(extra)[0]!r}; valid: {valid}")
