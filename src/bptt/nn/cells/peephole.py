"""Peephole LSTM (Gers & Schmidhuber 2000, "Recurrent nets that time and count"): the gates
also read the cell state, through one weight per unit (the ``p`` below), so a unit can time
intervals from its own cell. Built from bptt's LSTM blocks f, g, i, o; p = 0 is a plain LSTM.
Shape letters: N batch, D input features, H hidden units.
"""

from __future__ import annotations

from typing import Any

from ...backend import array_module, right_product
from ...kernels import peephole_kernels
from ..functions import sigmoid
from .base import TimeRecurrentBase, check_cell_params, check_state, check_step_input


class PeepholeLSTM:
    """One step of an LSTM whose gates also see the cell state (blocks f, g, i, o as in bptt).

        A = x @ Wx + h_prev @ Wh + b                                    (N, 4H)
        f = sigmoid(A[:, :H] + pf * c_prev)      g = tanh(A[:, H:2H])
        i = sigmoid(A[:, 2H:3H] + pi * c_prev)
        c_next = f * c_prev + g * i
        o = sigmoid(A[:, 3H:] + po * c_next)     h_next = o * tanh(c_next)
    backward, with dh_next, dc_next = dL/dh_next, dL/dc_next:
        da_o = dh_next * tanh(c_next) * o * (1 - o)
        ds = dc_next + dh_next * o * (1 - tanh(c_next)**2) + da_o * po
        da_f = ds * c_prev * f * (1 - f)    da_g = ds * i * (1 - g**2)
        da_i = ds * g * i * (1 - i)         dA = [da_f, da_g, da_i, da_o]
        dpf = sum_N da_f * c_prev    dpi = sum_N da_i * c_prev    dpo = sum_N da_o * c_next
        dx = dA @ Wx.T    dh_prev = dA @ Wh.T    dc_prev = ds * f + da_f * pf + da_i * pi

    Params: Wx (D, 4H), Wh (H, 4H), b (4H,), p (3H,) = [pf, pi, po] (zeros: a plain LSTM).
    """

    param_names = ("Wx", "Wh", "b", "p")

    @classmethod
    def init_params(cls, D: int, H: int, init: Any) -> list[Any]:
        Wx, Wh, b = init.W(D, 4 * H), init.W(H, 4 * H), init.B(4 * H)
        return [Wx, Wh, b, array_module(Wx).zeros(3 * H, dtype=Wx.dtype)]  # peepholes closed

    def __init__(self, Wx: Any, Wh: Any, b: Any, p: Any) -> None:
        self.D, self.H = check_cell_params("PeepholeLSTM", Wx, Wh, b, 4)
        if tuple(getattr(p, "shape", ())) != (3 * self.H,) or p.dtype != Wx.dtype:
            raise ValueError(f"PeepholeLSTM parameter p must be ({3 * self.H},) {Wx.dtype}, got "
                             f"{tuple(getattr(p, 'shape', ()))}")
        xp = array_module(Wx)
        self.params = [Wx, Wh, b, p]
        self.grads = [xp.zeros_like(q) for q in self.params]
        self.cache: tuple | None = None

    def forward(self, x: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
        Wx, Wh, b, p = self.params
        check_step_input("PeepholeLSTM", x, self.D, Wx.dtype)
        for name, s in (("h_prev", h_prev), ("c_prev", c_prev)):
            check_state(f"PeepholeLSTM {name}", s, x.shape[0], self.H, Wx.dtype)
        xp = array_module(x)
        H = Wh.shape[0]
        pf, pi, po = p[:H], p[H:2 * H], p[2 * H:]
        A = x @ Wx + h_prev @ Wh + b  # (N, 4H)
        f = sigmoid(A[:, :H] + pf * c_prev)
        g = xp.tanh(A[:, H:2 * H])
        i = sigmoid(A[:, 2 * H:3 * H] + pi * c_prev)
        c_next = f * c_prev + g * i
        o = sigmoid(A[:, 3 * H:] + po * c_next)
        h_next = o * xp.tanh(c_next)
        self.cache = (x, h_prev, c_prev, f, g, i, o, c_next)
        return h_next, c_next

    def backward(self, dh_next: Any, dc_next: Any) -> tuple[Any, Any, Any]:
        Wx, Wh, _, p = self.params
        x, h_prev, c_prev, f, g, i, o, c_next = self.cache
        xp = array_module(x)
        H = Wh.shape[0]
        pf, pi, po = p[:H], p[H:2 * H], p[2 * H:]
        tanh_c = xp.tanh(c_next)
        da_o = dh_next * tanh_c * o * (1 - o)
        ds = dc_next + dh_next * o * (1 - tanh_c**2) + da_o * po
        da_f = ds * c_prev * f * (1 - f)
        da_g = ds * i * (1 - g**2)
        da_i = ds * g * i * (1 - i)
        dA = xp.concatenate([da_f, da_g, da_i, da_o], axis=1)  # (N, 4H)
        self.grads[0][...] = x.T @ dA
        self.grads[1][...] = h_prev.T @ dA
        self.grads[2][...] = dA.sum(axis=0)
        self.grads[3][...] = xp.concatenate([(da_f * c_prev).sum(axis=0),
                                             (da_i * c_prev).sum(axis=0),
                                             (da_o * c_next).sum(axis=0)])
        dc_prev = ds * f + da_f * pf + da_i * pi
        return dA @ Wx.T, dA @ Wh.T, dc_prev

    def activations(self) -> dict[str, Any]:
        """The gates of the last forward, for ``bptt plot gates``."""
        _, _, _, f, g, i, o, _ = self.cache
        return {"f": f, "i": i, "o": o, "g": g}


class TimePeepholeLSTM(TimeRecurrentBase):
    """The peephole LSTM over T steps (the equations of :class:`PeepholeLSTM`): the input
    products of all steps are ONE matrix product before the loop, and dWx, dWh, db, dxs one
    product each after it, as in :class:`~bptt.TimeLSTM`.

    xs (N, T, D) -> hs (N, T, H). Params: Wx (D, 4H), Wh (H, 4H), b (4H,), p (3H,).
    With ``pip install 'bptt[numba]'`` each step's element-wise part (after h_{t-1} @ Wh) is
    one compiled pass each way (:func:`bptt.kernels.peephole_kernels`); this loop stays the
    reference.
    """

    name = "TimePeepholeLSTM"
    gates = 4
    has_cell = True
    param_names = PeepholeLSTM.param_names

    def __init__(self, Wx: Any, Wh: Any, b: Any, p: Any, stateful: bool = False) -> None:
        step = PeepholeLSTM(Wx, Wh, b, p)  # checks every shape and dtype
        self.D, self.H = step.D, step.H
        self._setup(step.params, stateful)
        self._make_grads()

    def forward(self, xs: Any, mask: Any = None) -> Any:
        Wx, Wh, b, p = self.params
        xp, N, T, xs_tm, m, h0, c0 = self._begin(xs, mask)
        H = self.H
        pf, pi, po = p[:H], p[H:2 * H], p[2 * H:]
        AX = (xs_tm @ Wx).reshape(T, N, 4 * H) + b  # (T, N, 4H)
        hs = xp.empty((T + 1, N, H), dtype=xs.dtype)
        cs = xp.empty((T + 1, N, H), dtype=xs.dtype)
        gates = xp.empty((T, 4, N, H), dtype=xs.dtype)  # f, g, i, o
        tanh_cs = xp.empty((T, N, H), dtype=xs.dtype)
        hs[0], cs[0] = h0, c0
        compiled = peephole_kernels(xp, xs.dtype)
        if compiled is not None:  # the same step in one compiled pass (bptt.kernels)
            real = self._real_rows(xp, m, T, xs.dtype)
            rec = xp.empty((N, 4 * H), dtype=xs.dtype)
            product = right_product(Wh, N, self._scratch, "packed Wh", steps=T)
            for t in range(T):
                product(rec, hs[t])  # h_{t-1} @ Wh
                compiled.forward(AX[t], rec, p, cs[t], hs[t], cs[t + 1], tanh_cs[t], hs[t + 1],
                                 gates[t], real[t])
        for t in range(T if compiled is None else 0):
            A = AX[t] + hs[t] @ Wh
            c_prev = cs[t]
            f = sigmoid(A[:, :H] + pf * c_prev)
            g = xp.tanh(A[:, H:2 * H])
            i = sigmoid(A[:, 2 * H:3 * H] + pi * c_prev)
            c = f * c_prev + g * i
            o = sigmoid(A[:, 3 * H:] + po * c)
            tanh_c = xp.tanh(c)
            h = o * tanh_c
            if m is not None:  # padded: carry the state
                h, c = xp.where(m[0][t], hs[t], h), xp.where(m[0][t], c_prev, c)
            hs[t + 1], cs[t + 1] = h, c
            gates[t, 0], gates[t, 1], gates[t, 2], gates[t, 3] = f, g, i, o
            tanh_cs[t] = tanh_c
        self.cache = (xs_tm, hs, cs, gates, tanh_cs, m, N, T)
        self.h, self.c = hs[T].copy(), cs[T].copy()
        return self._outputs(xp, hs, m)

    def backward(self, dhs: Any, dh_last: Any = None, dc_last: Any = None) -> Any:
        xs_tm, hs, cs, gates, tanh_cs, m, N, T = self._cache()
        Wx, Wh, _, p = self.params
        xp = array_module(dhs)
        self._check_dhs(dhs, N, T)
        dtype = Wx.dtype
        H = self.H
        pf, pi, po = p[:H], p[H:2 * H], p[2 * H:]
        up = self._upstream(xp, dhs, m)  # (T, N, H)
        dh = self._start_dh(xp, dh_last, "dh_last", N, dtype)
        dc = self._start_dh(xp, dc_last, "dc_last", N, dtype)
        dA_all = xp.empty((T, N, 4 * H), dtype=dtype)
        dp = xp.zeros(3 * H, dtype=dtype)
        compiled = peephole_kernels(xp, dtype)
        if compiled is not None:  # the same step in one compiled pass (bptt.kernels)
            real = self._real_rows(xp, m, T, dtype)
            back = right_product(Wh.T, N, self._scratch, "packed Wh.T", steps=T)
            rec = xp.empty((N, H), dtype=dtype)
            for t in range(T - 1, -1, -1):  # dh becomes what a padded step passes on
                compiled.backward(gates[t], tanh_cs[t], cs[t], cs[t + 1], up[t], dh, dc, p,
                                  dA_all[t], dp, real[t])
                if m is None:
                    back(dh, dA_all[t])  # dh_{t-1} = dA_t @ Wh.T
                else:
                    back(rec, dA_all[t])
                    dh += rec
        for t in range(T - 1, -1, -1) if compiled is None else ():
            f, g, i, o = gates[t]
            tanh_c, c_prev, c = tanh_cs[t], cs[t], cs[t + 1]
            dh_t, dc_t = up[t] + dh, dc
            if m is not None:  # a padded step: its gradient passes to t-1 unchanged
                keep = m[0][t]
                dh_carry, dc_carry = dh_t * keep, dc_t * keep
                dh_t, dc_t = dh_t * m[1][t], dc_t * m[1][t]
            da_o = dh_t * tanh_c * o * (1 - o)
            ds = dc_t + dh_t * o * (1 - tanh_c**2) + da_o * po
            da_f = ds * c_prev * f * (1 - f)
            da_i = ds * g * i * (1 - i)
            dA = dA_all[t]
            dA[:, :H], dA[:, H:2 * H] = da_f, ds * i * (1 - g**2)
            dA[:, 2 * H:3 * H], dA[:, 3 * H:] = da_i, da_o
            dp[:H] += (da_f * c_prev).sum(axis=0)
            dp[H:2 * H] += (da_i * c_prev).sum(axis=0)
            dp[2 * H:] += (da_o * c).sum(axis=0)
            dh, dc = dA @ Wh.T, ds * f + da_f * pf + da_i * pi
            if m is not None:
                dh, dc = dh + dh_carry, dc + dc_carry
        self.grads[1][...] = hs[:-1].reshape(T * N, H).T @ dA_all.reshape(T * N, 4 * H)
        self.grads[3][...] = dp
        self.dh, self.dc = dh, dc
        return self._finish_backward(xp, dA_all, xs_tm, N, T)  # dWx, db, dxs
