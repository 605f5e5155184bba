"""Bidirectional and multi-layer recurrent layers built from TimeRNN / TimeLSTM / TimeGRU.

- :class:`TimeBidirectional`: one layer reads the sequence forward, another reads it backward
  (within each sequence's length when a mask is given); outputs are concatenated (N, T, 2H).
- :class:`TimeStack`: layers applied in turn, with optional dropout between them.
- :func:`make_recurrent_stack`: the ``torch.nn.LSTM(input_size, hidden_size, num_layers,
  bidirectional=..., dropout=...)`` of bptt, with freshly initialized parameters.

States follow PyTorch's layout: ``set_state(h, c)`` and ``state`` use arrays of shape
(num_layers * num_directions, N, H), direction fastest (layer 0 forward, layer 0 backward,
layer 1 forward, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backend import array_module, default_dtype
from ..initializers import Xavier, get_initializer
from ..validate import check_sizes
from .cell_spec import layer_param_names
from .cells.lstm import TimeLSTM
from .registry import get_cell, make_time_layer
from .regularizers import WeightDrop
from .time_layers import TimeDropout

_MERGES = ("concat", "sum")


def reverse_index(xp: Any, mask: Any, N: int, T: int) -> Any:
    """(N, T) int index that reverses the real (mask 1) steps of each row, leaving padding put.

    Row [a, b, c, pad, pad] -> [c, b, a, pad, pad]; with holes, the real positions keep their
    places and their contents are reversed. The map is its own inverse.
    """
    t = xp.arange(T)
    real = xp.asarray(mask) != 0  # (N, T)
    key = xp.where(real, t, T + t)  # real steps first, in order, then padding
    order = xp.argsort(key, axis=1)  # order[n, j]: position of the j-th real step (then pads)
    k = real.sum(axis=1, keepdims=True)  # (N, 1) real steps per row
    j = xp.broadcast_to(t, (N, T))
    src_j = xp.where(j < k, k - 1 - j, j)  # reversed rank among the real steps
    rows = xp.arange(N)[:, None]
    rev = xp.empty((N, T), dtype=order.dtype)
    rev[rows, order] = order[rows, src_j]
    return rev


def _gather_time(xs: Any, rev: Any) -> Any:
    """xs[n, rev[n, t]] for all n, t: (N, T, ...) -> (N, T, ...)."""
    if rev is None:
        return xs[:, ::-1]
    xp = array_module(xs)
    return xs[xp.arange(xs.shape[0])[:, None], rev]


def _stacked_state(states: Sequence[Any]) -> Any:
    if any(s is None for s in states):
        return None
    return array_module(states[0]).stack(states)


class TimeBidirectional:
    """A forward and a backward Time layer over the same sequence.

        hs_f = forward_layer(xs)                     (N, T, H)
        hs_b = R(backward_layer(R(xs)))              (N, T, H)
        hs   = [hs_f, hs_b] along the last axis      (N, T, 2H)   (merge="sum": hs_f + hs_b)
    where R reverses time, within each sequence's length when ``mask`` (N, T) is given (padding
    stays in place, so a right-padded batch gives each sequence's own outputs). Backward:
        dxs = forward_layer.backward(dhs[..., :H]) + R(backward_layer.backward(R(dhs[..., H:])))
    (merge="sum": both layers get all of dhs).

    ``params``/``grads``: the forward layer's then the backward layer's. ``set_state(h, c)``
    takes (2, N, H) arrays (forward, backward); the backward layer starts at the last real step.
    """

    def __init__(self, forward_layer: Any, backward_layer: Any, merge: str = "concat") -> None:
        if merge not in _MERGES:
            raise ValueError(f"merge must be one of {', '.join(_MERGES)}, got {merge!r}")
        self.forward_layer, self.backward_layer = forward_layer, backward_layer
        self.merge = merge
        self.params = forward_layer.params + backward_layer.params
        self.grads = forward_layer.grads + backward_layer.grads
        self.rev = None
        self.H = forward_layer.H

    @property
    def num_directions(self) -> int:
        return 2

    def forward(self, xs: Any, mask: Any = None) -> Any:
        xp = array_module(xs)
        N, T = xs.shape[:2]
        self.rev = None if mask is None else reverse_index(xp, mask, N, T)
        hs_f = self.forward_layer.forward(xs, mask)
        hs_b = _gather_time(self.backward_layer.forward(_gather_time(xs, self.rev), mask),
                            self.rev)
        if self.merge == "sum":
            return hs_f + hs_b
        return xp.concatenate([hs_f, hs_b], axis=2)  # (N, T, 2H)

    def backward(self, dhs: Any) -> Any:
        if self.merge == "sum":
            dhs_f = dhs_b = dhs
        else:
            H = dhs.shape[2] // 2
            dhs_f, dhs_b = dhs[..., :H], dhs[..., H:]
        dxs = self.forward_layer.backward(dhs_f)
        dxs_b = self.backward_layer.backward(_gather_time(dhs_b, self.rev))
        dxs += _gather_time(dxs_b, self.rev)
        return dxs

    # -- state: (2, N, H) arrays, [forward, backward] ------------------------------------------
    def set_state(self, h: Any, c: Any = None) -> None:
        self.forward_layer.set_state(h[0], None if c is None else c[0])
        self.backward_layer.set_state(h[1], None if c is None else c[1])

    def reset_state(self) -> None:
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    @property
    def h(self) -> Any:
        return _stacked_state([self.forward_layer.h, self.backward_layer.h])

    @property
    def c(self) -> Any:
        return _stacked_state([self.forward_layer.c, self.backward_layer.c])

    @property
    def dh(self) -> Any:
        return _stacked_state([self.forward_layer.dh, self.backward_layer.dh])

    @property
    def dc(self) -> Any:
        return _stacked_state([self.forward_layer.dc, self.backward_layer.dc])


def TimeBiLSTM(Wx_f: Any, Wh_f: Any, b_f: Any, Wx_b: Any, Wh_b: Any, b_b: Any,
               merge: str = "concat") -> TimeBidirectional:
    """Bidirectional LSTM: ``TimeBidirectional(TimeLSTM(Wx_f, Wh_f, b_f), TimeLSTM(Wx_b, ...))``.

    xs (N, T, D) -> hs (N, T, 2H). Params: Wx_* (D, 4H), Wh_* (H, 4H), b_* (4H,), blocks f,g,i,o.
    """
    return TimeBidirectional(TimeLSTM(Wx_f, Wh_f, b_f), TimeLSTM(Wx_b, Wh_b, b_b), merge)


class TimeStack:
    """Time layers applied in turn: hs_0 = xs, hs_l = layer_l(dropout(hs_{l-1})), output hs_L.

        forward:  hs_l = layers[l].forward(d_l(hs_{l-1}), mask)      d_l = TimeDropout(dropout)
                  for l >= 1 (between layers, as torch.nn.LSTM); d_0 = identity, or a dropout
                  too when ``input_dropout`` (the book's BetterRnnlm: dropout before each LSTM)
        backward: dhs_{l-1} = d_l.backward(layers[l].backward(dhs_l)), l = L..1; returns dxs

    ``layers``: TimeRNN / TimeLSTM / TimeGRU / TimeBidirectional (anything with forward(xs,
    mask), backward, params, grads, set_state, reset_state). ``params``/``grads`` concatenate the
    layers' lists. ``variational``: one dropout mask per sequence for all time steps.
    ``train()``/``eval()`` switch the dropouts and any layer with a mode of its own (weight
    drop). ``sequence`` lists the dropouts and layers in the order forward runs them. States:
    see the module docstring.
    """

    def __init__(self, layers: Sequence[Any], dropout: float | None = None,
                 generator: Any = None, *, input_dropout: bool = False,
                 variational: bool = False) -> None:
        if not layers:
            raise ValueError("TimeStack needs at least one layer")
        self.layers = list(layers)
        ratio = float(dropout or 0.0)

        def drop(first: bool) -> Any:
            if ratio == 0 or (first and not input_dropout):
                return None
            return TimeDropout(ratio, variational=variational, generator=generator)

        self.dropouts = [drop(k == 0) for k in range(len(self.layers))]
        self.params = [p for layer in self.layers for p in layer.params]
        self.grads = [g for layer in self.layers for g in layer.grads]
        self.bias = True  # torch's bias=...: False when made from a module without biases

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def param_names(self) -> list[str]:
        """The names of ``params``, the one scheme of every model: ``rnn{k}.{name}`` for layer
        k (``rnn{k}_reverse.{name}`` for its backward direction), the name from the layer
        (``Wx``, ``Wh``, ``b``, or its own ``param_names``)."""
        names = []
        for k, layer in enumerate(self.layers):
            dirs = ([("", layer.forward_layer), ("_reverse", layer.backward_layer)]
                    if isinstance(layer, TimeBidirectional) else [("", layer)])
            for suffix, lay in dirs:
                names += [f"rnn{k}{suffix}.{n}" for n in layer_param_names(lay)]
        return names

    @property
    def num_directions(self) -> int:
        return getattr(self.layers[0], "num_directions", 1)

    @property
    def sequence(self) -> list[Any]:
        """[d_0, layer_0, d_1, layer_1, ...] without the absent dropouts: what forward runs."""
        return [m for d, layer in zip(self.dropouts, self.layers, strict=True)
                for m in (d, layer) if m is not None]

    def train(self) -> None:
        for m in self.sequence:
            if hasattr(m, "train_flg"):
                m.train()

    def eval(self) -> None:
        for m in self.sequence:
            if hasattr(m, "train_flg"):
                m.eval()

    def forward(self, xs: Any, mask: Any = None) -> Any:
        hs = xs
        for layer, drop in zip(self.layers, self.dropouts, strict=True):
            if drop is not None:
                hs = drop.forward(hs)
            hs = layer.forward(hs, mask)
        return hs

    def backward(self, dhs: Any) -> Any:
        for layer, drop in zip(reversed(self.layers), reversed(self.dropouts), strict=True):
            dhs = layer.backward(dhs)
            if drop is not None:
                dhs = drop.backward(dhs)
        return dhs

    # -- state: (num_layers * num_directions, N, H) arrays ---------------------------------
    def _split(self, s: Any) -> list[Any]:
        if s is None:
            return [None] * self.num_layers
        nd = self.num_directions
        want = self.num_layers * nd
        if s.ndim != 3 or s.shape[0] != want:
            raise ValueError(f"state must have shape (num_layers * num_directions, N, H) with "
                             f"first axis {want}, got {tuple(s.shape)}")
        return [s[k * nd] if nd == 1 else s[k * nd:(k + 1) * nd] for k in range(self.num_layers)]

    def set_state(self, h: Any, c: Any = None) -> None:
        """Start the next forward from h (and c for LSTM), (num_layers * num_directions, N, H)."""
        for layer, hk, ck in zip(self.layers, self._split(h), self._split(c), strict=True):
            layer.set_state(hk, ck)

    def reset_state(self) -> None:
        for layer in self.layers:
            layer.reset_state()

    def _gather(self, attr: str) -> Any:
        parts = [getattr(layer, attr) for layer in self.layers]
        if any(p is None for p in parts):
            return None
        xp = array_module(parts[0])
        return xp.concatenate([p if p.ndim == 3 else p[None] for p in parts])

    @property
    def h(self) -> Any:
        """Last hidden state of every layer/direction (num_layers * num_directions, N, H)."""
        return self._gather("h")

    @property
    def c(self) -> Any:
        """Last cell state (LSTM), like ``h``; None for RNN/GRU."""
        return self._gather("c")

    @property
    def dh(self) -> Any:
        """Gradient of the initial hidden states after ``backward``, like ``h``."""
        return self._gather("dh")

    @property
    def dc(self) -> Any:
        return self._gather("dc")




def make_recurrent_stack(cell: str = "lstm", input_size: int = 1, hidden_size: int = 1,
                         num_layers: int = 1, *, bidirectional: bool = False,
                         dropout: float = 0.0, stateful: bool = False, dtype: Any = None,
                         initializer: Any = None, nonlinearity: str = "tanh",
                         reset_after: bool = False, generator: Any = None,
                         fused: bool = True, last_hidden: int | None = None,
                         input_dropout: bool = False, variational: bool = False,
                         weight_drop: float = 0.0, **cell_options: Any) -> TimeStack:
    """A stack of ``num_layers`` recurrent Time layers, like ``torch.nn.LSTM(...)``: the one
    way a recurrent stack is built (the language models' AWD stack included).

    xs (N, T, input_size) -> hs (N, T, hidden_size * (2 if bidirectional else 1)). Layer l > 0
    reads the previous layer's output (hidden_size * num_directions features); ``dropout`` is
    applied between layers (and before the first with ``input_dropout``; one mask per
    sequence when ``variational``). ``last_hidden``: the last layer's hidden size if not
    ``hidden_size`` (AWD-LSTM's smaller last layer). ``weight_drop``: DropConnect ratio on each
    layer's recurrent weight (:class:`~bptt.nn.regularizers.WeightDrop`).
    ``initializer``: an object with ``W(n_in, n_out)`` and ``B(n_out)``
    (``bptt.initializers.Xavier()``...), a function of a layer's hidden size giving one, a name
    or float for ``bptt.initializers.get_initializer``, or None for N(0, 1/n_in) weights and
    zero biases. ``cell``: a registered cell name (:func:`bptt.register_cell`).
    ``nonlinearity`` ("tanh"/"relu") is for cell="rnn", ``reset_after`` for cell="gru";
    ``cell_options`` go to a registered cell's constructor. ``fused=False`` runs even the
    built-in cells through the generic :class:`~bptt.nn.time_cell.TimeCell` (the same numbers,
    slower).
    """
    spec = get_cell(cell)
    options = spec.checked_options({"nonlinearity": nonlinearity, "reset_after": reset_after,
                                    **cell_options},
                                   defaults={"nonlinearity": "tanh", "reset_after": False})
    check_sizes(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
    check_sizes(last_hidden=hidden_size if last_hidden is None else last_hidden)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if weight_drop > 0 and not spec.recurrent_params:
        raise ValueError(f"weight drop needs a recurrent weight, and the {cell!r} cell has "
                         f"none (its state enters without a weight); leave it 0")
    dtype = default_dtype() if dtype is None else dtype
    if initializer is None:
        init: Any = Xavier(dtype=dtype, generator=generator)  # N(0, 1/n_in), biases 0
    elif hasattr(initializer, "W"):
        init = initializer
    elif callable(initializer):
        init = None  # asked per layer
    else:
        init = get_initializer(initializer, dtype=dtype, generator=generator)
    nd = 2 if bidirectional else 1

    def one(D: int, H: int) -> Any:
        layer = recurrent_layer(spec, D, H, initializer(H) if init is None else init,
                                stateful=stateful,
                                fused=fused, dtype=dtype, **options)
        if weight_drop > 0:
            layer = WeightDrop(layer, weight_drop, name=spec.recurrent_params[0])
        return layer

    layers = []
    for k in range(num_layers):
        D = input_size if k == 0 else hidden_size * nd
        H = hidden_size if k < num_layers - 1 or last_hidden is None else last_hidden
        layers.append(TimeBidirectional(one(D, H), one(D, H)) if bidirectional else one(D, H))
    return TimeStack(layers, dropout=dropout, generator=generator, input_dropout=input_dropout,
                     variational=variational)


def recurrent_layer(spec: Any, input_size: int, hidden_size: int, init: Any, *,
                    stateful: bool = False, fused: bool = True, dtype: Any = None,
                    **options: Any) -> Any:
    """One recurrent Time layer of the cell ``spec``, its parameters drawn by ``init`` (an
    object with ``W(n_in, n_out)`` and ``B(n)``): the one place a recurrent layer is built,
    for :func:`make_recurrent_stack`."""
    params = spec.init_params(input_size, hidden_size, init)
    if dtype is not None:
        params = [p.astype(dtype, copy=False) for p in params]
    return make_time_layer(spec, *params, stateful=stateful, fused=fused, **options)
