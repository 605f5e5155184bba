"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates from x_t alone.

Both are the linear recurrence

    h_t = a_t * h_{t-1} + b_t          a_t, b_t (N, H) functions of x_t only

so the whole sequence can be computed step by step (``mode="loop"``, the book's way) or with a
parallel scan over T (``mode="scan"``): log2(T) rounds of whole-array operations instead of T
Python steps. ``mode="auto"`` (the default) loops on NumPy and scans on CuPy: on a CPU the loop
is already vectorised over N x H and the scan's O(T log T) work and logarithms cost 1.5-7x more
at every T measured (35 to 1,024; ``benchmarks/cell_speed.py``, docs/benchmarks.md); the scan is
for devices where each of T small steps costs a launch (not yet measured on a GPU).

With k = x_t @ Wx + b split in H-wide blocks and the paper's positive candidate
g(k) = k + 1/2 (k >= 0), sigmoid(k) (k < 0):

    minGRU   z = sigmoid(k_z)   h~ = g(k_h)                  a = 1 - z     b = z * h~
    minLSTM  f = sigmoid(k_f)   i = sigmoid(k_i)   h~ = g(k_h)
             s = f / (f + i) = sigmoid(u),  u = log f - log i
                                                              a = s         b = (1 - s) * h~

The scan runs in log space, where the products of a_t become sums and nothing underflows:

    log a_minGRU = -softplus(k_z)         log b_minGRU = -softplus(-k_z) + log g(k_h)
    log a_minLSTM = -softplus(-u)         log b_minLSTM = -softplus(u) + log g(k_h)
    (A, B)_t = (log a_t, log b_t) combined as (A1, B1) then (A2, B2) -> (A1 + A2,
              logaddexp(A2 + B1, B2)), an associative operation: Hillis-Steele scan
    h_t = exp(B_t) + exp(A_t) * h_init          (h_init may have any sign; b > 0 always)

Backward, with G_t = dL/dh_t (from the output and from step t+1):

    G_t = dhs_t + a_{t+1} * G_{t+1}        (G_{T-1} = dhs_{T-1} + dh_last)
    da_t = G_t * h_{t-1}    db_t = G_t     dh_init = a_0 * G_0

itself a linear recurrence (run backwards): the backward scan is the same scan on the reversed
sequence. It runs on (a, b) directly: 0 < a < 1, so its products only shrink (log space would
need signs, as G can be negative). Then, per cell:

    minGRU   dk_z = z (1 - z) (db h~ - da)                dk_h = db z g'(k_h)
    minLSTM  du = s (1 - s) (da - db h~)   dk_f = du (1 - f)   dk_i = -du (1 - i)
             dk_h = db (1 - s) g'(k_h)
    dWx = sum_t x_t.T @ dk_t    db = sum_t,N dk_t    dx_t = dk_t @ Wx.T

Params: minGRU Wx (D, 2H) blocks z, h~ and b (2H,); minLSTM Wx (D, 3H) blocks f, i, h~ and
b (3H,). No recurrent weight: the state enters only through a_t. Shape letters: N batch, T time
steps, D input features, H hidden units.

The two cells live in :mod:`bptt.nn.cells.mingru` and :mod:`bptt.nn.cells.minlstm`; this
module holds what they share: the candidate g, the scans, the step and Time layer bases.
"""

from __future__ import annotations

from typing import Any

from ...backend import array_module
from ...validate import check_float, check_ndim
from ..functions import sigmoid
from .base import (
    TimeRecurrentBase,
    check_state,
    check_step_input,
)

MODES = ("auto", "scan", "loop")

def softplus(x: Any) -> Any:
    """log(1 + exp(x)), stable for any x."""
    return array_module(x).logaddexp(0.0, x)

def candidate(k: Any) -> Any:
    """g(k) = k + 1/2 for k >= 0, sigmoid(k) below: positive, continuous, g(0) = 1/2."""
    return array_module(k).where(k >= 0, k + 0.5, sigmoid(k))

def log_candidate(k: Any) -> Any:
    """log g(k) = log(k + 1/2) for k >= 0, -softplus(-k) below."""
    xp = array_module(k)
    return xp.where(k >= 0, xp.log(xp.maximum(k, 0) + 0.5), -softplus(-k))

def candidate_grad(k: Any) -> Any:
    """g'(k) = 1 for k >= 0, sigmoid(k) (1 - sigmoid(k)) below."""
    s = sigmoid(k)
    return array_module(k).where(k >= 0, 1.0, s * (1 - s))

class _MinimalGates:
    """The cell-specific part: k (..., G*H) -> a, b (linear or log) and dk from da, db."""

    gates = 2

    @staticmethod
    def coefficients(k: Any, H: int) -> tuple[Any, Any, tuple]:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def log_coefficients(k: Any, H: int) -> tuple[Any, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def dk(da: Any, db: Any, saved: tuple, H: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

def _check_params(name: str, Wx: Any, b: Any, gates: int) -> tuple[int, int]:
    check_float(f"{name} parameter Wx", Wx)
    check_float(f"{name} parameter b", b)
    check_ndim(f"{name} parameter Wx", Wx, 2, f"D, {gates}H")
    check_ndim(f"{name} parameter b", b, 1, f"{gates}H")
    if Wx.shape[1] % gates or b.shape[0] != Wx.shape[1] or Wx.dtype != b.dtype:
        raise ValueError(f"{name} parameters do not fit together: Wx {tuple(Wx.shape)} "
                         f"{Wx.dtype}, b {tuple(b.shape)} {b.dtype}; they must be Wx "
                         f"(D, {gates}H) and b ({gates}H,) of one dtype")
    return int(Wx.shape[0]), int(Wx.shape[1]) // gates

def _init_params(cls: Any, D: int, H: int, init: Any) -> list[Any]:
    G = cls.rule.gates
    return [init.W(D, G * H), init.B(G * H)]

class _MinimalCell:
    """One step of a minimal cell: h_next = a * h_prev + b (the module docstring)."""

    rule: type[_MinimalGates] = _MinimalGates
    param_names = ("Wx", "b")
    recurrent_params: tuple[str, ...] = ()  # no recurrent weight (for bptt gradflow)
    init_params = classmethod(_init_params)

    def __init__(self, Wx: Any, b: Any) -> None:
        self.D, self.H = _check_params(type(self).__name__, Wx, b, self.rule.gates)
        xp = array_module(Wx)
        self.params = [Wx, b]
        self.grads = [xp.zeros_like(Wx), xp.zeros_like(b)]
        self.cache: tuple | None = None

    def forward(self, x: Any, h_prev: Any) -> Any:
        Wx, b = self.params
        check_step_input(type(self).__name__, x, self.D, Wx.dtype)
        check_state(f"{type(self).__name__} h_prev", h_prev, x.shape[0], self.H, Wx.dtype)
        a, bb, saved = self.rule.coefficients(x @ Wx + b, self.H)  # (N, H) each
        self.cache = (x, h_prev, a, saved)
        return a * h_prev + bb

    def backward(self, dh_next: Any) -> tuple[Any, Any]:
        x, h_prev, a, saved = self.cache
        dk = self.rule.dk(dh_next * h_prev, dh_next, saved, self.H)  # (N, G*H)
        self.grads[0][...] = x.T @ dk
        self.grads[1][...] = dk.sum(axis=0)
        return dk @ self.params[0].T, dh_next * a

    def activations(self) -> dict[str, Any]:
        """a (the carried share) and b of the last forward, for ``bptt plot gates``."""
        x, h_prev, a, saved = self.cache
        return {"a": a}

def scan_log(log_a: Any, log_b: Any) -> tuple[Any, Any]:
    """Inclusive Hillis-Steele scan over axis 0 of the log-space pairs (the module docstring):
    returns (A_t, B_t) with A_t = sum_{k<=t} log a_k and B_t = log sum_{k<=t} exp(A_t - A_k +
    log b_k). log2(T) rounds, each a whole-array operation."""
    xp = array_module(log_a)
    A, B = log_a.copy(), log_b.copy()
    d = 1
    while d < A.shape[0]:
        B[d:] = xp.logaddexp(A[d:] + B[:-d], B[d:])  # right side read before the write
        A[d:] = A[d:] + A[:-d]
        d *= 2
    return A, B

def scan_linear(a: Any, b: Any) -> Any:
    """Inclusive scan over axis 0 of x_t = a_t x_{t-1} + b_t from x_{-1} = 0 (Hillis-Steele)."""
    A, B = a.copy(), b.copy()
    d = 1
    while d < A.shape[0]:
        B[d:] = A[d:] * B[:-d] + B[d:]
        A[d:] = A[d:] * A[:-d]
        d *= 2
    return B

class _TimeMinimal(TimeRecurrentBase):
    """A minimal cell over T steps (module docstring); ``mode`` "scan" or "loop"."""

    step: type[_MinimalCell] = _MinimalCell
    param_names = ("Wx", "b")

    def __init__(self, Wx: Any, b: Any, stateful: bool = False, mode: str = "auto") -> None:
        self.gates = self.step.rule.gates
        self.D, self.H = _check_params(self.name, Wx, b, self.gates)
        self._setup([Wx, b], stateful)
        if mode not in MODES:
            raise ValueError(f"{self.name} mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self._make_grads()

    def _scans(self, xp: Any) -> bool:
        return self.mode == "scan" or (self.mode == "auto" and xp.__name__ != "numpy")

    def forward(self, xs: Any, mask: Any = None) -> Any:
        Wx, b = self.params
        xp, N, T, xs_tm, m, h0, _ = self._begin(xs, mask)
        H, rule = self.H, self.step.rule
        k = (xs_tm @ Wx + b).reshape(T, N, self.gates * H)  # (T, N, G*H): one GEMM
        a, bb, saved = rule.coefficients(k, H)  # (T, N, H) each
        if m is not None:  # padded: a = 1, b = 0 carries the state
            a, bb = xp.where(m[0], 1.0, a), xp.where(m[0], 0.0, bb)
        hs = xp.empty((T + 1, N, H), dtype=xs.dtype)
        hs[0] = h0
        scan = self._scans(xp)
        if not scan:
            for t in range(T):
                hs[t + 1] = a[t] * hs[t] + bb[t]
        else:
            log_a, log_b = rule.log_coefficients(k, H)
            if m is not None:
                log_a, log_b = xp.where(m[0], 0.0, log_a), xp.where(m[0], -xp.inf, log_b)
            A, B = scan_log(log_a, log_b)
            hs[1:] = xp.exp(B) + xp.exp(A) * h0
        self.cache = (xs_tm, hs, a, saved, m, N, T, scan)
        self.h = hs[T]
        return self._outputs(xp, hs, m)

    def backward(self, dhs: Any, dh_last: Any = None) -> Any:
        xs_tm, hs, a, saved, m, N, T, scan = self._cache()
        xp = array_module(dhs)
        self._check_dhs(dhs, N, T)
        dtype = self.params[0].dtype
        up = self._upstream(xp, dhs, m)  # (T, N, H)
        up[T - 1] += self._start_dh(xp, dh_last, "dh_last", N, dtype)
        if not scan:
            G = up
            for t in range(T - 2, -1, -1):
                G[t] += a[t + 1] * G[t + 1]
        else:  # the same recurrence on the reversed sequence: coefficient a_{t+1} at t
            carry = xp.empty_like(a)
            carry[:T - 1] = a[1:]
            carry[T - 1] = 0.0
            G = scan_linear(carry[::-1], up[::-1])[::-1]
        self.dh = a[0] * G[0]
        dk = self.step.rule.dk(G * hs[:-1], G, saved, self.H)  # (T, N, G*H)
        if m is not None:  # a padded step's a and b were constants
            dk *= m[1]
        dk_flat = dk.reshape(T * N, self.gates * self.H)
        self.grads[0][...] = xs_tm.T @ dk_flat
        self.grads[1][...] = dk_flat.sum(axis=0)
        dxs = (dk_flat @ self.params[0].T).reshape(T, N, self.D)
        return xp.ascontiguousarray(dxs.transpose(1, 0, 2))  # (N, T, D)
