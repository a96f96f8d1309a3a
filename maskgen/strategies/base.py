"""The strategy protocol and registry (kept apart from __init__ so strategy modules can import them)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
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


def check_keys(name: str, given: dict[str, Any], resolve: Callable[..., Any]) -> None:
    """A one-line error for parameters `resolve` does not take, listing the ones it does."""
    if given:
        params = inspect.signature(resolve).parameters.values()
        valid = ", ".join(p.name for p in params if p.name != "rng" and p.kind is p.POSITIONAL_OR_KEYWORD)
        raise BadParameter(f"strategy {name!r} has no parameter {sorted(given)[0]!r}; valid: {valid}")
