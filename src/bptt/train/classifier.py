"""Training the book's feed-forward classifiers (``TwoLayerNet``, ``MultiLayerNet``) in the one
training loop (:class:`bptt.train.trainer.Trainer`): shuffled minibatches, the divergence guard,
progress, the history the book plots.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from ..backend import array_module
from .trainer import Trainer, TrainerSettings

__all__ = ["train_classifier"]


def _first_param(net: Any) -> Any:
    ps = net.params
    return next(iter(ps.values())) if isinstance(ps, dict) else ps[0]


def _batch(x: Any, idx: Any, like: Any) -> Any:
    xp = array_module(like)
    xb = x[idx]
    if getattr(xb, "dtype", None) is not None and xb.dtype.kind == "f":
        return xp.asarray(xb, dtype=like.dtype)  # the net's dtype and device
    return xp.asarray(xb)


def _evaluate(net: Any, x: Any, t: Any, chunk: int = 10_000) -> float:
    like = _first_param(net)
    correct = 0.0
    for s in range(0, len(x), chunk):
        idx = np.arange(s, min(s + chunk, len(x)))
        xb, tb = _batch(x, idx, like), _batch(t, idx, like)
        correct += net.accuracy(xb, tb) * len(idx)
    return correct / max(len(x), 1)


class _ClassifierLearner:
    """A classifier with ``loss_and_gradient`` (or ``gradient`` + ``loss``) on (x, t)."""

    unit = "row"
    monitor, monitor_label = "epoch_loss", "training loss"
    loss_limit = math.inf

    def __init__(self, net: Any, x: Any, t: Any, batch_size: int, seed: int,
                 x_val: Any, t_val: Any) -> None:
        self.net, self.x, self.t, self.x_val, self.t_val = net, x, t, x_val, t_val
        self.like = _first_param(net)
        self.keys = list(net.params)
        self.params = [net.params[k] for k in self.keys]
        self.grads: list[Any] = []
        self.n, self.batch_size = len(x), batch_size
        self.steps_per_epoch = -(-self.n // batch_size)
        self.rng = np.random.default_rng(seed)
        self.order: Any = None
        self.k = 0
        self.losses: list[float] = []  # this epoch's, one per update (the book's history)

    def train_step(self) -> tuple[float, int]:
        if self.k == 0:
            self.order = self.rng.permutation(self.n)
        B = self.batch_size
        idx = self.order[self.k * B:(self.k + 1) * B]
        self.k = (self.k + 1) % self.steps_per_epoch
        xb, tb = _batch(self.x, idx, self.like), _batch(self.t, idx, self.like)
        if hasattr(self.net, "loss_and_gradient"):
            loss, grads = self.net.loss_and_gradient(xb, tb)
        else:
            grads = self.net.gradient(xb, tb)
            loss = float(self.net.loss(xb, tb))
        self.grads = [grads[k] for k in self.keys]
        self.losses.append(float(loss))
        return float(loss), len(idx)

    def evaluate(self, train_loss: float | None) -> dict[str, Any]:
        row: dict[str, Any] = {"epoch_loss": float(np.mean(self.losses)),
                               "losses": self.losses,
                               "train_acc": _evaluate(self.net, self.x, self.t)}
        if self.x_val is not None:
            row["val_acc"] = _evaluate(self.net, self.x_val, self.t_val)
        self.losses = []
        return row

    def describe(self, rec: dict[str, Any]) -> str:
        val = f"  val acc {rec['val_acc']:.4f}" if "val_acc" in rec else ""
        return (f"epoch {round(rec['epoch']):>3}  loss {rec['epoch_loss']:.4f}  "
                f"train acc {rec['train_acc']:.4f}{val}")

    def position(self) -> dict[str, Any]:
        return {}

    def checkpoint(self, resumable: bool) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        raise NotImplementedError("train_classifier keeps no checkpoints (out=None)")

    def set_training(self, on: bool) -> None:
        pass  # the nets switch their dropout in loss()/predict()


def train_classifier(net: Any, x_train: Any, t_train: Any, optimizer: Any, epochs: int,
                     batch_size: int, seed: int = 0, x_val: Any = None, t_val: Any = None,
                     *, verbose: bool = False) -> dict[str, list[float]]:
    """Minibatch training of a classifier with ``loss_and_gradient`` (or ``gradient`` + ``loss``).

    Each epoch visits the training set once in a random order (``numpy.random.default_rng(seed)``);
    the last batch may be smaller. Batches are moved to the net's device and dtype. A NaN or
    infinite loss stops training with :class:`~bptt.train.trainer.TrainingDiverged`.

    Returns the history: ``loss`` (one value per update), ``epoch_loss`` (mean per epoch),
    ``train_acc`` and ``val_acc`` (per epoch, ``val_acc`` empty without validation data).
    ``verbose`` prints a line per epoch (stdout).
    """
    n = len(x_train)
    if len(t_train) != n:
        raise ValueError(f"x_train has {n} rows but t_train has {len(t_train)}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if (x_val is None) != (t_val is None):
        raise ValueError("give both x_val and t_val, or neither")
    if n == 0:
        raise ValueError("x_train holds no rows")
    learner = _ClassifierLearner(net, x_train, t_train, batch_size, seed, x_val, t_val)
    hist: dict[str, list[float]] = {"loss": [], "epoch_loss": [], "train_acc": [], "val_acc": []}

    def record(tr: Trainer, rec: dict[str, Any]) -> None:
        hist["loss"].extend(rec.pop("losses"))
        for key in ("epoch_loss", "train_acc", "val_acc"):
            if key in rec:
                hist[key].append(rec[key])

    settings = TrainerSettings(epochs=int(epochs), quiet=not verbose, log_every=10**9,
                               hint="")
    Trainer(learner, optimizer, settings, stream=sys.stdout, on_evaluate=record).fit()
    return hist
