"""Masking strategies: sample params from a seeded generator, then apply them (replayable)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..detectors import detect
from ..errors import BadParameter, MaskgenError, NoFaceFound
from ..seeds import CounterRng, generator
from ..types import Faces, MaskResult
from .base import STRATEGIES, Strategy

_CACHE: dict[str, Strategy] = {}

from . import bands, overlay, zero  # noqa: E402,F401  (registration)


def get_strategy(name: str) -> Strategy:
    if name not in _CACHE:
        _CACHE[name] = STRATEGIES.create(name)
    return _CACHE[name]


def check_params(strategy: str, params: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """The strategy's parameters resolved once, as a check before bulk work: a bad value is one
    `BadParameter` (e.g. "ratio must be between 0 and 1.5"), not one failure per image."""
    try:
        return get_strategy(strategy).resolve(generator(seed), **params)
    except MaskgenError:
        raise
    except (ValueError, TypeError) as e:  # e.g. ratio="abc"
        raise BadParameter(f"bad parameter value for strategy {strategy!r}: {e}") from None


def resolve_many(strategy: str, seeds: np.ndarray, **params: Any) -> list[dict[str, Any]]:
    """`resolve(CounterRng(seed), **params)` for each of the uint64 `seeds` (on-the-fly masking's draws),
    at once where the strategy can (`resolve_many`)."""
    strat = get_strategy(strategy)
    many = getattr(strat, "resolve_many", None)
    if many is not None:
        return many(seeds, **params)
    return [strat.resolve(CounterRng(int(s)), **params) for s in seeds.tolist()]


def check_image(image: np.ndarray) -> np.ndarray:
    """The image as an array, or a one-line error if it is not (H,W) or (H,W,C) with C in 1-4, is empty,
    or is a float image outside 0-1 and 0-255 (a float image whose maximum is over 1 is taken as 0-255)."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4):
        raise BadParameter(f"expected an (H,W) or (H,W,C) image with C in 1-4, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise BadParameter(f"the image is empty (shape {image.shape})")
    if image.dtype.kind == "f":  # white is 1.0 or 255.0: decided from the data, anything else refused
        lo, hi = float(np.min(image)), float(np.max(image))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 255:
            raise BadParameter(f"a float image must hold values in 0-1 or 0-255, got {lo:g} to {hi:g}")
    elif image.dtype.kind not in "uib":
        raise BadParameter(f"expected an integer or float image, got dtype {image.dtype}")
    return image


def mask(
    image: np.ndarray,
    strategy: str = "overlay",
    faces: Faces | None = None,
    detector: str = "mtcnn",
    fallback: str | None = None,
    seed: int = 0,
    **params: Any,
) -> MaskResult:
    """Mask the faces in `image`; `result.params` replays the same bytes: mask(image, strategy, faces=..., **params)."""
    image = check_image(image)
    strat = get_strategy(strategy)
    resolved = strat.resolve(generator(seed), **params)
    needs = strat.needs_faces(resolved)
    if faces is None:
        faces = detect(image, detector=detector, fallback=fallback) if needs else Faces.empty()
    if needs and len(faces) == 0:
        raise NoFaceFound("no face found; pass faces=..., another detector, or fallback='aligned' for aligned crops")
    out, occ = strat.apply(image, faces, **resolved)
    return MaskResult(out, occ, faces, strategy, resolved)


__all__ = ["STRATEGIES", "Strategy", "check_image", "check_params", "get_strategy", "mask", "resolve_many"]
