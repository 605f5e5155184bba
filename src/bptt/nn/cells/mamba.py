"""A Mamba-style selective state space cell: the S6 layer of Gu and Dao (2023, "Mamba:
Linear-Time Sequence Modeling with Selective State Spaces", Algorithm 2), one input channel
per hidden unit, a state of S = 16 numbers per channel. The step Δ and the matrices B and C
depend on the input ("selective"); A is diagonal and negative, so exp(Δ A) is in (0, 1) and
the state cannot blow up in any precision. The block around it in Mamba (the input and output
projections, the convolution, the gate z) is left to the model: this is the recurrence. Shape
letters: N batch, D input features, H channels (hidden units), S state size.

The state is (h, c_state) with c_state = s (N, H*S), channel-major: the recurrent memory is s,
the output h is not fed back. The recurrence is linear in s, so a whole sequence is also one
parallel scan (:func:`mamba_scan`), tested equal to the step loop.
"""

from __future__ import annotations

import math
from typing import Any

from ...backend import array_module
from ...validate import check_float, check_ndim
from ..cell_spec import CellSpec
from ..functions import sigmoid
from .base import TimeCell, check_state, check_step_input
from .minimal import scan_linear

STATE_SIZE = 16


def _softplus(xp: Any, a: Any) -> Any:
    return xp.maximum(a, 0) + xp.log1p(xp.exp(-xp.abs(a)))


def _check_params(Wx: Any, b: Any, WB: Any, WC: Any, A_log: Any, Dk: Any) -> tuple[int, int]:
    for name, p in (("Wx", Wx), ("b", b), ("WB", WB), ("WC", WC), ("A_log", A_log),
                    ("Dk", Dk)):
        check_float(f"Mamba parameter {name}", p)
    check_ndim("Mamba parameter Wx", Wx, 2, "D, 2H")
    D, H2 = Wx.shape
    H = H2 // 2
    want = {"b": (H2,), "WB": (D, STATE_SIZE), "WC": (D, STATE_SIZE),
            "A_log": (H, STATE_SIZE), "Dk": (H,)}
    got = {"b": b.shape, "WB": WB.shape, "WC": WC.shape, "A_log": A_log.shape, "Dk": Dk.shape}
    if H2 % 2 or any(tuple(got[k]) != v for k, v in want.items()):
        raise ValueError(f"Mamba parameters do not fit together: Wx {tuple(Wx.shape)}, "
                         + ", ".join(f"{k} {tuple(got[k])}" for k in want)
                         + "; they must be Wx (D, 2H) [u, δ], "
                         + ", ".join(f"{k} {v}" for k, v in want.items()))
    if len({p.dtype for p in (Wx, b, WB, WC, A_log, Dk)}) != 1:
        raise TypeError("Mamba parameters must share one dtype")
    return D, H


class Mamba:
    """One step of the selective state space (S6), state s (N, H, S).

        [u, δ] = x @ Wx + b       (N, H) each        Δ = softplus(δ)       A = -exp(A_log) (H, S)
        B = x @ WB, C = x @ WC    (N, S) each
        a = exp(Δ A)              (N, H, S)          the decay, in (0, 1)
        s = a * s_prev + (Δ u) B                     (Δ u)[:, :, None] * B[:, None, :]
        h = sum_S s * C + Dk * u                     (N, H)
    backward, with dh and ds (the gradient of the next state s):
        ds += dh C      dC = sum_H dh s       dDk = sum_N dh u     du = dh Dk
        da = ds * s_prev      ds_prev = ds * a     d(Δu) = sum_S ds B     dB = sum_H ds (Δu)
        dΔ = d(Δu) u + sum_S da a A      du += d(Δu) Δ      dA_log = sum_N da a Δ A
        dδ = dΔ sigmoid(δ)      dx = [du, dδ] @ Wx.T + dB @ WB.T + dC @ WC.T     dh_prev = 0

    Params: Wx (D, 2H), b (2H,), WB (D, S), WC (D, S), A_log (H, S), Dk (H,); S = 16. At the
    start A's rows are -1..-16 (S4D-real) and Δ is log-uniform in [0.001, 0.1], as in Mamba.
    """

    param_names = ("Wx", "b", "WB", "WC", "A_log", "Dk")
    recurrent_params: tuple[str, ...] = ()  # no weight multiplies the previous state
    reads_previous_h = False  # the step reads the previous state through s only

    @classmethod
    def init_params(cls, D: int, H: int, init: Any) -> list[Any]:
        Wx, WB, WC = init.W(D, 2 * H), init.W(D, STATE_SIZE), init.W(D, STATE_SIZE)
        xp = array_module(Wx)
        dtype = Wx.dtype
        step = xp.exp(xp.linspace(math.log(1e-3), math.log(0.1), H))  # Δ at the start
        b = xp.concatenate([xp.zeros(H), step + xp.log(-xp.expm1(-step))]).astype(dtype)
        A_log = xp.log(xp.broadcast_to(xp.arange(1, STATE_SIZE + 1, dtype=dtype),
                                       (H, STATE_SIZE))).astype(dtype)
        return [Wx, b, WB, WC, A_log, xp.ones(H, dtype=dtype)]

    @staticmethod
    def cell_state_width(H: int) -> int:
        return H * STATE_SIZE

    def __init__(self, Wx: Any, b: Any, WB: Any, WC: Any, A_log: Any, Dk: Any) -> None:
        self.D, self.H = _check_params(Wx, b, WB, WC, A_log, Dk)
        xp = array_module(Wx)
        self.params = [Wx, b, WB, WC, A_log, Dk]
        self.grads = [xp.zeros_like(p) for p in self.params]
        self.cache: tuple | None = None

    def forward(self, x: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
        Wx, b, WB, WC, A_log, Dk = self.params
        check_step_input("Mamba", x, self.D, Wx.dtype)
        check_state("Mamba h_prev", h_prev, x.shape[0], self.H, Wx.dtype)
        check_state("Mamba c_prev (s)", c_prev, x.shape[0], self.H * STATE_SIZE, Wx.dtype)
        xp = array_module(x)
        N, H = x.shape[0], self.H
        s0 = c_prev.reshape(N, H, STATE_SIZE)
        ud = x @ Wx + b
        u, d = ud[:, :H], ud[:, H:]
        delta = _softplus(xp, d)
        B, C = x @ WB, x @ WC
        A = -xp.exp(A_log)
        a = xp.exp(delta[:, :, None] * A)
        du_ = delta * u
        s = a * s0 + du_[:, :, None] * B[:, None, :]
        h = (s * C[:, None, :]).sum(axis=2) + Dk * u
        self.cache = (x, s0, u, d, delta, B, C, A, a, du_, s)
        return h, s.reshape(N, H * STATE_SIZE)

    def backward(self, dh: Any, dc_next: Any) -> tuple[Any, Any, Any]:
        Wx, _, WB, WC, _, Dk = self.params
        x, s0, u, d, delta, B, C, A, a, du_, s = self.cache
        xp = array_module(x)
        N, H = x.shape[0], self.H
        ds = dc_next.reshape(N, H, STATE_SIZE) + dh[:, :, None] * C[:, None, :]
        dC = (dh[:, :, None] * s).sum(axis=1)
        du = dh * Dk
        da = ds * s0
        ddu = (ds * B[:, None, :]).sum(axis=2)
        dB = (ds * du_[:, :, None]).sum(axis=1)
        dadelta = da * a  # d(exp(Δ A)) = exp(Δ A) d(Δ A)
        ddelta = ddu * u + (dadelta * A).sum(axis=2)
        du = du + ddu * delta
        dd = ddelta * sigmoid(d)
        dud = xp.concatenate([du, dd], axis=1)  # (N, 2H)
        self.grads[0][...] = x.T @ dud
        self.grads[1][...] = dud.sum(axis=0)
        self.grads[2][...] = x.T @ dB
        self.grads[3][...] = x.T @ dC
        self.grads[4][...] = (dadelta * delta[:, :, None]).sum(axis=0) * A
        self.grads[5][...] = (dh * u).sum(axis=0)
        dx = dud @ Wx.T + dB @ WB.T + dC @ WC.T
        return dx, xp.zeros((N, H), dtype=x.dtype), (ds * a).reshape(N, H * STATE_SIZE)

    def activations(self) -> dict[str, Any]:
        """The last step's step size Δ and input u, per channel, for pictures."""
        _, _, u, _, delta, *_ = self.cache
        return {"delta": delta, "u": u}


def _recurrence(xp: Any, a: Any, b: Any, parallel: bool) -> Any:
    """x_t = a_t x_{t-1} + b_t over axis 1 of (N, T, ...) from x_{-1} = 0: one parallel scan
    (log2 T whole-array rounds, for a GPU), or T vectorised steps (fewer passes over memory:
    faster on a CPU, as for minGRU)."""
    if parallel:
        return scan_linear(a.transpose(1, 0, 2, 3), b.transpose(1, 0, 2, 3)).transpose(
            1, 0, 2, 3)
    out = xp.empty_like(b)
    out[:, 0] = b[:, 0]
    for t in range(1, b.shape[1]):
        xp.multiply(a[:, t], out[:, t - 1], out=out[:, t])
        out[:, t] += b[:, t]
    return out


def _adjoint(xp: Any, a: Any, direct: Any, parallel: bool) -> Any:
    """g_t = direct_t + a_{t+1} g_{t+1} over axis 1 of (N, T, ...), g_{T-1} = direct_{T-1}: the
    recurrence's adjoint, a scan over reversed time (``parallel``) or a loop written into
    ``direct`` itself."""
    if parallel:
        a_next = xp.zeros_like(a)  # a_{t+1}, 0 after the last step
        a_next[:, :-1] = a[:, 1:]
        rev = (slice(None), slice(None, None, -1))
        return _recurrence(xp, a_next[rev], direct[rev], True)[rev]
    g = direct
    carried = xp.empty_like(g[:, 0])
    for t in range(g.shape[1] - 2, -1, -1):
        xp.multiply(a[:, t + 1], g[:, t + 1], out=carried)
        g[:, t] += carried
    return g


def _scan_forward(params: list[Any], xs: Any, s0: Any,
                  parallel: bool = True) -> tuple[Any, tuple]:
    """hs of the whole sequence from the state s0 (N, H, S) by one linear recurrence (a
    parallel scan, or a loop: :func:`_recurrence`), and what its backward needs. s0 enters
    as part of the first step's input: b_0 += a_0 s0."""
    Wx, b, WB, WC, A_log, Dk = params
    xp = array_module(Wx, xs)
    H = Wx.shape[1] // 2
    ud = xs @ Wx + b
    u, d = ud[..., :H], ud[..., H:]
    delta = _softplus(xp, d)  # (N, T, H)
    B, C = xs @ WB, xs @ WC  # (N, T, S)
    A = -xp.exp(A_log)
    a = xp.exp(delta[..., None] * A)  # (N, T, H, S)
    du_ = delta * u
    bterm = du_[..., None] * B[:, :, None, :]
    bterm[:, 0] += a[:, 0] * s0
    s = _recurrence(xp, a, bterm, parallel)
    hs = (s @ C[..., None])[..., 0] + Dk * u  # sum_S s C, as N*T small products
    return hs, (u, d, delta, B, C, A, a, du_, s, s0)


def mamba_scan(params: list[Any], xs: Any) -> Any:
    """The whole sequence as one parallel scan (Hillis-Steele over T, :func:`scan_linear`):
    xs (N, T, D) -> hs (N, T, H) from s = 0, equal to the step loop of :class:`Mamba`."""
    N, H = xs.shape[0], params[0].shape[1] // 2
    s0 = array_module(params[0]).zeros((N, H, STATE_SIZE), dtype=xs.dtype)
    return _scan_forward(params, xs, s0)[0]


_SPEC = CellSpec("mamba", Mamba, 2, has_cell_state=True)


class TimeMamba(TimeCell):
    """The selective state space over T steps, vectorised over all steps but the linear
    recurrence itself: forward s_t = a_t s_{t-1} + b_t, backward its adjoint over reversed
    time, each a parallel scan on a GPU and a loop of T array operations on NumPy (where the
    scan's O(T log T) passes cost more); a mask takes the step loop
    (:class:`~bptt.nn.time_cell.TimeCell`). Equal to the step loop to rounding (tests).

    backward, with g_t = dL/ds_t in total (from h_t and from s_{t+1}):
        g_t = dhs_t C_t + a_{t+1} g_{t+1}      (a scan over reversed time)
        da_t = g_t s_{t-1}      then the step's equations (:class:`Mamba`), all t at once
        ds0 = a_0 g_0           (the initial state's gradient, ``dc``)
    """

    def __init__(self, Wx: Any, b: Any, WB: Any, WC: Any, A_log: Any, Dk: Any,
                 stateful: bool = False) -> None:
        super().__init__(_SPEC, Wx, b, WB, WC, A_log, Dk, stateful=stateful)
        self.name = "TimeMamba"
        self._scan_cache: tuple | None = None

    def forward(self, xs: Any, mask: Any = None) -> Any:
        if mask is not None:
            self._scan_cache = None
            return super().forward(xs, mask)
        xp, N, T, _, _, _, c0 = self._begin(xs, None)
        H = self.H
        hs, saved = _scan_forward(self.params, xs, c0.reshape(N, H, STATE_SIZE),
                                  parallel=xp.__name__ != "numpy")
        self.h = hs[:, -1]
        self.c = saved[8][:, -1].reshape(N, H * STATE_SIZE)
        self._scan_cache = (xs, saved)
        return hs

    def backward(self, dhs: Any, dh_last: Any = None, dc_last: Any = None) -> Any:
        if self._scan_cache is None:
            return super().backward(dhs, dh_last, dc_last)
        xs, (u, d, delta, B, C, A, a, du_, s, s0) = self._scan_cache
        Wx, _, WB, WC, _, Dk = self.params
        xp = array_module(dhs)
        N, T, D = xs.shape
        H = self.H
        dhs = self._output_gradients(dhs, dh_last, N, T)
        direct = dhs[..., None] * C[:, :, None, :]  # (N, T, H, S): dL/ds_t through h_t
        if dc_last is not None:
            direct[:, -1] += dc_last.reshape(N, H, STATE_SIZE)
        g = _adjoint(xp, a, direct, xp.__name__ != "numpy")
        dadelta = g * a  # then times s_{t-1}, without a shifted copy of s
        dadelta[:, 1:] *= s[:, :-1]
        dadelta[:, 0] *= s0
        # the sums over S and over H as N*T small matrix products (a multiply-and-sum over a
        # 16-wide axis is ~20x slower in NumPy)
        ddu = (g @ B[..., None])[..., 0]
        dB = (du_[:, :, None, :] @ g)[:, :, 0]  # (N, T, S)
        dC = (dhs[:, :, None, :] @ s)[:, :, 0]
        du = dhs * Dk + ddu * delta
        dd = (ddu * u + xp.einsum("nths,hs->nth", dadelta, A)) * sigmoid(d)
        dud = xp.concatenate([du, dd], axis=2).reshape(N * T, 2 * H)
        x2 = xs.reshape(N * T, D)
        dB2, dC2 = dB.reshape(N * T, STATE_SIZE), dC.reshape(N * T, STATE_SIZE)
        self.grads[0][...] = x2.T @ dud
        self.grads[1][...] = dud.sum(axis=0)
        self.grads[2][...] = x2.T @ dB2
        self.grads[3][...] = x2.T @ dC2
        self.grads[4][...] = (dadelta * delta[..., None]).sum(axis=(0, 1)) * A
        self.grads[5][...] = (dhs * u).sum(axis=(0, 1))
        self.dh = xp.zeros((N, H), dtype=dhs.dtype)
        self.dc = (a[:, 0] * g[:, 0]).reshape(N, H * STATE_SIZE)
        return (dud @ Wx.T + dB2 @ WB.T + dC2 @ WC.T).reshape(N, T, D)
