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

from ...backend import to_numpy
from ...nn.cell_spec import CellSpec, TorchLayout, option_values
from ...nn.registry import CELLS, get_cell, make_time_layer, spec_of
from ...nn.stacks import TimeBidirectional, TimeStack

TORCH_CPU = "pip install torch --index-url https://download.pytorch.org/whl/cpu"


def import_torch() -> Any:
    """The ``torch`` module, imported now (never at bptt's import); one clear line without it."""
    try:
        import torch
    except ImportError:
        raise ValueError(f"this needs PyTorch, and its CPU build is enough: {TORCH_CPU} "
                         f"(plain `pip install torch` on Linux fetches ~5 GB of CUDA "
                         f"wheels)") from None
    return torch


def _spec(cell: str | CellSpec) -> CellSpec:
    return cell if isinstance(cell, CellSpec) else get_cell(cell)


def _layout(spec: CellSpec) -> TorchLayout:
    if spec.torch is None:
        raise ValueError(f"the {spec.name!r} cell has no PyTorch counterpart (cells with one: "
                         f"{', '.join(n for n, s in CELLS.items() if s.torch is not None)})")
    return spec.torch


def _to_bptt_blocks(a: Any, layout: TorchLayout, H: int) -> Any:
    """Torch rows (G*H, ...) -> bptt order and signs, still along axis 0."""
    return np.concatenate([layout.signs[k] * a[j * H:(j + 1) * H]
                           for k, j in enumerate(layout.block_order)])


def _to_torch_blocks(a: Any, layout: TorchLayout, H: int) -> Any:
    """bptt rows (G*H, ...) in bptt order -> torch order and signs (inverse of the above)."""
    out = np.empty_like(a)
    for k, j in enumerate(layout.block_order):
        out[j * H:(j + 1) * H] = layout.signs[k] * a[k * H:(k + 1) * H]
    return out


def params_from_torch(cell: str | CellSpec, w_ih: Any, w_hh: Any, b_ih: Any = None,
                      b_hh: Any = None) -> list[Any]:
    """bptt [Wx, Wh, b] (+ [bh] for GRU) from one direction of one torch layer (NumPy arrays)."""
    spec = _spec(cell)
    layout = _layout(spec)
    H = w_hh.shape[1]
    G = spec.gates
    dtype = w_ih.dtype
    b_ih = np.zeros(G * H, dtype) if b_ih is None else b_ih
    b_hh = np.zeros(G * H, dtype) if b_hh is None else b_hh
    Wx = np.ascontiguousarray(_to_bptt_blocks(w_ih, layout, H).T)  # (D, G*H)
    Wh = np.ascontiguousarray(_to_bptt_blocks(w_hh, layout, H).T)  # (H, G*H)
    if not layout.candidate_bias:
        return [Wx, Wh, _to_bptt_blocks(b_ih + b_hh, layout, H)]
    last = (G - 1) * H  # GRU: r, z share one bias; n's b_hn stays inside r * (...)
    b_sum = b_ih.copy()
    b_sum[:last] += b_hh[:last]
    return [Wx, Wh, _to_bptt_blocks(b_sum, layout, H), b_hh[last:].copy()]


def params_to_torch(cell: str | CellSpec, params: list[Any]) -> tuple[Any, Any, Any, Any]:
    """(w_ih, w_hh, b_ih, b_hh) NumPy arrays from bptt [Wx, Wh, b(, bh)] (or their grads)."""
    spec = _spec(cell)
    layout = _layout(spec)
    Wx, Wh, b = (to_numpy(p) for p in params[:3])
    H = Wh.shape[0]
    w_ih = _to_torch_blocks(np.ascontiguousarray(Wx.T), layout, H)
    w_hh = _to_torch_blocks(np.ascontiguousarray(Wh.T), layout, H)
    b_ih = _to_torch_blocks(b, layout, H)
    b_hh = np.zeros_like(b_ih)
    if layout.candidate_bias:
        b_hh[(spec.gates - 1) * H:] = to_numpy(params[3])
    return w_ih, w_hh, b_ih, b_hh


def grads_to_torch(cell: str | CellSpec, grads: list[Any]) -> tuple[Any, Any, Any, Any]:
    """The ``.grad`` of torch's (w_ih, w_hh, b_ih, b_hh) from bptt [dWx, dWh, db(, dbh)].

    As b = b_ih + b_hh, both bias gradients are db (GRU: in the r and z blocks; the n block of
    b_hh gets dbh)."""
    spec = _spec(cell)
    w_ih, w_hh, b_ih, b_hh = params_to_torch(spec, grads)
    H = w_hh.shape[1]
    shared = (spec.gates - 1) * H if _layout(spec).candidate_bias else b_ih.shape[0]
    b_hh[:shared] = b_ih[:shared]
    return w_ih, w_hh, b_ih, b_hh


def _torch_mode(mode: str) -> tuple[CellSpec, dict[str, Any]]:
    """The registered cell (and its options) that equals a torch module of this mode."""
    for spec in CELLS.values():
        if spec.torch is not None and mode in spec.torch.modes:
            return spec, dict(spec.torch.modes[mode])
    raise ValueError(f"unsupported torch recurrent mode {mode!r}")


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
    torch = import_torch()
    if not isinstance(module, torch.nn.RNNBase):
        raise TypeError(f"from_torch needs a torch.nn.RNN, LSTM or GRU, got "
                        f"{type(module).__name__}")
    spec, options = _torch_mode(module.mode)
    if getattr(module, "proj_size", 0):
        raise ValueError("LSTM with proj_size > 0 has no bptt equivalent; use proj_size=0")
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
            ps = params_from_torch(spec, arr("weight_ih" + suffix), arr("weight_hh" + suffix),
                                   *biases)
            extra = {"bh": ps[3]} if spec.torch.candidate_bias else {}
            dirs.append(make_time_layer(spec, *ps[:3], **extra, **options))
        layers.append(TimeBidirectional(*dirs) if module.bidirectional else dirs[0])
    stack = TimeStack(layers, dropout=module.dropout)
    stack.bias = bool(module.bias)
    if not module.training:
        stack.eval()
    return stack


def torch_mode_of(layer: Any) -> tuple[CellSpec, str]:
    """The spec of a recurrent Time layer and the torch mode it equals; one line if none."""
    spec = spec_of(layer)
    if spec is None or type(layer) is spec.step:
        raise TypeError(f"to_torch handles recurrent Time layers, TimeBidirectional and "
                        f"TimeStack, got {type(layer).__name__}")
    layout = _layout(spec)
    have = option_values(spec, layer)
    for mode, want in layout.modes.items():
        if all(have.get(k) == v for k, v in want.items()):
            return spec, mode
    wants = " or ".join(", ".join(f"{k}={v!r}" for k, v in w.items()) for w in
                        layout.modes.values())
    raise ValueError(f"a {spec.name!r} layer with {have} has no PyTorch equivalent; build it "
                     f"with {wants} (PyTorch's variant)")


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
            spec, mode = torch_mode_of(cell_layer)
            cells.add(mode)
            to = grads_to_torch if grads else params_to_torch
            w_ih, w_hh, b_ih, b_hh = to(spec, cell_layer.grads if grads else cell_layer.params)
            suffix = f"_l{k}" + ("_reverse" if d else "")
            out["weight_ih" + suffix] = w_ih
            out["weight_hh" + suffix] = w_hh
            if bias:
                out["bias_ih" + suffix] = b_ih
                out["bias_hh" + suffix] = b_hh
    if len(cells) > 1:
        raise ValueError(f"layers mix cells {sorted(cells)}; one torch module has one kind")
    return out
