"""Sequence estimators with a fit/predict API: ``SequenceRegressor`` and ``SequenceClassifier``.

    model = SequenceRegressor(cell="lstm", hidden_size=32, seed=0)
    history = model.fit(X, y, epochs=20, batch_size=32, validation_data=(Xv, yv))
    model.predict(X_new)          # (N, K) or (N,) like y
    model.score(X_test, y_test)   # R^2 (classifier: accuracy)

The network (:class:`bptt.models.sequence.SequenceNetwork`: a recurrent stack, the last real
step or every step, an affine head) is built on the first ``fit`` from the shapes of X and y;
the estimator adds the loss:

    loss:  regression   MeanSquaredError(out, y)             (mask: padded steps ignored)
           2 classes    TimeSigmoidWithLoss(out, y)          (K = 1 logit)
           C classes    TimeSoftmaxWithLoss(out, y)          (K = C logits; -1 = ignored)

X is (N, T, D) float; y is (N, K) or (N,) for many-to-one, (N, T, K) or (N, T) for
many-to-many. Sequences of different lengths are right-padded to T and given with
``lengths`` (N,) ints: the recurrent layers carry the state over padding and the loss skips it.

``cell`` may also be a layer object of your own (the DIVER exercise's
:class:`~bptt.nn.simple_rnn.SimpleRNN`, say; the contract is in :mod:`bptt.models.sequence`).

Training runs in the one training loop (:class:`bptt.train.trainer.Trainer`): clipping, the
divergence guard, early stopping, progress, and with ``fit(..., out=DIR)`` checkpoints in the
one checkpoint format (``DIR/last`` resumable bit for bit with ``resume=True``, ``DIR/best``),
Ctrl-C saving and a JSON-lines log. ``save(DIR)`` / ``load(DIR)`` use the same format.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .. import optim as _optim
from ..backend import array_module, default_dtype, get_xp, to_device, to_numpy
from ..models.sequence import SequenceNetwork, padding_mask
from ..nn.registry import cell_names, get_cell
from ..nn.sequence_layers import MeanSquaredError
from ..nn.time_layers import TimeSigmoidWithLoss, TimeSoftmaxWithLoss
from ..validate import check_sizes
from .checkpoint import (
    CheckpointError,
    check_finite,
    header,
    read_checkpoint,
    write_checkpoint,
)
from .sequence_learner import Past, SequenceLearner
from .trainer import (
    Trainer,
    TrainerSettings,
    TrainState,
    set_rng_state,
)

__all__ = ["SequenceRegressor", "SequenceClassifier", "OPTIMIZERS"]

OPTIMIZERS = _optim.OPTIMIZERS
KINDS = {"SequenceRegressor": "sequence-regressor", "SequenceClassifier": "sequence-classifier"}


class _SequenceEstimator:
    """Shared machinery; see :class:`SequenceRegressor` and :class:`SequenceClassifier`."""

    _task = "regression"

    def __init__(self, cell: Any = "lstm", hidden_size: int = 32, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, many_to_many: bool = False,
                 optimizer: Any = "adam", lr: float | None = None, clip: float | None = 5.0,
                 seed: int = 0, dtype: Any = None) -> None:
        if isinstance(cell, str):
            cell = get_cell(cell.lower()).name
        elif not (hasattr(cell, "forward") and hasattr(cell, "backward")
                  and hasattr(cell, "params")):
            raise TypeError(f"cell must be a registered cell name ({', '.join(cell_names())}) "
                            f"or a layer with params, grads, forward and backward; got "
                            f"{type(cell).__name__}")
        check_sizes(hidden_size=hidden_size, num_layers=num_layers)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if clip is not None and not clip > 0:
            raise ValueError(f"clip must be positive or None, got {clip}")
        if isinstance(optimizer, str) and optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)} or an "
                             f"optimizer object, got {optimizer!r}")
        self.cell = cell
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        self.many_to_many = bool(many_to_many)
        self.optimizer = optimizer
        self.lr = lr
        self.clip = clip
        self.seed = int(seed)
        self.dtype = np.dtype(dtype) if dtype is not None else default_dtype()
        self._built = False
        self.history_: dict[str, list[float]] = {}

    # -- configuration ---------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments as JSON-able values (a custom cell is named, not kept)."""
        cell = self.cell if isinstance(self.cell, str) else f"custom:{type(self.cell).__name__}"
        opt = (self.optimizer if isinstance(self.optimizer, str)
               else f"custom:{type(self.optimizer).__name__}")
        return {"cell": cell, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "bidirectional": self.bidirectional, "dropout": self.dropout,
                "many_to_many": self.many_to_many, "optimizer": opt, "lr": self.lr,
                "clip": self.clip, "seed": self.seed, "dtype": self.dtype.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # -- building ----------------------------------------------------------------------------

    def _build(self, n_features: int, n_outputs: int) -> None:
        """Make the network and the optimizer for inputs with D features and K outputs."""
        self.n_features_, self.n_outputs_ = int(n_features), int(n_outputs)
        gen = self._generator = get_xp().random.default_rng(self.seed)  # weights, dropout
        self.network_ = SequenceNetwork(self.cell, n_features, n_outputs, self.hidden_size,
                                        self.num_layers, self.bidirectional, self.dropout,
                                        self.many_to_many, self.dtype, gen)
        self.params, self.grads = self.network_.params, self.network_.grads
        self.loss_layer_ = self._make_loss()
        self._make_optimizer()
        self._built = True

    def _make_optimizer(self) -> None:
        opt = self.optimizer
        if isinstance(opt, str):
            kw = {} if self.lr is None else {"lr": self.lr}
            self.optimizer_ = OPTIMIZERS[opt.lower()](**kw)
        else:
            self.optimizer_ = opt
            if self.lr is not None:
                opt.lr = self.lr

    def _make_loss(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- data checks -------------------------------------------------------------------------

    def _prepare_X(self, X: Any, lengths: Any = None) -> tuple[Any, Any]:
        X = to_numpy(X) if hasattr(X, "shape") else np.asarray(X)
        if X.dtype.kind not in "fiub":
            raise TypeError(f"X must hold numbers, got dtype {X.dtype}")
        if X.ndim != 3:
            hint = "; for one feature per step use X[..., None]" if X.ndim == 2 else ""
            raise ValueError(f"X must have shape (N, T, D), got {X.shape}{hint}")
        if self._built and X.shape[2] != self.n_features_:
            raise ValueError(f"X has {X.shape[2]} features per step but the model was fit "
                             f"with D={self.n_features_}")
        if not np.isfinite(X).all():
            raise ValueError("X holds NaN or infinite values")
        if lengths is not None:
            lengths = np.asarray(to_numpy(lengths))
            if lengths.shape != (X.shape[0],) or lengths.dtype.kind not in "iu":
                raise ValueError(f"lengths must be integers of shape ({X.shape[0]},), got "
                                 f"{lengths.dtype} {lengths.shape}")
            if lengths.size and (lengths.min() < 1 or lengths.max() > X.shape[1]):
                raise ValueError(f"lengths must lie in [1, T={X.shape[1]}], got "
                                 f"[{lengths.min()}, {lengths.max()}]")
            lengths = to_device(lengths.astype(np.int64))
        return to_device(X, dtype=self.dtype), lengths

    def _check_lengths_y(self, X: Any, y: np.ndarray) -> None:
        want = 3 if self.many_to_many else 2
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} sequences but y has {y.shape[0]}")
        if self.many_to_many and y.shape[1] != X.shape[1]:
            raise ValueError(f"many_to_many: y must have a time axis like X: y {y.shape}, "
                             f"X {tuple(X.shape)} (T = {X.shape[1]})")
        if y.ndim not in (want - 1, want):
            kind = "(N, T, K) or (N, T)" if self.many_to_many else "(N, K) or (N,)"
            raise ValueError(f"y must have shape {kind} for "
                             f"{'many-to-many' if self.many_to_many else 'many-to-one'}, got "
                             f"{y.shape}" + ("" if self.many_to_many else
                                             "; for per-step targets pass many_to_many=True"))

    # -- training ----------------------------------------------------------------------------

    def fit(self, X: Any, y: Any, epochs: int = 10, batch_size: int = 32,
            validation_data: tuple | None = None, early_stopping: int | None = None,
            lengths: Any = None, shuffle: bool = True,
            callback: Callable[[int, dict[str, float]], Any] | None = None,
            verbose: bool = False, *, out: str | os.PathLike[str] | None = None,
            resume: bool = False, stream: TextIO | None = None, progress: bool = False,
            max_steps: int | None = None, on_step: Callable[[Trainer], None] | None = None,
            run_config: dict[str, Any] | None = None,
            comm: Any = None) -> dict[str, list[float]]:
        """Train with minibatches; returns the history (also kept in ``history_``).

        The first call builds the network from the shapes of X and y; a later call continues
        training the same weights (and optimizer state) on data of the same D and K.

        ``validation_data`` is ``(X, y)`` or ``(X, y, lengths)``. ``early_stopping=p`` stops
        after p epochs without a better validation loss (training loss without validation
        data) and restores the best parameters. ``callback(epoch, logs)`` is called after each
        epoch (1-based) with that epoch's row of the history; ``verbose`` prints each row and
        ``progress`` shows progress inside the epochs (on ``stream``, default stdout).
        History keys: ``epoch``, ``loss`` (mean training loss), ``time`` (seconds), and with
        validation data ``val_loss`` and ``val_<metric>`` (``mse``/``r2`` or ``accuracy``).

        ``out``: write checkpoints there (``out/last`` after each epoch and at a stop,
        ``out/best``) and a log; Ctrl-C then saves and returns. ``resume=True`` continues the
        run saved in ``out/last`` exactly (same data and settings); ``max_steps`` stops after
        that many updates in all; ``run_config`` is saved with the checkpoints (the settings of
        the run, e.g. ``bptt fit``'s). ``comm``: train data-parallel (:mod:`bptt.train.comm`;
        every rank calls fit on the same data; rank 0 alone writes).
        """
        if int(epochs) != epochs or epochs < 1 or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive integers, got "
                             f"{epochs}, {batch_size}")
        if early_stopping is not None and early_stopping < 1:
            raise ValueError(f"early_stopping (patience) must be >= 1, got {early_stopping}")
        xs, lens = self._prepare_X(X, lengths)
        if xs.shape[0] == 0 or xs.shape[1] == 0:
            raise ValueError(f"X must hold at least one sequence of at least one step, got "
                             f"shape {tuple(xs.shape)}")
        ts, n_out = self._prepare_y(y, xs, lens, fitting=not self._built)
        if not self._built:
            self._build(xs.shape[2], n_out)
        val = None
        if validation_data is not None:
            if len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be (X, y) or (X, y, lengths)")
            vX, vy = validation_data[0], validation_data[1]
            vl = validation_data[2] if len(validation_data) == 3 else None
            vxs, vlens = self._prepare_X(vX, vl)
            vts, _ = self._prepare_y(vy, vxs, vlens, fitting=False)
            val = (vxs, vts, vlens)
        out_dir = Path(out) if out is not None else None
        state = self._resume_state(out_dir) if resume else None
        learner = SequenceLearner(self, xs, ts, lens, val, int(batch_size), shuffle,
                                   state.learner if state is not None else None)
        settings = TrainerSettings(epochs=int(epochs), max_steps=max_steps, clip=self.clip,
                                   patience=early_stopping,
                                   restore_best=early_stopping is not None,
                                   log_every=max(1, learner.steps_per_epoch),
                                   quiet=not (verbose or progress), epoch_lines=verbose,
                                   hint="")
        self._run_config = run_config or {}
        self.history_ = {"epoch": [], "loss": [], "time": []}
        rows = self.history_
        last_time = [state.train_time if state is not None else 0.0]

        def report(tr: Trainer, rec: dict[str, Any]) -> None:
            if rec.get("partial"):
                return
            row = {"epoch": int(round(rec["epoch"])), "loss": rec["loss"],
                   "time": rec["train_time_s"] - last_time[0] + rec["eval_time_s"],
                   **{k: v for k, v in rec.items() if k.startswith("val_")}}
            last_time[0] = rec["train_time_s"]
            for k, v in row.items():
                rows.setdefault(k, []).append(v)
            self.best_epoch_ = (int(round(tr.state.best_epoch))
                                if tr.state.best_epoch is not None else None)
            if callback is not None:
                callback(row["epoch"], row)

        if state is not None:  # the epochs trained before the resume, as they were
            for rec in state.history:
                report(Past(state), rec)
        trainer = Trainer(learner, self.optimizer_, settings, out_dir, state,
                          stream if stream is not None else sys.stdout,
                          title=type(self).__name__, on_step=on_step, on_evaluate=report,
                          comm=comm)
        self.best_epoch_ = None
        self.stopped_ = trainer.fit()
        self.steps_ = trainer.state.step
        return self.history_

    def _resume_state(self, out: Path | None) -> TrainState:
        """Restore the optimizer, parameters and RNG of ``out/last``; its trainer state."""
        if out is None:
            raise ValueError("resume=True needs out=DIR, the folder of the run to continue")
        stored = read_checkpoint(out / "last", required=("model.npz", "optimizer.npz"))
        self._set_params(stored)
        self.optimizer_.load_state_dict(stored.arrays("optimizer.npz"))
        set_rng_state(stored.state.get("rng"))
        where = str(stored.directory / "state.json")
        try:
            return TrainState.from_dict(stored.state.get("trainer", {}), where)
        except ValueError as e:
            raise CheckpointError(f"{e}; the checkpoint cannot be resumed") from None

    def _all_params(self) -> list[Any]:
        return self.network_.all_params

    def _loss_terms(self, ts: Any, lengths: Any) -> int:
        """How many terms the loss of a batch averages (a data-parallel rank's weight)."""
        if self.many_to_many and lengths is not None:
            return int(lengths.sum()) * int(ts.shape[-1] if ts.ndim == 3 else 1)
        if ts.dtype.kind in "iu" or self._task == "classification":
            return int((ts != -1).sum())
        return int(ts.size)

    def _forward_backward(self, xs: Any, ts: Any, lengths: Any) -> float:
        """The loss of one batch; its gradients in ``grads`` (the trainer updates)."""
        out = self.network_.forward(xs, lengths)
        loss = self._loss_forward(out, ts, lengths)
        self.network_.backward(self.loss_layer_.backward(1))
        return float(loss)

    def _loss_forward(self, out: Any, ts: Any, lengths: Any) -> Any:
        return self.loss_layer_.forward(out, ts)

    # -- inference ---------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not self._built:
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit first "
                               f"(or load a saved model)")

    def _raw(self, xs: Any, lengths: Any, batch_size: int = 1024) -> Any:
        """Scores for all of xs, in evaluation mode, in chunks: (N, K) or (N, T, K)."""
        self.network_.eval()
        outs = []
        for s in range(0, xs.shape[0], batch_size):
            bl = None if lengths is None else lengths[s:s + batch_size]
            outs.append(self.network_.forward(xs[s:s + batch_size], bl))
        xp = array_module(xs)
        if not outs:
            shape = (0, xs.shape[1], self.n_outputs_) if self.many_to_many else (0,
                                                                                  self.n_outputs_)
            return xp.zeros(shape, dtype=self.dtype)
        return xp.concatenate(outs, axis=0)

    # -- persistence -------------------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        return {"n_features": self.n_features_, "n_outputs": self.n_outputs_}

    def _param_names(self) -> list[str]:
        return self.network_.param_names

    def _checkpoint_files(self) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        params = {n: to_numpy(p) for n, p in zip(self._param_names(), self._all_params(),
                                                 strict=True)}
        cfg = header(KINDS[type(self).__name__], model=self.get_config(), meta=self._meta(),
                     history=self.history_, train=getattr(self, "_run_config", {}))
        return {"model.npz": params}, {"config.json": cfg}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model as a checkpoint directory (the one format: .npz + JSON)."""
        self._check_fitted()
        arrays, documents = self._checkpoint_files()
        return write_checkpoint(path, arrays, documents, {"trainer": {}, "rng": None})

    @classmethod
    def load(cls, path: str | os.PathLike[str], cell: Any = None) -> _SequenceEstimator:
        """Rebuild a model written by :meth:`save` (or the best model of ``fit(out=DIR)``).
        A model with a custom cell needs that ``cell`` (a fresh layer of the same shape)."""
        p = Path(path)
        if p.is_file() and p.suffix == ".npz":
            raise CheckpointError(f"{p} is a single-file model of bptt 0.1 (format "
                                  f"bptt.sequence/1), which this bptt no longer reads; fit the "
                                  f"model again and save it (a checkpoint directory)")
        stored = read_checkpoint(p, kind=KINDS[cls.__name__])
        config = dict(stored.config["model"])
        if str(config.get("cell")).startswith("custom:"):
            if cell is None:
                raise CheckpointError(f"{stored.directory} was saved with a custom cell "
                                      f"({config['cell'][7:]}); pass a fresh one: "
                                      f"{cls.__name__}.load(path, cell=...)")
            config["cell"] = cell
        if str(config.get("optimizer")).startswith("custom:"):
            config["optimizer"] = "adam"
        try:
            model = cls(**config)
            meta = stored.config.get("meta") or {}
            model._restore_meta(meta)
            model._build(int(meta["n_features"]), int(meta["n_outputs"]))
        except (TypeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{stored.directory / 'config.json'}: bad model config "
                                  f"({type(e).__name__}: {e})") from None
        model._set_params(stored)
        history = stored.config.get("history")
        model.history_ = history if isinstance(history, dict) else {}
        model.network_.eval()
        return model

    def _set_params(self, stored: Any) -> None:
        arrays = stored.arrays("model.npz")
        source = stored.directory / "model.npz"
        check_finite(source, arrays)
        names = self._param_names()
        if sorted(arrays) == sorted(self.network_.legacy_param_names):
            names = self.network_.legacy_param_names  # written by bptt 0.1
        if sorted(arrays) != sorted(names):
            raise CheckpointError(f"{source} does not match this model: it holds "
                                  f"{len(arrays)} arrays, the model {len(names)} parameters")
        for n, p in zip(names, self._all_params(), strict=True):
            a = arrays[n]
            if tuple(p.shape) != a.shape:
                raise CheckpointError(f"{source}: parameter {n} has shape {a.shape}, the "
                                      f"model's is {tuple(p.shape)}")
            p[...] = to_device(a, dtype=p.dtype)

    def _restore_meta(self, meta: dict[str, Any]) -> None:
        pass

    def evaluate(self, X: Any, y: Any, lengths: Any = None) -> dict[str, float]:
        """Metrics on (X, y), padded or unlabeled steps ignored: ``{'loss', 'mse', 'r2'}`` for
        the regressor, ``{'loss' (cross-entropy), 'accuracy'}`` for the classifier."""
        self._check_fitted()
        xs, lens = self._prepare_X(X, lengths)
        ts, _ = self._prepare_y(y, xs, lens, fitting=False)
        return self._evaluate(xs, ts, lens)


class SequenceRegressor(_SequenceEstimator):
    """Regression on sequences: mean squared error loss, ``score`` = R^2.

    Args:
        cell: 'rnn' (tanh), 'lstm', 'gru', or a layer object (see the module docstring).
        hidden_size: H, hidden units per direction and layer.
        num_layers, bidirectional, dropout: the recurrent stack (dropout between layers).
        many_to_many: y has a time axis (one target per step) instead of one per sequence.
        optimizer: 'adam' (default), 'sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', or
            an optimizer object from :mod:`bptt.optim`; ``lr`` overrides its learning rate.
        clip: global gradient-norm clipping threshold (None: no clipping).
        seed: seeds the weights and the batch order (same seed, same model).
        dtype: parameter dtype (default :func:`bptt.default_dtype`, float32).
    """

    def _make_loss(self) -> Any:
        return MeanSquaredError()

    def _prepare_y(self, y: Any, xs: Any, lengths: Any, fitting: bool) -> tuple[Any, int]:
        y = np.asarray(to_numpy(y), dtype=np.float64)
        self._check_lengths_y(xs, y)
        one_d = y.ndim == (2 if self.many_to_many else 1)
        if fitting:
            self._y_1d = one_d
        if one_d:
            y = y[..., None]
        if self._built and y.shape[-1] != self.n_outputs_:
            raise ValueError(f"y has {y.shape[-1]} outputs but the model was fit with "
                             f"K={self.n_outputs_}")
        if not np.isfinite(y).all():
            raise ValueError("y holds NaN or infinite values")
        return to_device(y, dtype=self.dtype), y.shape[-1]

    def _loss_forward(self, out: Any, ts: Any, lengths: Any) -> Any:
        mask = None
        if self.many_to_many and lengths is not None:
            mask = padding_mask(lengths, out.shape[1], out)
        return self.loss_layer_.forward(out, ts, mask)

    def predict(self, X: Any, lengths: Any = None) -> np.ndarray:
        """Predictions (N, K) (many-to-one) or (N, T, K); without the K axis if y had none."""
        self._check_fitted()
        xs, lens = self._prepare_X(X, lengths)
        out = to_numpy(self._raw(xs, lens)).astype(np.float64)
        return out[..., 0] if self._y_1d else out

    def _evaluate(self, xs: Any, ts: Any, lengths: Any) -> dict[str, float]:
        out = self._raw(xs, lengths)
        mask = None
        if self.many_to_many and lengths is not None:
            mask = padding_mask(lengths, out.shape[1], out)
        mse = float(MeanSquaredError().forward(out, ts, mask))
        return {"loss": mse, "mse": mse, "r2": _r2(to_numpy(out), to_numpy(ts),
                                                   None if mask is None else to_numpy(mask))}

    def score(self, X: Any, y: Any, lengths: Any = None) -> float:
        """Coefficient of determination R^2 = 1 - SS_res / SS_tot, averaged over the K outputs
        (1 is perfect, 0 is predicting the mean; scikit-learn's convention)."""
        return self.evaluate(X, y, lengths)["r2"]

    def _meta(self) -> dict[str, Any]:
        return {**super()._meta(), "y_1d": bool(self._y_1d)}

    def _restore_meta(self, meta: dict[str, Any]) -> None:
        self._y_1d = bool(meta.get("y_1d", False))


def _r2(pred: np.ndarray, t: np.ndarray, mask: np.ndarray | None) -> float:
    K = t.shape[-1]
    p2, t2 = pred.reshape(-1, K), t.reshape(-1, K)
    if mask is not None:
        keep = mask.reshape(-1)
        p2, t2 = p2[keep], t2[keep]
    ss_res = ((t2 - p2) ** 2).sum(axis=0)
    ss_tot = ((t2 - t2.mean(axis=0)) ** 2).sum(axis=0)
    r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1),
                  np.where(ss_res > 0, 0.0, 1.0))
    return float(r2.mean())


class SequenceClassifier(_SequenceEstimator):
    """Classification of sequences (or of every step with ``many_to_many=True``).

    y holds class ids 0..C-1: (N,), one per sequence, or (N, T) per step, where -1 marks a
    step without a label.
    ``n_classes`` defaults to max(y) + 1 of the first ``fit``. Two classes use one logit and
    :class:`~bptt.nn.time_layers.TimeSigmoidWithLoss`; more use C logits and
    :class:`~bptt.nn.time_layers.TimeSoftmaxWithLoss`. ``score`` = accuracy. Other arguments as
    :class:`SequenceRegressor`.
    """

    _task = "classification"

    def __init__(self, cell: Any = "lstm", hidden_size: int = 32, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, many_to_many: bool = False,
                 optimizer: Any = "adam", lr: float | None = None, clip: float | None = 5.0,
                 seed: int = 0, dtype: Any = None, n_classes: int | None = None) -> None:
        super().__init__(cell, hidden_size, num_layers, bidirectional, dropout, many_to_many,
                         optimizer, lr, clip, seed, dtype)
        if n_classes is not None and (int(n_classes) != n_classes or n_classes < 2):
            raise ValueError(f"n_classes must be an integer >= 2, got {n_classes}")
        self.n_classes = n_classes

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_classes": self.n_classes}

    def _make_loss(self) -> Any:
        if self.n_classes_ == 2:
            return TimeSigmoidWithLoss(ignore_label=-1)
        return TimeSoftmaxWithLoss(ignore_label=-1)

    def _prepare_y(self, y: Any, xs: Any, lengths: Any, fitting: bool) -> tuple[Any, int]:
        y = np.asarray(to_numpy(y))
        if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        if y.dtype.kind not in "iub":
            raise TypeError(f"y must hold integer class ids, got dtype {y.dtype}")
        y = y.astype(np.int64)
        want = 2 if self.many_to_many else 1
        if y.ndim != want:
            shape = "(N, T)" if self.many_to_many else "(N,)"
            raise ValueError(f"y must hold one class id per "
                             f"{'step' if self.many_to_many else 'sequence'}, shape {shape}; "
                             f"got {y.shape}")
        self._check_lengths_y(xs, y[..., None])
        if self.many_to_many and lengths is not None:
            y = np.where(np.arange(y.shape[1])[None, :] < to_numpy(lengths)[:, None], y, -1)
        labels = y[y != -1] if self.many_to_many else y.ravel()  # -1: a step without a label
        if fitting:
            hi = int(labels.max()) if labels.size else 0
            self.n_classes_ = int(self.n_classes) if self.n_classes is not None else max(hi + 1,
                                                                                          2)
        C = self.n_classes_
        if labels.size and (labels.min() < 0 or labels.max() >= C):
            bad = labels.min() if labels.min() < 0 else labels.max()
            raise ValueError(f"y holds class id {bad}, outside [0, {C - 1}]"
                             + (" (-1 marks steps without a label)" if self.many_to_many else
                                ": every sequence needs its class"))
        if C == 2:
            return to_device(y, dtype=self.dtype), 1  # targets 0/1 (or -1) for the sigmoid
        return to_device(y), C

    def _probs(self, out: Any) -> Any:
        xp = array_module(out)
        if self.n_classes_ == 2:
            p1 = 1.0 / (1.0 + xp.exp(-out))
            return xp.concatenate([1.0 - p1, p1], axis=-1)
        z = out - out.max(axis=-1, keepdims=True)
        e = xp.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def predict_proba(self, X: Any, lengths: Any = None) -> np.ndarray:
        """Class probabilities (N, C), or (N, T, C) per step."""
        self._check_fitted()
        xs, lens = self._prepare_X(X, lengths)
        return to_numpy(self._probs(self._raw(xs, lens))).astype(np.float64)

    def predict(self, X: Any, lengths: Any = None) -> np.ndarray:
        """Class ids (N,), or (N, T) per step."""
        return self.predict_proba(X, lengths).argmax(axis=-1)

    def _evaluate(self, xs: Any, ts: Any, lengths: Any) -> dict[str, float]:
        out = self._raw(xs, lengths)
        loss = float(self._make_loss().forward(out, ts))
        pred = to_numpy(self._probs(out)).argmax(axis=-1)
        t = to_numpy(ts)
        t = t.reshape(pred.shape).astype(np.int64)
        keep = t != -1
        acc = float((pred[keep] == t[keep]).mean()) if keep.any() else float("nan")
        return {"loss": loss, "accuracy": acc}

    def score(self, X: Any, y: Any, lengths: Any = None) -> float:
        """Accuracy: the fraction of labeled sequences (or steps) classified right."""
        return self.evaluate(X, y, lengths)["accuracy"]

    def _meta(self) -> dict[str, Any]:
        return {**super()._meta(), "n_classes": self.n_classes_}

    def _restore_meta(self, meta: dict[str, Any]) -> None:
        self.n_classes_ = int(meta["n_classes"])
