"""IndRNN (Li et al. 2018, "Independently Recurrent Neural Network"): one recurrent weight per unit.

    a_t = x_t @ Wx + u * h_{t-1} + b           (N, H)    u (H,): element-wise, no H x H matrix
    h_t = relu(a_t)
backward, with G_t = dL/dh_t (from the output and from step t+1):
    da_t = G_t * (a_t > 0)       dh_{t-1} = da_t * u
    dWx = sum_t x_t.T @ da_t     du = sum_t,N da_t * h_{t-1}     db = sum_t,N da_t
    dx_t = da_t @ Wx.T

Each unit sees only its own past, so dL/dh_t over k steps is a product of k factors u_j * relu'
per unit: it neither explodes nor vanishes when |u_j| stays near 1. The paper's constraint keeps
it there: |u| <= u_max (default 1: no unit's gradient grows through time), applied by clipping u
in place before every forward, i.e. after every update (a projected gradient step).
Initialisation: u ~ U(0, 1), Wx N(0, 1/D) (or the model's initializer), b = 0.

Params: Wx (D, H), u (H,), b (H,). Shape letters: N batch, T time steps, D inputs, H units.
"""

from __future__ import annotations

from typing import Any

from ...backend import array_module
from ...validate import check_float, check_ndim
from .base import TimeRecurrentBase, check_state, check_step_input


def _check_params(name: str, Wx: Any, u: Any, b: Any) -> tuple[int, int]:
    for pname, p in (("Wx", Wx), ("u", u), ("b", b)):
        check_float(f"{name} parameter {pname}", p)
    check_ndim(f"{name} parameter Wx", Wx, 2, "D, H")
    check_ndim(f"{name} parameter u", u, 1, "H")
    check_ndim(f"{name} parameter b", b, 1, "H")
    H = Wx.shape[1]
    if u.shape[0] != H or b.shape[0] != H or not (Wx.dtype == u.dtype == b.dtype):
        raise ValueError(f"{name} parameters do not fit together: Wx {tuple(Wx.shape)}, "
                         f"u {tuple(u.shape)}, b {tuple(b.shape)}; they must be Wx (D, H), "
                         f"u (H,), b (H,) of one dtype")
    return int(Wx.shape[0]), int(H)


def _check_u_max(u_max: float) -> float:
    if not u_max > 0:
        raise ValueError(f"IndRNN u_max must be positive, got {u_max}")
    return float(u_max)


class IndRNN:
    """One IndRNN step (the module docstring). Params: Wx (D, H), u (H,), b (H,)."""

    param_names = ("Wx", "u", "b")
    recurrent_params = ("u",)  # what ``bptt gradflow`` scales

    @classmethod
    def init_params(cls, D: int, H: int, init: Any) -> list[Any]:
        Wx, b = init.W(D, H), init.B(H)
        xp = array_module(Wx)
        u = xp.asarray(xp.linspace(0.0, 1.0, H + 2)[1:-1], dtype=Wx.dtype)  # U(0, 1) quantiles
        return [Wx, u, b]

    def __init__(self, Wx: Any, u: Any, b: Any, u_max: float = 1.0) -> None:
        self.D, self.H = _check_params("IndRNN", Wx, u, b)
        self.u_max = _check_u_max(u_max)
        xp = array_module(Wx)
        self.params = [Wx, u, b]
        self.grads = [xp.zeros_like(p) for p in self.params]
        self.cache: tuple | None = None

    def forward(self, x: Any, h_prev: Any) -> Any:
        Wx, u, b = self.params
        check_step_input("IndRNN", x, self.D, Wx.dtype)
        check_state("IndRNN h_prev", h_prev, x.shape[0], self.H, Wx.dtype)
        xp = array_module(x)
        xp.clip(u, -self.u_max, self.u_max, out=u)  # the constraint |u| <= u_max
        h_next = xp.maximum(x @ Wx + u * h_prev + b, 0)  # (N, H)
        self.cache = (x, h_prev, h_next)
        return h_next

    def backward(self, dh_next: Any) -> tuple[Any, Any]:
        Wx, u, _ = self.params
        x, h_prev, h_next = self.cache
        da = dh_next * (h_next > 0)
        self.grads[0][...] = x.T @ da
        self.grads[1][...] = (da * h_prev).sum(axis=0)
        self.grads[2][...] = da.sum(axis=0)
        return da @ Wx.T, da * u


class TimeIndRNN(TimeRecurrentBase):
    """IndRNN over T steps: the input products of all steps in one GEMM, then an element-wise
    loop (the module docstring). xs (N, T, D) -> hs (N, T, H). Params: Wx (D, H), u (H,), b (H,).
    """

    name = "TimeIndRNN"
    param_names = ("Wx", "u", "b")

    def __init__(self, Wx: Any, u: Any, b: Any, stateful: bool = False,
                 u_max: float = 1.0) -> None:
        self.D, self.H = _check_params(self.name, Wx, u, b)
        self.u_max = _check_u_max(u_max)
        self._setup([Wx, u, b], stateful)
        self._make_grads()

    def forward(self, xs: Any, mask: Any = None) -> Any:
        Wx, u, b = self.params
        xp, N, T, xs_tm, m, h0, _ = self._begin(xs, mask)
        xp.clip(u, -self.u_max, self.u_max, out=u)  # the constraint |u| <= u_max
        a = (xs_tm @ Wx + b).reshape(T, N, self.H)  # (T, N, H): x_t @ Wx + b for every t
        hs = xp.empty((T + 1, N, self.H), dtype=xs.dtype)
        hs[0] = h0
        for t in range(T):
            a[t] += u * hs[t]
            xp.maximum(a[t], 0, out=hs[t + 1])
            if m is not None:  # padded: carry the state
                hs[t + 1] = xp.where(m[0][t], hs[t], hs[t + 1])
        self.cache = (xs_tm, hs, m, N, T)
        self.h = hs[T]
        return self._outputs(xp, hs, m)

    def backward(self, dhs: Any, dh_last: Any = None) -> Any:
        xs_tm, hs, m, N, T = self._cache()
        Wx, u, _ = self.params
        xp = array_module(dhs)
        self._check_dhs(dhs, N, T)
        dtype = Wx.dtype
        up = self._upstream(xp, dhs, m)  # (T, N, H)
        da = xp.empty_like(up)
        dh = self._start_dh(xp, dh_last, "dh_last", N, dtype)
        for t in range(T - 1, -1, -1):
            g = up[t] + dh  # G_t
            xp.multiply(g, hs[t + 1] > 0, out=da[t])
            if m is not None:  # a padded step passes G on and computes nothing
                da[t] *= m[1][t]
                dh = da[t] * u + g * m[0][t]
            else:
                dh = da[t] * u
        self.dh = dh
        self.grads[1][...] = (da * hs[:-1]).sum(axis=(0, 1))
        return self._finish_backward(xp, da, xs_tm, N, T)  # dWx, db, dxs
