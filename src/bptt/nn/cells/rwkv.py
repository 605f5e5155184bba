"""RWKV, the recurrent form of Peng et al. (2023, "RWKV: Reinventing RNNs for the Transformer
Era", RWKV-4): a time-mixing recurrence WKV (a softmax-weighted average of past values with a
learned per-channel decay, in its numerically stable form) followed by a channel mixing, both
with "token shift" (each step also sees the step before). The layer norm before the channel
mixing and its residual are kept, so the cell's output is h = y + CM(LN(y)); the layer norm of
the cell's input is left to the model (an input of one or two features, as in the sequence
tasks, would be erased by it). The channel mixing's hidden layer is H wide (RWKV uses 4H), so
that a step costs about what an LSTM step does. Shape letters: N batch, T steps, D input
features, H channels (hidden units).

The state is (h, c_state) with c_state = [s_k, s_v, s_r, y, a, b, p] (N, 7H): the previous
input's share of this step's k, v, r (token shift, kept already projected, so the state's width
does not depend on D), the previous LN(y) (the channel mixing's token shift), and
WKV's numerator a, denominator b and stabilizer p (a and b are exp(-p) times their unstabilized
values). h is not fed back. From a fresh state (b = 0) the first step starts with p = -inf.

Unrolled, WKV is attention over the past: wkv_t is the softmax over i <= t of the logits
k_i - (t-1-i) w (i < t) and u + k_t (i = t), weighting v_i (:func:`rwkv_parallel`, tested
equal to the recurrence).
"""

from __future__ import annotations

from typing import Any

from ...backend import array_module
from ...validate import check_float, check_ndim
from ..cell_spec import CellSpec
from ..functions import sigmoid
from .base import TimeCell, check_state, check_step_input
from .lnlstm import layer_norm, layer_norm_backward

STATE_BLOCKS = 7  # s_k, s_v, s_r, y, a, b, p
PARAM_NAMES = ("Wx", "mix", "decay", "bonus", "Wo", "cmix", "Wck", "Wcv", "Wcr", "ln")


def _check_params(params: tuple[Any, ...]) -> tuple[int, int]:
    for name, p in zip(PARAM_NAMES, params, strict=True):
        check_float(f"RWKV parameter {name}", p)
    Wx = params[0]
    check_ndim("RWKV parameter Wx", Wx, 2, "D, 3H")
    D, H3 = Wx.shape
    H = H3 // 3
    want = {"mix": (3, D), "decay": (H,), "bonus": (H,), "Wo": (H, H), "cmix": (2, H),
            "Wck": (H, H), "Wcv": (H, H), "Wcr": (H, H), "ln": (2, H)}
    got = dict(zip(PARAM_NAMES[1:], (tuple(p.shape) for p in params[1:]), strict=True))
    if H3 % 3 or got != want:
        raise ValueError(f"RWKV parameters do not fit together: Wx {tuple(Wx.shape)}, "
                         + ", ".join(f"{k} {v}" for k, v in got.items())
                         + "; they must be Wx (D, 3H) [k, v, r], "
                         + ", ".join(f"{k} {v}" for k, v in want.items()))
    if len({p.dtype for p in params}) != 1:
        raise TypeError("RWKV parameters must share one dtype")
    return D, H


def _wkv_step(xp: Any, k: Any, v: Any, u: Any, w: Any, a: Any, b: Any,
              p: Any) -> tuple[Any, tuple, tuple]:
    """One step of the stable WKV recurrence on (N, H) arrays: wkv, the next (a, b, p), and
    what :func:`_wkv_step_back` needs."""
    uk = u + k
    q = xp.maximum(p, uk)
    e1, e2 = xp.exp(p - q), xp.exp(uk - q)
    den = e1 * b + e2
    wkv = (e1 * a + e2 * v) / den
    pw = p - w
    q2 = xp.maximum(pw, k)
    f1, f2 = xp.exp(pw - q2), xp.exp(k - q2)
    saved = (a, b, v, e1, e2, den, wkv, f1, f2, p >= uk, pw >= k)
    return wkv, (f1 * a + f2 * v, f1 * b + f2, q2), saved


def _wkv_step_back(saved: tuple, dwkv: Any, da_next: Any, db_next: Any,
                   dp_next: Any) -> tuple[Any, ...]:
    """The gradients of one WKV step: (dk, dv, d(u+k), d(p-w), da, db, dp)."""
    a, b, v, e1, e2, den, wkv, f1, f2, took_p, took_pw = saved
    df1 = da_next * a + db_next * b  # the state update
    df2 = da_next * v + db_next
    dq2 = dp_next - df1 * f1 - df2 * f2
    dpw = df1 * f1 + dq2 * took_pw
    dk = df2 * f2 + dq2 * ~took_pw
    dnum = dwkv / den  # the output
    dden = -dnum * wkv
    de1 = (dnum * a + dden * b) * e1
    de2 = (dnum * v + dden) * e2
    dq = -(de1 + de2)
    duk = de2 + dq * ~took_p
    return (dk + duk, da_next * f2 + dnum * e2, duk, dpw, da_next * f1 + dnum * e1,
            db_next * f1 + dden * e1, dpw + de1 + dq * took_p)


def _mm(xp: Any, A: Any, W: Any) -> Any:
    """(T, N, n) @ (n, m) as one GEMM."""
    T, N, n = A.shape
    return (A.reshape(T * N, n) @ W).reshape(T, N, W.shape[1])


def _mm_t(A: Any, B: Any) -> Any:
    """sum over t, n of A[t, n]^T B[t, n]: a weight's gradient from time-major (T, N, .)."""
    return A.reshape(-1, A.shape[-1]).T @ B.reshape(-1, B.shape[-1])


def _shifted(xp: Any, X: Any, first: Any) -> Any:
    """X (T, N, n) one step later: out[0] = first, out[t] = X[t-1]."""
    out = xp.empty_like(X)
    out[0] = first
    out[1:] = X[:-1]
    return out


def _forward(params: list[Any], X: Any, c0: Any) -> tuple[Any, Any, tuple]:
    """The cell over time-major X (T, N, D) from c_state c0 (N, 7H): outputs (T, N, H), the last
    c_state, and what :func:`_backward` needs."""
    Wx, mix, decay, bonus, Wo, cmix, Wck, Wcv, Wcr, ln = params
    xp = array_module(Wx, X)
    H = Wo.shape[0]
    blocks = [c0[:, j * H:(j + 1) * H] for j in range(STATE_BLOCKS)]
    s0, (y0, a, b, p) = blocks[:3], blocks[3:]
    X_prev = _shifted(xp, X, xp.zeros_like(X[0]))
    dX = X - X_prev
    blends = [X_prev + mix[j] * dX for j in range(3)]  # token shift, x_prev at t = 0 is 0
    k, v, r = (_mm(xp, blends[j], Wx[:, j * H:(j + 1) * H]) for j in range(3))
    for j, proj in enumerate((k, v, r)):
        proj[0] += s0[j]  # the previous input's share, carried in the state
    w = xp.exp(decay)
    p = xp.where(b == 0, -xp.inf, p)  # a fresh state: nothing in the past
    wkv = xp.empty_like(k)
    steps = []
    for t in range(X.shape[0]):
        wkv[t], (a, b, p), saved = _wkv_step(xp, k[t], v[t], bonus, w, a, b, p)
        steps.append(saved)
    g = sigmoid(r)
    gw = g * wkv
    y = _mm(xp, gw, Wo)  # time mixing's output
    yn, ln_cache = layer_norm(y, ln[0], ln[1])  # what the channel mixing sees
    y_prev = _shifted(xp, yn, y0)
    dy = yn - y_prev
    ck, cr = y_prev + cmix[0] * dy, y_prev + cmix[1] * dy
    z = _mm(xp, ck, Wck)
    relu = xp.maximum(z, 0)
    sq = relu * relu
    kv = _mm(xp, sq, Wcv)
    sg = sigmoid(_mm(xp, cr, Wcr))
    hs = y + sg * kv
    last = X[-1]
    s_next = [(last * (1 - mix[j])) @ Wx[:, j * H:(j + 1) * H] for j in range(3)]
    c_last = xp.concatenate([*s_next, yn[-1], a, b, p], axis=1)
    cache = (X, dX, blends, steps, w, g, gw, wkv, dy, ck, cr, relu, sq, kv, sg, ln_cache)
    return hs, c_last, cache


def _backward(params: list[Any], cache: tuple, dhs: Any,
              dc_last: Any) -> tuple[Any, list[Any], Any]:
    """The gradients of :func:`_forward`'s outputs: dX (T, N, D), the parameters' gradients
    and dc0 (N, 7H), from dhs (T, N, H) and dc_last (N, 7H)."""
    Wx, mix, _, _, Wo, cmix, Wck, Wcv, Wcr, _ = params
    X, dX, blends, steps, w, g, gw, wkv, dy, ck, cr, relu, sq, kv, sg, ln_cache = cache
    xp = array_module(Wx, X)
    T, N, D = X.shape
    H = Wo.shape[0]
    blocks = [dc_last[:, j * H:(j + 1) * H] for j in range(STATE_BLOCKS)]
    ds_next, (dy_last, da, db, dp) = blocks[:3], blocks[3:]
    grads = [xp.zeros_like(p) for p in params]
    dkv = dhs * sg  # channel mixing: h = y + sg * (relu(ck Wck)^2 Wcv)
    grads[7][...] = _mm_t(sq, dkv)
    dcr_in = dhs * kv * sg * (1 - sg)
    grads[8][...] = _mm_t(cr, dcr_in)
    dz = _mm(xp, dkv, Wcv.T) * 2 * relu
    grads[6][...] = _mm_t(ck, dz)
    dck, dcr = _mm(xp, dz, Wck.T), _mm(xp, dcr_in, Wcr.T)
    grads[5][0], grads[5][1] = (dck * dy).sum(axis=(0, 1)), (dcr * dy).sum(axis=(0, 1))
    dyn = cmix[0] * dck + cmix[1] * dcr
    dy_prev = (1 - cmix[0]) * dck + (1 - cmix[1]) * dcr
    dyn[:-1] += dy_prev[1:]
    dyn[-1] += dy_last
    dy_ln, grads[9][0], grads[9][1] = layer_norm_backward(dyn, ln_cache)
    dy_total = dhs + dy_ln
    grads[4][...] = _mm_t(gw, dy_total)  # time mixing: y = (sigmoid(r) * wkv) Wo
    dgw = _mm(xp, dy_total, Wo.T)
    dwkv = dgw * g
    dr = dgw * wkv * g * (1 - g)
    dk, dv = xp.empty_like(dwkv), xp.empty_like(dwkv)
    du = dpw = 0
    for t in reversed(range(T)):
        dk[t], dv[t], duk, dpw_t, da, db, dp = _wkv_step_back(steps[t], dwkv[t], da, db, dp)
        du, dpw = du + duk.sum(axis=0), dpw + dpw_t.sum(axis=0)
    grads[3][...] = du
    grads[2][...] = -dpw * w  # w = exp(decay) enters as p - w
    dXs = xp.zeros_like(X)  # through each blend and through the carried share s_next
    dX_prev = xp.zeros_like(X)
    last = X[-1]
    for j, dA in enumerate((dk, dv, dr)):
        W = Wx[:, j * H:(j + 1) * H]
        grads[0][:, j * H:(j + 1) * H] = (_mm_t(blends[j], dA)
                                          + (last * (1 - mix[j])).T @ ds_next[j])
        dB = _mm(xp, dA, W.T)
        dlast = ds_next[j] @ W.T
        grads[1][j] = (dB * dX).sum(axis=(0, 1)) - (dlast * last).sum(axis=0)
        dXs += mix[j] * dB
        dX_prev += (1 - mix[j]) * dB
        dXs[-1] += (1 - mix[j]) * dlast
    dXs[:-1] += dX_prev[1:]
    dc0 = xp.concatenate([dk[0], dv[0], dr[0], dy_prev[0], da, db, dp], axis=1)
    return dXs, grads, dc0


class RWKV:
    """One RWKV step (time mixing, then channel mixing), parameters in PARAM_NAMES' order.

        token shift       x̂_j = x_prev + mix_j * (x - x_prev)     j = k, v, r  (mix (3, D))
        k, v, r = x̂_k Wk, x̂_v Wv, x̂_r Wr                         Wx = [Wk, Wv, Wr] (D, 3H)
                          (x_prev's share (1 - mix_j) x_prev W_j is the state's s_j)
        WKV, stabilized   q = max(p, u + k)      e1 = exp(p - q)    e2 = exp(u + k - q)
                          wkv = (e1 a + e2 v) / (e1 b + e2)         u = bonus (H,)
                          q' = max(p - w, k)     f1 = exp(p - w - q')    f2 = exp(k - q')
                          a' = f1 a + f2 v       b' = f1 b + f2     p' = q'   w = exp(decay)
        y = (sigmoid(r) * wkv) Wo                                   the time mixing's output
        y' = LN(y) = ln_0 * (y - mean y) / std y + ln_1              layer norm over H
        channel mixing    ŷ_j = y'_prev + cmix_j * (y' - y'_prev)    j = k, r  (cmix (2, H))
                          h = y + sigmoid(ŷ_r Wcr) * (relu(ŷ_k Wck)^2 Wcv)
    backward: the chain rule through each line in reverse (:func:`_backward`; WKV's step in
    :func:`_wkv_step_back`, where the max routes dq to the branch it took). The step is the
    sequence code at T = 1, so the fused :class:`TimeRWKV` and the step loop share it.

    Params: Wx (D, 3H), mix (3, D), decay (H,), bonus (H,), Wo (H, H), cmix (2, H), Wck, Wcv,
    Wcr (H, H), ln (2, H) (gain, shift). At the start, as in RWKV-4: decay from -5 to 3 over
    the channels (slow to fast forgetting), bonus log 0.3 with a zigzag, mix and cmix ramps
    over the features, ln gain 1 and shift 0.
    """

    param_names = PARAM_NAMES
    recurrent_params: tuple[str, ...] = ()  # no weight multiplies the previous state
    reads_previous_h = False  # the step reads the previous state through s only
    cell_state_blocks = STATE_BLOCKS

    @classmethod
    def init_params(cls, D: int, H: int, init: Any) -> list[Any]:
        Wx, Wo = init.W(D, 3 * H), init.W(H, H)
        Wck, Wcv, Wcr = init.W(H, H), init.W(H, H), init.W(H, H)
        xp = array_module(Wx)
        dtype = Wx.dtype
        ramp_d = xp.arange(D, dtype=dtype) / D
        ramp_h = xp.arange(H, dtype=dtype) / H
        mix = xp.stack([ramp_d, ramp_d, ramp_d ** 0.5]).astype(dtype)
        decay = (-5 + 8 * xp.linspace(0, 1, H) ** 0.7).astype(dtype)
        zigzag = 0.5 * ((xp.arange(H) + 1) % 3 - 1)
        bonus = (xp.log(0.3) + zigzag).astype(dtype)
        cmix = xp.stack([ramp_h, ramp_h]).astype(dtype)
        ln = xp.stack([xp.ones(H), xp.zeros(H)]).astype(dtype)
        return [Wx, mix, decay, bonus, Wo, cmix, Wck, Wcv, Wcr, ln]

    def __init__(self, *params: Any) -> None:
        self.D, self.H = _check_params(params)
        xp = array_module(params[0])
        self.params = list(params)
        self.grads = [xp.zeros_like(p) for p in self.params]
        self.cache: tuple | None = None

    def forward(self, x: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
        dtype = self.params[0].dtype
        check_step_input("RWKV", x, self.D, dtype)
        check_state("RWKV h_prev", h_prev, x.shape[0], self.H, dtype)
        check_state("RWKV c_prev ([s_k, s_v, s_r, y, a, b, p])", c_prev, x.shape[0],
                    STATE_BLOCKS * self.H, dtype)
        hs, c, self.cache = _forward(self.params, x[None], c_prev)
        return hs[0], c

    def backward(self, dh: Any, dc_next: Any) -> tuple[Any, Any, Any]:
        dX, grads, dc = _backward(self.params, self.cache, dh[None], dc_next)
        for mine, g in zip(self.grads, grads, strict=True):
            mine[...] = g
        return dX[0], array_module(dh).zeros_like(dh), dc

    def activations(self) -> dict[str, Any]:
        """The last step's receptance sigmoid(r) and WKV (what it read from the past)."""
        g, wkv = self.cache[5], self.cache[7]
        return {"r": g[-1], "wkv": wkv[-1]}


def rwkv_parallel(params: list[Any], xs: Any) -> Any:
    """The cell over xs (N, T, D) from a fresh state with WKV unrolled as attention (T x T
    logits per channel, softmax over the past): equal to the recurrence, O(T^2) memory."""
    Wx, mix, decay, bonus, Wo, cmix, Wck, Wcv, Wcr, ln = params
    xp = array_module(Wx, xs)
    N, T, _ = xs.shape
    H = Wo.shape[0]
    xs_prev = xp.concatenate([xp.zeros_like(xs[:, :1]), xs[:, :-1]], axis=1)
    k, v, r = ((xs_prev + mix[j] * (xs - xs_prev)) @ Wx[:, j * H:(j + 1) * H] for j in range(3))
    t, i = xp.arange(T)[:, None], xp.arange(T)[None, :]
    lag = (t - 1 - i)[:, :, None] * xp.exp(decay)  # (T, T, H)
    logits = k[:, None, :, :] - lag[None]  # (N, T, T, H): [n, t, i, h]
    diag = xp.arange(T)
    logits[:, diag, diag] = bonus + k
    logits = xp.where((i <= t)[None, :, :, None], logits, -xp.inf)
    weights = xp.exp(logits - logits.max(axis=2, keepdims=True))
    wkv = (weights * v[:, None]).sum(axis=2) / weights.sum(axis=2)
    y = (sigmoid(r) * wkv) @ Wo
    yn = layer_norm(y, ln[0], ln[1])[0]
    y_prev = xp.concatenate([xp.zeros_like(yn[:, :1]), yn[:, :-1]], axis=1)
    ck, cr = (y_prev + cmix[j] * (yn - y_prev) for j in range(2))
    return y + sigmoid(cr @ Wcr) * (xp.maximum(ck @ Wck, 0) ** 2 @ Wcv)


_SPEC = CellSpec("rwkv", RWKV, 3, has_cell_state=True)


class TimeRWKV(TimeCell):
    """RWKV over T steps: every product over all steps at once (one GEMM each), only WKV's
    element-wise recurrence looped over T (forward, then its gradients over reversed time);
    the same code as the step (:class:`RWKV`), so equal to the step loop to rounding. A mask
    takes the step loop (:class:`~bptt.nn.time_cell.TimeCell`)."""

    def __init__(self, *params: Any, stateful: bool = False) -> None:
        super().__init__(_SPEC, *params, stateful=stateful)
        self.name = "TimeRWKV"
        self._seq_cache: tuple | None = None

    def forward(self, xs: Any, mask: Any = None) -> Any:
        if mask is not None:
            self._seq_cache = None
            return super().forward(xs, mask)
        xp, N, T, _, _, _, c0 = self._begin(xs, None)
        hs, self.c, cache = _forward(self.params, xp.ascontiguousarray(xs.transpose(1, 0, 2)),
                                     c0)
        self.h = hs[-1]
        self._seq_cache = cache
        return xp.ascontiguousarray(hs.transpose(1, 0, 2))

    def backward(self, dhs: Any, dh_last: Any = None, dc_last: Any = None) -> Any:
        if self._seq_cache is None:
            return super().backward(dhs, dh_last, dc_last)
        xp = array_module(dhs)
        T, N = len(self._seq_cache[3]), dhs.shape[0]
        dhs = self._output_gradients(dhs, dh_last, N, T)
        dc = self._start_dh(xp, dc_last, "dc_last", N, self.params[0].dtype)
        dX, grads, self.dc = _backward(self.params, self._seq_cache,
                                       xp.ascontiguousarray(dhs.transpose(1, 0, 2)), dc)
        for mine, g in zip(self.grads, grads, strict=True):
            mine[...] = g
        self.dh = xp.zeros((N, self.H), dtype=dhs.dtype)
        return xp.ascontiguousarray(dX.transpose(1, 0, 2))
