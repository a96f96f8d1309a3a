"""The reference trainer (needs the `train` extra: torch, scikit-learn, matplotlib, scikit-image)."""

from .experiment import experiment
from .loop import TrainArgs
from .models import MODELS
from .run import Run, evaluate, train

__all__ = ["MODELS", "Run", "TrainArgs", "evaluate", "experiment", "train"]
