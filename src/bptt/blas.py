"""The number of threads of the BLAS library that NumPy uses, set at run time (no dependency).

Why the CLI runs BLAS on one thread by default: the matrix products of a language model step
are small ((N, H) @ (H, 4H) with N = 20, 35 times per step), so a second thread gains ~20 % on
an idle machine, but when another process holds a core, OpenBLAS threads wait on each other at
every product: we measured a PTB step going from 0.09 s to 4 s, and the built-in demo from 11 s
to 8 minutes. ``bptt train --threads N`` (or OPENBLAS_NUM_THREADS / OMP_NUM_THREADS) overrides.

Works with the OpenBLAS that NumPy wheels bundle (``scipy_openblas``) and a system OpenBLAS,
found among the libraries loaded in the process (Linux: /proc/self/maps; elsewhere NumPy's own
library folder). Anything else (MKL, Accelerate): nothing is changed.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path
from typing import Any

_SET = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
        "openblas_set_num_threads64_", "openblas_set_num_threads")
_GET = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
        "openblas_get_num_threads64_", "openblas_get_num_threads")
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


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
    return True


def threads_set_by_environment() -> bool:
    return any(os.environ.get(v) for v in THREAD_ENV)
