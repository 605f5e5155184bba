"""The optimizers' updates in one pass over a parameter, and the embedding's gradient sum, for
Numba (:mod:`bptt.kernels` says when; this module is imported only when Numba is installed).

NumPy's path (:class:`bptt.optim.SGD`, :class:`~bptt.optim.Adam`) makes 2 passes over a
parameter for SGD and 11 for Adam, each a trip through memory: on ``better-rnnlm``'s 13.3 M
parameters SGD took 9-11 ms of a step. Here each element is read once and written once, in the
same operations in the same order as NumPy's passes (no fused multiply-add, the scalars in the
parameter's dtype, as NumPy converts a Python float), so the results are NumPy's bit for bit.
The arrays are 1-D views of parameters, gradients and moments laid out alike.

One thread: the pass is bound by memory, not by arithmetic. On the 2-core EPYC, 13 M float32
parameters: SGD 10.5 -> 5.1 ms (31 GB/s), Adam 49.3 -> 10.5 ms (36 GB/s); these loops called
on two halves from a ``prange`` took 4.5 and 10.5 ms (an inlined body in the ``prange``: 8-9
and 22-39 ms, not looked into further).
"""

from __future__ import annotations

import math

from numba import njit

jit = njit(error_model="numpy", cache=True, nogil=True)


@jit
def sgd(p, g, lr):
    """p -= g * lr (NumPy: step = g * lr; p -= step)."""
    for j in range(p.shape[0]):
        p[j] -= g[j] * lr


@jit
def adam(p, g, m, v, keep1, beta2, keep2, eps, scale):
    """m += (g - m) * keep1; v = v * beta2 + g * g * keep2; p -= m / (sqrt(v) + eps) * scale
    (keep1 = 1 - beta1, keep2 = 1 - beta2; eps and scale with the bias corrections folded in:
    :class:`bptt.optim.Adam`)."""
    for j in range(p.shape[0]):
        m_new = m[j] + (g[j] - m[j]) * keep1
        v_new = v[j] * beta2 + g[j] * g[j] * keep2
        m[j], v[j] = m_new, v_new
        p[j] -= m_new / (math.sqrt(v_new) + eps) * scale


@jit
def scatter_add_rows(target, idx, values):
    """target[idx[k]] += values[k] for k = 0, 1, ... in turn: each row of target sums its
    values in the order they come, as ``np.add.at`` does, so the same bits
    (:func:`bptt.backend.scatter_add_rows` checks that every id is a row of target).

    NumPy's way sorts the ids and adds one occurrence of each per pass: the dates seq2seq's
    3,712 ids of 59 characters take ~300 passes (0.9 ms); this loop reads each row once."""
    for k in range(idx.shape[0]):
        row = idx[k]
        for j in range(target.shape[1]):
            target[row, j] += values[k, j]
