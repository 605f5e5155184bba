"""The vanilla RNN cell (Deep Learning from Scratch 2, ch. 5): its step (:class:`RNN`) and its
fused Time layer (:class:`TimeRNN`).

    Wx (D, H)    Wh (H, H)    b (H,)          Shape letters: N batch, T time steps, D input
                                              features, H hidden units.
"""

from __future__ import annotations

from typing import Any

from ...backend import array_module, right_product
from ...kernels import rnn_forward_kernel
from .base import (
    NONLINEARITIES,
    TimeRecurrentBase,
    _matmul_into,
    _zeros_state,
    check_cell_params,
    check_state,
    check_step_input,
)


class RNN:
    """One step of a vanilla (Elman) RNN.

        a      = x @ Wx + h_prev @ Wh + b        (N, H)
        h_next = tanh(a)    or relu(a) = max(a, 0) with nonlinearity="relu"
    backward, with dh_next = dL/dh_next:
        da      = dh_next * (1 - h_next**2)      (relu: dh_next * (h_next > 0))
        dWx = x.T @ da    dWh = h_prev.T @ da    db = sum_N da
        dx  = da @ Wx.T   dh_prev = da @ Wh.T

    Params: Wx (D, H), Wh (H, H), b (H,). x (N, D), h_prev and h_next (N, H).
    """

    def __init__(self, Wx: Any, Wh: Any, b: Any, nonlinearity: str = "tanh") -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
        self.D, self.H = check_cell_params("RNN", Wx, Wh, b, 1)
        self.nonlinearity = nonlinearity
        self.params = [Wx, Wh, b]
        xp = array_module(Wx)
        self.grads = [xp.zeros_like(p) for p in self.params]
        self.cache: tuple | None = None

    def _check(self, x: Any, h_prev: Any) -> None:
        check_step_input("RNN", x, self.D, self.params[0].dtype)
        check_state("RNN h_prev", h_prev, x.shape[0], self.H, x.dtype)

    def _next(self, x: Any, h_prev: Any) -> Any:
        Wx, Wh, b = self.params
        a = x @ Wx + h_prev @ Wh + b  # (N, H)
        if self.nonlinearity == "tanh":
            return array_module(a).tanh(a, out=a)
        return array_module(a).maximum(a, 0, out=a)

    def forward(self, x: Any, h_prev: Any) -> Any:
        self._check(x, h_prev)
        h_next = self._next(x, h_prev)
        self.cache = (x, h_prev, h_next)
        return h_next

    def backward(self, dh_next: Any) -> tuple[Any, Any]:
        Wx, Wh, _ = self.params
        x, h_prev, h_next = self.cache
        if self.nonlinearity == "tanh":
            da = dh_next * (1 - h_next**2)
        else:
            da = dh_next * (h_next > 0)
        self.grads[0][...] = x.T @ da  # in place: optimizers hold these arrays
        self.grads[1][...] = h_prev.T @ da
        self.grads[2][...] = da.sum(axis=0)
        return da @ Wx.T, da @ Wh.T  # dx, dh_prev

    def activations(self) -> dict[str, Any]:
        """The gate values of the last forward, by name (none: a plain RNN has no gates)."""
        return {}

    def step(self, x: Any, state: Any = None) -> tuple[Any, Any]:
        """Inference step without caching: ``state`` = h_prev (None = zeros) -> (h, h)."""
        h_prev = _zeros_state(x, self.H) if state is None else state
        self._check(x, h_prev)
        h = self._next(x, h_prev)
        return h, h

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
        product = right_product(Wh, N, self._scratch, "packed Wh", steps=T)
        compiled = rnn_forward_kernel(xp, xs.dtype)
        if compiled is not None:  # the same steps, f(a + h_{t-1} @ Wh) compiled (bptt.kernels)
            real = self._real_rows(xp, m, T, xs.dtype)
            for t in range(T):
                product(tmp, hs[t])
                compiled(hs[t + 1], tmp, hs[t], real[t], relu)
        for t in range(T if compiled is None else 0):
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
        back = right_product(Wh.T, N, self._scratch, "packed Wh.T", steps=T)  # @ Wh.T (H, H)
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
