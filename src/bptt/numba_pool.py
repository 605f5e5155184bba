"""OpenBLAS's parallel jobs run on Numba's thread pool (:mod:`bptt.blas` says when and why;
this module is imported only when Numba is installed).

OpenBLAS (0.3.27+, as NumPy's wheels bundle it) hands its threaded work to a callback when one
is registered (``openblas_set_threads_callback_function``)::

    callback(sync, dojob, numjobs, jobdata_elsize, jobdata, dojob_data)
        must run dojob(i, jobdata + i * jobdata_elsize, dojob_data) for i < numjobs, all at
        once (the jobs of one product wait for each other's packed panels), and return when
        every one is done.

:func:`openblas_callback` runs them as one ``prange`` on Numba's pool, with as many threads as
jobs, so the compiled element-wise loops (``parallel`` ones) and the products share one set of
threads; OpenBLAS's own workers never start, and none is left spinning on a core after a
product.

:func:`split_gemm` is the other way round: a per-step product with few rows, (20, 650) @
(650, 2600), splits its columns over the pool, each part one single-threaded OpenBLAS call
(:func:`bptt.blas.split_right` says when and why).
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from llvmlite import ir
from numba import cfunc, njit, prange, types
from numba.extending import intrinsic


@intrinsic
def _call_job(typingctx, dojob, thread_num, jobdata, dojob_data):
    """dojob(thread_num, (void *) jobdata, dojob_data): a call through OpenBLAS's pointer."""
    def codegen(context, builder, signature, args):
        i32, void_p = ir.IntType(32), ir.IntType(8).as_pointer()
        job_type = ir.FunctionType(ir.VoidType(), [i32, void_p, i32])
        job = builder.inttoptr(args[0], job_type.as_pointer())
        builder.call(job, [args[1], builder.inttoptr(args[2], void_p), args[3]])
        return context.get_dummy_value()
    return types.void(types.intp, types.int32, types.intp, types.int32), codegen


# not cached on disk: Numba cannot cache these two (compiled once a process, ~1 s)
@njit(parallel=True, nogil=True)
def run_jobs(dojob, numjobs, elsize, jobdata, dojob_data):
    """Every job on its own thread of the pool (the caller checks numjobs <= the pool's size)."""
    before = numba.get_num_threads()
    numba.set_num_threads(numjobs)
    for i in prange(numjobs):
        _call_job(dojob, np.int32(i), jobdata + i * elsize, dojob_data)
    numba.set_num_threads(before)


CALLBACK_SIGNATURE = types.void(types.int32, types.intp, types.int32, types.uintp, types.intp,
                                types.int32)


@cfunc(CALLBACK_SIGNATURE, nogil=True)
def openblas_callback(sync, dojob, numjobs, elsize, jobdata, dojob_data):
    """The function OpenBLAS calls instead of waking its own threads."""
    run_jobs(dojob, numjobs, np.intp(elsize), jobdata, dojob_data)


@njit(parallel=True, nogil=True)
def _thread_ids(n):
    numba.set_num_threads(n)
    ids = np.full(n, -1, np.int64)
    for i in prange(n):
        ids[i] = numba.get_thread_id()
    return ids


def threading_layer() -> str:
    """The layer Numba's pool runs on (launched once here): 'omp', 'tbb' or 'workqueue'."""
    _thread_ids(1)
    return numba.threading_layer()


@functools.cache
def pool_size() -> int:
    """How many threads the pool really starts at once (NUMBA_NUM_THREADS, fixed when the
    process started, unless the OpenMP runtime allows fewer, e.g. OMP_THREAD_LIMIT): counted
    once, by the distinct threads of one parallel loop."""
    before = numba.get_num_threads()
    size = len(set(_thread_ids(int(numba.config.NUMBA_NUM_THREADS)).tolist()))
    numba.set_num_threads(before)
    return size


def use_threads(n: int) -> None:
    """Parallel loops started from this thread use n of the pool's threads."""
    numba.set_num_threads(n)




@intrinsic
def _call_gemm(typingctx, gemm, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, one):
    """cblas_?gemm(row-major, trans_a, trans_b, m, n, k, one, a, lda, b, ldb, 0, c, ldc)
    through OpenBLAS's pointer: its ILP64 interface (64-bit sizes), ``one`` float32 or float64,
    the transposes CBLAS's codes (111 none, 112 transposed)."""
    def codegen(context, builder, signature, args):
        i32, i64, void_p = ir.IntType(32), ir.IntType(64), ir.IntType(8).as_pointer()
        scalar = context.get_value_type(signature.args[-1])
        gemm_type = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, scalar,
                                                    void_p, i64, void_p, i64, scalar, void_p,
                                                    i64])
        fn = builder.inttoptr(args[0], gemm_type.as_pointer())
        trans_a_, trans_b_, m_, n_, k_, a_, lda_, b_, ldb_, c_, ldc_, one_ = args[1:]
        row_major = ir.Constant(i32, 101)
        builder.call(fn, [row_major, trans_a_, trans_b_, m_, n_, k_, one_,
                          builder.inttoptr(a_, void_p), lda_, builder.inttoptr(b_, void_p), ldb_,
                          ir.Constant(scalar, 0.0), builder.inttoptr(c_, void_p), ldc_])
        return context.get_dummy_value()
    sig = types.void(types.intp, types.int32, types.int32, types.int64, types.int64, types.int64,
                     types.intp, types.int64, types.intp, types.int64, types.intp, types.int64,
                     one)
    return sig, codegen


NO_TRANSPOSE, TRANSPOSE = 111, 112  # CBLAS's codes


# holds the GIL on purpose: bptt.blas sets OpenBLAS to one thread around the call, and no
# other Python thread can set it back while this runs
@njit(parallel=True, cache=True)
def split_gemm(gemm, parts, a, b, c, one):
    """c = a @ b (2-D, unit column strides; the caller checks shapes and dtypes) as ``parts``
    column blocks of b and c, each on its own thread of the pool (blocks a multiple of 16
    columns wide but the last: whole vector registers). The caller's thread count is the
    pool's (:func:`use_threads`); with fewer, the parts take turns."""
    m, k = a.shape
    n = b.shape[1]
    size = a.itemsize
    width = ((n + parts - 1) // parts + 15) // 16 * 16
    plain = np.int32(NO_TRANSPOSE)
    for p in prange(parts):
        start = p * width
        cols = min(width, n - start)
        if cols > 0:
            _call_gemm(gemm, plain, plain, m, cols, k, a.ctypes.data, a.strides[0] // size,
                       b.ctypes.data + size * start, b.strides[0] // size,
                       c.ctypes.data + size * start, c.strides[0] // size, one)


# the GIL held as for split_gemm
@njit(parallel=True, cache=True)
def split_stacked_gemm(gemm, a, trans_a, lda, b, trans_b, ldb, c, one):
    """c[i] = op(a[i]) @ op(b[i]) for every i of the stacks (count, m, k) @ (count, k, n), the
    items split over the pool's threads, each one single-threaded product. ``a`` and ``b``
    are the stacks as NumPy holds them, with the transposes and leading dimensions the caller
    read from their strides (:func:`bptt.blas.matmul_stacked`); c's items are row-major."""
    count, m, n = c.shape
    k = a.shape[2]
    size = c.itemsize
    ldc = c.strides[1] // size
    for i in prange(count):
        _call_gemm(gemm, trans_a, trans_b, m, n, k, a.ctypes.data + i * a.strides[0], lda,
                   b.ctypes.data + i * b.strides[0], ldb, c.ctypes.data + i * c.strides[0],
                   ldc, one)
