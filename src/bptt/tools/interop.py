"""PyTorch interop: ``torch.nn.RNN/LSTM/GRU`` <-> bptt recurrent layers, weights both ways.

``torch`` is imported inside the functions that need it, never at import time.

Weight mapping (PyTorch stores W_ih (G*H, D), W_hh (G*H, H), b_ih, b_hh (G*H,), blocks along
the rows; bptt stores Wx (D, G*H), Wh (H, G*H), b (G*H,), blocks along the columns)::

    RNN   Wx = W_ih.T      Wh = W_hh.T      b = b_ih + b_hh
    LSTM  torch blocks i, f, g, o  ->  bptt blocks f, g, i, o (same equations, reordered)
          Wx = W_ih.T[:, f g i o]   Wh = W_hh.T[:, f g i o]   b = (b_ih + b_hh)[f g i o]
    GRU   torch blocks r, z, n  ->  bptt blocks z, r, h~ with reset_after=True. PyTorch's
          h = (1 - z_t) * n + z_t * h_prev and bptt's h = (1 - z) * h_prev + z * h~ agree with
          z = 1 - z_t = sigmoid(-a_z): the z block's weights and bias are NEGATED.
          Wx = [-W_iz.T, W_ir.T, W_in.T]   Wh = [-W_hz.T, W_hr.T, W_hn.T]
          b = [-(b_iz + b_hz), b_ir + b_hr, b_in]   bh = b_hn  (inside r * (h @ Whh + bh))

``to_torch`` goes back: b goes to ``bias_ih`` and zeros to ``bias_hh`` (except GRU's
``bias_hh`` n block = bh). With ``grads=True`` it gives gradients laid out the same way; as
b = b_ih + b_hh, both bias gradients equal db (GRU n block: d b_in = db_h~, d b_hn = dbh).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import to_numpy
from ..nn.stacks import TimeBidirectional, TimeStack, make_cell_layer
from ..nn.time_recurrent import TimeGRU, TimeLSTM, TimeRNN

# per cell: (number of gate blocks, bptt block k = torch block ORDER[k], sign of bptt block k)
_LAYOUT = {
    "rnn": (1, [0], [1.0]),
    "lstm": (4, [1, 2, 0, 3], [1.0, 1.0, 1.0, 1.0]),  # f, g, i, o <- torch i, f, g, o
    "gru": (3, [1, 0, 2], [-1.0, 1.0, 1.0]),  # z, r, h~ <- torch r, z, n (z negated)
}
_MODES = {"RNN_TANH": ("rnn", "tanh"), "RNN_RELU": ("rnn", "relu"), "LSTM": ("lstm", "tanh"),
          "GRU": ("gru", "tanh")}


def _to_bptt_blocks(a: Any, cell: str, H: int) -> Any:
    """Torch rows (G*H, ...) -> bptt order and signs, still along axis 0."""
    _, order, sign = _LAYOUT[cell]
    return np.concatenate([sign[k] * a[j * H:(j + 1) * H] for k, j in enumerate(order)])


def _to_torch_blocks(a: Any, cell: str, H: int) -> Any:
    """bptt rows (G*H, ...) in bptt order -> torch order and signs (inverse of the above)."""
    _, order, sign = _LAYOUT[cell]
    out = np.empty_like(a)
    for k, j in enumerate(order):
        out[j * H:(j + 1) * H] = sign[k] * a[k * H:(k + 1) * H]
    return out


def params_from_torch(cell: str, w_ih: Any, w_hh: Any, b_ih: Any = None,
                      b_hh: Any = None) -> list[Any]:
    """bptt [Wx, Wh, b] (+ [bh] for GRU) from one direction of one torch layer (NumPy arrays)."""
    H = w_hh.shape[1]
    G = _LAYOUT[cell][0]
    dtype = w_ih.dtype
    b_ih = np.zeros(G * H, dtype) if b_ih is None else b_ih
    b_hh = np.zeros(G * H, dtype) if b_hh is None else b_hh
    Wx = np.ascontiguousarray(_to_bptt_blocks(w_ih, cell, H).T)  # (D, G*H)
    Wh = np.ascontiguousarray(_to_bptt_blocks(w_hh, cell, H).T)  # (H, G*H)
    if cell != "gru":
        return [Wx, Wh, _to_bptt_blocks(b_ih + b_hh, cell, H)]
    b_sum = b_ih.copy()
    b_sum[:2 * H] += b_hh[:2 * H]  # r, z: one bias suffices; n: b_hn stays inside r * (...)
    return [Wx, Wh, _to_bptt_blocks(b_sum, cell, H), b_hh[2 * H:].copy()]


def params_to_torch(cell: str, params: list[Any]) -> tuple[Any, Any, Any, Any]:
    """(w_ih, w_hh, b_ih, b_hh) NumPy arrays from bptt [Wx, Wh, b(, bh)] (or their grads)."""
    Wx, Wh, b = (to_numpy(p) for p in params[:3])
    H = Wh.shape[0]
    w_ih = _to_torch_blocks(np.ascontiguousarray(Wx.T), cell, H)
    w_hh = _to_torch_blocks(np.ascontiguousarray(Wh.T), cell, H)
    b_ih = _to_torch_blocks(b, cell, H)
    b_hh = np.zeros_like(b_ih)
    if cell == "gru":
        b_hh[2 * H:] = to_numpy(params[3])
    return w_ih, w_hh, b_ih, b_hh


def grads_to_torch(cell: str, grads: list[Any]) -> tuple[Any, Any, Any, Any]:
    """The ``.grad`` of torch's (w_ih, w_hh, b_ih, b_hh) from bptt [dWx, dWh, db(, dbh)].

    As b = b_ih + b_hh, both bias gradients are db (GRU: in the r and z blocks; the n block of
    b_hh gets dbh)."""
    w_ih, w_hh, b_ih, b_hh = params_to_torch(cell, grads)
    shared = 2 * w_hh.shape[1] if cell == "gru" else b_ih.shape[0]
    b_hh[:shared] = b_ih[:shared]
    return w_ih, w_hh, b_ih, b_hh


def from_torch(module: Any) -> TimeStack:
    """An equivalent bptt layer for a ``torch.nn.RNN`` (tanh/relu), ``LSTM`` or ``GRU``.

    Any ``num_layers``, ``bidirectional``, ``bias`` and ``batch_first``; the result always takes
    xs (N, T, input_size) and returns hs (N, T, hidden_size * num_directions), like the module
    with ``batch_first=True``. ``forward(xs, mask=None)`` (a mask (N, T) gives what a
    ``pack_padded_sequence`` batch gives), ``backward(dhs) -> dxs``, ``params``, ``grads``,
    ``set_state(h0, c0)`` with torch's (num_layers * num_directions, N, H) layout. Parameters
    are NumPy copies in the module's dtype (float32 or float64). The module's ``dropout`` is
    kept (between layers, in train mode only, with bptt's own random masks).
    """
    import torch

    if not isinstance(module, torch.nn.RNNBase):
        raise TypeError(f"from_torch needs a torch.nn.RNN, LSTM or GRU, got "
                        f"{type(module).__name__}")
    if module.mode not in _MODES:
        raise ValueError(f"unsupported torch recurrent mode {module.mode!r}")
    if getattr(module, "proj_size", 0):
        raise ValueError("LSTM with proj_size > 0 has no bptt equivalent; use proj_size=0")
    cell, nonlinearity = _MODES[module.mode]
    dtype = next(module.parameters()).dtype
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"module parameters are {dtype}; convert with module.float() or "
                        f"module.double()")

    def arr(name: str) -> Any:
        return getattr(module, name).detach().cpu().numpy().copy()

    layers = []
    for k in range(module.num_layers):
        dirs = []
        for suffix in [f"_l{k}", f"_l{k}_reverse"][: 2 if module.bidirectional else 1]:
            biases = ((arr("bias_ih" + suffix), arr("bias_hh" + suffix)) if module.bias
                      else (None, None))
            ps = params_from_torch(cell, arr("weight_ih" + suffix), arr("weight_hh" + suffix),
                                   *biases)
            dirs.append(make_cell_layer(cell, *ps[:3], bh=ps[3] if cell == "gru" else None,
                                        nonlinearity=nonlinearity, reset_after=cell == "gru"))
        layers.append(TimeBidirectional(*dirs) if module.bidirectional else dirs[0])
    stack = TimeStack(layers, dropout=module.dropout)
    stack.bias = bool(module.bias)
    if not module.training:
        stack.eval()
    return stack


def _cell_of(layer: Any) -> str:
    if isinstance(layer, TimeLSTM):
        return "lstm"
    if isinstance(layer, TimeRNN):
        return "rnn"
    if isinstance(layer, TimeGRU):
        if not layer.reset_after:
            raise ValueError("a GRU with reset_after=False (the book's GRU) has no PyTorch "
                             "equivalent; build it with reset_after=True (PyTorch's variant)")
        return "gru"
    raise TypeError(f"to_torch handles TimeRNN, TimeLSTM, TimeGRU, TimeBidirectional and "
                    f"TimeStack, got {type(layer).__name__}")


def to_torch(layer: Any, grads: bool = False) -> dict[str, Any]:
    """NumPy arrays keyed and laid out like the torch module's ``state_dict()``.

    ``layer``: a :class:`TimeStack` (from :func:`from_torch` or ``make_recurrent_stack``), a
    :class:`TimeBidirectional` or one TimeRNN/TimeLSTM/TimeGRU (GRU: reset_after=True). Load
    with ``module.load_state_dict({k: torch.from_numpy(v) for k, v in d.items()})``. With
    ``grads=True`` the arrays are the gradients of the last ``backward`` instead, comparable to
    each torch parameter's ``.grad``. Bias keys are left out for a stack made from a module with
    ``bias=False``.
    """
    stack_layers = layer.layers if isinstance(layer, TimeStack) else [layer]
    bias = getattr(layer, "bias", True)
    out: dict[str, Any] = {}
    cells = set()
    for k, lay in enumerate(stack_layers):
        dirs = ([lay.forward_layer, lay.backward_layer] if isinstance(lay, TimeBidirectional)
                else [lay])
        for d, cell_layer in enumerate(dirs):
            cell = _cell_of(cell_layer)
            cells.add((cell, getattr(cell_layer, "nonlinearity", "tanh")))
            to = grads_to_torch if grads else params_to_torch
            w_ih, w_hh, b_ih, b_hh = to(cell, cell_layer.grads if grads else cell_layer.params)
            suffix = f"_l{k}" + ("_reverse" if d else "")
            out["weight_ih" + suffix] = w_ih
            out["weight_hh" + suffix] = w_hh
            if bias:
                out["bias_ih" + suffix] = b_ih
                out["bias_hh" + suffix] = b_hh
    if len(cells) > 1:
        raise ValueError(f"layers mix cells {sorted(cells)}; one torch module has one kind")
    return out
