"""Communicators for data-parallel training: one process, MPI (mpi4py), or simulated ranks.

The trainer takes a small object with ``rank``, ``size``, ``allreduce_(buffer)`` (an in-place
sum over the ranks), ``bcast(obj)`` and ``abort(message)``:

- :class:`SingleProcess`: rank 0 of 1; nothing is sent (what a run without ``mpiexec`` gets);
- :class:`MPICommunicator`: ``MPI.COMM_WORLD`` of mpi4py (``pip install 'bptt[mpi]'``: mpi4py
  and the ``mpich`` wheel, no system MPI). One ``Allreduce(IN_PLACE, SUM)`` per step;
- :class:`ThreadGroup`: K ranks simulated by K threads of one process (for tests: the
  data-parallel code path without MPI).

:func:`world` picks MPI when the process was started by ``mpiexec`` (its PMI/Open MPI
environment) and mpi4py is installed, else :class:`SingleProcess`; under ``mpiexec`` without
mpi4py it is an error naming the extra to install.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import numpy as np

MPI_ENV = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")


class SingleProcess:
    """Rank 0 of a group of 1."""

    rank, size = 0, 1

    def allreduce_(self, buffer: Any) -> Any:
        return buffer

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return obj

    def abort(self, message: str) -> None:
        raise RuntimeError(message)


class MPICommunicator:
    """``MPI.COMM_WORLD`` (mpi4py); buffers are NumPy arrays (moved to the host for CuPy)."""

    def __init__(self) -> None:
        try:
            from mpi4py import MPI
        except ImportError:
            raise RuntimeError("this process was started by mpiexec, but mpi4py is not "
                               "installed: pip install 'bptt[mpi]'") from None
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def allreduce_(self, buffer: Any) -> Any:
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        return buffer

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return self.comm.bcast(obj, root=root)

    def abort(self, message: str) -> None:
        """End every rank: one line on stderr, then MPI_Abort (no rank is left waiting)."""
        print(message, file=sys.stderr, flush=True)
        self.comm.Abort(1)


class ThreadGroup:
    """K simulated ranks in one process; ``member(r)`` is rank r's communicator, to be used
    from its own thread (``run`` starts one thread per rank and returns their results)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._barrier = threading.Barrier(size)
        self._slots: list[Any] = [None] * size
        self._error: BaseException | None = None

    def member(self, rank: int) -> _ThreadMember:
        return _ThreadMember(self, rank)

    def run(self, fn: Any) -> list[Any]:
        """``fn(communicator)`` on every rank, each in a thread; the results by rank."""
        results: list[Any] = [None] * self.size
        errors: list[BaseException] = []

        def target(r: int) -> None:
            try:
                results[r] = fn(self.member(r))
            except BaseException as e:  # one rank failing fails the group
                errors.append(e)
                self._barrier.abort()

        threads = [threading.Thread(target=target, args=(r,)) for r in range(self.size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results


class _ThreadMember:
    def __init__(self, group: ThreadGroup, rank: int) -> None:
        self.group, self.rank, self.size = group, rank, group.size

    def allreduce_(self, buffer: Any) -> Any:
        g = self.group
        g._slots[self.rank] = buffer.copy()
        g._barrier.wait()
        total = g._slots[0].copy()
        for other in g._slots[1:]:  # the same order on every rank: identical sums
            total += other
        g._barrier.wait()
        buffer[...] = total
        return buffer

    def bcast(self, obj: Any, root: int = 0) -> Any:
        g = self.group
        if self.rank == root:
            g._slots[root] = obj
        g._barrier.wait()
        value = g._slots[root]
        g._barrier.wait()
        return value

    def abort(self, message: str) -> None:
        self.group._barrier.abort()
        raise RuntimeError(message)


def started_by_mpiexec() -> bool:
    """Whether this process is one of several ranks that ``mpiexec`` started."""
    return any(int(os.environ.get(v, "1") or 1) > 1
               for v in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"))


def find_mpiexec() -> str | None:
    """The ``mpiexec`` that starts ranks: MPICH's from the ``mpi`` extra beside this Python,
    else one on PATH; None when there is none."""
    import shutil

    return (shutil.which("mpiexec", path=os.path.dirname(sys.executable))
            or shutil.which("mpiexec"))


def world() -> SingleProcess | MPICommunicator:
    """MPI when started by ``mpiexec`` (with more than one rank), else one process."""
    if started_by_mpiexec():
        return MPICommunicator()
    return SingleProcess()


def flat_gradients(grads: list[Any], extra: int) -> np.ndarray:
    """One float64 buffer holding every gradient, then ``extra`` slots (loss, size, stop)."""
    n = sum(int(g.size) for g in grads)
    return np.empty(n + extra, dtype=np.float64)
