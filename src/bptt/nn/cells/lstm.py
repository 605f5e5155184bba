"""The LSTM cell (Deep Learning from Scratch 2, ch. 6): its step (:class:`LSTM`) and its fused
Time layer (:class:`TimeLSTM`).

    Wx (D, 4H)   Wh (H, 4H)   b (4H,)    blocks f, g, i, o (the book's layout)

Shape letters: N batch, T time steps, D input features, H hidden units.
"""

from __future__ import annotations

from typing import Any

from ...backend import array_module, reused, right_product
from ...kernels import lstm_kernels, lstm_row_loops, packed_panels
from ..functions import sigmoid
from .base import (
    TimeRecurrentBase,
    _matmul_into,
    _small_input,
    _zeros_state,
    check_cell_params,
    check_state,
    check_step_input,
)


class LSTM:
    """One step of a long short-term memory cell (gate blocks in the book's order f, g, i, o).

        A      = x @ Wx + h_prev @ Wh + b                          (N, 4H)
        f = sigmoid(A[:, :H])     g = tanh(A[:, H:2H])
        i = sigmoid(A[:, 2H:3H])  o = sigmoid(A[:, 3H:])            (N, H) each
        c_next = f * c_prev + g * i
        h_next = o * tanh(c_next)
    backward, with dh_next, dc_next = dL/dh_next, dL/dc_next:
        ds = dc_next + dh_next * o * (1 - tanh(c_next)**2)
        df = ds * c_prev * f * (1 - f)     dg = ds * i * (1 - g**2)
        di = ds * g * i * (1 - i)          do = dh_next * tanh(c_next) * o * (1 - o)
        dA = [df, dg, di, do]                                       (N, 4H)
        dWx = x.T @ dA    dWh = h_prev.T @ dA    db = sum_N dA
        dx  = dA @ Wx.T   dh_prev = dA @ Wh.T    dc_prev = ds * f

    Params: Wx (D, 4H), Wh (H, 4H), b (4H,). x (N, D); h_*, c_* (N, H).
    PyTorch orders the blocks i, f, g, o: see the mapping in :mod:`bptt.tools.exchange.interop`.
    """

    def __init__(self, Wx: Any, Wh: Any, b: Any) -> None:
        self.D, self.H = check_cell_params("LSTM", Wx, Wh, b, 4)
        self.params = [Wx, Wh, b]
        xp = array_module(Wx)
        self.grads = [xp.zeros_like(p) for p in self.params]
        self.cache: tuple | None = None

    def _check(self, x: Any, h_prev: Any, c_prev: Any) -> None:
        check_step_input("LSTM", x, self.D, self.params[0].dtype)
        check_state("LSTM h_prev", h_prev, x.shape[0], self.H, x.dtype)
        check_state("LSTM c_prev", c_prev, x.shape[0], self.H, x.dtype)

    def _next(self, x: Any, h_prev: Any, c_prev: Any) -> tuple:
        Wx, Wh, b = self.params
        xp = array_module(x)
        H = self.H
        A = x @ Wx + h_prev @ Wh + b  # (N, 4H)
        f = sigmoid(A[:, :H])
        g = xp.tanh(A[:, H:2 * H])
        i = sigmoid(A[:, 2 * H:3 * H])
        o = sigmoid(A[:, 3 * H:])
        c_next = f * c_prev + g * i
        h_next = o * xp.tanh(c_next)
        return h_next, c_next, (f, g, i, o)

    def forward(self, x: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
        self._check(x, h_prev, c_prev)
        h_next, c_next, gates = self._next(x, h_prev, c_prev)
        self.cache = (x, h_prev, c_prev, gates, c_next)
        return h_next, c_next

    def backward(self, dh_next: Any, dc_next: Any) -> tuple[Any, Any, Any]:
        Wx, Wh, _ = self.params
        x, h_prev, c_prev, (f, g, i, o), c_next = self.cache
        xp = array_module(x)
        tanh_c = xp.tanh(c_next)
        ds = dc_next + dh_next * o * (1 - tanh_c**2)
        df = ds * c_prev * f * (1 - f)
        dg = ds * i * (1 - g**2)
        di = ds * g * i * (1 - i)
        do = dh_next * tanh_c * o * (1 - o)
        dA = xp.concatenate([df, dg, di, do], axis=1)  # (N, 4H)
        self.grads[0][...] = x.T @ dA
        self.grads[1][...] = h_prev.T @ dA
        self.grads[2][...] = dA.sum(axis=0)
        return dA @ Wx.T, dA @ Wh.T, ds * f  # dx, dh_prev, dc_prev

    def activations(self) -> dict[str, Any]:
        """The gates of the last forward, (N, H) each: f, i, o, g (``bptt plot gates``)."""
        f, g, i, o = self.cache[3]
        return {"f": f, "i": i, "o": o, "g": g}

    def step(self, x: Any, state: Any = None) -> tuple[Any, tuple[Any, Any]]:
        """Inference step without caching: ``state`` = (h_prev, c_prev) or None (zeros)
        -> (h, (h, c))."""
        if state is None:
            state = (_zeros_state(x, self.H), _zeros_state(x, self.H))
        h_prev, c_prev = state
        self._check(x, h_prev, c_prev)
        h, c, _ = self._next(x, h_prev, c_prev)
        return h, (h, c)

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
        compiled = lstm_kernels(xp, dtype)
        blocks = (lstm_row_loops(xp, dtype, N, T)
                  if compiled is not None and Z is not None and m is None else None)
        product = None if blocks is not None else right_product(
            W if Z is not None else Wh, N, self._scratch, "packed W", steps=T)  # each step's
        if blocks is not None:  # every step in one call, each thread its rows (bptt.kernels)
            packed = packed_panels(W, lambda shape, dt: reused(self._scratch, "packed W", xp,
                                                               shape, dt))
            blocks.forward(A, Z, packed, cs, tanh_c, blocks.parts)
        elif compiled is not None:  # step by step, each in one compiled pass (bptt.kernels)
            rows = hs if Z is None else Z  # h_t is rows[t + 1][:, :H]
            real = self._real_rows(xp, m, T, dtype)
            add = xp.empty((0, 4 * H), dtype=dtype) if Z is not None else tmp  # none: scaled
            for t in range(T):
                if Z is not None:
                    product(A[t], Z[t])
                else:
                    product(tmp, hs[t])
                compiled.forward(A[t], add, cs[t], rows[t], cs[t + 1], tanh_c[t], rows[t + 1],
                                 real[t])
        else:
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
        compiled = lstm_kernels(xp, dtype)
        in_place = (m is None and dhs.dtype == dtype and array_module(dhs) is xp
                    and (compiled is None or dhs.flags.c_contiguous))
        blocks = lstm_row_loops(xp, dtype, N, T) if compiled is not None and m is None else None
        if in_place:
            up = dhs.transpose(1, 0, 2)  # read in place, step by step
        elif blocks is None:
            up = self._upstream(xp, dhs, m, self._work(xp, "up", (T, N, H), dtype))  # 0 if padded
        dh = self._start_dh(xp, dh_last, "dh_last", N, dtype)
        dc = self._start_dh(xp, dc_last, "dc_last", N, dtype)
        self.cache, self._used = None, True  # the inputs are valid: use the buffers up
        dA = A.reshape(T, N, 4, H)
        dh_tot = xp.empty((N, H), dtype=dtype)
        ds = xp.empty((N, H), dtype=dtype)
        fac = xp.empty((N, 4, H), dtype=dtype)
        d = xp.empty((N, 4, H), dtype=dtype)
        # @ Wh.T (4H, H), step after step
        back = None if blocks is not None else right_product(Wh.T, N, self._scratch,
                                                              "packed Wh.T", steps=T)
        if blocks is not None:  # every step in one call, each thread its rows (bptt.kernels)
            packed = packed_panels(Wh.T, lambda shape, dt: reused(self._scratch, "packed Wh.T",
                                                                  xp, shape, dt))
            rows = dhs if in_place else xp.ascontiguousarray(dhs, dtype=dtype)
            blocks.backward(A, tanh_c, cs, rows.reshape(N, T * H), dh, dc, packed, blocks.parts)
        elif compiled is not None:  # the same steps, each in one compiled pass (bptt.kernels)
            real = self._real_rows(xp, m, T, dtype)
            rows = dhs.reshape(N, T * H) if in_place else None  # up[t] = rows[:, tH:(t+1)H]
            for t in reversed(range(T)):
                if m is not None:
                    carry_h = dh * m[0][t]
                up_t, offset = (rows, t * H) if in_place else (up[t], 0)
                compiled.backward(A[t], tanh_c[t], cs[t], up_t, offset, dh, dc, real[t])
                back(dh, A[t])  # dh_{t-1} = dA_t @ Wh.T
                if m is not None:
                    dh += carry_h
        else:
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
