"""What every cell shares: the checks of a step's inputs and parameters, and
:class:`TimeRecurrentBase`, the fused Time layers' common machinery.

The fused Time layers run a recurrent cell over a whole (N, T, D) sequence, with exact BPTT.

``TimeRNN``, ``TimeLSTM`` and ``TimeGRU`` compute exactly the equations of the cells in
:mod:`bptt.nn.cells` (see their docstrings), step by step over t = 0..T-1, and the backward pass
sums the parameter gradients over time (the book's ``reversed(range(T))`` loop). They are written
for speed, and tested against a plain loop over the cells:

- the input projection of every step is ONE matrix product ``xs (T*N, D) @ Wx + b`` before the
  loop; inside the loop only ``h_prev @ Wh`` remains;
- arrays are time-major inside (T, N, ...), so each step's slice is contiguous; gates are
  computed in place in preallocated buffers (sigmoid as ``0.5 * tanh(0.5 a) + 0.5``);
- backward stores each step's pre-activation gradient ``dA`` in a (T, N, ...) buffer and forms
  ``dWx = xs.T @ dA``, ``dWh = hs_prev.T @ dA``, ``db = sum dA`` and ``dxs = dA @ Wx.T`` with ONE
  matrix product each after the loop; the per-step products go through
  :func:`bptt.backend.right_product`: with the optional MKL, the weights packed once per call
  (``Wh.T`` straight from Wh), else NumPy with a contiguous copy of ``Wh.T`` made once per
  backward (OpenBLAS's small-matrix kernels on AVX-512 run the transposed view 2x slower).
- TimeLSTM with few inputs (D + 1 <= max(H/8, 32): a seq2seq's embeddings) instead takes x_t into
  each step's product, ``[h_{t-1}, x_t, 1] @ [Wh; Wx; b]``, and gets ``[dWh; dWx; db]`` from one
  product.
- TimeLSTM's backward computes each step's ``dA_t`` from that step's gates while they are in
  cache and writes it over them, so it uses up the forward's buffers (as PyTorch's autograd
  does): a second backward needs a new forward.

State (the book's API): ``h`` (and ``c``) hold the last state after ``forward``. A stateful layer
starts the next ``forward`` from it (truncated BPTT); a non-stateful one starts from zeros unless
``set_state`` was called just before. ``reset_state()`` forgets it. After ``backward``, ``dh``
(and ``dc``) are the gradients with respect to the initial state.

Variable lengths: ``forward(xs, mask)`` with ``mask`` (N, T) of 0/1 (1 = real token). Where
``mask[n, t] == 0`` the state is carried unchanged (``h_t = h_{t-1}``, ``c_t = c_{t-1}``) and
the output ``hs[n, t]`` is 0, so a right-padded batch gives each sequence's own outputs and
gradients, and ``h`` is the state after each sequence's last real token. In backward a padded
step passes dh (and dc) straight to step t-1 and drops its dhs (its output was a constant 0).

Shape letters: N batch, T time steps, D input features, H hidden units.
"""

from __future__ import annotations

import copy
from typing import Any

from ...backend import array_module, matmul_into, reused
from ...validate import check_float, check_ndim
from ..cell_spec import CellSpec, layer_param_names

NONLINEARITIES = ("tanh", "relu")

def check_cell_params(name: str, Wx: Any, Wh: Any, b: Any, gates: int) -> tuple[int, int]:
    """Check the shapes and dtypes of (Wx, Wh, b) with ``gates`` blocks; return (D, H)."""
    for pname, p in (("Wx", Wx), ("Wh", Wh), ("b", b)):
        check_float(f"{name} parameter {pname}", p)
    check_ndim(f"{name} parameter Wx", Wx, 2, f"D, {gates}H" if gates > 1 else "D, H")
    check_ndim(f"{name} parameter Wh", Wh, 2, f"H, {gates}H" if gates > 1 else "H, H")
    check_ndim(f"{name} parameter b", b, 1, f"{gates}H" if gates > 1 else "H")
    D, H = Wx.shape[0], Wh.shape[0]
    want = gates * H
    if Wh.shape[1] != want or Wx.shape[1] != want or b.shape[0] != want:
        blocks = f"{gates} gate blocks of H={H}" if gates > 1 else f"H={H}"
        raise ValueError(
            f"{name} parameters do not fit together: Wx {tuple(Wx.shape)}, Wh {tuple(Wh.shape)}, "
            f"b {tuple(b.shape)}; with {blocks} (from Wh's rows) they must be Wx ({D}, {want}), "
            f"Wh ({H}, {want}), b ({want},)"
        )
    if not (Wx.dtype == Wh.dtype == b.dtype):
        raise TypeError(
            f"{name} parameters must share one dtype, got Wx {Wx.dtype}, Wh {Wh.dtype}, "
            f"b {b.dtype}"
        )
    return D, H

def check_step_input(name: str, x: Any, D: int, dtype: Any) -> None:
    """Check one step's input x (N, D) against the cell's D and parameter dtype."""
    check_float(f"{name} input x", x)
    check_ndim(f"{name} input x", x, 2, "N, D")
    if x.shape[1] != D:
        raise ValueError(f"{name} input x has shape {tuple(x.shape)} but the cell expects "
                         f"(N, {D}) (D = rows of Wx)")
    if x.dtype != dtype:
        raise TypeError(f"{name} input x is {x.dtype} but the parameters are {dtype}; "
                        f"convert with x.astype({dtype})")

def check_state(name: str, s: Any, N: int, H: int, dtype: Any) -> None:
    """Check a state (h or c) of shape (N, H) and the parameters' dtype."""
    check_float(name, s)
    if getattr(s, "ndim", None) != 2 or tuple(s.shape) != (N, H):
        raise ValueError(f"{name} must have shape (N, H) = ({N}, {H}), got "
                         f"{tuple(getattr(s, 'shape', ()))} (is the batch size N the same?)")
    if s.dtype != dtype:
        raise TypeError(f"{name} is {s.dtype} but the parameters are {dtype}; "
                        f"convert with .astype({dtype})")

def _zeros_state(x: Any, H: int) -> Any:
    return array_module(x).zeros((x.shape[0], H), dtype=x.dtype)

_matmul_into = matmul_into  # out[...] = a @ b without a temporary

def _small_input(D: int, H: int) -> bool:
    """Whether an LSTM with D inputs and H units takes x_t into each step's product
    ``[h_{t-1}, x_t, 1] @ [Wh; Wx; b]`` (a few more columns than ``h_{t-1} @ Wh``; no separate
    input projection, bias and add passes over (T, N, 4H)) rather than projecting all steps'
    inputs at once. Measured on one CPU core (benchmarks/time_recurrent_speed.py): worth it for
    the seq2seq sizes (D 16, H 128..256), not for a language model's D = H."""
    return D + 1 <= max(H // 8, 32)

class TimeRecurrentBase:
    """State handling, input checks and the (N, T) <-> (T, N) layout shared by the Time layers
    (the fused ones here and the generic :class:`bptt.nn.time_cell.TimeCell`)."""

    name = "TimeRecurrent"
    gates = 1
    has_cell = False  # LSTM has the extra state c

    def __init__(self, Wx: Any, Wh: Any, b: Any, stateful: bool) -> None:
        self.D, self.H = check_cell_params(self.name, Wx, Wh, b, self.gates)
        self._setup([Wx, Wh, b], stateful)

    def _setup(self, params: list[Any], stateful: bool) -> None:
        self.params = params
        self.stateful = bool(stateful)
        self.C = getattr(self, "C", None) or self.H  # the cell state's width (sLSTM: 3H)
        self.h: Any = None
        self.c: Any = None
        self.dh: Any = None
        self.dc: Any = None
        self.cache: tuple | None = None
        self._used = False  # a backward used up the cache (TimeLSTM)
        self._scratch: dict[str, Any] = {}  # arrays reused by every call (see _work)
        self._state_set = False  # set_state() was called since the last forward

    def _work(self, xp: Any, name: str, shape: tuple, dtype: Any) -> Any:
        """This layer's scratch array ``name`` (:func:`bptt.backend.reused`): fresh arrays of
        some MB each step cost page faults, which made up a tenth of a seq2seq forward."""
        return reused(self._scratch, name, xp, shape, dtype)

    def _make_grads(self) -> None:
        xp = array_module(self.params[0])
        self.grads = [xp.zeros_like(p) for p in self.params]

    # -- state ---------------------------------------------------------------------------------
    def set_state(self, h: Any, c: Any = None) -> None:
        """Start the next ``forward`` from ``h`` (N, H) (and ``c`` (N, H) for LSTM; None = 0)."""
        dtype = self.params[0].dtype
        if h is None:
            raise ValueError(f"{self.name}.set_state needs h (N, H); use reset_state() for zeros")
        check_ndim(f"{self.name}.set_state h", h, 2, "N, H")
        check_state(f"{self.name}.set_state h", h, h.shape[0], self.H, dtype)
        if c is not None:
            if not self.has_cell:
                raise ValueError(f"{self.name} has no cell state c; call set_state(h)")
            check_state(f"{self.name}.set_state c", c, h.shape[0], self.C, dtype)
        self.h, self.c = h, c
        self._state_set = True

    def reset_state(self) -> None:
        """Forget the carried state: the next ``forward`` starts from zeros."""
        self.h = self.c = None
        self._state_set = False

    def _initial_state(self, xp: Any, N: int, dtype: Any) -> tuple[Any, Any]:
        use = self.stateful or self._state_set
        self._state_set = False
        h0 = self.h if use else None
        c0 = self.c if use else None
        for sname, s in (("h", h0), ("c", c0)):
            if s is not None and s.shape[0] != N:
                raise ValueError(
                    f"{self.name} state {sname} has batch size {s.shape[0]} but xs has N={N}; "
                    f"call reset_state() when the batch size changes"
                )
        if h0 is None:
            h0 = xp.zeros((N, self.H), dtype=dtype)
        if c0 is None and self.has_cell:
            c0 = xp.zeros((N, self.C), dtype=dtype)
        return h0, c0

    # -- forward/backward helpers --------------------------------------------------------------
    def _begin(self, xs: Any, mask: Any) -> tuple:
        """Check xs and mask; return (xp, N, T, xs_tm (T*N, D), mask_tm or None, h0, c0)."""
        Wx = self.params[0]
        check_float(f"{self.name} input xs", xs)
        check_ndim(f"{self.name} input xs", xs, 3, "N, T, D")
        if xs.shape[2] != self.D:
            raise ValueError(f"{self.name} input xs has shape {tuple(xs.shape)} but the layer "
                             f"expects (N, T, {self.D}) (D = rows of Wx)")
        if xs.dtype != Wx.dtype:
            raise TypeError(f"{self.name} input xs is {xs.dtype} but the parameters are "
                            f"{Wx.dtype}; convert with xs.astype({Wx.dtype})")
        xp = array_module(Wx, xs)
        N, T, D = xs.shape
        xs_tm = xs.transpose(1, 0, 2).reshape(T * N, D)  # (T*N, D) time-major copy
        m = self._mask(xp, mask, N, T, xs.dtype)
        h0, c0 = self._initial_state(xp, N, xs.dtype)
        return xp, N, T, xs_tm, m, h0, c0

    def _mask(self, xp: Any, mask: Any, N: int, T: int, dtype: Any) -> tuple | None:
        """mask (N, T) -> (keep (T, N, 1) bool = padded step, mf (T, N, 1) float) or None."""
        if mask is None:
            return None
        mask = xp.asarray(mask)
        if tuple(mask.shape) != (N, T):
            raise ValueError(f"{self.name} mask must have shape (N, T) = ({N}, {T}) like xs, "
                             f"got {tuple(mask.shape)}")
        if mask.dtype.kind != "b":
            if mask.dtype.kind not in "iuf":
                raise TypeError(f"{self.name} mask must be bool or 0/1 numbers, got {mask.dtype}")
            if bool(((mask != 0) & (mask != 1)).any()):
                raise ValueError(f"{self.name} mask must hold only 0 (padding) and 1 (token)")
            mask = mask != 0
        real = xp.ascontiguousarray(mask.T)[:, :, None]  # (T, N, 1)
        return ~real, real.astype(dtype)

    @staticmethod
    def _real_rows(xp: Any, m: tuple | None, T: int, dtype: Any) -> Any:
        """(T, N): 1 at a real step, 0 at padding, for the compiled loops (bptt.kernels), whose
        "no mask" is an array with no columns, (T, 0)."""
        return m[1][:, :, 0] if m is not None else xp.empty((T, 0), dtype=dtype)

    def _outputs(self, xp: Any, hs: Any, m: tuple | None) -> Any:
        """hs (T+1, N, H) states -> outputs (N, T, H), 0 at padded steps."""
        T1, N, H = hs.shape
        out = xp.empty((N, T1 - 1, H), dtype=hs.dtype)
        states = hs[1:].transpose(1, 0, 2)
        if m is None:
            out[...] = states
        else:
            xp.multiply(states, m[1].transpose(1, 0, 2), out=out)
        return out

    def _check_dhs(self, dhs: Any, N: int, T: int) -> None:
        if tuple(getattr(dhs, "shape", ())) != (N, T, self.H):
            raise ValueError(f"{self.name}.backward: dhs must have the shape of the forward "
                             f"output (N, T, H) = ({N}, {T}, {self.H}), got "
                             f"{tuple(getattr(dhs, 'shape', ()))}")

    def _upstream(self, xp: Any, dhs: Any, m: tuple | None, into: Any = None) -> Any:
        """dhs (N, T, H) as a time-major (T, N, H) copy in the parameters' dtype (in ``into``
        if given), 0 at padded steps (their output was a constant 0)."""
        N, T, H = dhs.shape
        up = xp.empty((T, N, H), dtype=self.params[0].dtype) if into is None else into
        up[...] = dhs.transpose(1, 0, 2)  # one copy, cast on the way
        if m is not None:
            up *= m[1]
        return up

    def _cache(self) -> tuple:
        if self.cache is None:
            if self._used:
                raise RuntimeError(f"{self.name}.backward was already called after this forward; "
                                   f"it uses up what forward kept (as PyTorch's autograd does): "
                                   f"run forward again")
            raise RuntimeError(f"{self.name}.backward called before forward")
        return self.cache

    def _finish_backward(self, xp: Any, dA: Any, xs_tm: Any, N: int, T: int) -> Any:
        """dWx = xs.T @ dA, db = sum dA, dxs = dA @ Wx.T (one GEMM each); dxs (N, T, D)."""
        Wx = self.params[0]
        dA_flat = dA.reshape(T * N, dA.shape[-1])
        _matmul_into(self.grads[0], xs_tm.T, dA_flat)
        self.grads[2][...] = dA_flat.sum(axis=0)
        dxs = xp.empty((T * N, self.D), dtype=dA.dtype)
        _matmul_into(dxs, dA_flat, Wx.T)
        return xp.ascontiguousarray(dxs.reshape(T, N, self.D).transpose(1, 0, 2))  # (N, T, D)

    def _start_dh(self, xp: Any, given: Any, name: str, N: int, dtype: Any) -> Any:
        """The gradient flowing into the last state (``dh_last``, or ``dc_last`` of the cell
        state's width): a copy of the given one, or zeros."""
        width = self.C if name == "dc_last" else self.H
        if given is None:
            return xp.zeros((N, width), dtype=dtype)
        check_state(f"{self.name}.backward {name}", given, N, width, dtype)
        return given.copy()


class TimeCell(TimeRecurrentBase):
    """A registered cell (``spec``) over T steps, with exact BPTT: the book's loop over one-step
    cells (:mod:`bptt.nn.time_cell` says how)."""

    def __init__(self, spec: CellSpec, *params: Any, stateful: bool = False,
                 **options: Any) -> None:
        self.spec = spec
        self.name = f"TimeCell({spec.name})"
        self.gates, self.has_cell = spec.gates, spec.has_cell_state
        self.cell = spec.make_step(*params, **options)  # checks and owns the parameters
        Wx = self.cell.params[0]
        self.D, self.H = int(Wx.shape[0]), int(Wx.shape[1]) // self.gates
        self.C = spec.state_widths(self.H)[-1]  # the cell state's width
        self._setup(self.cell.params, stateful)
        self.param_names = tuple(layer_param_names(self.cell))
        for name in spec.options:  # nonlinearity, reset_after...: as the fused layers show them
            if hasattr(self.cell, name):
                setattr(self, name, getattr(self.cell, name))
        self._make_grads()

    def forward(self, xs: Any, mask: Any = None) -> Any:
        xp, N, T, _, m, h0, c0 = self._begin(xs, mask)
        state = (h0, c0) if self.has_cell else (h0,)
        hs = xp.empty((N, T, self.H), dtype=xs.dtype)
        steps = []
        for t in range(T):
            cell = copy.copy(self.cell)  # its own cache; the same parameters
            new = self.spec.forward(cell, xs[:, t], state)
            if m is not None:  # padded: carry the state, output 0
                new = tuple(xp.where(m[0][t], s, n) for s, n in zip(state, new, strict=True))
                hs[:, t] = new[0] * m[1][t]
            else:
                hs[:, t] = new[0]
            steps.append(cell)
            state = new
        self.cache = (steps, m, N)
        self.h = state[0]
        self.c = state[1] if self.has_cell else None
        return hs

    def _output_gradients(self, dhs: Any, dh_last: Any, N: int, T: int) -> Any:
        """dhs checked, with ``dh_last`` added to the last step's: for a fused layer whose h
        is not fed back (mLSTM, Mamba), the gradient of the final h is its last output's."""
        self._check_dhs(dhs, N, T)
        if dh_last is None:
            return dhs
        dhs = dhs.copy()
        dhs[:, -1] += dh_last
        return dhs

    def backward(self, dhs: Any, dh_last: Any = None, dc_last: Any = None) -> Any:
        steps, m, N = self._cache()
        xp = array_module(dhs)
        T = len(steps)
        self._check_dhs(dhs, N, T)
        dtype = self.params[0].dtype
        dstate = (self._start_dh(xp, dh_last, "dh_last", N, dtype),)
        if self.has_cell:
            dstate += (self._start_dh(xp, dc_last, "dc_last", N, dtype),)
        dxs = xp.empty((N, T, self.D), dtype=dtype)
        for g in self.grads:
            g[...] = 0
        for t in reversed(range(T)):
            cell = steps[t]
            upstream = (dhs[:, t] + dstate[0],) + dstate[1:]
            if m is not None:  # a padded step's output was 0: nothing flows through its cell
                upstream = tuple(u * m[1][t] for u in upstream)
            for g in cell.grads:  # a cell may add to its grads; start each step from zero
                g[...] = 0
            dx, dprev = self.spec.backward(cell, upstream)
            if m is not None:  # ... and its state was carried: its gradient goes straight on
                dprev = tuple(p + d * m[0][t] for p, d in zip(dprev, dstate, strict=True))
            for total, g in zip(self.grads, cell.grads, strict=True):
                total += g
            dxs[:, t] = dx
            dstate = dprev
        self.dh = dstate[0]
        self.dc = dstate[1] if self.has_cell else None
        return dxs
