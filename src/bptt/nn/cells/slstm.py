"""sLSTM, the scalar-memory LSTM of xLSTM (Beck et al. 2024, "xLSTM: Extended Long Short-Term
Memory", sec. 2.2): exponential input gating, a normalizer state n beside the cell state c,
and a stabilizer state m that keeps exp() from overflowing. One head (full recurrent matrix);
the forget gate is a sigmoid, taken in log space. Shape letters: N batch, D input features,
H hidden units.

The state is (h, c_state) with c_state = [c, n, m] (N, 3H): the cell state, the normalizer and
the stabilizer side by side, so sLSTM travels wherever an LSTM's (h, c) does (stacks, stateful
language models, checkpoints). The stabilizer changes no output: c and n are both exp(-m) times
their unstabilized values, and h uses only their ratio. From a fresh state n = 1 after the
first step and never falls below 1 after it (the larger of f' and i' is 1), so c / n stays
within [-1, 1] in float32 over any length.
"""

from __future__ import annotations

from typing import Any

from ...backend import array_module
from ..functions import sigmoid
from .base import check_cell_params, check_state, check_step_input


def _log_sigmoid(xp: Any, a: Any) -> Any:
    """log(sigmoid(a)) without overflow: -log(1 + exp(-a)) = min(a, 0) - log1p(exp(-|a|))."""
    return xp.minimum(a, 0) - xp.log1p(xp.exp(-xp.abs(a)))


class SLSTM:
    """One sLSTM step (blocks i, f, z, o of Wx, Wh and b, as xLSTM's code orders them).

        A = x @ Wx + h_prev @ Wh + b                             (N, 4H): ĩ, f̃, z̃, õ
        lf = log sigmoid(f̃)                                      the forget gate, in log space
        m = max(lf + m_prev, ĩ)  (ĩ from a fresh state, n_prev = 0)  the stabilizer
        i' = exp(ĩ - m)      f' = exp(lf + m_prev - m)           stabilized gates (<= 1)
        z = tanh(z̃)          o = sigmoid(õ)
        c = f' * c_prev + i' * z        n = f' * n_prev + i'     cell state, normalizer
        h = o * c / n
    backward, with dh, and dc, dn, dm (the gradients of the next state [c, n, m]):
        dc += dh * o / n     dn += -dh * o * c / n**2     dõ = dh * (c / n) * o * (1 - o)
        df' = dc * c_prev + dn * n_prev     di' = dc * z + dn     dz̃ = dc * i' * (1 - z**2)
        dm_all = dm - df' * f' - di' * i'                       (m enters f' and i')
        da = df' * f' + dm_all * [m took lf + m_prev]           da: of lf + m_prev
        dĩ = di' * i' + dm_all * [m took ĩ]      df̃ = da * (1 - sigmoid(f̃))
        dA = [dĩ, df̃, dz̃, dõ]    dx = dA @ Wx.T    dh_prev = dA @ Wh.T
        dc_prev = dc * f'    dn_prev = dn * f'    dm_prev = da

    Params: Wx (D, 4H), Wh (H, 4H), b (4H,).
    """

    cell_state_blocks = 3  # c_state = [c, n, m]

    def __init__(self, Wx: Any, Wh: Any, b: Any) -> None:
        self.D, self.H = check_cell_params("SLSTM", Wx, Wh, b, 4)
        xp = array_module(Wx)
        self.params = [Wx, Wh, b]
        self.grads = [xp.zeros_like(p) for p in self.params]
        self.cache: tuple | None = None

    def forward(self, x: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
        Wx, Wh, b = self.params
        check_step_input("SLSTM", x, self.D, Wx.dtype)
        check_state("SLSTM h_prev", h_prev, x.shape[0], self.H, Wx.dtype)
        check_state("SLSTM c_prev ([c, n, m])", c_prev, x.shape[0], 3 * self.H, Wx.dtype)
        xp = array_module(x)
        H = self.H
        c0, n0, m0 = c_prev[:, :H], c_prev[:, H:2 * H], c_prev[:, 2 * H:]
        A = x @ Wx + h_prev @ Wh + b  # (N, 4H)
        ai, af, az, ao = A[:, :H], A[:, H:2 * H], A[:, 2 * H:3 * H], A[:, 3 * H:]
        # a fresh state (n = 0) has nothing to forget: m starts at ĩ, so n = i' = 1
        a = xp.where(n0 == 0, -xp.inf, _log_sigmoid(xp, af) + m0)
        m = xp.maximum(a, ai)
        i = xp.exp(ai - m)
        f = xp.exp(a - m)
        z = xp.tanh(az)
        o = sigmoid(ao)
        c = f * c0 + i * z
        n = f * n0 + i
        h = o * (c / n)
        self.cache = (x, h_prev, c0, n0, af, a >= ai, i, f, z, o, c, n)
        return h, xp.concatenate([c, n, m], axis=1)

    def backward(self, dh: Any, dc_next: Any) -> tuple[Any, Any, Any]:
        Wx, Wh, _ = self.params
        x, h_prev, c0, n0, af, took_a, i, f, z, o, c, n = self.cache
        xp = array_module(x)
        H = self.H
        dc = dc_next[:, :H] + dh * o / n
        dn = dc_next[:, H:2 * H] - dh * o * c / (n * n)
        dm = dc_next[:, 2 * H:]
        dao = dh * (c / n) * o * (1 - o)
        df = dc * c0 + dn * n0
        di = dc * z + dn
        daz = dc * i * (1 - z * z)
        dm_all = dm - df * f - di * i
        da = df * f + dm_all * took_a
        dai = di * i + dm_all * (~took_a)
        daf = da * (1 - sigmoid(af))
        dA = xp.concatenate([dai, daf, daz, dao], axis=1)  # (N, 4H)
        self.grads[0][...] = x.T @ dA
        self.grads[1][...] = h_prev.T @ dA
        self.grads[2][...] = dA.sum(axis=0)
        dstate = xp.concatenate([dc * f, dn * f, da], axis=1)
        return dA @ Wx.T, dA @ Wh.T, dstate

    def activations(self) -> dict[str, Any]:
        """The gates and states of the last step, for pictures: i, f (stabilized), z, o, c/n."""
        *_, i, f, z, o, c, n = self.cache
        return {"i": i, "f": f, "z": z, "o": o, "c": c / n}
