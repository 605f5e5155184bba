"""Intel MKL's matrix products for the hot loops, when the optional ``mkl`` package is installed.

    pip install 'bptt[mkl]'          # the MKL runtime as a wheel (x86-64 Linux and Windows)

Why: a recurrent layer multiplies by the same weight matrix at every one of its T steps. The
OpenBLAS inside NumPy re-packs that matrix into its kernel's layout on every call; MKL can pack
it once per forward or backward (``cblas_?gemm_pack``) and reuse it at each step
(``cblas_?gemm_compute``), which is what PyTorch's oneDNN LSTM does. On one core at the seq2seq
sizes (``python benchmarks/gemm_kernels.py``): (128, 273) @ (273, 1024) 616 -> 493 us,
(128, 1024) @ (1024, 256) 593 -> 484 us; the weight gradient (273, 3712) @ (3712, 1024)
18.6 -> 16.5 ms with MKL's plain GEMM. The dates AttentionSeq2seq then trains 1.15-1.17x
PyTorch's rate on one core, 0.99x without (docs/seq2seq.md, "Speed").

Used only where it is sure to help and to be right: NumPy arrays of float32 or float64, 2-D,
each with one unit stride, output not overlapping the inputs, and NumPy's BLAS on one thread
(``bptt train``'s default; with more threads OpenBLAS's own threading is kept, since MKL runs
sequentially here, which keeps it clear of PyTorch's and OpenBLAS's thread pools). Anything else
goes to NumPy. Results agree with NumPy's to rounding (a different order of the same sums), not
bit for bit: a run resumes bit-exactly with the same choice.

Which CPUs: ``BPTT_MKL`` in the environment says: ``auto`` (the default) uses MKL on Intel
CPUs only, ``1`` on any, ``0`` on none. MKL's kernels for other vendors are slower than
OpenBLAS's. On an AMD EPYC (2 cores), side by side in one run each: one thread,
``benchmarks/gemm_kernels.py`` forward 1048 -> 1178 us packed, backward 966 -> 1051 us;
``benchmarks/lm_throughput.py --threads 1`` better-rnnlm 1.50x PyTorch with NumPy's
products, 0.91x with MKL's; ``benchmarks/seq2seq_throughput.py --threads 1`` 1.25x against
0.71x (docs/benchmarks.md). The choice is made from the CPU's vendor string, never from a
timing, so that two runs on one machine make it the same way.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .blas import get_blas_threads

_ROW_MAJOR, _NO_TRANS, _TRANS, _PACKED = 101, 111, 112, 151
_B_MATRIX = 162
_SEQUENTIAL = 1  # MKL_THREADING_SEQUENTIAL
_INT_MAX = 2**31 - 1  # the LP64 interface takes 32-bit sizes
_c_int, _ptr = ctypes.c_int, ctypes.c_void_p


def _library_paths() -> list[str]:
    """libmkl_rt from the ``mkl`` wheel's file list (it lands in the environment's lib/)."""
    try:
        files = metadata.files("mkl") or []
    except metadata.PackageNotFoundError:
        return []
    return sorted({str(Path(f.locate()).resolve()) for f in files
                   if Path(str(f)).name.startswith(("libmkl_rt.so", "mkl_rt"))})


def cpuinfo(field: str) -> str:
    """A field of the first CPU in Linux's /proc/cpuinfo (``vendor_id``, ``model name``), or
    "" where there is none (not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == field:
                    return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return ""


def cpu_vendor() -> str:
    """The CPU's vendor string (``GenuineIntel``, ``AuthenticAMD``, ...), or "" if unknown."""
    vendor = cpuinfo("vendor_id")
    if vendor:
        return vendor
    name = platform.processor()  # names the vendor on Windows
    return "GenuineIntel" if "Intel" in name else "AuthenticAMD" if "AMD" in name else ""


_CHOICES = ("auto", "1", "0")


def choice() -> str:
    """``BPTT_MKL`` from the environment: ``auto`` (default), ``1`` (always) or ``0`` (never)."""
    value = os.environ.get("BPTT_MKL", "auto").strip().lower() or "auto"
    if value not in _CHOICES:
        warnings.warn(f"BPTT_MKL={value!r} is not one of auto, 1, 0; using auto", stacklevel=2)
        return "auto"
    return value


@functools.cache
def _load() -> Any:
    """The MKL runtime with its product functions typed, set to run sequentially; or None."""
    for path in _library_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:  # pragma: no cover - a broken install: keep NumPy's products
            continue
        lib.MKL_Set_Threading_Layer(_c_int(_SEQUENTIAL))  # before any other MKL call
        for prefix, real in (("s", ctypes.c_float), ("d", ctypes.c_double)):
            fn = getattr(lib, f"cblas_{prefix}gemm")
            fn.argtypes = [_c_int] * 6 + [real, _ptr, _c_int, _ptr, _c_int, real, _ptr, _c_int]
            fn.restype = None
            size = getattr(lib, f"cblas_{prefix}gemm_pack_get_size")
            size.argtypes, size.restype = [_c_int] * 4, ctypes.c_size_t
            pack = getattr(lib, f"cblas_{prefix}gemm_pack")
            pack.argtypes = [_c_int] * 6 + [real, _ptr, _c_int, _ptr]
            pack.restype = None
            compute = getattr(lib, f"cblas_{prefix}gemm_compute")
            compute.argtypes = [_c_int] * 6 + [_ptr, _c_int, _ptr, _c_int, real, _ptr, _c_int]
            compute.restype = None
        return lib
    return None


@functools.cache
def _library() -> Any:
    """The MKL runtime if installed and wanted here (:func:`choice`, :func:`cpu_vendor`)."""
    wanted = {"0": False, "1": True}.get(choice(), cpu_vendor() == "GenuineIntel")
    return _load() if wanted else None


def refresh() -> None:
    """Read ``BPTT_MKL`` again (it is read once, at the first product)."""
    _library.cache_clear()


def installed() -> bool:
    """Whether the MKL runtime is installed and loads (wanted or not)."""
    return _load() is not None


def available() -> bool:
    """Whether MKL is installed and wanted on this CPU (``BPTT_MKL``, module docstring)."""
    return _library() is not None


def active() -> bool:
    """Whether products go to MKL now: available, and NumPy's BLAS runs on one thread."""
    return _library() is not None and get_blas_threads() == 1


def status() -> str | None:
    """One phrase for reports: active, idle, off and why; None when not installed."""
    if not installed():
        return None
    if active():
        return "active"
    if available():
        return "installed, idle (NumPy's BLAS has more than one thread)"
    if choice() == "0":
        return "installed, off (BPTT_MKL=0)"
    return f"installed, off on this CPU ({cpu_vendor() or 'unknown vendor'}; BPTT_MKL=1 forces it)"


def _operand(a: np.ndarray) -> tuple[int, int] | None:
    """(transpose flag, leading dimension) of a 2-D operand with one unit stride, else None."""
    item = a.itemsize
    rows, cols = a.shape
    s0, s1 = a.strides
    if (s1 == item or cols == 1) and s0 > 0 and s0 % item == 0 and cols <= s0 // item:
        layout = _NO_TRANS, s0 // item
    elif (s0 == item or rows == 1) and s1 > 0 and s1 % item == 0 and rows <= s1 // item:
        layout = _TRANS, s1 // item
    else:
        return None
    return layout if layout[1] <= _INT_MAX else None


def _operand_ok(x: Any, dtype: Any) -> bool:
    """A non-empty 2-D NumPy array of ``dtype`` (float32 or float64) with a unit stride."""
    return (type(x) is np.ndarray and x.ndim == 2 and x.size > 0 and x.dtype == dtype
            and dtype in (np.float32, np.float64) and max(x.shape) <= _INT_MAX
            and _operand(x) is not None)


def _fits(out: Any, *ins: Any) -> bool:
    """Operands of one dtype; out row-major, writable and apart from the inputs."""
    dtype = getattr(out, "dtype", None)
    if not (_operand_ok(out, dtype) and all(_operand_ok(x, dtype) for x in ins)):
        return False
    if not out.flags.writeable or any(np.may_share_memory(out, x) for x in ins):
        return False
    return _operand(out)[0] == _NO_TRANS and out.shape[1] > 1


def gemm_into(out: Any, a: Any, b: Any) -> bool:
    """``out[...] = a @ b`` by MKL when :func:`active` and the arrays allow it (module
    docstring); returns False, having done nothing, otherwise (the caller uses NumPy)."""
    if not (active() and _fits(out, a, b) and a.shape[1] == b.shape[0]
            and out.shape == (a.shape[0], b.shape[1])):
        return False
    (M, K), N = a.shape, b.shape[1]
    (ta, lda), (tb, ldb) = _operand(a), _operand(b)
    lib = _library()
    fn = lib.cblas_sgemm if out.dtype == np.float32 else lib.cblas_dgemm
    fn(_ROW_MAJOR, ta, tb, M, N, K, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb, 0.0,
       out.ctypes.data, out.strides[0] // out.itemsize)
    return True


class PackedRight:
    """``out = a @ B`` for many a (M, K) with one B (K, N) and M fixed: B packed once into
    MKL's kernel layout, if :func:`active` and B fits (else ``packed`` is None).

    ``product_into(out, a)`` returns False, having done nothing, when it cannot take the
    arrays (other row count, layout or dtype): the caller then multiplies as usual.
    """

    def __init__(self, b: Any, rows: int) -> None:
        self.b, self.rows, self.packed = b, int(rows), None
        if not (_operand_ok(b, getattr(b, "dtype", None)) and 0 < self.rows <= _INT_MAX
                and active()):
            return
        (K, N), lib = b.shape, _library()
        prefix = "s" if b.dtype == np.float32 else "d"
        tb, ldb = _operand(b)
        nbytes = getattr(lib, f"cblas_{prefix}gemm_pack_get_size")(_B_MATRIX, self.rows, N, K)
        packed = np.empty(-(-nbytes // b.itemsize), dtype=b.dtype)
        getattr(lib, f"cblas_{prefix}gemm_pack")(_ROW_MAJOR, _B_MATRIX, tb, self.rows, N, K, 1.0,
                                                 b.ctypes.data, ldb, packed.ctypes.data)
        self.packed, self._compute = packed, getattr(lib, f"cblas_{prefix}gemm_compute")

    def product_into(self, out: Any, a: Any) -> bool:
        K, N = self.b.shape
        if (self.packed is None or a.shape != (self.rows, K) or out.shape != (self.rows, N)
                or not _fits(out, a)):
            return False
        layout, lda = _operand(a)
        if layout != _NO_TRANS:
            return False
        self._compute(_ROW_MAJOR, _NO_TRANS, _PACKED, self.rows, N, K, a.ctypes.data, lda,
                      self.packed.ctypes.data, N, 0.0, out.ctypes.data,
                      out.strides[0] // out.itemsize)
        return True
