"""Recurrent language models (Deep Learning from Scratch 2, ch. 5-6): SimpleRnnlm, Rnnlm,
BetterRnnlm, and the general :class:`LanguageModel` they are special cases of.

    xs (N, T) ids -> TimeEmbedding -> [TimeDropout -> TimeRNN/LSTM/GRU] x num_layers
                  -> TimeDropout -> TimeAffine -> scores (N, T, V) -> TimeSoftmaxWithLoss(ts)

(the dropout layers only when ``dropout > 0``). Every recurrent layer is stateful: the state
at the end of one batch starts the next (truncated BPTT); ``reset_state()`` forgets it.
``backward`` runs the layers in reverse order, as in seed 000's walkthrough of SimpleRnnlm.

Weight tying (Press & Wolf 2017; the book's BetterRnnlm): the output layer's W (H, V) IS the
embedding's W (V, D) transposed, a view of the same memory (so D == H). Then

    scores = h @ W_embed.T + b           dW_embed = (embedding's gradient) + (affine's dW).T

``params``/``grads`` list every array once: the tied W appears only as ``embed.W`` and its
gradient array holds the sum above after ``backward``, so ``optimizer.update(model.params,
model.grads)`` is right. The tie is known by construction (identity), never by comparing values.

Initialisation, ``init=``:

| scheme       | embedding    | recurrent Wx, Wh, b                         | affine W, b       |
| ------------ | ------------ | ------------------------------------------- | ----------------- |
| "book"       | N(0, 0.01^2) | N(0, 1/fan_in), N(0, 1/fan_in), 0           | N(0, 1/H), 0      |
| "torch"      | N(0, 1)      | U(+-1/sqrt(H)), same, sum of two such       | U(+-1/sqrt(H))    |
| "orthogonal" | U(+-0.1)     | N(0, 1/fan_in), orthogonal per gate, 0 but  | U(+-0.1), 0       |
|              |              | the carry gate's +1 (LSTM f, GRU 1 - z)     |                   |

"torch" is what ``nn.Embedding``, ``nn.LSTM``/``GRU``/``RNN`` (two biases) and ``nn.Linear``
start from; "orthogonal" follows LSTM practice (Saxe et al. 2014, Jozefowicz et al. 2015), with the
embedding range of PyTorch's word_language_model example.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_file, read_npz
from ..backend import array_module, default_dtype, to_numpy
from ..initializers import Recurrent, Uniform, Xavier, normal, uniform, xavier, zeros
from ..nn.cell_spec import layer_param_names
from ..nn.registry import get_cell
from ..nn.regularizers import ActivationPenalty, EmbeddingDropout
from ..nn.stacks import make_recurrent_stack
from ..nn.time_layers import TimeAffine, TimeDropout, TimeEmbedding, TimeSoftmaxWithLoss
from ..validate import check_ndim, check_sizes


class LanguageModel:
    """Recurrent language model: embedding, stacked RNN/LSTM/GRU layers, affine, softmax loss.

    Args:
        vocab_size: V. embed_size: D (word vector size). hidden_size: H.
        cell: a registered cell name ('rnn', 'lstm' (gates f, g, i, o), 'gru', 'mingru'...).
        num_layers: recurrent layers stacked.
        dropout: ratio of the dropout before each recurrent layer and before the affine layer
            (0 = none). variational: one mask per sequence for all time steps (Gal & Ghahramani).
        tie_weights: the affine W is the embedding's W transposed (needs D == the last
            layer's hidden size).
        last_hidden: hidden size of the last recurrent layer (default H), as AWD-LSTM's
            400-unit last layer under 1,150-unit ones, so that a tied output fits D.
        init: "book" (default here; the presets choose theirs), "torch" or "orthogonal"
            (the module docstring).
        cell_options: the cell's own options (its registry entry lists them), e.g.
            ``{"reset_after": True}`` for PyTorch's GRU or ``{"nonlinearity": "relu"}``.
        weight_drop, embed_dropout, ar, tar: AWD-LSTM's regularisers
            (:mod:`bptt.nn.regularizers`): DropConnect ratio on every recurrent weight Wh (IndRNN:
            u), ratio of whole words dropped from the embedding, and the AR / TAR coefficients
            on the last recurrent layer's output (after / before its dropout). All 0: off.
        dtype: of the parameters (default :func:`bptt.default_dtype`, float32).
        seed: seed of the initial weights (default: bptt's generator, see :func:`bptt.seed`).

    ``forward(xs, ts)``: xs, ts (N, T) ids -> mean cross-entropy per token (a 0-d array).
    ``backward(dout=1)`` fills ``grads``. ``predict(xs)`` -> scores (N, T, V).
    """

    def __init__(self, vocab_size: int, embed_size: int = 100, hidden_size: int = 100,
                 cell: str = "lstm", num_layers: int = 1, dropout: float = 0.0,
                 variational: bool = False, tie_weights: bool = False, dtype: Any = None,
                 seed: int | None = None, weight_drop: float = 0.0, embed_dropout: float = 0.0,
                 ar: float = 0.0, tar: float = 0.0, last_hidden: int | None = None,
                 init: str = "book", cell_options: dict[str, Any] | None = None) -> None:
        check_sizes(vocab_size=vocab_size, embed_size=embed_size, hidden_size=hidden_size,
                    num_layers=num_layers)
        V, D, H, L = int(vocab_size), int(embed_size), int(hidden_size), int(num_layers)
        check_sizes(last_hidden=H if last_hidden is None else last_hidden)
        H_last = H if last_hidden is None else int(last_hidden)
        spec = get_cell(cell)
        options = spec.checked_options(cell_options)
        if init not in INIT_SCHEMES:
            raise ValueError(f"unknown init {init!r}: choose one of {', '.join(INIT_SCHEMES)}")
        if tie_weights and D != H_last:
            raise ValueError(f"tie_weights needs embed_size == the last layer's hidden size (the "
                             f"affine W is the embedding's W transposed), got {D} and {H_last}")
        dtype = np.dtype(dtype) if dtype is not None else default_dtype()
        self.vocab_size, self.embed_size, self.hidden_size = V, D, H
        self.last_hidden = None if last_hidden is None else H_last
        self.cell, self.num_layers, self.dropout = cell, L, float(dropout)
        self.variational, self.tie_weights, self.dtype = bool(variational), bool(tie_weights), dtype
        gen = np.random.default_rng(seed) if seed is not None else None
        kw = {"dtype": dtype, "generator": gen}
        self.init, self.cell_options = init, options

        self.weight_drop, self.embed_dropout = float(weight_drop), float(embed_dropout)
        self.ar, self.tar = float(ar), float(tar)
        embed_W = {"book": lambda: normal((V, D), 0.01, **kw),
                   "torch": lambda: normal((V, D), 1.0, **kw),
                   "orthogonal": lambda: uniform((V, D), 0.1, **kw)}[init]()  # (V, D)
        self.embed = (EmbeddingDropout(embed_W, embed_dropout) if embed_dropout > 0
                      else TimeEmbedding(embed_W))
        # [TimeDropout ->] recurrent layer (weight drop around it), num_layers times
        self.rnn = make_recurrent_stack(
            cell, D, H, L, last_hidden=last_hidden, dropout=dropout, input_dropout=True,
            variational=variational, weight_drop=weight_drop, stateful=True, dtype=dtype,
            initializer=lambda h_out: _layer_init(init, h_out, kw), **options)
        if init == "orthogonal":
            for k, rnn in enumerate(self.rnn.layers):
                _open_carry_gate(rnn, spec, H_last if k == L - 1 else H)
        self.layers: list[Any] = [self.embed, *self.rnn.sequence]
        self.penalties: list[ActivationPenalty] = []
        # every layer that acts only in training
        self.drop_layers: list[Any] = [self.embed] if embed_dropout > 0 else []
        self.drop_layers += [m for m in self.rnn.sequence if hasattr(m, "train_flg")]
        if tar > 0:  # on the last recurrent layer's raw output
            self._add_penalty(ActivationPenalty(beta=tar))
        if dropout > 0:
            self._add_dropout()
        if ar > 0:  # on its output after dropout
            self._add_penalty(ActivationPenalty(alpha=ar))
        if init == "book":
            affine_W, affine_b = xavier(H_last, V, **kw), zeros(V, dtype=dtype)  # (H, V)
        elif init == "torch":  # nn.Linear: U(+-1/sqrt(fan_in)) for both
            k = 1 / math.sqrt(H_last)
            affine_W, affine_b = uniform((H_last, V), k, **kw), uniform(V, k, **kw)
        else:
            affine_W, affine_b = uniform((H_last, V), 0.1, **kw), zeros(V, dtype=dtype)
        if tie_weights:
            affine_W = embed_W.T
        self.affine = TimeAffine(affine_W, affine_b)
        if tie_weights:  # one gradient array: the output layer writes it, the embedding adds
            self.affine.grads[0] = self.embed.grads[0].T
            self.embed.accumulate = True
        self.layers.append(self.affine)
        self.loss_layer = TimeSoftmaxWithLoss()
        self._collect()

    def _add_penalty(self, layer: ActivationPenalty) -> None:
        self.penalties.append(layer)
        self.drop_layers.append(layer)
        self.layers.append(layer)

    @property
    def penalty(self) -> float:
        """AR + TAR of the last training forward (0 when off); not part of ``forward``'s loss."""
        return sum(p.penalty for p in self.penalties)

    def _add_dropout(self) -> None:
        d = TimeDropout(self.dropout, variational=self.variational)
        self.drop_layers.append(d)
        self.layers.append(d)

    def _collect(self) -> None:
        """Name every parameter once; the tied affine W (a view of embed.W) is left out."""
        self.param_names: list[str] = []
        self.params: list[Any] = []
        self.grads: list[Any] = []
        named = [(f"embed.{n}", p, g) for n, p, g in zip(
            layer_param_names(self.embed), self.embed.params, self.embed.grads, strict=True)]
        named += zip(self.rnn.param_names, self.rnn.params, self.rnn.grads, strict=True)
        # a tied W is embed.W and its gradient (affine writes it, embed adds)
        named += [(f"affine.{n}", p, g) for n, p, g in zip(
            layer_param_names(self.affine), self.affine.params, self.affine.grads, strict=True)
                  if not (n == "W" and self.tie_weights)]
        for name, p, g in named:
            self.param_names.append(name)
            self.params.append(p)
            self.grads.append(g)

    # -- the DL2 interface ---------------------------------------------------------------------
    def _ids(self, a: Any, name: str) -> Any:
        xp = array_module(self.embed.params[0])
        a = xp.asarray(a)
        check_ndim(name, a, 2, "N, T")
        return a

    def train(self) -> None:
        """Training mode: dropout, weight drop and the AR/TAR penalties act."""
        for d in self.drop_layers:
            d.train()

    def eval(self) -> None:
        """Evaluation mode: they do not."""
        for d in self.drop_layers:
            d.eval()

    def predict(self, xs: Any, train_flg: bool = False) -> Any:
        """Scores (N, T, V) of the next token after each position of xs (N, T), stateful;
        ``train_flg`` (the book's argument) sets the mode first."""
        self.train() if train_flg else self.eval()
        out = self._ids(xs, "language model input xs")
        for layer in self.layers:
            out = layer.forward(out)
        return out

    def forward(self, xs: Any, ts: Any, train_flg: bool = True) -> Any:
        """Mean cross-entropy of the targets ts (N, T) given the inputs xs (N, T). With AR/TAR
        on, ``backward`` follows the gradient of this + :attr:`penalty`."""
        scores = self.predict(xs, train_flg)  # (N, T, V)
        return self.loss_layer.forward(scores, self._ids(ts, "language model targets ts"))

    def backward(self, dout: Any = 1) -> Any:
        """Gradients of every parameter into ``grads`` (tied ones summed); returns None."""
        dout = self.loss_layer.backward(dout)
        for layer in reversed(self.layers):  # the tied W's gradient: affine's, then += embed's
            dout = layer.backward(dout)
        return dout

    @property
    def rnn_layers(self) -> list[Any]:
        """The recurrent layers, first to last (weight drop around them when on)."""
        return self.rnn.layers

    def reset_state(self) -> None:
        self.rnn.reset_state()

    def get_state(self) -> list[tuple[Any, Any]]:
        """(h, c) of each recurrent layer (None before the first forward; c None but LSTM)."""
        return [(layer.h, layer.c) for layer in self.rnn_layers]

    def set_state(self, states: list[tuple[Any, Any]]) -> None:
        """Restore what :meth:`get_state` returned."""
        if len(states) != len(self.rnn_layers):
            raise ValueError(f"{len(states)} states for {len(self.rnn_layers)} recurrent layers")
        for layer, (h, c) in zip(self.rnn_layers, states, strict=True):
            if h is None:
                layer.reset_state()
            else:
                layer.set_state(h, c)  # the next forward starts from (h, c)

    # -- configuration and parameters on disk -------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-able); ``LanguageModel(**config)`` rebuilds the model."""
        return {"vocab_size": self.vocab_size, "embed_size": self.embed_size,
                "hidden_size": self.hidden_size, "cell": self.cell,
                "num_layers": self.num_layers, "dropout": self.dropout,
                "variational": self.variational, "tie_weights": self.tie_weights,
                "dtype": self.dtype.name, "weight_drop": self.weight_drop,
                "embed_dropout": self.embed_dropout, "ar": self.ar, "tar": self.tar,
                "last_hidden": self.last_hidden, "init": self.init,
                "cell_options": self.cell_options or None}

    def num_params(self) -> int:
        return int(sum(p.size for p in self.params))

    def save_params(self, path: str | os.PathLike[str]) -> None:
        """Write the parameters to an .npz (by name; written to a temp file, then renamed)."""
        path = Path(path)
        arrays = {n: to_numpy(p) for n, p in zip(self.param_names, self.params, strict=True)}
        with atomic_file(path) as f:
            np.savez(f, **arrays)

    def load_params(self, path: str | os.PathLike[str]) -> None:
        """Read parameters saved by :meth:`save_params`, checking names and shapes."""
        self.set_params(read_npz(path), source=path)

    def set_params(self, arrays: dict[str, Any], source: Any = "the arrays") -> None:
        """Copy parameters by name into the model (in place: ties hold), checking that the
        names, shapes and dtypes fit; ``source`` names where they came from in errors."""
        names = set(self.param_names)
        missing, extra = sorted(names - set(arrays)), sorted(set(arrays) - names)
        if missing or extra:
            raise ValueError(
                f"{source} does not match this model: "
                + (f"missing {', '.join(missing)}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"unexpected {', '.join(extra)}" if extra else "")
                + " (saved from a model with another cell, number of layers or tying?)"
            )
        for n, p in zip(self.param_names, self.params, strict=True):
            a = arrays[n]
            if tuple(a.shape) != tuple(p.shape):
                raise ValueError(f"{source}: parameter {n} has shape {tuple(a.shape)} but the "
                                 f"model's is {tuple(p.shape)} (saved with other sizes?)")
            if a.dtype.kind != "f":
                raise ValueError(f"{source}: parameter {n} has dtype {a.dtype}, not a float")
        for n, p in zip(self.param_names, self.params, strict=True):
            p[...] = array_module(p).asarray(arrays[n], dtype=p.dtype)

    def __repr__(self) -> str:
        extra = (f", dropout={self.dropout}" if self.dropout else "") + (
            ", tied" if self.tie_weights else "")
        return (f"{type(self).__name__}(V={self.vocab_size}, D={self.embed_size}, "
                f"H={self.hidden_size}"
                + (f" (last {self.last_hidden})" if self.last_hidden else "")
                + f", {self.num_layers}x{self.cell}{extra}, "
                f"{self.num_params():,} params, {self.dtype.name})")


INIT_SCHEMES = ("book", "torch", "orthogonal")


class _TorchRecurrent(Uniform):
    """torch.nn.LSTM/GRU/RNN's start: every weight U(+-1/sqrt(H)); b = b_ih + b_hh, two such."""

    def B(self, n_out: int) -> Any:
        return super().B(n_out) + super().B(n_out)


def _layer_init(scheme: str, H: int, kw: dict[str, Any]) -> Any:
    if scheme == "torch":
        return _TorchRecurrent(1 / math.sqrt(H), **kw)
    if scheme == "orthogonal":
        return Recurrent(**kw)
    return Xavier(**kw)


def _open_carry_gate(layer: Any, spec: Any, H: int) -> None:
    """Bias +1 on the gate that keeps the state (LSTM f; GRU z with carry 1 - z: -1)."""
    if spec.carry_gate is None:
        return
    block, sign = spec.carry_gate
    for name, p in zip(layer_param_names(layer), layer.params, strict=True):
        if name == "b" and p.shape == (spec.gates * H,):
            p[block * H:(block + 1) * H] = sign * 1.0


class SimpleRnnlm(LanguageModel):
    """The book's SimpleRnnlm (ch. 5): TimeEmbedding -> TimeRNN -> TimeAffine -> softmax loss."""

    def __init__(self, vocab_size: int, wordvec_size: int, hidden_size: int, *,
                 dtype: Any = None, seed: int | None = None) -> None:
        super().__init__(vocab_size, wordvec_size, hidden_size, cell="rnn", dtype=dtype,
                         seed=seed)


class Rnnlm(LanguageModel):
    """The book's Rnnlm (ch. 6): one LSTM layer; PTB test perplexity ~136 after 4 epochs."""

    def __init__(self, vocab_size: int = 10000, wordvec_size: int = 100,
                 hidden_size: int = 100, *, dtype: Any = None, seed: int | None = None) -> None:
        super().__init__(vocab_size, wordvec_size, hidden_size, cell="lstm", dtype=dtype,
                         seed=seed)


class BetterRnnlm(LanguageModel):
    """The book's BetterRnnlm (ch. 6): two LSTM layers, dropout before each and before the
    affine layer, weight tying (so wordvec_size == hidden_size)."""

    def __init__(self, vocab_size: int = 10000, wordvec_size: int = 650,
                 hidden_size: int = 650, dropout_ratio: float = 0.5, *, dtype: Any = None,
                 seed: int | None = None) -> None:
        super().__init__(vocab_size, wordvec_size, hidden_size, cell="lstm", num_layers=2,
                         dropout=dropout_ratio, tie_weights=True, dtype=dtype, seed=seed)


def model_from_config(config: dict[str, Any]) -> LanguageModel:
    """Rebuild a model from its :attr:`LanguageModel.config` (fresh weights)."""
    keys = {"vocab_size", "embed_size", "hidden_size", "cell", "num_layers", "dropout",
            "variational", "tie_weights", "dtype", "weight_drop", "embed_dropout", "ar", "tar",
            "last_hidden", "init", "cell_options"}
    unknown = set(config) - keys
    if unknown or "vocab_size" not in config:
        raise ValueError(f"not a language-model config: unknown keys {sorted(unknown)}"
                         if unknown else "language-model config lacks vocab_size")
    return LanguageModel(**config)
