"""Training language models: settings and presets, the truncated-BPTT trainer, perplexity,
progress bar, JSON-lines log and perplexity plot. Checkpoints: :mod:`bptt.train.checkpoint`."""

from .config import PRESETS, TrainConfig
from .plot import plot_history
from .progress import JsonlLog, Progress, read_jsonl
from .trainer import (
    LMTrainer,
    TrainingDiverged,
    TrainState,
    evaluate,
    make_optimizer,
    perplexity,
    train_language_model,
)

__all__ = [
    "PRESETS", "TrainConfig", "plot_history", "JsonlLog", "Progress", "read_jsonl", "LMTrainer",
    "TrainingDiverged", "TrainState", "evaluate", "make_optimizer", "perplexity",
    "train_language_model",
]
