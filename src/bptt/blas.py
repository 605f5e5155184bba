"""The number of threads of the BLAS library that NumPy uses, set at run time (no dependency).

Why the CLI runs BLAS on one thread by default: the matrix products of a language model step
are small ((N, H) @ (H, 4H) with N = 20, 35 times per step), so a second thread gains ~20 % on
an idle machine, but when another process holds a core, OpenBLAS threads wait on each other at
every product: we measured a PTB step going from 0.09 s to 4 s, and the built-in demo from 11 s
to 8 minutes. ``bptt train --threads N`` (or OPENBLAS_NUM_THREADS / OMP_NUM_THREADS) overrides.

Works with the OpenBLAS that NumPy wheels bundle (``scipy_openblas``) and a system OpenBLAS,
found among the libraries loaded in the process (Linux: /proc/self/maps; elsewhere NumPy's own
library folder). Anything else (MKL, Accelerate): nothing is changed.

One pool of threads for the products and the compiled loops: with two or more BLAS threads,
OpenBLAS's workers spin on their cores for a while after every product, so a thread of ours that
runs element-wise work next (the softmax's rows split in two) shares a core with a spinning
worker and gains nothing (docs/benchmarks.md, "One thread pool"). When Numba is installed (and
``BPTT_NUMBA`` is not 0), its pool runs OpenBLAS's jobs instead (:mod:`bptt.numba_pool`, through
OpenBLAS's threads callback), and the compiled loops split their rows over the same threads
(:func:`bptt.kernels.split_rows`; :func:`kernel_threads` says how many). Only on Numba's OpenMP
layer (threads that may be started from any thread at once); a forked child goes back to
OpenBLAS's own threads. ``BPTT_SHARED_POOL=0`` keeps OpenBLAS's own threads (and the compiled
loops on one thread).
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import kernels

_SET = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
        "openblas_set_num_threads64_", "openblas_set_num_threads")
_GET = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
        "openblas_get_num_threads64_", "openblas_get_num_threads")
_SET_CALLBACK = ("scipy_openblas_set_threads_callback_function64_",
                 "scipy_openblas_set_threads_callback_function",
                 "openblas_set_threads_callback_function")
_GEMM = {np.dtype(np.float32): ("scipy_cblas_sgemm64_", "cblas_sgemm64_"),  # ILP64 only
         np.dtype(np.float64): ("scipy_cblas_dgemm64_", "cblas_dgemm64_")}
# m * k * n under which OpenBLAS itself runs a product on one thread (its SMP threshold,
# 65536 * GEMM_MULTITHREAD_THRESHOLD 4): no split there either
SPLIT_MIN_WORK = 262144
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_pool_threads = 0  # > 0: OpenBLAS's jobs run on Numba's pool, with this many threads
_forked = False  # this process is a fork's child: Numba's OpenMP pool cannot run here


@functools.cache
def _openblas() -> Any:
    """The OpenBLAS library loaded with NumPy (found once), or None."""
    import numpy as np

    paths: list[str] = []
    try:
        maps = Path("/proc/self/maps").read_text()
        paths = sorted({ln.split()[-1] for ln in maps.splitlines()
                        if "openblas" in ln.lower() and ln.split()[-1].startswith("/")})
    except OSError:  # pragma: no cover - not Linux
        root = Path(np.__file__).resolve().parent
        for folder in (root.parent / "numpy.libs", root / ".dylibs"):
            paths += [str(p) for p in folder.glob("*openblas*")]
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:  # pragma: no cover
            continue
        if any(hasattr(lib, name) for name in _SET):
            return lib
    return None


def _call(names: tuple[str, ...], *args: int) -> Any:
    fn = _getter(names)
    return None if fn is None else fn(*args)


@functools.cache
def _getter(names: tuple[str, ...]) -> Any:
    lib = _openblas()
    for name in names if lib is not None else ():
        fn = getattr(lib, name, None)
        if fn is not None:
            return fn
    return None


def get_blas_threads() -> int | None:
    """OpenBLAS's thread count, or None if NumPy does not use OpenBLAS."""
    return _call(_GET)


def set_blas_threads(n: int) -> bool:
    """Use ``n`` BLAS threads from now on; False if it cannot be done (not OpenBLAS)."""
    if int(n) != n or n < 1:
        raise ValueError(f"--threads must be a positive integer, got {n!r}")
    if _openblas() is None:
        return False
    _call(_SET, int(n))
    _share_pool(int(n))
    return True


def share_threads() -> None:
    """Let the products and the compiled loops share one pool at the current BLAS thread
    count (as :func:`set_blas_threads` does when it sets one): for a count that came from
    the environment. The trainer calls it when a run starts."""
    n = get_blas_threads()
    if n is not None:
        _share_pool(n)


def kernel_threads() -> int:
    """How many threads the compiled element-wise loops may use: the BLAS thread count when
    OpenBLAS's jobs run on Numba's pool, else 1 (a second thread of ours would share its core
    with an OpenBLAS worker spinning after the last product)."""
    return max(_pool_threads, 1)


def pool_status() -> str:
    """One phrase for reports: whether the products and the compiled loops share a pool."""
    if _pool_threads:
        return f"shared with the compiled loops (Numba's pool, {_pool_threads} threads)"
    if _getter(_SET_CALLBACK) is None:
        return "OpenBLAS's own (no threads callback in this OpenBLAS)"
    return "OpenBLAS's own"


def split_right(b: Any, rows: int) -> Callable[[Any, Any], bool] | None:
    """``product(out, a)``: ``out[...] = a @ b`` for a (rows, K), with b's columns split over
    the shared pool, each part one single-threaded OpenBLAS product (True; False: not done,
    e.g. another dtype or layout: use NumPy's). None when it does not apply: the pool is not
    shared, b is not a C-contiguous float32/float64 NumPy matrix, a is one row (NumPy takes
    the vector product, gemv), the product is under OpenBLAS's own threshold for threads, or
    the OpenBLAS has no ILP64 ``cblas_?gemm64_``.

    Why: OpenBLAS threads a product with few rows, a recurrent step's (20, 650) @ (650, 2600),
    no faster than one thread does it (1.05 ms against 1.1 ms on the 2-core EPYC), while each
    of two threads computing half of the columns takes 0.52-0.7 ms for the whole (1.25-1.57x
    OpenBLAS's two threads at N = 20 on the shapes of the book's models; 1.04-1.17x at 40-160
    rows; ``python benchmarks/split_products.py``). Each column is computed by one
    single-threaded product either way, so the result is a fixed function of the thread count,
    as OpenBLAS's own threaded products are (neither equals one thread's bits)."""
    if (_pool_threads < 2 or type(b) is not np.ndarray or b.ndim != 2
            or not b.flags.c_contiguous or b.dtype not in _GEMM):
        return None
    k, n = b.shape
    gemm = _getter(_GEMM[b.dtype])
    if rows < 2 or rows * k * n < SPLIT_MIN_WORK or n < 32 or gemm is None:
        return None
    address = ctypes.cast(gemm, ctypes.c_void_p).value
    pool, dtype, size, one = _numba_pool(), b.dtype, b.dtype.itemsize, b.dtype.type(1)
    set_threads = _getter(_SET)

    def product(out: Any, a: Any) -> bool:
        parts = _pool_threads
        if (parts < 2 or type(a) is not np.ndarray or type(out) is not np.ndarray
                or a.dtype != dtype or out.dtype != dtype or a.shape != (rows, k)
                or out.shape != (rows, n) or a.strides[1] != size or out.strides[1] != size
                or a.strides[0] < k * size or out.strides[0] < n * size
                or not out.flags.writeable or np.may_share_memory(out, a)
                or np.may_share_memory(out, b)):
            return False
        set_threads(1)  # each part on one thread (OpenBLAS would hand it to the pool again)
        try:
            pool.split_gemm(address, parts, a, b, out, one)
        finally:
            set_threads(parts)
        return True
    return product


NO_TRANSPOSE, TRANSPOSE = 111, 112  # CBLAS's codes


def _item_layout(x: Any, rows: int, cols: int) -> tuple[int, int] | None:
    """(CBLAS transpose code, leading dimension) of each (rows, cols) item of a stack, or None
    when an item is neither row- nor column-major with a leading dimension BLAS takes."""
    size = x.itemsize
    s_rows, s_cols = x.strides[1], x.strides[2]
    if s_cols == size and s_rows % size == 0 and s_rows >= cols * size:
        return NO_TRANSPOSE, s_rows // size  # row-major: as it is
    if s_rows == size and s_cols % size == 0 and s_cols >= rows * size:
        return TRANSPOSE, s_cols // size  # column-major: the transpose of a row-major matrix
    return None


def matmul_stacked(out: Any, a: Any, b: Any) -> bool:
    """``out[...] = a @ b`` for stacks a (B, m, k), b (B, k, n), out (B, m, n), the B items
    split over the shared pool, each one single-threaded OpenBLAS product; False (not done:
    use NumPy's) when the pool is not shared, the arrays are not NumPy float32/float64 stacks
    of one dtype whose items BLAS takes as they are (row- or column-major; out row-major),
    out overlaps an input, or the work is under OpenBLAS's own threshold for threads.

    Why: NumPy multiplies a stack one item after the other, and each of the attention's
    items, (10, 256) @ (256, 29) for the dates seq2seq, is too small for OpenBLAS to thread:
    its products ran on one core whatever ``--threads`` said. Each item is the same
    single-threaded OpenBLAS call either way, so the attention's results are the one-thread
    bits (tests/test_blas.py; NumPy takes a vector product, gemv, for items of one row or
    column, which may round differently)."""
    if (_pool_threads < 2 or type(a) is not np.ndarray or type(b) is not np.ndarray
            or type(out) is not np.ndarray or a.ndim != 3 or b.ndim != 3 or out.ndim != 3
            or a.dtype not in _GEMM or b.dtype != a.dtype or out.dtype != a.dtype):
        return False
    count, m, k = a.shape
    n = b.shape[2]
    if (b.shape != (count, k, n) or out.shape != (count, m, n) or count < 2 or 0 in (m, n, k)
            or count * m * n * k < SPLIT_MIN_WORK or min(a.strides[0], b.strides[0]) < 0
            or out.strides[0] < m * out.strides[1] or not out.flags.writeable
            or np.may_share_memory(out, a) or np.may_share_memory(out, b)):
        return False
    gemm = _getter(_GEMM[a.dtype])
    layout_a, layout_b = _item_layout(a, m, k), _item_layout(b, k, n)
    if (gemm is None or layout_a is None or layout_b is None
            or _item_layout(out, m, n) != (NO_TRANSPOSE, out.strides[1] // out.itemsize)):
        return False
    set_threads = _getter(_SET)
    set_threads(1)  # each item on one thread (OpenBLAS would hand it to the pool again)
    try:
        _numba_pool().split_stacked_gemm(ctypes.cast(gemm, ctypes.c_void_p).value, a,
                                         np.int32(layout_a[0]), layout_a[1], b,
                                         np.int32(layout_b[0]), layout_b[1], out,
                                         a.dtype.type(1))
    finally:
        set_threads(_pool_threads)
    return True


def _share_pool(n: int) -> None:
    """Run OpenBLAS's jobs on Numba's pool when it can give each of the n jobs a thread;
    otherwise (one thread, no Numba, another layer, a forked child) on OpenBLAS's own."""
    global _pool_threads
    set_callback = _getter(_SET_CALLBACK)
    if set_callback is None:
        return
    pool = (_numba_pool() if n > 1 and not _forked and os.environ.get("BPTT_SHARED_POOL") != "0"
            else None)
    if pool is None or n > pool.pool_size():
        if _pool_threads:
            set_callback(None)
            _pool_threads = 0
            kernels.split_rows(False)
        return
    if not _pool_threads:
        set_callback(ctypes.c_void_p(pool.openblas_callback.address))
    pool.use_threads(n)
    _pool_threads = n
    kernels.split_rows(True)


@functools.cache
def _numba_pool() -> Any:
    """:mod:`bptt.numba_pool`, loaded and its layer started, or None: Numba not installed or
    turned off, or a layer other than OpenMP (TBB may run two jobs one after the other, which
    would wait for each other for ever; the workqueue cannot start threads from two threads)."""
    if not (kernels.wanted() and kernels.installed()):
        return None
    try:
        pool = importlib.import_module(".numba_pool", __package__)
        if pool.threading_layer() != "omp":
            return None
    except Exception:  # noqa: BLE001 - any compiler or runtime failure: OpenBLAS's own threads
        return None
    _getter(_SET_CALLBACK).argtypes = [ctypes.c_void_p]
    if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
        os.register_at_fork(after_in_child=_forget_pool)
    return pool


def _forget_pool() -> None:
    """In a forked child: OpenMP's threads did not come along; OpenBLAS restarts its own."""
    global _pool_threads, _forked
    _forked = True
    if _pool_threads:
        _getter(_SET_CALLBACK)(None)
        _pool_threads = 0
        kernels.split_rows(False)


def threads_set_by_environment() -> bool:
    return any(os.environ.get(v) for v in THREAD_ENV)
