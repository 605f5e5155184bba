"""A sequence estimator on its data as a learner of the one training loop
(:class:`bptt.train.trainer.Trainer`): shuffled minibatches, evaluation, the position to resume
from, the checkpoint files."""

from __future__ import annotations

import math
from typing import Any

from ..backend import to_device
from .trainer import ShuffledBatches, TrainState, checked_rng_state


class Past:
    """A finished trainer's state, to replay the history of a resumed run."""

    def __init__(self, state: TrainState) -> None:
        self.state = state


class SequenceLearner:
    """A sequence estimator on (xs, ts) for :class:`~bptt.train.trainer.Trainer`: shuffled
    minibatches, one permutation per epoch from ``default_rng(seed + 1)`` (resumable: the
    generator's state at the epoch's start and the batch index are saved)."""

    unit = "seq"
    loss_limit = math.inf  # a squared error may be large: only NaN and inf are divergence

    def __init__(self, est: Any, xs: Any, ts: Any, lens: Any, val: tuple | None,
                 batch_size: int, shuffle: bool, position: dict[str, Any] | None) -> None:
        self.est, self.xs, self.ts, self.lens, self.val = est, xs, ts, lens, val
        self.params, self.grads = est.params, est.grads
        self.kept_params = est._all_params()  # early stopping keeps these (a self-updating cell)
        self.batches = ShuffledBatches(int(xs.shape[0]), batch_size, est.seed + 1, shuffle,
                                       position)
        self.steps_per_epoch = self.batches.steps_per_epoch
        self.monitor = "val_loss" if val is not None else "loss"
        self.monitor_label = "validation loss" if val is not None else "training loss"
        if position and position.get("dropout_rng") is not None:
            est._generator.bit_generator.state = checked_rng_state(
                position["dropout_rng"], "state.json: field 'trainer.learner.dropout_rng'")

    def shard(self, rank: int, size: int) -> None:
        """Data-parallel: train on this rank's share of each batch."""
        self.batches.shard(rank, size)

    def train_step(self) -> tuple[float, int]:
        share = self.batches.next()
        idx = to_device(share)
        bl = None if self.lens is None else self.lens[idx]
        self.loss_weight = float(self.est._loss_terms(self.ts[idx], bl))
        if not len(share):  # a last batch smaller than the ranks: nothing here this step
            for g in self.grads:
                g[...] = 0
            return 0.0, 0
        return self.est._forward_backward(self.xs[idx], self.ts[idx], bl), int(len(idx))

    def evaluate(self, train_loss: float | None) -> dict[str, Any]:
        row: dict[str, Any] = {"loss": train_loss}
        if self.val is not None:
            row.update({f"val_{k}": v for k, v in self.est._evaluate(*self.val).items()})
        return row

    def describe(self, rec: dict[str, Any]) -> str:
        parts = [f"epoch {rec['epoch']:g}", f"loss {rec['loss']:.5f}"]
        parts += [f"{k} {v:.5f}" for k, v in rec.items() if k.startswith("val_")]
        return "  ".join(parts) + ("  *" if rec["best"] else "")

    def position(self) -> dict[str, Any]:
        return {**self.batches.position(),
                "dropout_rng": _generator_state(self.est._generator)}

    def checkpoint(self, resumable: bool) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        return self.est._checkpoint_files()

    def set_training(self, on: bool) -> None:
        self.est.network_.train() if on else self.est.network_.eval()


def _generator_state(gen: Any) -> dict[str, Any] | None:
    try:
        return gen.bit_generator.state
    except AttributeError:  # pragma: no cover - CuPy generators keep no such state
        return None
