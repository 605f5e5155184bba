"""minGRU (Feng et al. 2024): gates from x_t alone, ``h_t = (1 - z) h_{t-1} + z h~``; its gates,
its step (:class:`MinGRU`) and its Time layer (:class:`TimeMinGRU`). The equations and the scan:
:mod:`bptt.nn.cells.minimal`.

    Wx (D, 2H) blocks z, h~    b (2H,)
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


class MinGRUGates(_MinimalGates):
    """minGRU: a = 1 - z, b = z * h~ (see the module docstring)."""

    gates = 2

    @staticmethod
    def coefficients(k: Any, H: int) -> tuple[Any, Any, tuple]:
        z, h_tilde = sigmoid(k[..., :H]), candidate(k[..., H:])
        return 1 - z, z * h_tilde, (z, h_tilde, k)

    @staticmethod
    def log_coefficients(k: Any, H: int) -> tuple[Any, Any]:
        kz = k[..., :H]
        return -softplus(kz), -softplus(-kz) + log_candidate(k[..., H:])

    @staticmethod
    def dk(da: Any, db: Any, saved: tuple, H: int) -> Any:
        z, h_tilde, k = saved
        xp = array_module(da)
        dkz = z * (1 - z) * (db * h_tilde - da)
        dkh = db * z * candidate_grad(k[..., H:])
        return xp.concatenate([dkz, dkh], axis=-1)

class MinGRU(_MinimalCell):
    """One step of minGRU: z = sigmoid(x Wx_z + b_z), h~ = g(x Wx_h + b_h),
    h_next = (1 - z) * h_prev + z * h~. Params Wx (D, 2H) blocks z, h~; b (2H,)."""

    rule = MinGRUGates

class TimeMinGRU(_TimeMinimal):
    """minGRU over T steps, by parallel scan (``mode="scan"``) or step by step (``"loop"``;
    ``"auto"``: loop on NumPy, scan on CuPy).
    xs (N, T, D) -> hs (N, T, H). Params: Wx (D, 2H), b (2H,)."""

    name = "TimeMinGRU"
    step = MinGRU
