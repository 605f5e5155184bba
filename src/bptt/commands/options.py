"""Options every ``bptt`` command shares, defined once: ``--device`` and ``--threads``, and the
parsing of numbers into one clear line.

``--threads``: BLAS runs on one thread unless told otherwise (``--threads N`` or
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS). The products of a recurrent network are small; on a
machine where another process holds a core, OpenBLAS threads wait on each other at every one
of them (the README's ``bptt fit adding`` took 20 min instead of 11 s with two threads on a busy
2-core machine). :func:`apply_shared` runs before every command.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

from ..backend import set_device
from ..blas import set_blas_threads, threads_set_by_environment

DEVICES = ("cpu", "gpu", "double")


def number(text: str | None, option: str, kind: type, lower: float | None = None,
           positive: bool = False) -> Any:
    """Parse an option's value, or raise ValueError naming the option and the value."""
    if text is None:
        return None
    what = "an integer" if kind is int else "a number"
    try:
        v = kind(text)
    except ValueError:
        raise ValueError(f"{option} expects {what}, got {text!r}") from None
    if kind is float and not math.isfinite(v):
        raise ValueError(f"{option} expects a finite number, got {text!r}")
    if positive and not v > 0:
        raise ValueError(f"{option} must be positive, got {text}")
    if lower is not None and v < lower:
        raise ValueError(f"{option} must be >= {lower:g}, got {text}")
    return v


def add_shared(p: argparse.ArgumentParser, top: bool = False) -> None:
    """``--device`` and ``--threads`` on a parser (the top one: defaults; a command's: only
    when given, so ``bptt --device gpu fit ...`` and ``bptt fit ... --device gpu`` agree)."""
    default: Any = None if top else argparse.SUPPRESS
    p.add_argument("--device", choices=DEVICES, default=default,
                   help="array backend: cpu (NumPy, default) or gpu (CuPy); also BPTT_DEVICE "
                        "(double: CuPy's behaviour on the CPU, for tests)")
    p.add_argument("--threads", default=default, metavar="N",
                   help="BLAS threads, or auto: the cores this process may use (default 1 "
                        "unless OPENBLAS_NUM_THREADS/OMP_NUM_THREADS "
                        "is set: the small products of an RNN gain little from more, and lose "
                        "a lot when another process holds a core; on one thread the optional "
                        "MKL products are used, see bptt.mkl)")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's or taskset's
    share), not every core of the machine: what ``--threads auto`` asks for."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def apply_shared(args: argparse.Namespace) -> None:
    """Set the device, and the BLAS threads: --threads N, else one unless the environment
    chose."""
    if getattr(args, "device", None) is not None:
        set_device(args.device)
    given = getattr(args, "threads", None)
    n = usable_cores() if given == "auto" else number(given, "--threads", int, 1)
    if n is not None:
        set_blas_threads(n)
    elif not threads_set_by_environment():
        set_blas_threads(1)
