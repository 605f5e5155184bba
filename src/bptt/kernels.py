"""The LSTM's element-wise step in one pass (the GRU's in two, around its two products; the
peephole and layer-normalised LSTMs' steps and the RNN's forward in one), and the softmax with
cross-entropy over a vocabulary one row at a time, and the SGD and Adam updates in one pass
and the embedding's gradient sum (:mod:`bptt.numba_updates`), and the steps' products on
weights packed once (:func:`packed_right`, :mod:`bptt.numba_gemm`), compiled by Numba when the
optional ``numba`` extra is installed;
NumPy's ufuncs (the reference, in
:class:`bptt.nn.cells.TimeLSTM`, :class:`~bptt.nn.cells.TimeGRU`, ... and
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
element. The softmax's row sum is eight running sums added pairwise, not a reassociated loop:
reassociation could undo exp's rounding trick, and the order stays the same on every machine.

Threads: with two or more BLAS threads, OpenBLAS's jobs run on Numba's pool (:mod:`bptt.blas`,
:mod:`bptt.numba_pool`), and the LSTM's, the GRU's, the RNN's and the softmax's loops split
their rows over the same threads (``parallel=True``: a ``prange`` over the rows, each row
computed as on one thread, so the same bits). Where each thread would keep a block of at
least :data:`ROW_LOOP_MIN_ROWS` rows on packed weights (the dates seq2seq's 128 rows on two
threads), TimeLSTM runs its whole time loop on blocks of rows instead, each thread every step
of its block (:mod:`bptt.numba_time_loops`, :func:`lstm_row_loops`: the same bits). With
OpenBLAS's own workers they stay on the calling thread: a worker spins on the other core for a
while after each product.

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
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


class LSTMKernels(NamedTuple):
    """The LSTM's compiled loops (arguments: :data:`LSTM_ARGUMENTS`)."""

    forward: Any
    backward: Any
    tanh: Any  # tanh(x, out): the element-wise tanh the two use, for tests and benchmarks


class GRUKernels(NamedTuple):
    """The GRU's compiled loops, two per direction around its two products (their equations:
    :mod:`bptt.numba_cells`, in the order TimeGRU calls them)."""

    gates: Any  # z, r; q = r * h_prev or rec_h + bh
    output: Any  # hh, h
    backward: Any  # da_z, da_h, dh_tot (1 - z) [, dn, da_r]
    reset_grad: Any  # reset before: da_r, dh += drh * r


class SoftmaxKernels(NamedTuple):
    """Softmax with cross-entropy over rows of scores (M, V), a row at a time, in cache."""

    forward: Any  # (x, mx, e, s): mx = max x, e = exp(x - mx), s = sum e, row by row
    backward: Any  # (e, scale, t, c): e *= scale, then e[k, t_k] -= c_k, row by row


class UpdateKernels(NamedTuple):
    """The optimizers' updates, one pass over a parameter, and the embedding's gradient sum
    (:mod:`bptt.numba_updates`)."""

    sgd: Any  # (p, g, lr)
    adam: Any  # (p, g, m, v, 1 - beta1, beta2, 1 - beta2, eps, scale)
    scatter_add_rows: Any  # (target, idx, values): target[idx[k]] += values[k], k in order


class GemmKernels(NamedTuple):
    """A step's product on weights packed once (:mod:`bptt.numba_gemm`), each with a twin that
    splits the panels over the pool (last argument: its threads)."""

    pack: Any  # (b, packed)
    pack_parallel: Any  # (b, packed, threads)
    product: Any  # (a, packed, out)
    product_parallel: Any  # (a, packed, out, threads)


class StepKernels(NamedTuple):
    """A recurrent step's compiled pair, one pass each way around its product h_{t-1} @ Wh
    (arguments and equations: the loops of :mod:`bptt.numba_cells`)."""

    forward: Any  # peephole_forward, lnlstm_forward
    backward: Any  # peephole_backward, lnlstm_backward


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


def lstm_kernels(xp: Any, dtype: Any, parallel: bool | None = None) -> LSTMKernels | None:
    """The LSTM's loops compiled for ``dtype`` (float32 or float64), or None: not NumPy, not
    installed, turned off, another dtype, or Numba failed to compile them (said once, as a
    warning). Their arguments: :data:`LSTM_ARGUMENTS`. ``parallel``: the rows split over
    Numba's pool, the same results bit for bit; None (the layers'): split while the pool also
    runs the products (:func:`split_rows`)."""
    return _kernels("lstm", xp, dtype, parallel)


def gru_kernels(xp: Any, dtype: Any, parallel: bool | None = None) -> GRUKernels | None:
    """The GRU's compiled loops for ``dtype``, or None (as :func:`lstm_kernels`)."""
    return _kernels("gru", xp, dtype, parallel)


def rnn_forward_kernel(xp: Any, dtype: Any, parallel: bool | None = None) -> Any:
    """The RNN's compiled forward step for ``dtype``, or None (as :func:`lstm_kernels`)."""
    return _kernels("rnn", xp, dtype, parallel)


def softmax_kernels(xp: Any, dtype: Any, parallel: bool | None = None
                    ) -> SoftmaxKernels | None:
    """TimeSoftmaxWithLoss's compiled passes for ``dtype``, or None (as :func:`lstm_kernels`,
    ``parallel`` too)."""
    return _kernels("softmax", xp, dtype, parallel)


def peephole_kernels(xp: Any, dtype: Any) -> StepKernels | None:
    """The peephole LSTM's compiled step for ``dtype``, or None (as :func:`lstm_kernels`)."""
    return _kernels("peephole", xp, dtype)


def lnlstm_kernels(xp: Any, dtype: Any) -> StepKernels | None:
    """The layer-normalised LSTM's compiled step for ``dtype``, or None (as
    :func:`lstm_kernels`)."""
    return _kernels("lnlstm", xp, dtype)


def update_kernels(xp: Any, dtype: Any) -> UpdateKernels | None:
    """The optimizers' compiled updates for ``dtype``, or None (as :func:`lstm_kernels`; on one
    thread: bound by memory, a second gains nothing, :mod:`bptt.numba_updates`)."""
    return _kernels("updates", xp, dtype)


# rows of a up to which the packed product is the faster (python benchmarks/split_products.py,
# 2-core EPYCs): with AVX2 (Zen 3) at 20 rows 1.2x the split product on two threads, at 40
# 1.07x, at 64 0.94x; with AVX-512 (Zen 4: a panel's row is one vector register) at 64 rows
# 0.91-1.09x, at 128 (the dates seq2seq) 0.98-1.20x, at 160-256 0.8-1.0x (Intel's AVX-512 CPUs
# not measured; there MKL's packed products come first, bptt.mkl)
PACKED_MAX_ROWS = {"avx2": 48, "avx512": 128}
# products a layer call makes below which packing does not pay (it costs about two or three
# of them): generation and greedy decoding, one step a call, keep NumPy's product
PACKED_MIN_STEPS = 4
PANEL_BYTES = 64  # a panel's row, one cache line: 16 float32 or 8 float64 columns


@functools.cache
def packed_max_rows() -> int:
    """The most rows the packed product takes on this CPU (:data:`PACKED_MAX_ROWS`): the
    AVX-512 figure where LLVM (Numba's compiler) finds AVX-512F on the host, else AVX2's."""
    try:
        llvm = importlib.import_module("llvmlite.binding")  # Numba's compiler
        wide = bool(llvm.get_host_cpu_features().get("avx512f"))
    except Exception:  # noqa: BLE001 - no llvmlite (no Numba: nothing is packed), no feature list
        wide = False
    return PACKED_MAX_ROWS["avx512" if wide else "avx2"]


def packed_right(b: Any, rows: int, work: Callable[[tuple, Any], Any] | None = None,
                 steps: int | None = None) -> Callable[[Any, Any], bool] | None:
    """``product(out, a)``: ``out[...] = a @ b`` for a (rows, K), on b packed here, once, into
    panels (:mod:`bptt.numba_gemm`); True, or False when not done (another dtype or layout: use
    NumPy's). None when it does not apply: b is not a 2-D NumPy float32/float64 matrix with
    rows and columns, rows is not 2..:func:`packed_max_rows` (one row is NumPy's vector
    product, as fast), ``steps`` (the products the caller will make; None: many) is under
    :data:`PACKED_MIN_STEPS`, or Numba is not installed, off or failed. b must not change
    while the product is in use. ``work(shape, dtype)`` gives the array to pack into (a
    layer's reused scratch; default a new one).

    Why: a BLAS library packs b's panels again on every call, which a recurrent step's
    product with few rows, (20, 650) @ (650, 2600), does not amortise: OpenBLAS computes it
    at ~50-60 GFLOP/s on one core of the EPYC where its large products reach ~83; on panels
    packed once a layer call the product runs at ~85, on two threads 1.35-1.8x the split
    OpenBLAS products (``python benchmarks/split_products.py``). Each column is the same
    chain of adds on any number of threads, so the result does not depend on ``--threads``.
    While Numba's pool runs the products (:func:`split_rows`), the panels are split over it."""
    if (type(b) is not np.ndarray or b.ndim != 2 or 0 in b.shape
            or not 2 <= rows <= packed_max_rows()
            or (steps is not None and steps < PACKED_MIN_STEPS)):
        return None
    compiled = _kernels("gemm", np, b.dtype)
    if compiled is None:
        return None
    k, n = b.shape
    dtype, size = b.dtype, b.dtype.itemsize
    packed = packed_panels(b, work)

    def product(out: Any, a: Any) -> bool:
        if (type(a) is not np.ndarray or type(out) is not np.ndarray or a.dtype != dtype
                or out.dtype != dtype or a.shape != (rows, k) or out.shape != (rows, n)
                or a.strides[1] != size or out.strides[1] != size or a.strides[0] < 0
                or out.strides[0] < (n * size if rows > 1 else 0) or not out.flags.writeable
                or np.may_share_memory(out, a) or np.may_share_memory(out, packed)):
            return False
        if _split:
            compiled.product_parallel(a, packed, out, _numba().get_num_threads())
        else:
            compiled.product(a, packed, out)
        return True
    return product


def packed_panels(b: Any, work: Callable[[tuple, Any], Any] | None = None) -> Any:
    """b (K, N), a NumPy float32/float64 matrix, packed into :mod:`bptt.numba_gemm`'s panels
    (P, K, W), in ``work(shape, dtype)`` (default a new array); the panels split over the pool
    while it runs the products. The caller has checked that the compiled products exist
    (:func:`packed_right`, :func:`lstm_row_loops`)."""
    compiled = _kernels("gemm", np, b.dtype)
    k, n = b.shape
    width = PANEL_BYTES // b.dtype.itemsize
    shape = ((n + width - 1) // width, k, width)
    packed = work(shape, b.dtype) if work is not None else np.empty(shape, b.dtype)
    if _split:
        compiled.pack_parallel(b, packed, _numba().get_num_threads())
    else:
        compiled.pack(b, packed)
    return packed


# rows a thread's block needs before TimeLSTM runs whole time loops on blocks of rows (each
# thread then reads all the packed weights at every step: with 64 rows a panel's slice serves
# 11 blocks of six rows while it is in the first-level cache; with a language model's 10 rows
# a thread, 2, and splitting each product by columns, each thread reading half, is the better)
ROW_LOOP_MIN_ROWS = 32


class RowLoops(NamedTuple):
    """TimeLSTM's time loops with the batch rows split over the pool
    (:mod:`bptt.numba_time_loops`), and into how many blocks."""

    forward: Any  # (A, Z, packed W, cs, tanh_c, parts)
    backward: Any  # (A, tanh_c, cs, up, dh, dc, packed Wh.T, parts)
    parts: int


def lstm_row_loops(xp: Any, dtype: Any, rows: int, steps: int) -> RowLoops | None:
    """TimeLSTM's whole forward and backward loops, each thread of the pool running every
    step for its block of rows (one start of the pool a layer call, not two a step), or None
    where they do not apply: the pool does not run the products (:func:`split_rows`), the
    packed product does not take ``rows`` (:func:`packed_max_rows`), fewer than
    :data:`PACKED_MIN_STEPS` steps, fewer than :data:`ROW_LOOP_MIN_ROWS` rows a thread, or
    the compiled loops are missing (as :func:`lstm_kernels`). The same bits as the step by
    step compiled path."""
    if not _split or not 2 <= rows <= packed_max_rows() or steps < PACKED_MIN_STEPS:
        return None
    parts = min(_numba().get_num_threads(), rows // ROW_LOOP_MIN_ROWS)
    loops = _kernels("lstm_rows", xp, dtype) if parts >= 2 else None
    if loops is None or _kernels("gemm", xp, dtype) is None:
        return None
    return loops._replace(parts=parts)


_split = False  # the layers' loops split their rows: Numba's pool also runs the products


def split_rows(on: bool) -> None:
    """Said by :mod:`bptt.blas` when Numba's pool starts (or stops) running OpenBLAS's jobs:
    from then on the families that have a row-split twin hand it to the layers."""
    global _split
    _split = bool(on)


def _kernels(family: str, xp: Any, dtype: Any, parallel: bool | None = None) -> Any:
    if xp is not np:
        return None
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64) or not wanted() or not installed():
        return None
    if (_split if parallel is None else parallel) and f"{family}_parallel" in _FAMILIES:
        family = f"{family}_parallel"
    return _compile(family, dtype.name)


LSTM_ARGUMENTS = """
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
    a (N, 4H), h_prev and h (N, >= H), the others (N, H); all rows contiguous. ``add`` with no
    rows (0, 4H) and ``real`` with none (0,) mean: none.
"""

_warned = False  # a compiler failure is said once a process, whatever family met it


@functools.cache
def _compile(family: str, dtype_name: str) -> Any:
    """One family's loops of :mod:`bptt.numba_cells` (imported only once Numba is known to be
    there), compiled for the dtype on first request, by a tiny trial step; None if that fails.
    Each family compiles (or loads from Numba's disk cache) only when a layer asks for it."""
    global _warned
    base = family.removesuffix("_parallel")  # a row-split twin shares its family's module, trial
    try:
        loops = importlib.import_module(_MODULES.get(base, ".numba_cells"), __package__)
        compiled = _FAMILIES[family](loops)
        _TRIALS[base](compiled, np.dtype(dtype_name))  # compile now, where a failure is caught
    except Exception as error:  # noqa: BLE001 - any compiler failure: keep NumPy's path
        if not _warned:
            _warned = True
            warnings.warn(f"bptt: Numba could not compile the recurrent steps, the "
                          f"step products, the softmax and the updates ({type(error).__name__}: "
                          f"{str(error).splitlines()[0] if str(error) else ''}); using NumPy's "
                          f"ufuncs (BPTT_NUMBA=0 silences this)", RuntimeWarning, stacklevel=4)
        return None
    return compiled


# where a family's loops live, if not in numba_cells
_MODULES = {"updates": ".numba_updates", "gemm": ".numba_gemm",
            "lstm_rows": ".numba_time_loops", "peephole": ".numba_lstm_variants",
            "lnlstm": ".numba_lstm_variants"}
_FAMILIES = {
    "gemm": lambda loops: GemmKernels(loops.pack, loops.pack_parallel, loops.product,
                                      loops.product_parallel),
    "lstm_rows": lambda loops: RowLoops(loops.lstm_forward, loops.lstm_backward, 0),
    "updates": lambda loops: UpdateKernels(loops.sgd, loops.adam, loops.scatter_add_rows),
    "lstm": lambda loops: LSTMKernels(loops.forward, loops.backward, loops.tanh_into),
    "lstm_parallel": lambda loops: LSTMKernels(loops.forward_parallel, loops.backward_parallel,
                                               loops.tanh_into),
    "gru": lambda loops: GRUKernels(loops.gru_gates, loops.gru_output, loops.gru_backward,
                                    loops.gru_reset_grad),
    "gru_parallel": lambda loops: GRUKernels(loops.gru_gates_parallel, loops.gru_output_parallel,
                                             loops.gru_backward_parallel,
                                             loops.gru_reset_grad_parallel),
    "rnn": lambda loops: loops.rnn_forward,
    "rnn_parallel": lambda loops: loops.rnn_forward_parallel,
    "softmax": lambda loops: SoftmaxKernels(loops.softmax_rows, loops.softmax_grad_rows),
    "softmax_parallel": lambda loops: SoftmaxKernels(loops.softmax_rows_parallel,
                                                     loops.softmax_grad_rows_parallel),
    "peephole": lambda loops: StepKernels(loops.peephole_forward, loops.peephole_backward),
    "peephole_parallel": lambda loops: StepKernels(loops.peephole_forward_parallel,
                                                   loops.peephole_backward_parallel),
    "lnlstm": lambda loops: StepKernels(loops.lnlstm_forward, loops.lnlstm_backward),
    "lnlstm_parallel": lambda loops: StepKernels(loops.lnlstm_forward_parallel,
                                                 loops.lnlstm_backward_parallel),
}

# the trial steps: tiny arrays (N 2, H 3) with the argument types the layers pass (C-contiguous)


def _try_lstm(compiled: LSTMKernels, dtype: Any) -> None:
    N, H = 2, 3
    a, state = np.zeros((N, 4 * H), dtype), np.zeros((N, H), dtype)
    compiled.forward(a, np.zeros((0, 4 * H), dtype), state, state.copy(), state.copy(),
                     state.copy(), state.copy(), np.zeros(0, dtype))
    compiled.backward(a, state, state.copy(), state.copy(), 0, state.copy(), state.copy(),
                      np.zeros(0, dtype))
    compiled.tanh(a[0], a[1])


def _try_gru(gru: GRUKernels, dtype: Any) -> None:
    N, H = 2, 3
    g, state, none = np.zeros((N, 3 * H), dtype), np.zeros((N, H), dtype), np.zeros((0, H), dtype)
    gru.gates(g, g.copy(), state, state.copy(), np.zeros(0, dtype))
    gru.output(g, state.copy(), state.copy(), state.copy(), state.copy(), np.zeros(0, dtype))
    gru.output(g, none, state.copy(), state.copy(), state.copy(), np.zeros(0, dtype))
    gru.backward(g, g.copy(), state.copy(), 0, state.copy(), state.copy(), state.copy(), none,
                 np.zeros(0, dtype))
    gru.reset_grad(g, g.copy(), state.copy(), state.copy(), state.copy())


def _try_rnn(rnn_forward: Any, dtype: Any) -> None:
    N, H = 2, 3
    state = np.zeros((N, H), dtype)
    for relu in (False, True):
        rnn_forward(state.copy(), state.copy(), state.copy(), np.zeros(0, dtype), relu)


def _try_softmax(softmax: SoftmaxKernels, dtype: Any) -> None:
    N, H = 2, 3
    scores, row = np.zeros((N, H), dtype), np.zeros(N, dtype)
    softmax.forward(scores, row, scores.copy(), row.copy())
    softmax.backward(scores, row, np.zeros(N, np.int64), row.copy())


def _try_peephole(peephole: StepKernels, dtype: Any) -> None:
    N, H = 2, 3
    a, state, gates = np.zeros((N, 4 * H), dtype), np.zeros((N, H), dtype), np.zeros((4, N, H),
                                                                                       dtype)
    p = np.zeros(3 * H, dtype)
    peephole.forward(a, a.copy(), p, state, state.copy(), state.copy(), state.copy(),
                     state.copy(), gates, np.zeros(0, dtype))
    peephole.backward(gates, state, state.copy(), state.copy(), state.copy(), state.copy(),
                      state.copy(), p, a.copy(), p.copy(), np.zeros(0, dtype))


def _try_lnlstm(lnlstm: StepKernels, dtype: Any) -> None:
    N, H = 2, 3
    wide, state = np.zeros((N, 4 * H), dtype), np.zeros((N, H), dtype)
    row, none = np.zeros(N, dtype), np.zeros(0, dtype)
    lnlstm.forward(wide, wide.copy(), wide[0], wide[0], state[0], state[0], state, state.copy(),
                   state.copy(), state.copy(), wide.copy(), state.copy(), wide.copy(), row,
                   state.copy(), row.copy(), none, dtype.type(1e-5))
    lnlstm.backward(wide, state, wide.copy(), row + 1, state.copy(), row + 1, state, state.copy(),
                    state.copy(), state.copy(), wide[0], state[0], state.copy(), wide.copy(),
                    wide.copy(), np.zeros((3, 4 * H), dtype), none)


def _try_updates(updates: UpdateKernels, dtype: Any) -> None:
    p, one = np.zeros(3, dtype), dtype.type(1)
    updates.sgd(p, p.copy(), one)
    updates.adam(p, p.copy(), p.copy(), p.copy(), one, one, one, one, one)
    rows = np.zeros((2, 3), dtype)
    updates.scatter_add_rows(rows, np.zeros(2, np.intp), rows.copy())


def _try_gemm(gemm: GemmKernels, dtype: Any) -> None:
    b = np.zeros((3, 5), dtype)
    packed = np.zeros((1, 3, PANEL_BYTES // dtype.itemsize), dtype)
    for weights in (b, np.zeros((5, 3), dtype).T):  # Wh, and the view Wh.T going back
        gemm.pack(weights, packed)
        gemm.pack_parallel(weights, packed, 1)
    gemm.product(np.zeros((2, 3), dtype), packed, np.zeros((2, 5), dtype))
    gemm.product_parallel(np.zeros((2, 3), dtype), packed, np.zeros((2, 5), dtype), 1)


def _try_lstm_rows(loops: RowLoops, dtype: Any) -> None:
    T, N, H, K = 1, 2, 3, 4
    width = PANEL_BYTES // dtype.itemsize
    A, state = np.zeros((T, N, 4 * H), dtype), np.zeros((T + 1, N, H), dtype)
    loops.forward(A, np.zeros((T + 1, N, K), dtype), np.zeros((1, K, width), dtype), state,
                  state[1:].copy(), 1)
    loops.backward(A, state[1:].copy(), state.copy(), np.zeros((N, T * H), dtype),
                   state[0].copy(), state[0].copy(), np.zeros((1, 4 * H, width), dtype), 1)


_TRIALS = {"lstm": _try_lstm, "lstm_rows": _try_lstm_rows, "gru": _try_gru, "rnn": _try_rnn,
           "softmax": _try_softmax, "peephole": _try_peephole, "lnlstm": _try_lnlstm,
           "updates": _try_updates, "gemm": _try_gemm}  # a *_parallel twin takes its family's trial
