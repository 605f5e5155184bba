"""TimeLSTM's whole time loop with the batch rows split over the pool, for Numba
(:func:`bptt.kernels.lstm_row_loops` says when it is used; this module is imported only when
Numba is installed).

The rows of a batch never meet inside a recurrent layer: row n of step t's gates reads row n
of h_{t-1} and c_{t-1} only, and row n of dh_{t-1} = dA_t @ Wh.T reads row n of dA_t only. So
each thread of the pool can run all T steps for its own block of rows, one after the other:

    forward,  t = 0 .. T-1, rows r of the thread:
        A[t, r] = Z[t, r] @ W                 (the step's product, on W packed once)
        f, g, i, o, c_t, tanh(c_t), h_t        (the step's element-wise pass, rows r)
    backward, t = T-1 .. 0, rows r of the thread:
        dA_t, dc_{t-1}                        (the step's element-wise pass, rows r)
        dh_{t-1}[r] = dA_t[r] @ Wh.T           (on Wh.T packed once)

with one start and one wait of the pool a layer call, where splitting each step's product by
columns and its element-wise pass by rows starts and waits for the pool twice a step, and
hands each step's gates from the thread that wrote them to the threads that read them.
Each thread reads all of the packed weights at every step, which pays where its block has
rows enough to use each panel's slice several times while it is in the first-level cache
(``bptt.kernels.ROW_LOOP_MIN_ROWS``); with few rows (a language model's 20) the column split
reads each panel once a step, on one thread.

The products are :mod:`bptt.numba_gemm`'s on the same panels and the passes
:mod:`bptt.numba_cells`' row functions, so the results are the step-by-step path's bit for bit
(an out[r, j] is the same chain of adds whatever the block of rows around it).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .numba_cells import _backward_step_row, _forward_step_row
from .numba_gemm import _panels

parallel = njit(error_model="numpy", cache=True, nogil=True, parallel=True)


@parallel
def lstm_forward(A, Z, packed, cs, tanh_c, parts):
    """TimeLSTM's forward on inputs taken into each step's product: for t < T,
    A[t] = Z[t] @ W (W packed, already scaled), then the step's pass writes the gates into
    A[t], c_t into cs[t + 1], tanh(c_t) into tanh_c[t] and h_t into Z[t + 1][:, :H]; the rows
    in ``parts`` blocks, each on its own thread for all T steps. A (T, N, 4H), Z (T + 1, N, K),
    cs (T + 1, N, H), tanh_c (T, N, H); no padded rows."""
    T, N = A.shape[0], A.shape[1]
    add = np.empty((0, A.shape[2]), A.dtype)  # none: W is scaled already
    real = np.empty(0, A.dtype)  # none: every row real
    for part in prange(parts):
        first, stop = part * N // parts, (part + 1) * N // parts
        tail = np.empty((stop - first, packed.shape[2]), A.dtype)
        for t in range(T):
            _panels(Z[t, first:stop], packed, A[t, first:stop], 0, packed.shape[0], tail)
            for n in range(first, stop):
                _forward_step_row(A[t], add, cs[t], Z[t], cs[t + 1], tanh_c[t], Z[t + 1], real,
                                  n)


@parallel
def lstm_backward(A, tanh_c, cs, up, dh, dc, packed, parts):
    """TimeLSTM's backward through its T steps: for t = T-1 .. 0, the step's pass turns A[t]'s
    gates into dA_t (with dh_tot = up[:, tH : (t+1)H] + dh) and dc into dc_{t-1}, then
    dh = dA_t @ Wh.T (Wh.T packed); the rows in ``parts`` blocks, each on its own thread for
    all T steps. up (N, T H): dL/dhs as (N, T, H) rows; dh, dc (N, H) in and out."""
    T, N = A.shape[0], A.shape[1]
    H = dc.shape[1]
    real = np.empty(0, A.dtype)
    for part in prange(parts):
        first, stop = part * N // parts, (part + 1) * N // parts
        tail = np.empty((stop - first, packed.shape[2]), A.dtype)
        for t in range(T - 1, -1, -1):
            for n in range(first, stop):
                _backward_step_row(A[t], tanh_c[t], cs[t], up, t * H, dh, dc, real, n)
            _panels(A[t, first:stop], packed, dh[first:stop], 0, packed.shape[0], tail)
