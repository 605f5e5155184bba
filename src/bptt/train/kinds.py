"""Every kind of checkpoint and how to open it: ``bptt.load_checkpoint(RUN)`` opens a run or a
checkpoint directory of any kind.

Each kind stamps its ``config.json`` with :func:`bptt.train.checkpoint.header` and has one
loader here. What a loader returns carries ``kind``, ``directory``, ``config`` and ``model``;
the rest is the kind's own (a language model's ``vocab``, a seq2seq model's ``pairs``):

    kind                  loader                                  returns
    language-model        bptt.train.lm_checkpoint.load_language_model   Checkpoint
    seq2seq               bptt.train.seq2seq.load_seq2seq_checkpoint      Seq2seqCheckpoint
    sequence-regressor    SequenceRegressor.load                          EstimatorCheckpoint
    sequence-classifier   SequenceClassifier.load                         EstimatorCheckpoint
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import CheckpointError, find_checkpoint, read_checkpoint, read_json
from .estimators import KINDS as ESTIMATOR_KINDS
from .estimators import SequenceClassifier, SequenceRegressor
from .lm_checkpoint import load_language_model
from .seq2seq import load_seq2seq_checkpoint


@dataclass
class EstimatorCheckpoint:
    """A sequence estimator's checkpoint: ``model`` is the fitted estimator."""

    kind: str
    directory: Path
    config: dict[str, Any]
    model: Any


def _estimator(cls: type) -> Callable[[Path, Any], EstimatorCheckpoint]:
    def load(directory: Path, dtype: Any = None) -> EstimatorCheckpoint:
        model = cls.load(directory)
        return EstimatorCheckpoint(ESTIMATOR_KINDS[cls.__name__], directory,
                                   read_json(directory / "config.json"), model)
    return load


LOADERS: dict[str, Callable[[Path, Any], Any]] = {
    "language-model": lambda directory, dtype=None: load_language_model(directory, dtype),
    "seq2seq": lambda directory, dtype=None: load_seq2seq_checkpoint(directory),
    "sequence-regressor": _estimator(SequenceRegressor),
    "sequence-classifier": _estimator(SequenceClassifier),
}


def load_checkpoint(path: str | os.PathLike[str], dtype: Any = None) -> Any:
    """Open the checkpoint at ``path`` (a run folder: its best model; or a checkpoint
    directory), whatever its kind, every file checked. ``dtype`` overrides a language model's
    parameter dtype (float64 for checks)."""
    directory = find_checkpoint(path)
    try:  # which loader: the loader itself checks every file, config.json included
        kind = read_json(directory / "config.json").get("kind", "language-model")
    except (OSError, ValueError, AttributeError, CheckpointError):
        kind = read_checkpoint(directory).kind  # the checks say what is wrong
    loader = LOADERS.get(kind) if isinstance(kind, str) else None
    if loader is None:
        raise CheckpointError(f"{directory} holds a {kind!r} model, which this bptt cannot "
                              f"open (kinds: {', '.join(LOADERS)})")
    return loader(directory, dtype)
