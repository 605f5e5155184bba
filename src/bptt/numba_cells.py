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


@jit
def _row_dot(a, b):
    """sum of a * b over a row, in :func:`_row_sum`'s eight running sums."""
    V = a.shape[0]
    full = V - V % 8
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = ZERO  # float64 rows make them float64
    for j in range(0, full, 8):
        a0 += a[j] * b[j]
        a1 += a[j + 1] * b[j + 1]
        a2 += a[j + 2] * b[j + 2]
        a3 += a[j + 3] * b[j + 3]
        a4 += a[j + 4] * b[j + 4]
        a5 += a[j + 5] * b[j + 5]
        a6 += a[j + 6] * b[j + 6]
        a7 += a[j + 7] * b[j + 7]
    tail = ZERO
    for j in range(full, V):
        tail += a[j] * b[j]
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


# -- the peephole LSTM (bptt.nn.cells.TimePeepholeLSTM; gates stored (4, N, H): f, g, i, o) ---


@inline
def _peephole_forward_row(ax, rec, p, c_prev, h_prev, c, tanh_c, h, gates, real, n):
    H = c.shape[1]
    arow, rrow, cp = ax[n], rec[n], c_prev[n]
    fr, gr, ir, orow = gates[0, n], gates[1, n], gates[2, n], gates[3, n]
    crow, tcrow, hrow = c[n], tanh_c[n], h[n]
    for j in range(H):
        f = _sigmoid(arow[j] + rrow[j] + p[j] * cp[j])
        g = tanh(arow[H + j] + rrow[H + j])
        i = _sigmoid(arow[2 * H + j] + rrow[2 * H + j] + p[H + j] * cp[j])
        c_new = f * cp[j] + g * i
        o = _sigmoid(arow[3 * H + j] + rrow[3 * H + j] + p[2 * H + j] * c_new)
        tc = tanh(c_new)
        fr[j], gr[j], ir[j], orow[j] = f, g, i, o
        tcrow[j], crow[j], hrow[j] = tc, c_new, o * tc
    if real.shape[0] and real[n] == 0:  # indexed: through the row views (crow[:] = cp),
        c[n] = c_prev[n]  # the prange twin kept the unpadded c (Numba 0.68)
        h[n] = h_prev[n]


@jit
def peephole_forward(ax, rec, p, c_prev, h_prev, c, tanh_c, h, gates, real):
    """A = ax + rec (ax = x @ Wx + b, rec = h_prev @ Wh), p = [pf, pi, po]:
    f = sigmoid(A_f + pf c_prev), g = tanh(A_g), i = sigmoid(A_i + pi c_prev),
    c = f c_prev + g i, o = sigmoid(A_o + po c), tanh_c = tanh(c), h = o tanh_c;
    a padded row (real[n] == 0) keeps (h_prev, c_prev); its gates are stored all the same."""
    for n in range(ax.shape[0]):
        _peephole_forward_row(ax, rec, p, c_prev, h_prev, c, tanh_c, h, gates, real, n)


@parallel
def peephole_forward_parallel(ax, rec, p, c_prev, h_prev, c, tanh_c, h, gates, real):
    """:func:`peephole_forward` with the rows split over the pool's threads (the same bits)."""
    for n in prange(ax.shape[0]):
        _peephole_forward_row(ax, rec, p, c_prev, h_prev, c, tanh_c, h, gates, real, n)


@inline
def _peephole_backward_row(gates, tanh_c, c_prev, up, dh, dc, p, dA, real, n):
    H = dc.shape[1]
    fr, gr, ir, orow = gates[0, n], gates[1, n], gates[2, n], gates[3, n]
    tcrow, cp, urow, dhrow, dcrow, drow = tanh_c[n], c_prev[n], up[n], dh[n], dc[n], dA[n]
    r = real[n] if real.shape[0] else ONE
    pf, pi, po = p[:H], p[H:2 * H], p[2 * H:]  # views: offsets of H in one row do not vectorise
    d_f, d_g, d_i, d_o = drow[:H], drow[H:2 * H], drow[2 * H:3 * H], drow[3 * H:]
    for j in range(H):
        f, g, i, o, tc = fr[j], gr[j], ir[j], orow[j], tcrow[j]
        total = urow[j] + dhrow[j]
        dh_t, dc_t = total * r, dcrow[j] * r
        da_o = dh_t * tc * o * (ONE - o)
        ds = dc_t + dh_t * o * (ONE - tc * tc) + da_o * po[j]
        da_f = ds * cp[j] * f * (ONE - f)
        da_i = ds * g * i * (ONE - i)
        d_f[j], d_g[j], d_i[j], d_o[j] = da_f, ds * i * (ONE - g * g), da_i, da_o
        dcrow[j] = ds * f + da_f * pf[j] + da_i * pi[j] + dcrow[j] * (ONE - r)
        dhrow[j] = total * (ONE - r)


@inline
def _peephole_param_grads(c_prev, c, dA, dp, j0, j1):
    """dp[j], dp[H + j], dp[2H + j] += da_f c_prev, da_i c_prev, da_o c of every row, rows in
    order, for the columns j0 <= j < j1 (dA holds da_f, da_i, da_o)."""
    H = c.shape[1]
    for n in range(dA.shape[0]):
        drow, cp, cn = dA[n], c_prev[n], c[n]
        for j in range(j0, j1):
            dp[j] += drow[j] * cp[j]
            dp[H + j] += drow[2 * H + j] * cp[j]
            dp[2 * H + j] += drow[3 * H + j] * cn[j]


@jit
def peephole_backward(gates, tanh_c, c_prev, c, up, dh, dc, p, dA, dp, real):
    """Row n, j < H, r = real[n] or 1 (dh, dc: the gradients from step t + 1):
    dh_t = (up + dh) r, dc_t = dc r; da_o = dh_t tanh_c o(1 - o);
    ds = dc_t + dh_t o (1 - tanh_c^2) + da_o po; da_f = ds c_prev f(1 - f);
    da_i = ds g i(1 - i); da_g = ds i (1 - g^2); dA = [da_f, da_g, da_i, da_o];
    dp += [da_f c_prev, da_i c_prev, da_o c] (summed over the rows in order, once dA is done);
    dc <- ds f + da_f pf + da_i pi + dc (1 - r);  dh <- (up + dh)(1 - r), the part of dh_{t-1}
    a padded step passes on, to which the caller adds dA @ Wh.T."""
    for n in range(dA.shape[0]):
        _peephole_backward_row(gates, tanh_c, c_prev, up, dh, dc, p, dA, real, n)
    _peephole_param_grads(c_prev, c, dA, dp, 0, c.shape[1])


@parallel
def peephole_backward_parallel(gates, tanh_c, c_prev, c, up, dh, dc, p, dA, dp, real):
    """:func:`peephole_backward` with the rows split over the pool's threads; dp's sums over
    the rows stay on one thread, in order (the same bits; split by columns they took 9x as
    long at N 64, H 650)."""
    for n in prange(dA.shape[0]):
        _peephole_backward_row(gates, tanh_c, c_prev, up, dh, dc, p, dA, real, n)
    _peephole_param_grads(c_prev, c, dA, dp, 0, c.shape[1])


# -- the layer-normalised LSTM (bptt.nn.cells.TimeLayerNormLSTM) ---------------------------


@inline
def _normalise(v, out, eps):
    """out = (v - mean v) / sigma, sigma = sqrt(mean (v - mean v)^2 + eps); returns sigma
    (the sums in eight running sums, :func:`_row_sum`: one running sum does not vectorise)."""
    K = v.shape[0]
    size = np.float32(K)  # float32 / int would be float64; K < 2**24 is exact
    mu = _row_sum(v) / size
    for k in range(K):
        out[k] = v[k] - mu
    sigma = np.sqrt(_row_dot(out, out) / size + eps)
    for k in range(K):
        out[k] = out[k] / sigma
    return sigma


@inline
def _normalise_backward(dy, gamma, v_hat, sigma, dv):
    """dv = (dv^ - mean dv^ - v^ mean(dv^ v^)) / sigma with dv^ = dy gamma (dgamma = dy v^ is
    summed over the rows by the caller)."""
    K = dy.shape[0]
    for k in range(K):
        dv[k] = dy[k] * gamma[k]
    m1, m2 = _row_sum(dv) / np.float32(K), _row_dot(dv, v_hat) / np.float32(K)
    for k in range(K):
        dv[k] = (dv[k] - m1 - v_hat[k] * m2) / sigma


@inline
def _lnlstm_gates(af, ag, ai, ao, c_prev, c):
    """The gates in place, [f, g, i, o] = [sigmoid, tanh, sigmoid, sigmoid] of the sums, and
    c = f c_prev + g i (the blocks as four views: the loop then vectorises)."""
    for j in range(c.shape[0]):
        f, g, i = _sigmoid(af[j]), tanh(ag[j]), _sigmoid(ai[j])
        af[j], ag[j], ai[j], ao[j] = f, g, i, _sigmoid(ao[j])
        c[j] = f * c_prev[j] + g * i


@inline
def _lnlstm_forward_row(ax, rec, b, gh, gc, bc, c_prev, h_prev, c, h, gates, tanh_n, vh, sh, vc,
                        sc, real, eps, n):
    H = c.shape[1]
    arow, grow, vrow, crow, cp = ax[n], gates[n], vh[n], c[n], c_prev[n]
    sh[n] = _normalise(rec[n], vrow, eps)
    for k in range(4 * H):
        grow[k] = arow[k] + vrow[k] * gh[k] + b[k]
    _lnlstm_gates(grow[:H], grow[H:2 * H], grow[2 * H:3 * H], grow[3 * H:], cp, crow)
    vcrow, tnrow, hrow = vc[n], tanh_n[n], h[n]
    sc[n] = _normalise(crow, vcrow, eps)
    orow = grow[3 * H:]
    for j in range(H):
        tn = tanh(vcrow[j] * gc[j] + bc[j])
        tnrow[j] = tn
        hrow[j] = orow[j] * tn
    if real.shape[0] and real[n] == 0:  # indexed: through the row views (crow[:] = cp),
        c[n] = c_prev[n]  # the prange twin kept the unpadded c (Numba 0.68)
        h[n] = h_prev[n]


@jit
def lnlstm_forward(ax, rec, b, gh, gc, bc, c_prev, h_prev, c, h, gates, tanh_n, vh, sh, vc, sc,
                   real, eps):
    """A = ax + LN(rec; gh) + b (ax = LN(x @ Wx; gx), rec = h_prev @ Wh); f, g, i, o from A;
    c = f c_prev + g i; n = LN(c; gc, bc); h = o tanh(n). Kept for backward: gates [f, g, i, o],
    tanh(n), the normalised rows vh = rec^, vc = c^ and their sigmas sh, sc; a padded row
    (real[n] == 0) keeps (h_prev, c_prev)."""
    for n in range(ax.shape[0]):
        _lnlstm_forward_row(ax, rec, b, gh, gc, bc, c_prev, h_prev, c, h, gates, tanh_n, vh, sh,
                            vc, sc, real, eps, n)


@parallel
def lnlstm_forward_parallel(ax, rec, b, gh, gc, bc, c_prev, h_prev, c, h, gates, tanh_n, vh, sh,
                            vc, sc, real, eps):
    """:func:`lnlstm_forward` with the rows split over the pool's threads (the same bits)."""
    for n in prange(ax.shape[0]):
        _lnlstm_forward_row(ax, rec, b, gh, gc, bc, c_prev, h_prev, c, h, gates, tanh_n, vh, sh,
                            vc, sc, real, eps, n)


@inline
def _lnlstm_backward_row(gates, tanh_n, vh, sh, vc, sc, c_prev, up, dh, dc, gh, gc, dn, dA, dph,
                         real, n):
    H = dc.shape[1]
    grow, tnrow, urow, dhrow, dcrow, dnrow = gates[n], tanh_n[n], up[n], dh[n], dc[n], dn[n]
    drow, cp = dA[n], c_prev[n]
    r = real[n] if real.shape[0] else ONE
    # the gate blocks as views (indexed with offsets of H in one row, the loops do not vectorise)
    fr, gr, ir, orow = grow[:H], grow[H:2 * H], grow[2 * H:3 * H], grow[3 * H:]
    da_f, da_g, da_i, da_o = drow[:H], drow[H:2 * H], drow[2 * H:3 * H], drow[3 * H:]
    for j in range(H):
        total = urow[j] + dhrow[j]
        dh_t = total * r
        dhrow[j] = total * (ONE - r)  # what a padded step passes on
        tn, o = tnrow[j], orow[j]
        dnrow[j] = dh_t * o * (ONE - tn * tn)
        da_o[j] = dh_t * tn * o * (ONE - o)
    _normalise_backward(dnrow, gc, vc[n], sc[n], da_f)  # dcn, parked in dA_f
    for j in range(H):
        f, g, i = fr[j], gr[j], ir[j]
        ds = dcrow[j] * r + da_f[j]
        da_f[j] = ds * cp[j] * f * (ONE - f)
        da_g[j] = ds * i * (ONE - g * g)
        da_i[j] = ds * g * i * (ONE - i)
        dcrow[j] = ds * f + dcrow[j] * (ONE - r)
    _normalise_backward(drow, gh, vh[n], sh[n], dph[n])


@inline
def _lnlstm_param_grads(vh, vc, dn, dA, grads, k0, k1):
    """For the columns k0 <= k < k1 of 4H, rows in order: dgh[k] += dA[n, k] vh[n, k]; and for
    k < H: dgc[k] += dn[n, k] vc[n, k], dbc[k] += dn[n, k] (grads = [dgh, dgc, dbc])."""
    H = dn.shape[1]
    dgh, dgc, dbc = grads[0], grads[1], grads[2]
    for n in range(dA.shape[0]):
        drow, vhrow, dnrow, vcrow = dA[n], vh[n], dn[n], vc[n]
        for k in range(k0, k1):
            dgh[k] += drow[k] * vhrow[k]
        for k in range(k0, min(k1, H)):
            dgc[k] += dnrow[k] * vcrow[k]
            dbc[k] += dnrow[k]


@jit
def lnlstm_backward(gates, tanh_n, vh, sh, vc, sc, c_prev, up, dh, dc, gh, gc, dn, dA, dph,
                    grads, real):
    """Row n, r = real[n] or 1: dh_t = (up + dh) r, dc_t = dc r; dn = dh_t o (1 - tanh(n)^2);
    dcn = LN backward (gc) of dn; ds = dc_t + dcn; dA = [ds c_prev f(1-f), ds i (1-g^2),
    ds g i(1-i), dh_t tanh(n) o(1-o)]; dph = LN backward (gh) of dA (= dL/d(h_prev @ Wh));
    dc <- ds f + dc (1 - r); dh <- (up + dh)(1 - r), to which the caller adds dph @ Wh.T.
    grads (3, 4H): [dgh (4H), dgc (H), dbc (H)] += dA vh, dn vc, dn, summed over the rows in
    order once the rows are done; dn: scratch (N, H)."""
    for n in range(dA.shape[0]):
        _lnlstm_backward_row(gates, tanh_n, vh, sh, vc, sc, c_prev, up, dh, dc, gh, gc, dn, dA,
                             dph, real, n)
    _lnlstm_param_grads(vh, vc, dn, dA, grads, 0, dA.shape[1])


@parallel
def lnlstm_backward_parallel(gates, tanh_n, vh, sh, vc, sc, c_prev, up, dh, dc, gh, gc, dn, dA,
                             dph, grads, real):
    """:func:`lnlstm_backward` with the rows split over the pool's threads; the parameter
    gradients' sums over the rows stay on one thread, in order (the same bits)."""
    for n in prange(dA.shape[0]):
        _lnlstm_backward_row(gates, tanh_n, vh, sh, vc, sc, c_prev, up, dh, dc, gh, gc, dn, dA,
                             dph, real, n)
    _lnlstm_param_grads(vh, vc, dn, dA, grads, 0, dA.shape[1])
