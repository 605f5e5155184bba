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
import importlib.util
import math
import os
import subprocess
import sys
from typing import Any

from ..backend import set_device
from ..blas import set_blas_threads, share_threads, threads_set_by_environment
from ..train.comm import find_mpiexec, started_by_mpiexec

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
    else:
        share_threads()  # the environment's count: the compiled loops share BLAS's pool


def add_procs(p: argparse.ArgumentParser) -> None:
    """``--procs K`` on a training command: data-parallel ranks started for the user."""
    p.add_argument("--procs", default=None, metavar="K",
                   help="train data-parallel on K processes of this machine, started for you "
                        "as MPI ranks of one BLAS thread each (the [mpi] extra), or auto: one "
                        "per usable core; the batch is split between them and the model is "
                        "the one a single process trains (docs/scaling.md: when it is faster)")


def procs_wanted(args: argparse.Namespace) -> int | None:
    """The ranks ``--procs`` asks for (taken off ``args``), or None to run in this process."""
    given = getattr(args, "procs", None)
    if hasattr(args, "procs"):
        del args.procs
    if given is None:
        return None
    threads = getattr(args, "threads", None)
    per_rank = 1 if threads in (None, "auto") else number(threads, "--threads", int, 1)
    k = usable_cores() // per_rank if given == "auto" else number(given, "--procs", int, 1)
    return None if k == 1 else k


def run_on_ranks(k: int, args: argparse.Namespace, argv: list[str]) -> int:
    """Run this very command on ``k`` MPI ranks (``mpiexec -n k python -m bptt ...`` without
    ``--procs``) and return its exit code. Never more ranks x threads than usable cores."""
    if started_by_mpiexec():
        raise ValueError("--procs starts its own ranks: leave it out under mpiexec (or run "
                         "without mpiexec)")
    cores = usable_cores()
    threads = getattr(args, "threads", None)
    per_rank = max(1, cores // k) if threads == "auto" else number(threads, "--threads", int,
                                                                   1) or 1
    if k * per_rank > cores:
        raise ValueError(f"--procs {k} x {per_rank} thread(s) needs {k * per_rank} cores but "
                         f"this process may use {cores}: ask for at most {cores // per_rank} "
                         f"(a shared core makes every rank wait at every step)")
    mpiexec = find_mpiexec()
    if mpiexec is None or importlib.util.find_spec("mpi4py") is None:
        raise ValueError("--procs needs MPI: pip install 'bptt[mpi]' (mpi4py and MPICH's "
                         "mpiexec)")
    rest = _without_procs(argv)
    if threads == "auto":
        rest = [str(per_rank) if a == "auto" and i and rest[i - 1] == "--threads" else a
                for i, a in enumerate(rest)]
        rest = [f"--threads={per_rank}" if a == "--threads=auto" else a for a in rest]
    env = {k_: v for k_, v in os.environ.items() if not k_.startswith("PMI_")}
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(per_rank)
    child = subprocess.Popen([mpiexec, "-n", str(k), sys.executable, "-m", "bptt", *rest],
                             env=env)
    try:
        return child.wait()
    except KeyboardInterrupt:  # the ranks got it too: they save, then end
        child.wait()
        return 130


def _without_procs(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--procs":
            skip = True
        elif not a.startswith("--procs="):
            out.append(a)
    return out
