"""Training: the one training loop (:mod:`bptt.train.trainer`), language-model settings and
presets, the truncated-BPTT language-model trainer, perplexity, progress bar, JSON-lines log
and perplexity plot. Checkpoints: :mod:`bptt.train.checkpoint` (the format) and
:mod:`bptt.train.lm_checkpoint` (language models)."""

from .config import PRESETS, TrainConfig
from .language_model import (
    LanguageModelLearner,
    evaluate,
    make_optimizer,
    perplexity,
    train_language_model,
)
from .plot import plot_history
from .progress import JsonlLog, Progress, read_jsonl
from .trainer import Trainer, TrainerSettings, TrainingDiverged, TrainState

__all__ = [
    "PRESETS", "TrainConfig", "plot_history", "JsonlLog", "Progress", "read_jsonl",
    "LanguageModelLearner", "Trainer", "TrainerSettings", "TrainingDiverged", "TrainState",
    "evaluate", "make_optimizer", "perplexity", "train_language_model",
]
