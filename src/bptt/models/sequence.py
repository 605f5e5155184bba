"""The network of the sequence estimators (``SequenceRegressor``, ``SequenceClassifier``):
a recurrent stack, a readout and an affine head; the estimators add the loss and the training.

    xs (N, T, D) --recurrent stack--> hs (N, T, H)            rnn | lstm | gru, num_layers,
                                                              bidirectional (H = 2 * hidden)
    many-to-one:   h = LastStep(hs, lengths)      (N, H)     each sequence's last real step
                   out = h @ W + b                (N, K)
    many-to-many:  out = hs @ W + b               (N, T, K)  TimeAffine

Sequences of different lengths are right-padded to T and given with ``lengths`` (N,) ints: the
recurrent layers carry the state over the padding (``mask``), the readout takes the last real
step. ``cell`` may also be a layer object of your own (the DIVER exercise's
:class:`~bptt.nn.simple_rnn.SimpleRNN`, say): anything with ``params``, ``grads``,
``forward(xs)`` returning (N, T, H) or (N, H), and ``backward``; a layer with its own
``optimizer`` updates itself in ``backward``, so its parameters are left out of ``params``.
"""

from __future__ import annotations

from typing import Any

from ..backend import array_module, default_dtype, get_xp
from ..initializers import xavier, zeros
from ..nn.cell_spec import layer_param_names
from ..nn.sequence_layers import LastStep
from ..nn.stacks import make_recurrent_stack
from ..nn.time_layers import TimeAffine


def padding_mask(lengths: Any, T: int, like: Any) -> Any:
    """(N, T) bool: True at each sequence's real steps."""
    xp = array_module(like)
    return xp.arange(T)[None, :] < lengths[:, None]


class SequenceNetwork:
    """The module docstring's network for inputs of ``n_features`` (D) and ``n_outputs`` (K).

    ``params``/``grads``: what an optimizer updates (a self-updating custom layer's are left
    out); ``all_params``: every parameter, in the order of ``param_names``.
    """

    def __init__(self, cell: Any, n_features: int, n_outputs: int, hidden_size: int,
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0,
                 many_to_many: bool = False, dtype: Any = None, generator: Any = None) -> None:
        self.n_features, self.n_outputs = int(n_features), int(n_outputs)
        self.many_to_many = bool(many_to_many)
        dtype = default_dtype() if dtype is None else dtype
        if isinstance(cell, str):
            self.encoder = make_recurrent_stack(cell, n_features, hidden_size,
                                                num_layers=num_layers,
                                                bidirectional=bidirectional, dropout=dropout,
                                                dtype=dtype, generator=generator)
        else:
            first = cell.params[0] if cell.params else None
            if first is not None and first.shape[0] != n_features:
                raise ValueError(f"the cell layer expects {first.shape[0]} input features "
                                 f"(rows of its first weight) but X has {n_features}")
            self.encoder = cell
        probe = self.encode(get_xp().zeros((1, 1, n_features), dtype=dtype), None)
        self.encoded_2d = probe.ndim == 2  # a custom layer returning only h_T
        if self.encoded_2d and self.many_to_many:
            raise ValueError("many_to_many needs a cell that returns every step (N, T, H); this "
                             "layer returns (N, H) (SimpleRNN: pass return_sequences=True)")
        H = probe.shape[-1]
        reverse = H // 2 if (bidirectional and isinstance(cell, str)) else 0
        self.readout = LastStep(reverse_units=reverse)
        self.head = TimeAffine(xavier(H, n_outputs, dtype=dtype, generator=generator),
                               zeros(n_outputs, dtype=dtype))
        self_updating = getattr(self.encoder, "optimizer", None) is not None
        self.params: list[Any] = ([] if self_updating else list(self.encoder.params)
                                  ) + list(self.head.params)
        self.grads: list[Any] = ([] if self_updating else list(self.encoder.grads)
                                 ) + list(self.head.grads)

    @property
    def all_params(self) -> list[Any]:
        return list(self.encoder.params) + list(self.head.params)

    @property
    def param_names(self) -> list[str]:
        """The one scheme of every model: ``encoder.rnn{k}[_reverse].{name}`` (a custom layer:
        ``encoder.{its names}``), then ``head.W``, ``head.b``."""
        names = getattr(self.encoder, "param_names", None)
        if not isinstance(names, list) or len(names) != len(self.encoder.params):
            names = layer_param_names(self.encoder)
        return [f"encoder.{n}" for n in names] + ["head.W", "head.b"]

    @property
    def legacy_param_names(self) -> list[str]:
        """The names bptt 0.1 gave (``encoder.p0``...): checkpoints written then still load."""
        return [f"encoder.p{i}" for i in range(len(self.encoder.params))] + ["head.W", "head.b"]

    def encode(self, xs: Any, mask: Any) -> Any:
        """hs (N, T, H) (or h_T (N, H) of a custom layer that returns only that)."""
        if mask is None:
            return self.encoder.forward(xs)
        try:
            return self.encoder.forward(xs, mask=mask)
        except TypeError as e:
            if "mask" not in str(e):
                raise
            raise TypeError(f"the cell {type(self.encoder).__name__} takes no mask; give "
                            f"sequences of equal length (no lengths=)") from e

    def forward(self, xs: Any, lengths: Any = None) -> Any:
        """Scores before the loss: (N, K), or (N, T, K) many-to-many."""
        mask = None if lengths is None else padding_mask(lengths, xs.shape[1], xs)
        hs = self.encode(xs, mask)
        h = hs if (self.encoded_2d or self.many_to_many) else self.readout.forward(hs, lengths)
        return self.head.forward(h)

    def backward(self, dout: Any) -> None:
        """Gradients into ``grads`` (a self-updating layer also updates itself)."""
        dh = self.head.backward(dout)
        if not (self.encoded_2d or self.many_to_many):
            dh = self.readout.backward(dh)
        self.encoder.backward(dh)

    def train(self) -> None:
        """Training mode: the stack's dropout acts (a custom layer: its own ``train()``)."""
        if callable(getattr(self.encoder, "train", None)):
            self.encoder.train()

    def eval(self) -> None:
        """Evaluation mode."""
        if callable(getattr(self.encoder, "eval", None)):
            self.encoder.eval()
