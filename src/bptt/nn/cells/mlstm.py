"""mLSTM, the matrix-memory LSTM of xLSTM (Beck et al. 2024, "xLSTM: Extended Long Short-Term
Memory", sec. 2.3): a memory matrix C updated by the covariance rule C += i * v k^T, read with
a query q, an exponential input gate and a sigmoid forget gate (one scalar each per sequence),
a normalizer n and a stabilizer m. One head of size H. Its gates read x_t only (no recurrent
weight), so the whole sequence also has a parallel form (:func:`mlstm_parallel`), tested equal
to the step loop. Shape letters: N batch, D input features, H hidden units (= head size).

The state is (h, c_state) with c_state = [C (H*H, row-major) | n (H) | m (H copies)], (N,
H*H + 2H): it travels wherever an LSTM's (h, c) does. The stabilizer changes no output (C and n
are both exp(-m) times their unstabilized values, and the denominator's floor is exp(-m)).
"""

from __future__ import annotations

import math
from typing import Any

from ...backend import array_module, matmul_stacked
from ...validate import check_float, check_ndim
from ..cell_spec import CellSpec
from ..functions import sigmoid
from .base import TimeCell, check_state, check_step_input


def _log_sigmoid(xp: Any, a: Any) -> Any:
    return xp.minimum(a, 0) - xp.log1p(xp.exp(-xp.abs(a)))


def _check_params(Wx: Any, b: Any, wg: Any, bg: Any) -> tuple[int, int]:
    for name, p in (("Wx", Wx), ("b", b), ("wg", wg), ("bg", bg)):
        check_float(f"MLSTM parameter {name}", p)
    check_ndim("MLSTM parameter Wx", Wx, 2, "D, 4H")
    D, H4 = Wx.shape
    if H4 % 4 or tuple(b.shape) != (H4,) or tuple(wg.shape) != (D, 2) or tuple(bg.shape) != (2,):
        raise ValueError(f"MLSTM parameters do not fit together: Wx {tuple(Wx.shape)}, b "
                         f"{tuple(b.shape)}, wg {tuple(wg.shape)}, bg {tuple(bg.shape)}; they "
                         f"must be Wx (D, 4H) [q, k, v, o], b (4H,), wg (D, 2) [i, f], bg (2,)")
    if not Wx.dtype == b.dtype == wg.dtype == bg.dtype:
        raise TypeError("MLSTM parameters must share one dtype")
    return D, H4 // 4


class MLSTM:
    """One mLSTM step (blocks q, k, v, o of Wx and b; the scalar gates i, f from wg, bg).

        A = x @ Wx + b: q, k~, v, õ (N, H) each       k = k~ / sqrt(H)
        [ĩ, f̃] = x @ wg + bg  (N,) each                lf = log sigmoid(f̃)
        m = max(lf + m_prev, ĩ)   (ĩ from a fresh state)     stabilizer
        i' = exp(ĩ - m)     f' = exp(lf + m_prev - m)
        C = f' C_prev + i' v k^T   (N, H, H)          n = f' n_prev + i' k
        h~ = C q / max(|n . q|, exp(-m))              h = sigmoid(õ) * h~
    backward, with dh and the gradients dC, dn, dm of the next state:
        dõ = dh * h~ * o (1 - o)       dnum = dh * o / den
        dden = -sum(dh * o * h~) / den  ->  |n . q| (sign) or exp(-m) (whichever is larger)
        dC += dnum q^T     dq = C^T dnum + d(n.q) n      dn += d(n.q) q
        df' = <dC, C_prev> + dn . n_prev     di' = v^T dC k + dn . k
        dv = i' dC k       dk = i' (dC^T v + dn)         dC_prev = f' dC   dn_prev = f' dn
        dm_all = dm + (den's share) - df' f' - di' i'
        da = df' f' + dm_all [m took lf + m_prev]    dĩ = di' i' + dm_all [m took ĩ]
        df̃ = da (1 - sigmoid(f̃))     dm_prev = da
        dx = [dq, dk / sqrt(H), dv, dõ] @ Wx.T + [dĩ, df̃] @ wg.T      dh_prev = 0

    Params: Wx (D, 4H), b (4H,), wg (D, 2), bg (2,) (forget bias +3 at the start).
    """

    param_names = ("Wx", "b", "wg", "bg")
    recurrent_params: tuple[str, ...] = ()  # the gates read x_t only
    reads_previous_h = False  # the step reads the previous state through s only

    @classmethod
    def init_params(cls, D: int, H: int, init: Any) -> list[Any]:
        Wx, b, wg = init.W(D, 4 * H), init.B(4 * H), init.W(D, 2)
        xp = array_module(Wx)
        bg = xp.asarray([0.0, 3.0], dtype=Wx.dtype)  # forget gate open: sigmoid(3) = 0.95
        return [Wx, b, wg, bg]

    @staticmethod
    def cell_state_width(H: int) -> int:
        """[C (H*H) | n (H) | m (H copies)]."""
        return H * H + 2 * H

    def __init__(self, Wx: Any, b: Any, wg: Any, bg: Any) -> None:
        self.D, self.H = _check_params(Wx, b, wg, bg)
        xp = array_module(Wx)
        self.params = [Wx, b, wg, bg]
        self.grads = [xp.zeros_like(p) for p in self.params]
        self.cache: tuple | None = None

    def _split(self, s: Any) -> tuple[Any, Any, Any]:
        N, H = s.shape[0], self.H
        return s[:, :H * H].reshape(N, H, H), s[:, H * H:H * H + H], s[:, H * H + H]

    def forward(self, x: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
        Wx, b, wg, bg = self.params
        check_step_input("MLSTM", x, self.D, Wx.dtype)
        check_state("MLSTM h_prev", h_prev, x.shape[0], self.H, Wx.dtype)
        check_state("MLSTM c_prev ([C, n, m])", c_prev, x.shape[0],
                    self.cell_state_width(self.H), Wx.dtype)
        xp = array_module(x)
        H = self.H
        C0, n0, m0 = self._split(c_prev)
        A = x @ Wx + b
        q, k, v, ao = A[:, :H], A[:, H:2 * H] / math.sqrt(H), A[:, 2 * H:3 * H], A[:, 3 * H:]
        g = x @ wg + bg
        ai, af = g[:, 0], g[:, 1]
        fresh = ~(n0 != 0).any(axis=1)  # nothing stored yet: nothing to forget
        a = xp.where(fresh, -xp.inf, _log_sigmoid(xp, af) + m0)
        m = xp.maximum(a, ai)
        i = xp.exp(ai - m)
        f = xp.exp(a - m)
        C = f[:, None, None] * C0 + i[:, None, None] * (v[:, :, None] * k[:, None, :])
        n = f[:, None] * n0 + i[:, None] * k
        num = (C @ q[:, :, None])[:, :, 0]  # (N, H)
        dot = (n * q).sum(axis=1)
        floor = xp.exp(-m)
        den = xp.maximum(xp.abs(dot), floor)
        ht = num / den[:, None]
        o = sigmoid(ao)
        self.cache = (x, C0, n0, af, a >= ai, i, f, q, k, v, o, C, n, num, dot, den,
                      xp.abs(dot) >= floor, floor, ht)
        state = xp.concatenate([C.reshape(x.shape[0], H * H), n,
                                xp.broadcast_to(m[:, None], (x.shape[0], H))], axis=1)
        return o * ht, state

    def backward(self, dh: Any, dc_next: Any) -> tuple[Any, Any, Any]:
        Wx, _, wg, _ = self.params
        (x, C0, n0, af, took_a, i, f, q, k, v, o, C, n, num, dot, den, took_dot, floor,
         ht) = self.cache
        xp = array_module(x)
        N, H = x.shape[0], self.H
        dC, dn, dm_copies = self._split(dc_next)
        dm = dc_next[:, H * H + H:].sum(axis=1)  # m was written H times
        del dm_copies
        dao = dh * ht * o * (1 - o)
        dht = dh * o
        dnum = dht / den[:, None]
        dden = -(dht * num).sum(axis=1) / (den * den)
        ddot = dden * took_dot * xp.sign(dot)
        dm_den = dden * (~took_dot) * (-floor)
        dC = dC + dnum[:, :, None] * q[:, None, :]
        dq = (C * dnum[:, :, None]).sum(axis=1) + ddot[:, None] * n
        dn = dn + ddot[:, None] * q
        df = (dC * C0).sum(axis=(1, 2)) + (dn * n0).sum(axis=1)
        dCk = (dC @ k[:, :, None])[:, :, 0]  # (N, H): dC k
        di = (dCk * v).sum(axis=1) + (dn * k).sum(axis=1)
        dv = i[:, None] * dCk
        dk = i[:, None] * ((dC * v[:, :, None]).sum(axis=1) + dn)
        dm_all = dm + dm_den - df * f - di * i
        da = df * f + dm_all * took_a
        dai = di * i + dm_all * (~took_a)
        daf = da * (1 - sigmoid(af))
        dA = xp.concatenate([dq, dk / math.sqrt(H), dv, dao], axis=1)  # (N, 4H)
        dg = xp.stack([dai, daf], axis=1)  # (N, 2)
        self.grads[0][...] = x.T @ dA
        self.grads[1][...] = dA.sum(axis=0)
        self.grads[2][...] = x.T @ dg
        self.grads[3][...] = dg.sum(axis=0)
        dm_prev = xp.zeros((N, H), dtype=x.dtype)
        dm_prev[:, 0] = da  # m_prev was read from the first copy
        dstate = xp.concatenate([(f[:, None, None] * dC).reshape(N, H * H), f[:, None] * dn,
                                 dm_prev], axis=1)
        return dA @ Wx.T + dg @ wg.T, xp.zeros((N, H), dtype=x.dtype), dstate

    def activations(self) -> dict[str, Any]:
        """The last step's gates for pictures: i', f' (one per sequence, shown per unit), o,
        and the read-out h~."""
        *_, i, f, _q, _k, _v, o, _C, _n, _num, _dot, _den, _took, _floor, ht = self.cache
        xp = array_module(o)
        return {"i": xp.broadcast_to(i[:, None], o.shape), "f": xp.broadcast_to(f[:, None],
                                                                                 o.shape),
                "o": o, "h~": ht}


def _parallel(params: list[Any], xs: Any) -> tuple[Any, tuple]:
    """The parallel form (:func:`mlstm_parallel`): hs and what its backward needs."""
    Wx, b, wg, bg = params
    xp = array_module(Wx, xs)
    T = xs.shape[1]
    H = Wx.shape[1] // 4
    A = xs @ Wx + b  # (N, T, 4H)
    q, k, v = A[..., :H], A[..., H:2 * H] / math.sqrt(H), A[..., 2 * H:3 * H]
    o = sigmoid(A[..., 3 * H:])
    g = xs @ wg + bg
    ai, af = g[..., 0], g[..., 1]  # (N, T)
    L = xp.cumsum(_log_sigmoid(xp, af), axis=1)
    causal = xp.arange(T)[:, None] >= xp.arange(T)[None, :]
    Dt = xp.where(causal, L[:, :, None] - L[:, None, :] + ai[:, None, :], -xp.inf)  # [t, s]
    m = Dt.max(axis=2)  # (N, T): the step loop's stabilizer
    Dp = xp.exp(Dt - m[:, :, None])
    QK = matmul_stacked(q, k.transpose(0, 2, 1))  # q @ k.T (N, T, T)
    S = QK * Dp
    num = matmul_stacked(S, v)  # S @ v
    rows = S.sum(axis=2)
    floor = xp.exp(-m)
    den = xp.maximum(xp.abs(rows), floor)
    ht = num / den[:, :, None]
    return o * ht, (q, k, v, o, af, m, Dp, QK, S, num, rows, den, xp.abs(rows) >= floor, ht)


def mlstm_parallel(params: list[Any], xs: Any) -> Any:
    """The parallel form of :class:`MLSTM` over a whole sequence from a fresh state:
    xs (N, T, D) -> hs (N, T, H), equal to the step loop (paper eqs. 27-31).

        L_t = sum_{j <= t} lf_j        D~[t, s] = L_t - L_s + ĩ_s (s <= t), -inf (s > t)
        m_t = max_s D~[t, s]           D'[t, s] = exp(D~[t, s] - m_t)
        S = (Q K^T) * D'               h~ = (S V) / max(|S 1|, exp(-m))      h = o * h~
    """
    return _parallel(params, xs)[0]


_SPEC = CellSpec("mlstm", MLSTM, 4, has_cell_state=True)


class TimeMLSTM(TimeCell):
    """mLSTM over T steps: the parallel form with a hand-written backward when the sequence
    starts from a fresh state without a mask (an estimator, an encoder, a model's first
    window); the loop over :class:`MLSTM` steps otherwise (a carried state, a mask). Both
    compute the same numbers (tests: equal to the loop to 1e-10).

    backward of the parallel form (the stabilizer m held constant: h does not depend on it):
        dnum = dh * o / den     dden = -sum(dh * o * h~) / den    drows = dden [|rows| won]
        dS = dnum V^T + drows 1^T       dV = S^T dnum       dQK = dS * D'     dD~ = dS * QK * D'
        dQ = dQK K      dK = dQK^T Q    dĩ_s = sum_t dD~[t, s]
        dL_t = sum_s dD~[t, s] - sum_s dD~[s, t]     dlf_j = sum_{t >= j} dL_t
    """

    def __init__(self, Wx: Any, b: Any, wg: Any, bg: Any, stateful: bool = False) -> None:
        super().__init__(_SPEC, Wx, b, wg, bg, stateful=stateful)
        self.name = "TimeMLSTM"
        self._parallel_cache: tuple | None = None

    def forward(self, xs: Any, mask: Any = None) -> Any:
        carried = self.c if (self.stateful or self._state_set) else None
        xp = array_module(self.params[0])
        if mask is not None or (carried is not None and bool(xp.any(carried != 0))):
            self._parallel_cache = None
            return super().forward(xs, mask)
        xp, N, T, _, _, _, _ = self._begin(xs, None)  # checks; a fresh start
        H = self.H
        hs, saved = _parallel(self.params, xs)
        q, k, v, o, af, m, Dp, *_ = saved
        last = Dp[:, -1]  # (N, T): the weights of every step in the final memory
        C = matmul_stacked((v * last[:, :, None]).transpose(0, 2, 1), k).reshape(N, H * H)
        n = (k * last[:, :, None]).sum(axis=1)
        self.h = hs[:, -1]
        self.c = xp.concatenate([C, n, xp.broadcast_to(m[:, -1:], (N, H))], axis=1)
        self._parallel_cache = (xs, saved)
        return hs

    def backward(self, dhs: Any, dh_last: Any = None, dc_last: Any = None) -> Any:
        if self._parallel_cache is None:
            return super().backward(dhs, dh_last, dc_last)
        xs, saved = self._parallel_cache
        if dc_last is not None:  # a gradient on the final memory: the loop's backward
            self._parallel_cache = None
            h, c, self.h, self.c = self.h, self.c, None, None
            super().forward(xs)
            self.h, self.c = h, c
            return super().backward(dhs, dh_last, dc_last)
        Wx, _, wg, _ = self.params
        xp = array_module(dhs)
        N, T, D = xs.shape
        H = self.H
        dhs = self._output_gradients(dhs, dh_last, N, T)
        q, k, v, o, af, m, Dp, QK, S, num, rows, den, took, ht = saved
        dht = dhs * o
        dao = dhs * ht * o * (1 - o)
        dnum = dht / den[:, :, None]
        drows = -(dht * num).sum(axis=2) / (den * den) * took * xp.sign(rows)
        dS = matmul_stacked(dnum, v.transpose(0, 2, 1)) + drows[:, :, None]  # dnum @ v.T
        dv = matmul_stacked(S.transpose(0, 2, 1), dnum)  # S.T @ dnum
        dQK = dS * Dp
        dq = matmul_stacked(dQK, k)  # dQK @ k
        dk = matmul_stacked(dQK.transpose(0, 2, 1), q)  # dQK.T @ q
        dDt = dQK * QK
        dai = dDt.sum(axis=1)
        dL = dDt.sum(axis=2) - dai
        dlf = xp.cumsum(dL[:, ::-1], axis=1)[:, ::-1]
        daf = dlf * (1 - sigmoid(af))
        dA = xp.concatenate([dq, dk / math.sqrt(H), dv, dao], axis=2).reshape(N * T, 4 * H)
        dg = xp.stack([dai, daf], axis=2).reshape(N * T, 2)
        x2 = xs.reshape(N * T, D)
        self.grads[0][...] = x2.T @ dA
        self.grads[1][...] = dA.sum(axis=0)
        self.grads[2][...] = x2.T @ dg
        self.grads[3][...] = dg.sum(axis=0)
        self.dh = xp.zeros((N, H), dtype=dhs.dtype)  # a fresh start: nothing before it
        self.dc = xp.zeros((N, self.C), dtype=dhs.dtype)
        return (dA @ Wx.T + dg @ wg.T).reshape(N, T, D)
