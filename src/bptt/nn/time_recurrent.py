"""Time layers: a recurrent cell run over a whole (N, T, D) sequence, with exact BPTT.

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

from typing import Any

from ..backend import array_module, matmul_into, reused, right_product
from ..validate import check_float, check_ndim
from .cells import NONLINEARITIES, _recurrent_bias, check_cell_params, check_state
from .functions import sigmoid

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
            check_state(f"{self.name}.set_state c", c, h.shape[0], self.H, dtype)
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
            c0 = xp.zeros((N, self.H), dtype=dtype)
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
        if given is None:
            return xp.zeros((N, self.H), dtype=dtype)
        check_state(f"{self.name}.backward {name}", given, N, self.H, dtype)
        return given.copy()


class TimeRNN(TimeRecurrentBase):
    """T steps of the vanilla RNN cell (:class:`bptt.nn.cells.RNN`), with exact BPTT.

        forward, t = 0..T-1:   a_t = x_t @ Wx + h_{t-1} @ Wh + b        h_t = tanh(a_t)
                               (relu: h_t = max(a_t, 0))
        backward, t = T-1..0, with dh = dL/dh_t from step t+1 (0, or dh_last, at t = T-1):
                               dh_tot = dhs_t + dh
                               da_t = dh_tot * (1 - h_t**2)     (relu: dh_tot * (h_t > 0))
                               dh_{t-1} = da_t @ Wh.T
                               dWx = sum_t x_t.T @ da_t   dWh = sum_t h_{t-1}.T @ da_t
                               db = sum_t,N da_t          dx_t = da_t @ Wx.T

    xs (N, T, D) -> hs (N, T, H). Params: Wx (D, H), Wh (H, H), b (H,).
    ``backward(dhs, dh_last=None)``: ``dh_last`` (N, H) is an optional gradient with respect to
    the final state ``h`` (e.g. an encoder's state consumed by a decoder).
    """

    name = "TimeRNN"
    gates = 1

    def __init__(self, Wx: Any, Wh: Any, b: Any, stateful: bool = False,
                 nonlinearity: str = "tanh") -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
        super().__init__(Wx, Wh, b, stateful)
        self.nonlinearity = nonlinearity
        self._make_grads()

    def forward(self, xs: Any, mask: Any = None) -> Any:
        Wx, Wh, b = self.params
        xp, N, T, xs_tm, m, h0, _ = self._begin(xs, mask)
        H = self.H
        hs = xp.empty((T + 1, N, H), dtype=xs.dtype)  # hs[t + 1] = h_t, hs[0] = h0
        hs[0] = h0
        _matmul_into(hs[1:].reshape(T * N, H), xs_tm, Wx)  # all input projections at once
        hs[1:] += b
        tmp = xp.empty((N, H), dtype=xs.dtype)
        relu = self.nonlinearity == "relu"
        product = right_product(Wh, N)
        for t in range(T):
            a = hs[t + 1]
            product(tmp, hs[t])
            a += tmp
            if relu:
                xp.maximum(a, 0, out=a)
            else:
                xp.tanh(a, out=a)
            if m is not None:
                xp.copyto(a, hs[t], where=m[0][t])  # padded: carry h_{t-1}
        self.cache = (xs_tm, hs, m)
        self.h = hs[T].copy()
        return self._outputs(xp, hs, m)

    def backward(self, dhs: Any, dh_last: Any = None) -> Any:
        Wh = self.params[1]
        xs_tm, hs, m = self._cache()
        xp = array_module(hs)
        T, N, H = hs.shape[0] - 1, hs.shape[1], self.H
        self._check_dhs(dhs, N, T)
        dhs_tm = dhs.transpose(1, 0, 2)
        states = hs[1:]
        if self.nonlinearity == "relu":
            dA = (states > 0).astype(hs.dtype)  # (T, N, H) derivative, times dh below
        else:
            dA = xp.multiply(states, states)
            xp.subtract(1, dA, out=dA)
        dh = self._start_dh(xp, dh_last, "dh_last", N, hs.dtype)  # a fresh (N, H) array
        dh_tot = xp.empty((N, H), dtype=hs.dtype)
        back = right_product(Wh.T, N)  # @ Wh.T (H, H)
        for t in reversed(range(T)):
            if m is not None:
                carry = dh * m[0][t]  # padded step: gradient flows straight to h_{t-1}
            xp.add(dhs_tm[t], dh, out=dh_tot)
            if m is not None:
                dh_tot *= m[1][t]  # (the output of a padded step is 0: its dhs is dropped)
            da = dA[t]
            da *= dh_tot
            back(dh, da)  # dh_{t-1} = da_t @ Wh.T
            if m is not None:
                dh += carry
        _matmul_into(self.grads[1], hs[:-1].reshape(T * N, H).T, dA.reshape(T * N, H))
        self.dh = dh
        return self._finish_backward(xp, dA, xs_tm, N, T)


class TimeLSTM(TimeRecurrentBase):
    """T steps of the LSTM cell (:class:`bptt.nn.cells.LSTM`, blocks f, g, i, o), exact BPTT.

        forward, t = 0..T-1:
            A_t = x_t @ Wx + h_{t-1} @ Wh + b                               (N, 4H)
            f, g, i, o = sigmoid(A_t[:, :H]), tanh(A_t[:, H:2H]),
                         sigmoid(A_t[:, 2H:3H]), sigmoid(A_t[:, 3H:])
            c_t = f * c_{t-1} + g * i        h_t = o * tanh(c_t)
        backward, t = T-1..0, with dh, dc = dL/dh_t, dL/dc_t from step t+1 (at t = T-1: 0, or
        dh_last, dc_last) and dh_tot = dhs_t + dh:
            ds = dc + dh_tot * o * (1 - tanh(c_t)**2)
            dA_t = [ds * c_{t-1} * f(1-f), ds * i * (1-g**2), ds * g * i(1-i),
                    dh_tot * tanh(c_t) * o(1-o)]                             (N, 4H)
            dh_{t-1} = dA_t @ Wh.T           dc_{t-1} = ds * f
            dWx = sum_t x_t.T @ dA_t   dWh = sum_t h_{t-1}.T @ dA_t   db = sum_t,N dA_t
            dx_t = dA_t @ Wx.T

    xs (N, T, D) -> hs (N, T, H). Params: Wx (D, 4H), Wh (H, 4H), b (4H,).
    ``backward(dhs, dh_last=None, dc_last=None)``: optional gradients with respect to the final
    state ``h``, ``c`` (N, H). Backward works in the buffers forward kept, so each forward
    allows one backward (as PyTorch's autograd); a second one raises until forward runs again.
    """

    name = "TimeLSTM"
    gates = 4
    has_cell = True
    #: take x_t into each step's product (True) or project all inputs at once (False);
    #: None: by the sizes (:func:`_small_input`)
    input_in_step: bool | None = None

    def __init__(self, Wx: Any, Wh: Any, b: Any, stateful: bool = False) -> None:
        super().__init__(Wx, Wh, b, stateful)
        self._make_grads()

    def forward(self, xs: Any, mask: Any = None) -> Any:
        Wx, Wh, b = self.params
        xp, N, T, xs_tm, m, h0, c0 = self._begin(xs, mask)
        H, D, dtype = self.H, self.D, xs.dtype
        # sigmoid(a) = 0.5 * tanh(0.5 a) + 0.5 on f, i, o; tanh(a) on g: one tanh over 4H
        scale = xp.full(4 * H, 0.5, dtype=dtype)
        scale[H:2 * H] = 1
        shift = xp.full(4 * H, 0.5, dtype=dtype)
        shift[H:2 * H] = 0
        cs = self._work(xp, "cs", (T + 1, N, H), dtype)  # cs[t + 1] = c_t, cs[0] = c0
        cs[0] = c0
        tanh_c = self._work(xp, "tanh_c", (T, N, H), dtype)  # tanh of each step's new cell
        A = self._work(xp, "A", (T, N, 4 * H), dtype)  # gates (backward: their gradients)
        in_step = self.input_in_step
        if in_step or (in_step is None and _small_input(D, H)):
            # Z[t] = [h_{t-1}, x_t, 1] and W = [Wh; Wx; b] * scale: each step's gates are ONE
            # product Z[t] @ W, and backward gets dWh, dWx, db from one product Z.T @ dA
            Z = self._work(xp, "Z", (T + 1, N, H + D + 1), dtype)
            Z[:T, :, H:H + D] = xs_tm.reshape(T, N, D)
            Z[:, :, H + D] = 1
            hs = Z[:, :, :H]  # hs[t + 1] = h_t, hs[0] = h0 (a view into Z)
            W = self._work(xp, "W", (H + D + 1, 4 * H), dtype)  # one pass per part
            xp.multiply(Wh, scale, out=W[:H])
            xp.multiply(Wx, scale, out=W[H:H + D])
            xp.multiply(b, scale, out=W[H + D])
        else:
            Z = None
            hs = self._work(xp, "hs", (T + 1, N, H), dtype)
            _matmul_into(A.reshape(T * N, 4 * H), xs_tm, Wx)  # all input projections at once
            A += b
            tmp = xp.empty((N, 4 * H), dtype=dtype)
        hs[0] = h0
        gi = xp.empty((N, H), dtype=dtype)
        product = right_product(W if Z is not None else Wh, N)  # @ W or @ Wh, step after step
        for t in range(T):
            a = A[t]
            if Z is not None:
                product(a, Z[t])  # already scaled
            else:
                product(tmp, hs[t])
                a += tmp
                a *= scale
            xp.tanh(a, out=a)
            a *= scale
            a += shift  # a now holds the activated gates [f, g, i, o]
            c = cs[t + 1]
            xp.multiply(a[:, :H], cs[t], out=c)  # f * c_prev
            xp.multiply(a[:, H:2 * H], a[:, 2 * H:3 * H], out=gi)  # g * i
            c += gi
            xp.tanh(c, out=tanh_c[t])
            xp.multiply(a[:, 3 * H:], tanh_c[t], out=hs[t + 1])  # o * tanh(c)
            if m is not None:  # padded: carry (h, c)
                xp.copyto(c, cs[t], where=m[0][t])
                xp.copyto(hs[t + 1], hs[t], where=m[0][t])
        self.cache, self._used = (xs_tm, A, hs, cs, tanh_c, m, Z), False
        self.h, self.c = hs[T].copy(), cs[T].copy()
        return self._outputs(xp, hs, m)

    def backward(self, dhs: Any, dh_last: Any = None, dc_last: Any = None) -> Any:
        Wh = self.params[1]
        xs_tm, A, hs, cs, tanh_c, m, Z = self._cache()
        xp = array_module(hs)
        T, N, H, dtype = hs.shape[0] - 1, hs.shape[1], self.H, hs.dtype
        self._check_dhs(dhs, N, T)
        # Per step, on that step's (N, 4, H) gates while they are in cache (one pass over all of
        # (T, N, 4H) is memory-bound), written over them: like PyTorch's autograd, backward
        # uses up what forward kept (a second backward needs a new forward).
        #   dA_t = d * fac, d = [f(1-f), 1-g**2, i(1-i), o(1-o)],
        #   fac = [ds * c_{t-1}, ds * i, ds * g, dh_tot * tanh(c_t)]
        if m is None and dhs.dtype == dtype and array_module(dhs) is xp:
            up = dhs.transpose(1, 0, 2)  # read in place, step by step
        else:
            up = self._upstream(xp, dhs, m, self._work(xp, "up", (T, N, H), dtype))  # 0 if padded
        dh = self._start_dh(xp, dh_last, "dh_last", N, dtype)
        dc = self._start_dh(xp, dc_last, "dc_last", N, dtype)
        self.cache, self._used = None, True  # the inputs are valid: use the buffers up
        dA = A.reshape(T, N, 4, H)
        dh_tot = xp.empty((N, H), dtype=dtype)
        ds = xp.empty((N, H), dtype=dtype)
        fac = xp.empty((N, 4, H), dtype=dtype)
        d = xp.empty((N, 4, H), dtype=dtype)
        back = right_product(Wh.T, N)  # @ Wh.T (4H, H), step after step
        for t in reversed(range(T)):
            a4, tc = dA[t], tanh_c[t]  # (N, 4, H) gates [f, g, i, o], to become dA_t; (N, H)
            if m is not None:  # padded step: gradients flow straight to (h, c)_{t-1}
                carry_h, carry_c = dh * m[0][t], dc * m[0][t]
                dc *= m[1][t]
            xp.add(up[t], dh, out=dh_tot)
            if m is not None:
                dh_tot *= m[1][t]
            xp.multiply(tc, tc, out=ds)  # ds = dc + dh_tot * o * (1 - tanh(c_t)**2)
            xp.subtract(1, ds, out=ds)
            ds *= a4[:, 3]
            ds *= dh_tot
            ds += dc
            xp.multiply(cs[t], ds, out=fac[:, 0])
            xp.multiply(a4[:, 2], ds, out=fac[:, 1])
            xp.multiply(a4[:, 1], ds, out=fac[:, 2])
            xp.multiply(tc, dh_tot, out=fac[:, 3])
            xp.multiply(ds, a4[:, 0], out=dc)  # dc_{t-1}; dh, dc are fresh arrays owned here
            # gate derivatives in place, y(1 - y) on f, i, o and (1 + g)(1 - g) on g: products
            # with 1 - y, exact in floating point near saturation (y - y**2 would cancel)
            xp.subtract(1, a4, out=d)
            a4[:, 1] += 1
            a4 *= d
            a4 *= fac
            back(dh, a4.reshape(N, 4 * H))  # dh_{t-1} = dA_t @ Wh.T
            if m is not None:
                dh += carry_h
                dc += carry_c
        dA = dA.reshape(T, N, 4 * H)
        self.dh, self.dc = dh, dc
        if Z is None:
            _matmul_into(self.grads[1], hs[:-1].reshape(T * N, H).T, dA.reshape(T * N, 4 * H))
            return self._finish_backward(xp, dA, xs_tm, N, T)
        D = self.D  # [dWh; dWx; db] = Z.T @ dA in one product
        dW = self._work(xp, "dW", (H + D + 1, 4 * H), dtype)
        _matmul_into(dW, Z[:T].reshape(T * N, H + D + 1).T, dA.reshape(T * N, 4 * H))
        self.grads[1][...], self.grads[0][...], self.grads[2][...] = dW[:H], dW[H:-1], dW[-1]
        dxs = xp.empty((T * N, D), dtype=dtype)
        _matmul_into(dxs, dA.reshape(T * N, 4 * H), self.params[0].T)
        return xp.ascontiguousarray(dxs.reshape(T, N, D).transpose(1, 0, 2))  # (N, T, D)


class TimeGRU(TimeRecurrentBase):
    """T steps of the GRU cell (:class:`bptt.nn.cells.GRU`, blocks z, r, h~), exact BPTT.

        forward, t = 0..T-1 (reset_after=False, the book):
            z = sigmoid(x_t @ Wxz + h_{t-1} @ Whz + bz)
            r = sigmoid(x_t @ Wxr + h_{t-1} @ Whr + br)
            hh = tanh(x_t @ Wxh + (r * h_{t-1}) @ Whh + bhh)
            (reset_after=True: hh = tanh(x_t @ Wxh + bhh + r * (h_{t-1} @ Whh + bh)))
            h_t = (1 - z) * h_{t-1} + z * hh
        backward, t = T-1..0, with dh = dL/dh_t from step t+1 (0, or dh_last, at t = T-1)
        and dh_tot = dhs_t + dh:
            da_h = dh_tot * z * (1 - hh**2)      da_z = dh_tot * (hh - h_{t-1}) * z * (1 - z)
            reset before: drh = da_h @ Whh.T   da_r = drh * h_{t-1} * r(1-r)
                          dWhh += (r * h_{t-1}).T @ da_h
            reset after:  dn = da_h * r        da_r = da_h * (h_{t-1} @ Whh + bh) * r(1-r)
                          dWhh += h_{t-1}.T @ dn    dbh += sum_N dn
            dh_{t-1} = dh_tot * (1 - z) + [da_z, da_r] @ [Whz, Whr].T
                       + (drh * r  |  dn @ Whh.T)
            dWx = sum_t x_t.T @ dA_t with dA_t = [da_z, da_r, da_h]   db = sum_t,N dA_t
            [dWhz, dWhr] = sum_t h_{t-1}.T @ [da_z, da_r]              dx_t = dA_t @ Wx.T

    xs (N, T, D) -> hs (N, T, H). Params: Wx (D, 3H), Wh (H, 3H), b (3H,) [, bh (H,) with
    reset_after]. ``backward(dhs, dh_last=None)``. PyTorch mapping: see :class:`~bptt.GRU`.
    """

    name = "TimeGRU"
    gates = 3
    param_names = ("Wx", "Wh", "b", "bh")  # bh only with reset_after

    def __init__(self, Wx: Any, Wh: Any, b: Any, stateful: bool = False, bh: Any = None,
                 reset_after: bool = False) -> None:
        super().__init__(Wx, Wh, b, stateful)
        self.reset_after = bool(reset_after)
        if self.reset_after:
            self.params.append(_recurrent_bias(self.name, bh, Wh, self.H))
        elif bh is not None:
            raise ValueError("TimeGRU bh (the candidate's recurrent bias) is only used with "
                             "reset_after=True; pass reset_after=True or drop bh")
        self._make_grads()

    def forward(self, xs: Any, mask: Any = None) -> Any:
        Wx, Wh, b = self.params[:3]
        xp, N, T, xs_tm, m, h0, _ = self._begin(xs, mask)
        H, dtype = self.H, xs.dtype
        G = self._work(xp, "G", (T, N, 3 * H), dtype)
        _matmul_into(G.reshape(T * N, 3 * H), xs_tm, Wx)  # all input projections at once
        G += b
        hs = self._work(xp, "hs", (T + 1, N, H), dtype)  # hs[t + 1] = h_t, hs[0] = h0
        hs[0] = h0
        # q_t: r * h_{t-1} (reset before, left factor of Whh) or h_{t-1} @ Whh + bh (reset after)
        qs = self._work(xp, "qs", (T, N, H), dtype)
        Whzr, Whh = Wh[:, :2 * H], Wh[:, 2 * H:]
        rec = xp.empty((N, 3 * H if self.reset_after else 2 * H), dtype=dtype)
        tmp = xp.empty((N, H), dtype=dtype)
        if self.reset_after:
            by_wh = right_product(Wh, N)
        else:
            by_whzr, by_whh = right_product(Whzr, N), right_product(Whh, N)
        for t in range(T):
            g, hp = G[t], hs[t]
            zr, r, hh = g[:, :2 * H], g[:, H:2 * H], g[:, 2 * H:]
            if self.reset_after:
                by_wh(rec, hp)  # (N, 3H)
                zr += rec[:, :2 * H]
                sigmoid(zr, out=zr)
                xp.add(rec[:, 2 * H:], self.params[3], out=qs[t])
                xp.multiply(r, qs[t], out=tmp)
            else:
                by_whzr(rec, hp)  # (N, 2H)
                zr += rec
                sigmoid(zr, out=zr)
                xp.multiply(r, hp, out=qs[t])
                by_whh(tmp, qs[t])
            hh += tmp
            xp.tanh(hh, out=hh)
            h = hs[t + 1]  # h = h_prev + z * (hh - h_prev)
            xp.subtract(hh, hp, out=h)
            h *= g[:, :H]
            h += hp
            if m is not None:
                xp.copyto(h, hp, where=m[0][t])
        self.cache = (xs_tm, G, hs, qs, m)
        self.h = hs[T].copy()
        return self._outputs(xp, hs, m)

    def backward(self, dhs: Any, dh_last: Any = None) -> Any:
        Wh = self.params[1]
        xs_tm, G, hs, qs, m = self._cache()
        xp = array_module(hs)
        T, N, H, dtype = hs.shape[0] - 1, hs.shape[1], self.H, hs.dtype
        self._check_dhs(dhs, N, T)
        dhs_tm = dhs.transpose(1, 0, 2)
        Whzr, Whh = Wh[:, :2 * H], Wh[:, 2 * H:]
        dA = self._work(xp, "dA", (T, N, 3 * H), dtype)  # [da_z, da_r, da_h] per step
        dn = self._work(xp, "dn", (T, N, H), dtype) if self.reset_after else None
        dh = self._start_dh(xp, dh_last, "dh_last", N, dtype)
        dh_tot = xp.empty((N, H), dtype=dtype)
        tmp = xp.empty((N, H), dtype=dtype)
        rec = xp.empty((N, H), dtype=dtype)
        back_zr, back_hh = (right_product(W.T, N) for W in (Whzr, Whh))
        for t in reversed(range(T)):
            a, da, hp = G[t], dA[t], hs[t]
            z, r, hh = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
            da_z, da_r, da_h = da[:, :H], da[:, H:2 * H], da[:, 2 * H:]
            if m is not None:  # padded step: gradient flows straight to h_{t-1}
                carry = dh * m[0][t]
            xp.add(dhs_tm[t], dh, out=dh_tot)
            if m is not None:
                dh_tot *= m[1][t]
            xp.multiply(hh, hh, out=da_h)  # da_h = dh_tot * z * (1 - hh**2)
            xp.subtract(1, da_h, out=da_h)
            da_h *= z
            da_h *= dh_tot
            xp.subtract(hh, hp, out=da_z)  # da_z = dh_tot * (hh - h_prev) * z * (1 - z)
            da_z *= dh_tot
            xp.subtract(1, z, out=tmp)
            da_z *= tmp
            da_z *= z
            xp.multiply(dh_tot, tmp, out=dh)  # dh_tot * (1 - z); dh is a fresh array owned here
            xp.subtract(1, r, out=tmp)
            tmp *= r  # r(1 - r)
            if self.reset_after:
                xp.multiply(da_h, r, out=dn[t])
                xp.multiply(da_h, qs[t], out=da_r)
                da_r *= tmp
                back_hh(rec, dn[t])  # @ Whh.T
            else:
                back_hh(rec, da_h)  # drh
                xp.multiply(rec, hp, out=da_r)
                da_r *= tmp
                rec *= r
            dh += rec
            back_zr(rec, da[:, :2 * H])  # @ [Whz, Whr].T
            dh += rec
            if m is not None:
                dh += carry
        dA_flat = dA.reshape(T * N, 3 * H)
        hp_flat = hs[:-1].reshape(T * N, H)
        dWh = self.grads[1]
        _matmul_into(dWh[:, :2 * H], hp_flat.T, dA_flat[:, :2 * H])
        if self.reset_after:
            dn_flat = dn.reshape(T * N, H)
            _matmul_into(dWh[:, 2 * H:], hp_flat.T, dn_flat)
            self.grads[3][...] = dn_flat.sum(axis=0)
        else:
            _matmul_into(dWh[:, 2 * H:], qs.reshape(T * N, H).T, dA_flat[:, 2 * H:])
        self.dh = dh
        return self._finish_backward(xp, dA, xs_tm, N, T)

