"""minLSTM (Feng et al. 2024): gates from x_t alone, normalised forget and input gates; its gates,
its step (:class:`MinLSTM`) and its Time layer (:class:`TimeMinLSTM`). The equations and the
scan: :mod:`bptt.nn.cells.minimal`.

    Wx (D, 3H) blocks f, i, h~    b (3H,)
"""

from __future__ import annotations

from typing import Any

from ...backend import array_module
from ..functions import sigmoid
from .minimal import (
    _MinimalCell,
    _MinimalGates,
    _TimeMinimal,
    candidate,
    candidate_grad,
    log_candidate,
    softplus,
)


class MinLSTMGates(_MinimalGates):
    """minLSTM: a = s = f / (f + i), b = (1 - s) * h~ (see the module docstring)."""

    gates = 3

    @staticmethod
    def _u(k: Any, H: int) -> Any:
        return softplus(-k[..., H:2 * H]) - softplus(-k[..., :H])  # log f - log i

    @classmethod
    def coefficients(cls, k: Any, H: int) -> tuple[Any, Any, tuple]:
        s = sigmoid(cls._u(k, H))
        h_tilde = candidate(k[..., 2 * H:])
        return s, (1 - s) * h_tilde, (s, h_tilde, k)

    @classmethod
    def log_coefficients(cls, k: Any, H: int) -> tuple[Any, Any]:
        u = cls._u(k, H)
        return -softplus(-u), -softplus(u) + log_candidate(k[..., 2 * H:])

    @staticmethod
    def dk(da: Any, db: Any, saved: tuple, H: int) -> Any:
        s, h_tilde, k = saved
        xp = array_module(da)
        du = s * (1 - s) * (da - db * h_tilde)
        dkf = du * (1 - sigmoid(k[..., :H]))
        dki = -du * (1 - sigmoid(k[..., H:2 * H]))
        dkh = db * (1 - s) * candidate_grad(k[..., 2 * H:])
        return xp.concatenate([dkf, dki, dkh], axis=-1)

class MinLSTM(_MinimalCell):
    """One step of minLSTM: f, i = sigmoid(x Wx_f + b_f), sigmoid(x Wx_i + b_i), h~ = g(x Wx_h
    + b_h), s = f / (f + i), h_next = s * h_prev + (1 - s) * h~. Params Wx (D, 3H) blocks f, i,
    h~; b (3H,)."""

    rule = MinLSTMGates

class TimeMinLSTM(_TimeMinimal):
    """minLSTM over T steps, by parallel scan (``mode="scan"``) or step by step (``"loop"``;
    ``"auto"``: loop on NumPy, scan on CuPy).
    xs (N, T, D) -> hs (N, T, H). Params: Wx (D, 3H), b (3H,)."""

    name = "TimeMinLSTM"
    step = MinLSTM
