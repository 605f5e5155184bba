"""The one place that chooses the array module (NumPy or CuPy), the dtype policy and the RNG.

Layers never ``import numpy`` for their math. They ask for the module of the arrays they hold::

    xp = array_module(W)          # numpy or cupy, whichever W lives in
    a = x @ W                     # arithmetic in W's dtype (float32 or float64)

so a model built on the GPU computes on the GPU, and a float64 model computes in float64 end to end
(which is what the gradient checks need). New parameters are made by :func:`get_xp` in
:func:`default_dtype` (float32 unless changed).

The device is chosen once: ``BPTT_DEVICE=gpu`` in the environment, ``--device gpu`` on the CLI,
or :func:`set_device` from Python. ``double`` is the device double of :mod:`bptt.device_double`:
arrays that behave toward the code as CuPy's, on the CPU, for tests.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import numpy as np

from . import blas, device_double, kernels, mkl

_DEVICES = ("cpu", "gpu", "double")
_state: dict[str, Any] = {"device": None, "xp": None, "dtype": np.float32, "rng": None}


class BackendError(RuntimeError):
    """The requested device or backend cannot be used."""


def _import_cupy() -> ModuleType:
    try:
        import cupy
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise BackendError(
            "device 'gpu' needs CuPy, which is not installed. Install it with "
            "`pip install 'bptt[gpu]'` (or the cupy-cudaXXx wheel matching your CUDA), "
            "or use --device cpu / BPTT_DEVICE=cpu."
        ) from e
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # pragma: no cover - depends on the machine
        raise BackendError(f"CuPy is installed but no CUDA device is usable: {e}") from e
    return cupy


def set_device(device: str) -> ModuleType:
    """Select 'cpu' (NumPy) or 'gpu' (CuPy) for arrays made from now on; returns the module."""
    device = device.lower()
    if device not in _DEVICES:
        raise BackendError(f"unknown device {device!r}: choose one of {', '.join(_DEVICES)}")
    xp = {"cpu": lambda: np, "gpu": _import_cupy, "double": lambda: device_double.xp}[device]()
    _state.update(device=device, xp=xp, rng=None)
    return xp


def get_device() -> str:
    """The current device name, from :func:`set_device` or ``BPTT_DEVICE`` (default 'cpu')."""
    if _state["device"] is None:
        set_device(os.environ.get("BPTT_DEVICE", "cpu") or "cpu")
    return _state["device"]


def get_xp() -> ModuleType:
    """The array module of the current device (numpy or cupy)."""
    get_device()
    return _state["xp"]


def array_module(*arrays: Any) -> ModuleType:
    """The module (numpy or cupy) that owns these arrays; numpy for plain Python values."""
    for a in arrays:
        if isinstance(a, device_double.DeviceArray):
            return device_double.xp
        mod = type(a).__module__
        if mod.startswith("cupy"):
            return _import_cupy()
    return np


def device_free_memory() -> int | None:
    """Bytes free on the GPU when the device is one (CuPy's ``memGetInfo``), else None: the
    host's memory is what counts then."""
    if get_device() != "gpu":
        return None
    try:  # pragma: no cover - GPU only
        free, _total = _state["xp"].cuda.runtime.memGetInfo()
        return int(free)
    except Exception:  # pragma: no cover - a driver that does not say
        return None


def default_dtype() -> np.dtype:
    """dtype of newly made parameters (float32 unless :func:`set_default_dtype` said otherwise)."""
    return np.dtype(_state["dtype"])


def set_default_dtype(dtype: Any) -> None:
    """Set the dtype of new parameters: float32 for training, float64 for gradient checks."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"default dtype must be a floating type, got {dtype}")
    _state["dtype"] = dtype


def seed(n: int) -> None:
    """Seed bptt's random generator on the current device (weights, dropout masks, sampling)."""
    _state["rng"] = get_xp().random.default_rng(n)  # cupy has NumPy's Generator API


def rng() -> Any:
    """The random generator of the current device (seeded with :func:`seed`)."""
    if _state["rng"] is None:
        seed(int.from_bytes(os.urandom(4), "little"))
    return _state["rng"]


def _is_array_sequence(a: Any) -> bool:
    """A list/tuple holding arrays (moved one by one), not a nested list of numbers."""
    return isinstance(a, (list, tuple)) and any(
        hasattr(v, "shape") or _is_array_sequence(v) for v in a)


def to_device(a: Any, dtype: Any = None) -> Any:
    """Move an array (or nested list/tuple of arrays) to the current device."""
    if _is_array_sequence(a):
        return type(a)(to_device(v, dtype) for v in a)
    xp = get_xp()
    return xp.asarray(a, dtype=dtype)


def to_numpy(a: Any) -> Any:
    """Copy an array (or list/tuple of arrays) back to a NumPy array on the host."""
    if _is_array_sequence(a):
        return type(a)(to_numpy(v) for v in a)
    if hasattr(a, "get") and (type(a).__module__.startswith("cupy")
                              or isinstance(a, device_double.DeviceArray)):
        return a.get()
    return np.asarray(a)


def scatter_add_rows(target: Any, idx: Any, values: Any) -> None:
    """``target[idx[k]] += values[k]`` for every k, repeats summed: the embedding backward.

    ``target`` (V, D), ``idx`` (M,) ints, ``values`` (M, D). The same sums as ``np.add.at``, in
    its order (each id's rows added one after the other, as they come), so the same bits, but
    not its element-at-a-time loop: the positions are sorted by id once (stable), and pass r
    adds the r-th occurrence of every id that has one, as one fancy-indexed add (no id twice
    in a pass); a batch of text has a few ids that repeat often, so most rows go in pass 0.
    (One ``np.add.reduceat`` over the sorted rows took 5 ms for 700 rows of 650 on the EPYC,
    these passes 0.9.) With Numba, one compiled loop adds the rows in turn, the same sums in
    the same order (:func:`bptt.numba_updates.scatter_add_rows`; the dates seq2seq's encoder:
    0.9 ms -> 0.02). On a device, ``xp.add.at`` does it atomically (CuPy 14; CuPy 13 has
    ``cupyx.scatter_add`` for it).
    """
    xp = array_module(target)
    idx = idx.reshape(-1)
    if idx.size == 0:
        return
    values = values.reshape(idx.shape[0], -1)
    if xp is not np:
        add = getattr(xp, "add", None)
        if hasattr(add, "at"):
            add.at(target, idx, values)
        else:  # pragma: no cover - CuPy 13
            import cupyx

            cupyx.scatter_add(target, idx, values)
        return
    compiled = kernels.update_kernels(np, target.dtype)
    if (compiled is not None and type(target) is np.ndarray and target.ndim == 2
            and target.flags.c_contiguous and target.flags.writeable
            and values.dtype == target.dtype and idx.dtype.kind in "iu"
            and 0 <= idx.min() and idx.max() < target.shape[0]):  # else NumPy's wrap or error
        compiled.scatter_add_rows(target, idx.astype(np.intp, copy=False),
                                  np.ascontiguousarray(values))
        return
    order = np.argsort(idx, kind="stable")  # positions by id, each id's in their order
    sorted_idx = idx[order]
    starts = np.flatnonzero(np.r_[True, sorted_idx[1:] != sorted_idx[:-1]])
    counts = np.diff(np.r_[starts, idx.size])
    rank = np.arange(idx.size) - np.repeat(starts, counts)  # r: the id's r-th occurrence
    by_rank = order[np.argsort(rank, kind="stable")]  # positions by r
    bounds = np.r_[0, np.cumsum(np.bincount(rank))]
    for r in range(bounds.size - 1):
        rows = by_rank[bounds[r]:bounds[r + 1]]
        target[idx[rows]] += values[rows]


CACHE_LINE = 64  # bytes
HUGE_PAGE = 2 << 20  # bytes in an x86-64 / arm64 Linux transparent huge page


def empty_work(xp: Any, shape: tuple, dtype: Any) -> Any:
    """An uninitialised array for a layer's own scratch use (kept and reused between calls).

    On NumPy, arrays of 2 MiB or more start on a 2 MiB boundary inside a block of at least
    4 MiB, which NumPy asks Linux to back with transparent huge pages (it does so for blocks
    from 4 MiB): a recurrent layer writes each step into fresh rows of (T, N, H) arrays and
    reads them back in reverse, and with 4 KiB pages each 128 KB step slice costs 32 TLB
    misses (page walks are dear in a virtual machine). Smaller NumPy arrays start on a 64-byte
    boundary (a cache line: a packed panel's row is one, :mod:`bptt.numba_gemm`); CuPy's are
    plain ``xp.empty``.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if xp is not np:
        return xp.empty(shape, dtype=dtype)
    if nbytes < HUGE_PAGE:
        block = np.empty(nbytes + CACHE_LINE, dtype=np.uint8)
        start = -block.ctypes.data % CACHE_LINE
        return block[start:start + nbytes].view(dtype).reshape(shape)
    block = np.empty(max(nbytes, 2 * HUGE_PAGE) + HUGE_PAGE, dtype=np.uint8)
    start = -block.ctypes.data % HUGE_PAGE
    return block[start:start + nbytes].view(dtype).reshape(shape)


def reused(store: dict, name: str, xp: Any, shape: tuple, dtype: Any) -> Any:
    """``store[name]``, an uninitialised :func:`empty_work` array of this shape, dtype and module,
    made anew only when one of those changes: a layer's scratch space, the same memory on every
    call (fresh multi-MB arrays cost page faults each time, as glibc gives large blocks back to
    the system). Never hand one out of the layer: the next call overwrites it."""
    buf = store.get(name)
    if (buf is None or buf.shape != shape or buf.dtype != dtype
            or array_module(buf) is not xp):
        buf = store[name] = empty_work(xp, shape, dtype)
    return buf


def matmul_into(out: Any, a: Any, b: Any) -> None:
    """``out[...] = a @ b`` written straight into ``out``, with no temporary of out's size.

    A C-contiguous ``out`` takes the product directly; an F-contiguous one (e.g. the gradient
    of a weight that is a transposed view, as the tied output layer's W (H, V) = E.T) takes
    ``out.T = b.T @ a.T``, which is C-contiguous; any other layout falls back to a copy.
    With the optional MKL active (:mod:`bptt.mkl`), MKL computes the product.
    """
    if not out.flags.c_contiguous and out.flags.f_contiguous:
        out, a, b = out.T, b.T, a.T
    if mkl.gemm_into(out, a, b):
        return
    xp = array_module(out)
    if out.flags.c_contiguous:
        xp.matmul(a, b, out=out)
    else:
        out[...] = a @ b


def matmul_stacked(a: Any, b: Any, out: Any = None) -> Any:
    """``a @ b`` for stacks of matrices, a (B, m, k) @ b (B, k, n) -> (B, m, n), written into
    ``out`` when given (no temporary). On NumPy with the shared pool, the B items split over
    its threads (:func:`bptt.blas.matmul_stacked`); else NumPy's (or CuPy's) matmul."""
    xp = array_module(a)
    if xp is not np:
        return a @ b if out is None else xp.matmul(a, b, out=out)
    if out is None:
        out = np.empty((*a.shape[:-1], b.shape[-1]), np.result_type(a, b))
    if not blas.matmul_stacked(out, a, b):
        np.matmul(a, b, out=out)
    return out


def right_product(b: Any, rows: int, scratch: dict | None = None, name: str = "packed",
                  steps: int | None = None) -> Any:
    """``product(out, a)``: ``out[...] = a @ b`` for the many a (rows, K) of a loop over time,
    with b (K, N) fixed: b must not change while the product is in use. With MKL active, b is
    packed into its kernel's layout once, here (a transposed view ``W.T`` straight from W).
    Else, with Numba, into panels for :mod:`bptt.numba_gemm` (:func:`bptt.kernels.packed_right`
    says for which ``rows`` and ``steps``, the products it will make, None: many;
    ``scratch[name]`` holds them, a layer's reused array, when given). Else
    :func:`matmul_into` with b made contiguous once (NumPy's products from a transposed or
    sliced view are up to 1.7x slower: (20, 2600) @ (2600, 650) 1.03 ms against 0.61 ms), its
    columns split over the threads when the products and the compiled loops share a pool
    (:func:`bptt.blas.split_right`)."""
    packed = mkl.PackedRight(b, rows)

    def work(shape: tuple, dtype: Any) -> Any:
        if scratch is None:
            return empty_work(np, shape, dtype)
        return reused(scratch, name, np, shape, dtype)
    special = (packed.product_into if packed.packed is not None
               else kernels.packed_right(b, rows, work, steps))
    if special is None:
        if not b.flags.c_contiguous:
            b = array_module(b).ascontiguousarray(b)
        special = blas.split_right(b, rows)

    def product(out: Any, a: Any) -> None:
        if special is None or not special(out, a):
            matmul_into(out, a, b)
    return product
