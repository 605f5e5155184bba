"""The LSTM step's element-wise loops for Numba (:mod:`bptt.kernels` says what each computes
and imports this module only when Numba is installed).

Written so that the compiler vectorises them: each inner loop runs over 1-D row views, floats
are divided with NumPy's error model (no zero-division branch), and float32 stays float32
(constants are float32; 0.5 and 1 are exact in float64 too). The functions live at module level
so that Numba's on-disk cache (``cache=True``) finds them again in the next process.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

jit = njit(error_model="numpy", cache=True)
inline = njit(error_model="numpy", cache=True, inline="always")

HALF, ONE = np.float32(0.5), np.float32(1)
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


@jit
def forward(a, add, c_prev, h_prev, c, tanh_c, h, real):
    H = c.shape[1]
    for n in range(a.shape[0]):
        row = a[n]
        if add.shape[0]:
            _scale_row(row, add[n], H)
        _forward_row(row[:H], row[H:2 * H], row[2 * H:3 * H], row[3 * H:], c_prev[n], c[n],
                     tanh_c[n], h[n, :H])
        if real.shape[0] and real[n] == 0:
            c[n] = c_prev[n]
            h[n, :H] = h_prev[n, :H]


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


@jit
def backward(a, tanh_c, c_prev, up, offset, dh, dc, real):
    H = dc.shape[1]
    for n in range(a.shape[0]):
        row = a[n]
        r = real[n] if real.shape[0] else ONE
        _backward_row(row[:H], row[H:2 * H], row[2 * H:3 * H], row[3 * H:], tanh_c[n],
                      c_prev[n], up[n, offset:offset + H], dh[n], dc[n], r, ONE - r)


@jit
def tanh_into(x, out):
    for j in range(x.shape[0]):
        out[j] = tanh(x[j])
