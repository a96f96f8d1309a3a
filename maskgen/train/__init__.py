"""The reference trainer (needs the `train` extra: torch, scikit-learn, matplotlib, scikit-image).

Names load on first use, so `maskgen.train.catalog` (what `maskgen list` shows) does not import torch."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "MODELS": "models",
    "Run": "run",
    "TrainArgs": "loop",
    "evaluate": "run",
    "experiment": "experiment",
    "train": "run",
}

__all__ = ["MODELS", "Run", "TrainArgs", "evaluate", "experiment", "train"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'maskgen.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
