"""bptt.blas: OpenBLAS's thread count, and its jobs run on Numba's pool (one pool for the
products and the compiled loops) when Numba is installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bptt import blas, kernels

pytestmark = pytest.mark.skipif(blas.get_blas_threads() is None,
                                reason="NumPy does not use OpenBLAS here")


def _pool_possible() -> bool:
    return (kernels.installed() and kernels.wanted() and blas._getter(blas._SET_CALLBACK)
            is not None and blas._numba_pool() is not None and blas._numba_pool().pool_size() >= 2)


needs_pool = pytest.mark.skipif(not _pool_possible(), reason="needs Numba (pip install "
                                "'bptt[numba]') on its OpenMP layer, 2+ threads, and an "
                                "OpenBLAS with a threads callback (0.3.27+)")

# shapes OpenBLAS splits between threads, and one it keeps on one (the product is too small)
SHAPES = [(20, 650, 2600), (300, 301, 302), (64, 129, 1024), (3, 4, 5)]


@pytest.fixture
def restore_threads():
    before = blas.get_blas_threads()
    yield
    blas.set_blas_threads(before)


def _products(dtype) -> list[np.ndarray]:
    g = np.random.default_rng(0)
    out = []
    for m, k, n in SHAPES:
        a, b = g.standard_normal((m, k)).astype(dtype), g.standard_normal((k, n)).astype(dtype)
        out += [a @ b, a.T.copy().T @ b, b.T @ a.T, a @ b[:, 0]]
    return out


@needs_pool
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_on_the_shared_pool_are_openblas_own_bit_for_bit(dtype, monkeypatch,
                                                                   restore_threads):
    monkeypatch.setenv("BPTT_SHARED_POOL", "0")
    blas.set_blas_threads(2)
    assert blas.kernel_threads() == 1 and "own" in blas.pool_status()
    own = _products(dtype)
    monkeypatch.delenv("BPTT_SHARED_POOL")
    blas.set_blas_threads(2)
    assert blas.kernel_threads() == 2 and "shared" in blas.pool_status()
    shared = _products(dtype)
    for x, y in zip(own, shared, strict=True):
        assert np.array_equal(x, y)


@needs_pool
def test_one_thread_or_too_many_leaves_openblas_its_own(restore_threads):
    blas.set_blas_threads(2)
    assert blas.kernel_threads() == 2
    blas.set_blas_threads(1)
    assert blas.kernel_threads() == 1 and blas.pool_status() == "OpenBLAS's own"
    blas.set_blas_threads(blas._numba_pool().pool_size() + 1)  # more jobs than pool threads
    assert blas.kernel_threads() == 1
    a = np.ones((300, 300))
    assert np.array_equal(a @ a, np.full((300, 300), 300.0))


@needs_pool
def test_share_threads_takes_the_count_openblas_has(restore_threads):
    blas._call(blas._SET, 2)  # as the environment (or threadpoolctl) would have it
    assert blas.kernel_threads() == 1
    blas.share_threads()
    assert blas.kernel_threads() == 2


def _run(code: str) -> subprocess.CompletedProcess:
    env_code = "import os; os.environ.pop('BPTT_SHARED_POOL', None)\n"
    return subprocess.run([sys.executable, "-c", env_code + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


@needs_pool
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/task")
def test_openblas_jobs_run_on_the_pool_not_on_openblas_workers():
    """The CPU time of OpenBLAS's own worker threads stays where it was while products run
    on the shared pool; it grows when they run on OpenBLAS's own (the check can fail)."""
    done = _run("""
        import glob, os
        import numpy as np
        from bptt import blas

        def cpu_ticks():
            ticks = {}
            for task in glob.glob("/proc/self/task/*"):
                fields = open(task + "/stat").read().rsplit(")", 1)[1].split()
                ticks[os.path.basename(task)] = int(fields[11]) + int(fields[12])
            return ticks

        a = np.random.default_rng(0).standard_normal((700, 700)).astype(np.float32)
        main = str(os.getpid())

        def workers_time(share):
            os.environ["BPTT_SHARED_POOL"] = "1" if share else "0"
            blas.set_blas_threads(2)
            for _ in range(3):
                a @ a  # OpenBLAS's workers exist from here on
            before = cpu_ticks()
            for _ in range(150):
                a @ a
            after = cpu_ticks()
            return {t: after[t] - before.get(t, 0) for t in after if t != main}

        own = workers_time(False)
        openblas_workers = {t for t, d in own.items() if d > 0}
        shared = workers_time(True)
        assert blas.kernel_threads() == 2
        print(sum(own.values()), sum(shared[t] for t in openblas_workers),
              sum(d for t, d in shared.items() if t not in openblas_workers))
    """)
    assert done.returncode == 0, done.stderr
    own_total, openblas_while_shared, pool_while_shared = map(int, done.stdout.split())
    assert own_total > 20  # 150 products: about half their work on the second thread
    assert openblas_while_shared <= 2
    assert pool_while_shared > 20


@needs_pool
def test_a_forked_child_goes_back_to_openblas_own_threads():
    done = _run("""
        import os
        import numpy as np
        from bptt import blas

        blas.set_blas_threads(2)
        a = np.ones((400, 400), np.float32)
        assert blas.kernel_threads() == 2 and np.all(a @ a == 400)
        pid = os.fork()
        if pid == 0:
            ok = blas.kernel_threads() == 1 and bool(np.all(a @ a == 400))
            blas.set_blas_threads(2)  # never shared again in the child
            ok = ok and blas.kernel_threads() == 1 and bool(np.all(a @ a == 400))
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert np.all(a @ a == 400)
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@needs_pool
def test_a_training_run_shares_the_pool_at_the_thread_count_it_finds(restore_threads):
    import bptt

    blas._call(blas._SET, 2)  # as OPENBLAS_NUM_THREADS=2 would have it
    assert blas.kernel_threads() == 1
    bptt.SequenceRegressor(hidden_size=3).fit(np.zeros((4, 3, 2)), np.zeros(4), epochs=1)
    assert blas.kernel_threads() == 2


def test_without_numba_nothing_is_shared(monkeypatch, restore_threads):
    monkeypatch.setenv("BPTT_NUMBA", "0")
    blas._numba_pool.cache_clear()
    try:
        blas.set_blas_threads(2)
        assert blas.kernel_threads() == 1
        assert blas.pool_status().startswith("OpenBLAS's own")
    finally:
        blas.set_blas_threads(1)
        blas._numba_pool.cache_clear()
