"""The recurrent steps' element-wise loops for Numba (:mod:`bptt.kernels` says what the LSTM's
compute, each GRU and RNN loop its own; this module is imported only when Numba is installed).

Written so that the compiler vectorises them: each inner loop runs over 1-D row views, floats
are divided with NumPy's error model (no zero-division branch), and float32 stays float32
(constants are float32; 0.5 and 1 are exact in float64 too). The functions live at module level
so that Numba's on-disk cache (``cache=True``) finds them again in the next process.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

jit = njit(error_model="numpy", cache=True)
inline = njit(error_model="numpy", cache=True, inline="always")
# the rows split over Numba's pool, when it also runs OpenBLAS's jobs (bptt.blas.kernel_threads)
parallel = njit(error_model="numpy", cache=True, nogil=True, parallel=True)

HALF, ONE, ZERO = np.float32(0.5), np.float32(1), np.float32(0)
# Eigen's float32 tanh (Eigen/src/Core/MathFunctionsImpl.h): p(x) / q(x), |x| clamped
CLAMP = np.float32(7.90531110763549805)
P0, P1, P2, P3 = (np.float32(v) for v in (4.89352455891786e-03, 6.37261928875436e-04,
                                          1.48572235717979e-05, 5.12229709037114e-08))
P4, P5, P6 = (np.float32(v) for v in (-8.60467152213735e-11, 2.00018790482477e-13,
                                      -2.76076847742355e-16))
Q0, Q1, Q2, Q3 = (np.float32(v) for v in (4.89352518554385e-03, 2.26843463243900e-03,
                                          1.18534705686654e-04, 1.19825839466702e-06))


def tanh(x: float) -> float:
    """tanh: the rational form for float32, ``math.tanh`` for float64 (see the overload)."""
    return math.tanh(x)


@overload(tanh, inline="always")
def _tanh_by_type(x):
    if x == types.float32:
        def rational(x):
            x = min(max(x, -CLAMP), CLAMP)
            x2 = x * x
            p = ((((((x2 * P6 + P5) * x2 + P4) * x2 + P3) * x2 + P2) * x2 + P1) * x2 + P0) * x
            return p / (((x2 * Q3 + Q2) * x2 + Q1) * x2 + Q0)
        return rational
    return lambda x: math.tanh(x)


@inline
def _forward_row(af, ag, ai, ao, c_prev, c, tanh_c, h):
    for j in range(c.shape[0]):
        f = tanh(af[j]) * HALF + HALF
        g = tanh(ag[j])
        i = tanh(ai[j]) * HALF + HALF
        o = tanh(ao[j]) * HALF + HALF
        af[j], ag[j], ai[j], ao[j] = f, g, i, o
        c_new = f * c_prev[j] + g * i
        c[j] = c_new
        tc = tanh(c_new)
        tanh_c[j] = tc
        h[j] = o * tc


@inline
def _scale_row(a, add, H):
    for j in range(a.shape[0]):
        a[j] = (a[j] + add[j]) * (ONE if H <= j < 2 * H else HALF)


@inline
def _forward_step_row(a, add, c_prev, h_prev, c, tanh_c, h, real, n):
    H = c.shape[1]
    row = a[n]
    if add.shape[0]:
        _scale_row(row, add[n], H)
    _forward_row(row[:H], row[H:2 * H], row[2 * H:3 * H], row[3 * H:], c_prev[n], c[n],
                 tanh_c[n], h[n, :H])
    if real.shape[0] and real[n] == 0:
        c[n] = c_prev[n]
        h[n, :H] = h_prev[n, :H]


@jit
def forward(a, add, c_prev, h_prev, c, tanh_c, h, real):
    for n in range(a.shape[0]):
        _forward_step_row(a, add, c_prev, h_prev, c, tanh_c, h, real, n)


@parallel
def forward_parallel(a, add, c_prev, h_prev, c, tanh_c, h, real):
    """:func:`forward` with the rows split over the pool's threads (the same bits)."""
    for n in prange(a.shape[0]):
        _forward_step_row(a, add, c_prev, h_prev, c, tanh_c, h, real, n)


@inline
def _backward_row(af, ag, ai, ao, tanh_c, c_prev, up, dh, dc, r, carry):
    for j in range(dc.shape[0]):
        dh_tot = (up[j] + dh[j]) * r
        dc_old = dc[j]
        tc = tanh_c[j]
        f, g, i, o = af[j], ag[j], ai[j], ao[j]
        ds = (ONE - tc * tc) * o * dh_tot + dc_old * r
        dc[j] = ds * f + dc_old * carry
        af[j] = f * (ONE - f) * (c_prev[j] * ds)
        ag[j] = (g + ONE) * (ONE - g) * (i * ds)
        ai[j] = i * (ONE - i) * (g * ds)
        ao[j] = o * (ONE - o) * (tc * dh_tot)


@inline
def _backward_step_row(a, tanh_c, c_prev, up, offset, dh, dc, real, n):
    H = dc.shape[1]
    row = a[n]
    r = real[n] if real.shape[0] else ONE
    _backward_row(row[:H], row[H:2 * H], row[2 * H:3 * H], row[3 * H:], tanh_c[n],
                  c_prev[n], up[n, offset:offset + H], dh[n], dc[n], r, ONE - r)


@jit
def backward(a, tanh_c, c_prev, up, offset, dh, dc, real):
    for n in range(a.shape[0]):
        _backward_step_row(a, tanh_c, c_prev, up, offset, dh, dc, real, n)


@parallel
def backward_parallel(a, tanh_c, c_prev, up, offset, dh, dc, real):
    """:func:`backward` with the rows split over the pool's threads (the same bits)."""
    for n in prange(a.shape[0]):
        _backward_step_row(a, tanh_c, c_prev, up, offset, dh, dc, real, n)


@jit
def tanh_into(x, out):
    for j in range(x.shape[0]):
        out[j] = tanh(x[j])


# -- GRU (bptt.nn.cells.TimeGRU; blocks z, r, h~ of width H in rows of 3H) -----------------


@inline
def _sigmoid(x):
    return (tanh(x * HALF) + ONE) * HALF  # bptt.nn.functions.sigmoid's form


@inline
def _gru_gates_row(g, rec, hp, q, bh, n):
    H = hp.shape[1]
    row, recs, hrow, qrow = g[n], rec[n], hp[n], q[n]
    for j in range(2 * H):
        row[j] = _sigmoid(row[j] + recs[j])
    if bh.shape[0]:
        for j in range(H):
            qrow[j] = recs[2 * H + j] + bh[j]
    else:
        for j in range(H):
            qrow[j] = row[H + j] * hrow[j]


@jit
def gru_gates(g, rec, hp, q, bh):
    """z, r = sigmoid(g + rec) over the first 2H columns of g (in place); then q = r * h_prev
    (reset before), or q = rec[:, 2H:] + bh (reset after: bh has H values)."""
    for n in range(g.shape[0]):
        _gru_gates_row(g, rec, hp, q, bh, n)


@parallel
def gru_gates_parallel(g, rec, hp, q, bh):
    for n in prange(g.shape[0]):
        _gru_gates_row(g, rec, hp, q, bh, n)


@inline
def _gru_output_row(g, add, q, hp, h, real, n):
    H = hp.shape[1]
    row, hrow, out = g[n], hp[n], h[n]
    if add.shape[0]:
        arow = add[n]
        for j in range(H):
            row[2 * H + j] = tanh(row[2 * H + j] + arow[j])
    else:
        qrow = q[n]
        for j in range(H):
            row[2 * H + j] = tanh(row[2 * H + j] + row[H + j] * qrow[j])
    for j in range(H):
        out[j] = (row[2 * H + j] - hrow[j]) * row[j] + hrow[j]
    if real.shape[0] and real[n] == 0:
        out[:] = hrow


@jit
def gru_output(g, add, q, hp, h, real):
    """hh = tanh(g[:, 2H:] + s) in place, s = add (reset before: q @ Whh) or r * q (reset
    after, add has no rows); h = (hh - h_prev) * z + h_prev; a padded row keeps h_prev."""
    for n in range(g.shape[0]):
        _gru_output_row(g, add, q, hp, h, real, n)


@parallel
def gru_output_parallel(g, add, q, hp, h, real):
    for n in prange(g.shape[0]):
        _gru_output_row(g, add, q, hp, h, real, n)


@inline
def _gru_backward_row(g, da, up, offset, dh, hp, q, dn, real, n):
    H = hp.shape[1]
    row, drow, urow, dhrow, hrow = g[n], da[n], up[n, offset:offset + H], dh[n], hp[n]
    mask = real[n] if real.shape[0] else ONE
    for j in range(H):
        z, hh = row[j], row[2 * H + j]
        dh_tot = (urow[j] + dhrow[j]) * mask
        da_h = (ONE - hh * hh) * z * dh_tot
        drow[2 * H + j] = da_h
        drow[j] = (hh - hrow[j]) * dh_tot * (ONE - z) * z
        dhrow[j] = dh_tot * (ONE - z)
    if dn.shape[0]:
        qrow, dnrow = q[n], dn[n]
        for j in range(H):
            r, da_h = row[H + j], drow[2 * H + j]
            dnrow[j] = da_h * r
            drow[H + j] = da_h * qrow[j] * ((ONE - r) * r)


@jit
def gru_backward(g, da, up, offset, dh, hp, q, dn, real):
    """dh_tot = (up + dh) * r_mask; da_h = (1 - hh^2) z dh_tot; da_z = (hh - h_prev) dh_tot
    (1 - z) z; dh <- dh_tot (1 - z); reset after (dn has rows): dn = da_h r, da_r = da_h q
    r(1 - r) (reset before: da_r needs the product da_h @ Whh.T, see gru_reset_grad)."""
    for n in range(g.shape[0]):
        _gru_backward_row(g, da, up, offset, dh, hp, q, dn, real, n)


@parallel
def gru_backward_parallel(g, da, up, offset, dh, hp, q, dn, real):
    for n in prange(g.shape[0]):
        _gru_backward_row(g, da, up, offset, dh, hp, q, dn, real, n)


@inline
def _gru_reset_grad_row(g, da, drh, hp, dh, n):
    H = hp.shape[1]
    row, drow, rrow, hrow, dhrow = g[n], da[n], drh[n], hp[n], dh[n]
    for j in range(H):
        r = row[H + j]
        drow[H + j] = rrow[j] * hrow[j] * ((ONE - r) * r)
        dhrow[j] = dhrow[j] + rrow[j] * r


@jit
def gru_reset_grad(g, da, drh, hp, dh):
    """Reset before: da_r = drh h_prev r(1 - r); dh += drh r (drh = da_h @ Whh.T)."""
    for n in range(g.shape[0]):
        _gru_reset_grad_row(g, da, drh, hp, dh, n)


@parallel
def gru_reset_grad_parallel(g, da, drh, hp, dh):
    for n in prange(g.shape[0]):
        _gru_reset_grad_row(g, da, drh, hp, dh, n)


# -- the tanh/ReLU RNN (bptt.nn.cells.TimeRNN) ------------------------------------------------


@inline
def _rnn_forward_row(a, add, hp, real, relu, n):
    row, arow = a[n], add[n]
    if relu:
        for j in range(row.shape[0]):
            v = row[j] + arow[j]
            row[j] = v if not v < 0 else ZERO
    else:
        for j in range(row.shape[0]):
            row[j] = tanh(row[j] + arow[j])
    if real.shape[0] and real[n] == 0:
        row[:] = hp[n]


@jit
def rnn_forward(a, add, hp, real, relu):
    """a = f(a + add) in place, f = tanh or ReLU (max(x, 0), NaN kept); a padded row (real[n]
    == 0) keeps h_prev. a: the step's input projection (N, H), add: h_prev @ Wh."""
    for n in range(a.shape[0]):
        _rnn_forward_row(a, add, hp, real, relu, n)


@parallel
def rnn_forward_parallel(a, add, hp, real, relu):
    for n in prange(a.shape[0]):
        _rnn_forward_row(a, add, hp, real, relu, n)


# -- softmax with cross-entropy over a vocabulary (bptt.nn.time_layers.TimeSoftmaxWithLoss) ---

# float32 exp of x <= 0, Cephes' expf: x = n ln2 + r (|r| <= ln2 / 2), exp(r) by a polynomial of
# degree 7 (within 2 units in the last place), times 2**n built from its exponent bits
LOG2E = np.float32(1.44269504088896341)
LN2_HI, LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)  # ln 2 = hi + lo
ROUND = np.float32(12582912.0)  # 1.5 * 2**23: x + ROUND - ROUND rounds x to an integer
EXP_LO = np.float32(-87.33654)  # log of the smallest normal float32; exp below it counts as 0
E0, E1, E2 = (np.float32(v) for v in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3))
E3, E4, E5 = (np.float32(v) for v in (4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the int32 ``bits`` (a bit cast, not a conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


def exp_nonpositive(x: float) -> float:
    """exp(x) for x <= 0 (NaN kept): the vectorisable form for float32, ``math.exp`` for
    float64 (see the overload)."""
    return math.exp(x)


@overload(exp_nonpositive, inline="always")
def _exp_by_type(x):
    if x == types.float32:
        def cephes(x):
            xc = max(x, EXP_LO)
            n = (xc * LOG2E + ROUND) - ROUND  # round(x / ln 2)
            r = xc - n * LN2_HI - n * LN2_LO
            p = ((((E0 * r + E1) * r + E2) * r + E3) * r + E4) * r + E5
            y = (p * r * r + r + ONE) * _float32_from_bits((np.int32(n) + np.int32(127))
                                                           << np.int32(23))
            y = y if x >= EXP_LO else ZERO  # below the normal range (NumPy: a subnormal)
            return y if x == x else x  # NaN stays NaN
        return cephes
    return lambda x: math.exp(x)


@njit(error_model="numpy", cache=True, fastmath={"nnan", "nsz"})
def _row_max(row):
    """max of a row: eight running maxima (of the elements j mod 8 = 0..7, kept in one vector
    register; a single running maximum does not vectorise), then their maximum. Max is exact,
    so the order changes nothing; NaN is not looked for here: exp(NaN - m) = NaN finds it."""
    V = row.shape[0]
    full = V - V % 8
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = m = row[0]
    for j in range(0, full, 8):
        a0 = max(a0, row[j])
        a1 = max(a1, row[j + 1])
        a2 = max(a2, row[j + 2])
        a3 = max(a3, row[j + 3])
        a4 = max(a4, row[j + 4])
        a5 = max(a5, row[j + 5])
        a6 = max(a6, row[j + 6])
        a7 = max(a7, row[j + 7])
    for j in range(full, V):
        m = max(m, row[j])
    return max(max(max(a0, a1), max(a2, a3)), max(max(a4, a5), max(a6, a7)), m)


@jit
def _row_sum(row):
    """sum of a row: eight running sums (of the elements j mod 8 = 0..7, which the compiler
    keeps in one vector register), then added pairwise; the same order on every machine."""
    V = row.shape[0]
    full = V - V % 8
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = ZERO  # float64 rows make them float64
    for j in range(0, full, 8):
        a0 += row[j]
        a1 += row[j + 1]
        a2 += row[j + 2]
        a3 += row[j + 3]
        a4 += row[j + 4]
        a5 += row[j + 5]
        a6 += row[j + 6]
        a7 += row[j + 7]
    tail = ZERO
    for j in range(full, V):
        tail += row[j]
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + tail


@njit(error_model="numpy", cache=True, fastmath={"contract"})
def _exp_row(row, m, out):
    """out = exp(row - m) (contract: multiply-adds fused, which only makes them more exact)."""
    for j in range(row.shape[0]):
        out[j] = exp_nonpositive(row[j] - m)


@inline
def _softmax_row(x, mx, e, s, k):
    row, erow = x[k], e[k]
    m = _row_max(row)
    mx[k] = m
    _exp_row(row, m, erow)
    s[k] = _row_sum(erow)


@njit(error_model="numpy", cache=True, nogil=True)
def softmax_rows(x, mx, e, s):
    """Row k of x (M, V): mx[k] = max_v x[k]; e[k] = exp(x[k] - mx[k]); s[k] = sum_v e[k]. Each
    row is read twice (the second time from cache) and e[k] once more, from cache, for the
    sum; no pass is reassociated (exp's rounding trick relies on the order of its steps)."""
    for k in range(x.shape[0]):
        _softmax_row(x, mx, e, s, k)


@parallel
def softmax_rows_parallel(x, mx, e, s):
    """:func:`softmax_rows` with the rows split over the pool's threads (the same bits)."""
    for k in prange(x.shape[0]):
        _softmax_row(x, mx, e, s, k)


@inline
def _softmax_grad_row(e, scale, t, c, k):
    row, a = e[k], scale[k]
    for j in range(row.shape[0]):
        row[j] = row[j] * a
    row[t[k]] -= c[k]


@njit(error_model="numpy", cache=True, nogil=True)
def softmax_grad_rows(e, scale, t, c):
    """Row k: e[k] *= scale[k] (= c_k / s_k: the softmax times c_k), then e[k, t_k] -= c_k."""
    for k in range(e.shape[0]):
        _softmax_grad_row(e, scale, t, c, k)


@parallel
def softmax_grad_rows_parallel(e, scale, t, c):
    """:func:`softmax_grad_rows` with the rows split over the pool's threads."""
    for k in prange(e.shape[0]):
        _softmax_grad_row(e, scale, t, c, k)
