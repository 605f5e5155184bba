"""The LSTM's element-wise step in one pass (the GRU's in two, around its two products; the
peephole LSTM's and the RNN's forward in one), and the softmax with cross-entropy over a
vocabulary in one pass a row each way, compiled by Numba
when the optional ``numba`` extra is installed; NumPy's ufuncs (the reference, in
:class:`bptt.nn.cells.TimeLSTM`, :class:`~bptt.nn.cells.TimeGRU` and
:class:`~bptt.nn.time_layers.TimeSoftmaxWithLoss`) otherwise.

    pip install 'bptt[numba]'        # Numba: compiles these loops to machine code

Why: after its matrix product, an LSTM step is ~10 element-wise passes in NumPy (forward: tanh
over the gates, scale, shift, f * c, g * i, tanh(c), o * tanh(c); backward: ~15), each a trip
through memory and each ``tanh`` a scalar libm call per element (NumPy's float32 ``tanh`` is
not vectorised on AVX2 CPUs). One compiled loop reads each gate once and writes each result
once. On an AMD EPYC (AVX2), float32, one thread (``python benchmarks/lstm_step_kernels.py``):
a forward step's element-wise part at N 128, H 256 858 -> 171 us; TimeLSTM forward + backward
139 -> 108 ms at the seq2seq sizes, 264 -> 246 ms at better-rnnlm's (N 20, H 650, where the
products dominate); the training rates in docs/benchmarks.md.

tanh: float64 uses ``math.tanh`` (the same libm function as NumPy, so both paths agree to
1e-12); float32 uses a rational approximation, Eigen's ``generic_fast_tanh_float`` (odd
polynomial of degree 13 over one of degree 6 in x, argument clamped to +-7.905...), which the
compiler vectorises with no SVML (Numba from PyPI has none): within 3.5e-7 of the exact tanh,
6 units in the last place at most (NumPy's float32 tanh: 6e-8), i.e. float32 rounding.

exp (the softmax's, of x - max x <= 0): float64 uses ``math.exp``; float32 Cephes' ``expf``
(x = n ln 2 + r, a degree-7 polynomial in r, times 2**n made from its exponent bits), within 2
units in the last place, vectorised the same way. NumPy's float32 exp on this AVX2 CPU: 2 ns an
element; the fused pass (max, exp, sum): 1 ns for all three (``benchmarks/softmax_kernels.py``).

Used for NumPy arrays of float32 or float64 (never CuPy's: the GPU path is untouched) unless
``BPTT_NUMBA=0`` in the environment. Kernels compile on first use (a few seconds; cached on
disk by Numba, next to this file or in the user's cache folder). The choice depends only on
what is installed and the environment, so ``--resume`` continues bit-exactly on one machine.
"""

from __future__ import annotations

import functools
import importlib
import os
import warnings
from typing import Any, NamedTuple

import numpy as np


class LSTMKernels(NamedTuple):
    """The LSTM's compiled loops (arguments: :func:`_compile`)."""

    forward: Any
    backward: Any
    tanh: Any  # tanh(x, out): the element-wise tanh the two use, for tests and benchmarks
    gru: Any = None  # the GRU's: GRUKernels
    rnn_forward: Any = None  # the tanh/ReLU RNN's forward step (numba_cells.rnn_forward)
    softmax: Any = None  # TimeSoftmaxWithLoss's two passes: SoftmaxKernels
    peephole: Any = None  # the peephole LSTM's step: PeepholeKernels


class GRUKernels(NamedTuple):
    """The GRU's compiled loops, two per direction around its two products (their equations:
    :mod:`bptt.numba_cells`, in the order TimeGRU calls them)."""

    gates: Any  # z, r; q = r * h_prev or rec_h + bh
    output: Any  # hh, h
    backward: Any  # da_z, da_h, dh_tot (1 - z) [, dn, da_r]
    reset_grad: Any  # reset before: da_r, dh += drh * r


class SoftmaxKernels(NamedTuple):
    """Softmax with cross-entropy over rows of scores (M, V), one pass a row each way."""

    forward: Any  # (x, mx, e, s): mx = max x, e = exp(x - mx), s = sum e, row by row
    backward: Any  # (e, scale, t, c): e *= scale, then e[k, t_k] -= c_k, row by row


class PeepholeKernels(NamedTuple):
    """The peephole LSTM's step, one compiled pass each way around its product (equations:
    :mod:`bptt.numba_cells`)."""

    forward: Any  # (ax, rec, p, c_prev, h_prev, c, tanh_c, h, gates, real)
    backward: Any  # (gates, tanh_c, c_prev, c, up, dh, dc, p, dA, dp, real)


def wanted() -> bool:
    """False when ``BPTT_NUMBA=0`` is in the environment."""
    return os.environ.get("BPTT_NUMBA", "1").strip() != "0"


@functools.cache
def _numba() -> Any:
    try:
        return importlib.import_module("numba")
    except ImportError:
        return None


def installed() -> bool:
    """Whether Numba is installed (``pip install 'bptt[numba]'``)."""
    return _numba() is not None


def status() -> str | None:
    """One phrase for reports; None when Numba is not installed."""
    if not installed():
        return None
    return f"numba {_numba().__version__}, " + ("on" if wanted() else "off (BPTT_NUMBA=0)")


def lstm_kernels(xp: Any, dtype: Any) -> LSTMKernels | None:
    """The kernels compiled for ``dtype`` (float32 or float64), or None: not NumPy,
    not installed, turned off, another dtype, or Numba failed to compile them (said once, as a
    warning). Their arguments are in :func:`_compile`."""
    if xp is not np:
        return None
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64) or not wanted() or not installed():
        return None
    return _compile(dtype.name)


def gru_kernels(xp: Any, dtype: Any) -> GRUKernels | None:
    """The GRU's compiled loops for ``dtype``, or None (as :func:`lstm_kernels`)."""
    compiled = lstm_kernels(xp, dtype)
    return None if compiled is None else compiled.gru


def rnn_forward_kernel(xp: Any, dtype: Any) -> Any:
    """The RNN's compiled forward step for ``dtype``, or None (as :func:`lstm_kernels`)."""
    compiled = lstm_kernels(xp, dtype)
    return None if compiled is None else compiled.rnn_forward


def softmax_kernels(xp: Any, dtype: Any) -> SoftmaxKernels | None:
    """TimeSoftmaxWithLoss's compiled passes for ``dtype``, or None (as :func:`lstm_kernels`)."""
    compiled = lstm_kernels(xp, dtype)
    return None if compiled is None else compiled.softmax


def peephole_kernels(xp: Any, dtype: Any) -> PeepholeKernels | None:
    """The peephole LSTM's compiled step for ``dtype``, or None (as :func:`lstm_kernels`)."""
    compiled = lstm_kernels(xp, dtype)
    return None if compiled is None else compiled.peephole


@functools.cache
def _compile(dtype_name: str) -> LSTMKernels | None:
    """The loops of :mod:`bptt.numba_cells` (imported only once Numba is known to be there).

    forward(a, add, c_prev, h_prev, c, tanh_c, h, real), row n, j < H:
        pre = a (already scaled, see TimeLSTM) or (a + add) * [1/2, 1, 1/2, 1/2] when add has rows
        f, g, i, o = tanh(pre_f)/2 + 1/2, tanh(pre_g), tanh(pre_i)/2 + 1/2, tanh(pre_o)/2 + 1/2
        a <- [f, g, i, o]     c = f * c_prev + g * i     tanh_c = tanh(c)     h[:, :H] = o * tanh_c
        padded row (real has rows and real[n] == 0): c, h[:, :H] = c_prev, h_prev[:, :H]
    backward(a, tanh_c, c_prev, up, offset, dh, dc, real), row n, j < H, r = real[n] or 1:
        dh_tot = (up[n, offset + j] + dh) * r     dc_in = dc * r
        ds = (1 - tanh_c**2) * o * dh_tot + dc_in
        a <- [f(1-f) ds c_prev, (1+g)(1-g) ds i, i(1-i) ds g, o(1-o) dh_tot tanh_c]   (= dA)
        dc <- ds * f + dc * (1 - r)               (dh: the caller's product dA @ Wh.T)
    softmax.forward(x, mx, e, s), row k: mx = max x[k]; e[k] = exp(x[k] - mx); s = sum e[k]
    softmax.backward(e, scale, t, c), row k: e[k] *= scale[k]; e[k, t[k]] -= c[k]
    a (N, 4H), h_prev and h (N, >= H), the others (N, H); all rows contiguous. ``add`` with no
    rows (0, 4H) and ``real`` with none (0,) mean: none. Compiled per dtype on first call.
    """
    try:
        loops = importlib.import_module(".numba_cells", __package__)
        gru = GRUKernels(loops.gru_gates, loops.gru_output, loops.gru_backward,
                         loops.gru_reset_grad)
        compiled = LSTMKernels(loops.forward, loops.backward, loops.tanh_into, gru,
                               loops.rnn_forward,
                               SoftmaxKernels(loops.softmax_rows, loops.softmax_grad_rows),
                               PeepholeKernels(loops.peephole_forward, loops.peephole_backward))
        _try_once(compiled, np.dtype(dtype_name))  # compile now, where a failure is caught
    except Exception as error:  # noqa: BLE001 - any compiler failure: keep NumPy's path
        warnings.warn(f"bptt: Numba could not compile the recurrent steps and the "
                      f"softmax ({type(error).__name__}: "
                      f"{str(error).splitlines()[0] if str(error) else ''}); using NumPy's "
                      f"ufuncs (BPTT_NUMBA=0 silences this)", RuntimeWarning, stacklevel=3)
        return None
    return compiled


def _try_once(compiled: LSTMKernels, dtype: Any) -> None:
    """One tiny step each way, with the argument types TimeLSTM passes (C-contiguous arrays)."""
    N, H = 2, 3
    a = np.zeros((N, 4 * H), dtype)
    state = np.zeros((N, H), dtype)
    compiled.forward(a, np.zeros((0, 4 * H), dtype), state, state.copy(), state.copy(),
                     state.copy(), state.copy(), np.zeros(0, dtype))
    compiled.backward(a, state, state.copy(), state.copy(), 0, state.copy(), state.copy(),
                      np.zeros(0, dtype))
    compiled.tanh(a[0], a[1])
    g, none = np.zeros((N, 3 * H), dtype), np.zeros((0, H), dtype)
    gru = compiled.gru
    gru.gates(g, g.copy(), state, state.copy(), np.zeros(0, dtype))
    gru.output(g, state.copy(), state.copy(), state.copy(), state.copy(), np.zeros(0, dtype))
    gru.output(g, none, state.copy(), state.copy(), state.copy(), np.zeros(0, dtype))
    gru.backward(g, g.copy(), state.copy(), 0, state.copy(), state.copy(), state.copy(), none,
                 np.zeros(0, dtype))
    gru.reset_grad(g, g.copy(), state.copy(), state.copy(), state.copy())
    for relu in (False, True):
        compiled.rnn_forward(state.copy(), state.copy(), state.copy(), np.zeros(0, dtype), relu)
    scores, row = np.zeros((N, H), dtype), np.zeros(N, dtype)
    compiled.softmax.forward(scores, row, scores.copy(), row.copy())
    compiled.softmax.backward(scores, row, np.zeros(N, np.int64), row.copy())
    gates, p = np.zeros((4, N, H), dtype), np.zeros(3 * H, dtype)
    compiled.peephole.forward(a, a.copy(), p, state, state.copy(), state.copy(), state.copy(),
                              state.copy(), gates, np.zeros(0, dtype))
    compiled.peephole.backward(gates, state, state.copy(), state.copy(), state.copy(),
                               state.copy(), state.copy(), p, a.copy(), p.copy(),
                               np.zeros(0, dtype))
