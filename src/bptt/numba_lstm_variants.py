"""The peephole and layer-normalised LSTMs' element-wise loops for Numba (their families in
:mod:`bptt.kernels`; imported only when Numba is installed), written as
:mod:`bptt.numba_cells` writes the LSTM's: 1-D row views in the inner loops (the gate blocks as
views, so that the loops vectorise), float32 kept float32; each step has a twin that splits its
rows over the pool, whose parameter-gradient sums stay on one thread in row order (the same
bits on any number of threads).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .numba_cells import ONE, ZERO, _row_sum, _sigmoid, inline, jit, parallel, tanh


@jit
def _row_dot(a, b):
    """sum of a * b over a row, in eight running sums as
    :func:`bptt.numba_cells._row_sum`."""
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
