"""bptt.blas: OpenBLAS's thread count, and its jobs run on Numba's pool (one pool for the
products and the compiled loops) when Numba is installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
        split = blas.split_right(np.ones((650, 2600), np.float32), 20)
        h, o = np.ones((20, 650), np.float32), np.empty((20, 2600), np.float32)
        assert split(o, h) and np.all(o == 650)
        pid = os.fork()
        if pid == 0:
            ok = blas.kernel_threads() == 1 and bool(np.all(a @ a == 400))
            ok = ok and not split(o, h) and blas.split_right(a, 400) is None
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


def _blocks_on_one_thread(a: np.ndarray, b: np.ndarray, parts: int) -> np.ndarray:
    """What split_right computes: each column block of b (16-column multiples, the last
    shorter) multiplied on one thread."""
    n = b.shape[1]
    width = ((n + parts - 1) // parts + 15) // 16 * 16
    blas.set_blas_threads(1)
    return np.concatenate([a @ b[:, j:j + width] for j in range(0, n, width)], axis=1)


@needs_pool
@settings(max_examples=25, deadline=None)
@given(m=st.integers(2, 40), k=st.integers(1, 700), n=st.integers(32, 2700),
       dtype=st.sampled_from([np.float32, np.float64]), pad=st.integers(0, 5),
       seed=st.integers(0, 2**16))
def test_a_split_product_is_its_column_blocks_each_on_one_thread(m, k, n, dtype, pad, seed):
    """Bit for bit the single-threaded products of its column blocks (a fixed function of the
    thread count, as OpenBLAS's own threaded products are), and the product to rounding; rows
    of a and out may be strided (a step's slice of a wider buffer)."""
    g = np.random.default_rng(seed)
    a = g.standard_normal((m, k + pad)).astype(dtype)[:, :k]
    b = g.standard_normal((k, n)).astype(dtype)
    out = np.full((m, n + pad), np.nan, dtype)[:, :n]
    before = blas.get_blas_threads()
    try:
        blas.set_blas_threads(2)
        split = blas.split_right(b, m)
        if m * k * n < blas.SPLIT_MIN_WORK:
            assert split is None
            return
        assert split(out, a)
        assert blas.get_blas_threads() == 2  # given back after the split
        blocks = _blocks_on_one_thread(a, b, 2)
        exact = a.astype(np.float64) @ b.astype(np.float64)
        if n % (((n + 1) // 2 + 15) // 16 * 16) != 1:
            assert np.array_equal(out, blocks)
        else:  # a last block of one column: NumPy's reference takes its vector product (gemv)
            assert np.array_equal(out[:, :-1], blocks[:, :-1])
        tol = 1e-12 if dtype == np.float64 else 1e-5
        assert np.abs(out - exact).max() <= tol * np.abs(a).max() * np.abs(b).max() * k
    finally:
        blas.set_blas_threads(before)


@needs_pool
def test_split_products_apply_only_where_they_are_meant_to(restore_threads):
    g = np.random.default_rng(0)
    b = g.standard_normal((650, 2600)).astype(np.float32)
    a = g.standard_normal((20, 650)).astype(np.float32)
    out = np.empty((20, 2600), np.float32)
    blas.set_blas_threads(1)
    assert blas.split_right(b, 20) is None  # one thread: nothing to split
    blas.set_blas_threads(2)
    assert blas.split_right(b.T.copy().T, 20) is None  # not C-contiguous
    assert blas.split_right(b.astype(np.float16), 20) is None
    assert blas.split_right(b[:10, :40].copy(), 20) is None  # under OpenBLAS's threshold
    assert blas.split_right(b, 1) is None  # one row: NumPy's vector product
    split = blas.split_right(b, 20)
    assert split(out, a)
    assert not split(out, a.astype(np.float64))  # another dtype: NumPy's product instead
    assert not split(out[:, :-1], a) and not split(out, a[:10])  # other shapes
    assert not split(out, a[:, ::-1].copy()[:, ::-1])  # a column stride
    shared = np.empty((20, 3300), np.float32)
    assert not split(shared[:, :2600], shared[:, 2600:2600 + 650])  # out overlaps a
    blas.set_blas_threads(1)
    assert not split(out, a)  # the pool went away after it was made


@needs_pool
def test_right_product_splits_on_the_shared_pool_and_layers_stay_right(monkeypatch,
                                                                      restore_threads):
    """A TimeLSTM forward and backward on two threads (its step products split, both ways) is
    the one-thread result to float64 rounding. 136 rows: more than the packed products take
    (bptt.kernels.packed_max_rows(); tests/test_numba_gemm.py has those)."""
    from bptt.nn.cells import TimeLSTM

    done, real = [], blas.split_right

    def counted(b, rows):
        product = real(b, rows)
        if product is None:
            return None
        return lambda out, a: done.append(product(out, a)) or done[-1]
    monkeypatch.setattr(blas, "split_right", counted)

    g = np.random.default_rng(1)
    N, T, D, H = 136, 6, 130, 160
    assert N > kernels.packed_max_rows()
    Wx, Wh = g.standard_normal((D, 4 * H)) * 0.1, g.standard_normal((H, 4 * H)) * 0.1
    xs, dhs = g.standard_normal((N, T, D)), g.standard_normal((N, T, H))

    def run():
        layer = TimeLSTM(Wx, Wh, np.zeros(4 * H))
        hs = layer.forward(xs)
        return [hs, layer.backward(dhs), *layer.grads]
    blas.set_blas_threads(1)
    one = run()
    assert not done
    blas.set_blas_threads(2)
    two = run()
    assert len(done) == 2 * T and all(done)  # every step's product, forward and backward
    for x, y in zip(one, two, strict=True):
        assert np.allclose(x, y, rtol=1e-12, atol=1e-12)


def _stack(g, count: int, rows: int, cols: int, layout: str, dtype) -> np.ndarray:
    """A (count, rows, cols) stack whose items are row-major, column-major (a transposed
    view, as hs_enc.transpose(0, 2, 1)), or row-major slices of wider rows."""
    if layout == "row":
        return g.standard_normal((count, rows, cols)).astype(dtype)
    if layout == "column":
        return g.standard_normal((count, cols, rows)).astype(dtype).transpose(0, 2, 1)
    return g.standard_normal((count, rows, cols + 3)).astype(dtype)[:, :, 1:cols + 1]


@needs_pool
@settings(max_examples=30, deadline=None)
@given(count=st.integers(2, 40), m=st.integers(1, 24), k=st.integers(1, 300),
       n=st.integers(1, 40), layout_a=st.sampled_from(["row", "column", "sliced"]),
       layout_b=st.sampled_from(["row", "column", "sliced"]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_a_stacked_product_splits_its_items_over_the_pool(count, m, k, n, layout_a, layout_b,
                                                          dtype, seed):
    """Each item's product (rows and columns laid out as the attention's operands are) to
    rounding, written straight into out; under OpenBLAS's threshold nothing is split."""
    g = np.random.default_rng(seed)
    a, b = _stack(g, count, m, k, layout_a, dtype), _stack(g, count, k, n, layout_b, dtype)
    out = np.full((count, m, n), np.nan, dtype)
    before = blas.get_blas_threads()
    try:
        blas.set_blas_threads(2)
        done = blas.matmul_stacked(out, a, b)
        assert blas.get_blas_threads() == 2  # given back after the split
    finally:
        blas.set_blas_threads(before)
    if count * m * k * n < blas.SPLIT_MIN_WORK:
        assert not done and np.isnan(out).all()
        return
    assert done
    exact = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert np.abs(out - exact).max() <= tol * np.abs(a).max() * np.abs(b).max() * k


@needs_pool
def test_stacked_products_split_only_where_they_are_meant_to(restore_threads):
    g = np.random.default_rng(0)
    a = g.standard_normal((128, 10, 256)).astype(np.float32)
    b = g.standard_normal((128, 256, 29)).astype(np.float32)
    out = np.empty((128, 10, 29), np.float32)
    blas.set_blas_threads(1)
    assert not blas.matmul_stacked(out, a, b)  # one thread: nothing to split
    blas.set_blas_threads(2)
    assert blas.matmul_stacked(out, a, b)
    assert np.allclose(out, a @ b, rtol=1e-5, atol=1e-4)
    assert blas.matmul_stacked(out, a[:1].repeat(128, 0), b)  # any item strides...
    assert blas.matmul_stacked(out, np.broadcast_to(a[:1], a.shape), b)  # ...a broadcast too
    assert np.allclose(out, a[:1] @ b, rtol=1e-5, atol=1e-4)
    assert not blas.matmul_stacked(out, a.astype(np.float64), b)  # mixed dtypes
    assert not blas.matmul_stacked(out.astype(np.float16), a, b)
    assert not blas.matmul_stacked(out[:, :, :-1], a, b)  # shapes that do not fit
    assert not blas.matmul_stacked(out, a[:, :, ::2], b[:, ::2])  # neither row- nor column-major
    assert not blas.matmul_stacked(out.transpose(0, 2, 1).copy().transpose(0, 2, 1), a, b)
    square = np.zeros((128, 29, 29), np.float32)
    assert not blas.matmul_stacked(square, square, square)  # out is an input
    assert not blas.matmul_stacked(out[:2, :2, :2], a[:2, :2], b[:2, :, :2])  # too little work


@needs_pool
@pytest.mark.parametrize("score", ["dot", "general"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_attention_splits_its_products_and_stays_right(score, dtype, monkeypatch,
                                                       restore_threads):
    """TimeAttention on two threads (every batched product split over the pool) gives the
    one-thread outputs and input gradients bit for bit (each item is the same
    single-threaded OpenBLAS call either way), dhs_enc in the caller's buffer."""
    from bptt.nn.attention import TimeAttention

    done, real = [], blas.matmul_stacked
    monkeypatch.setattr(blas, "matmul_stacked",
                        lambda out, a, b: done.append(real(out, a, b)) or done[-1])
    g = np.random.default_rng(2)
    N, Ts, Tt, H = 64, 13, 7, 64
    hs_enc, hs_dec, dc = (g.standard_normal(shape).astype(dtype)
                          for shape in ((N, Ts, H), (N, Tt, H), (N, Tt, H)))
    params = [(g.standard_normal((H, H)) * 0.1).astype(dtype)] if score == "general" else []
    mask = np.arange(Ts)[None, :] < g.integers(1, Ts + 1, size=N)[:, None]

    def run(into: np.ndarray | None):
        layer = TimeAttention(score, [p.copy() for p in params])
        c = layer.forward(hs_enc, hs_dec, mask)
        dhs_enc, dhs_dec = layer.backward(dc, into)
        assert into is None or dhs_enc is into
        return [c, dhs_enc, dhs_dec, *layer.grads]
    blas.set_blas_threads(1)
    one = run(None)
    assert done and not any(done)  # asked, and not split on one thread
    done.clear()
    blas.set_blas_threads(2)
    two = run(np.full((N, Ts, H), np.nan, dtype))
    assert done and all(done)
    for x, y in zip(one[:3], two[:3], strict=True):
        assert np.array_equal(x, y)
    for x, y in zip(one[3:], two[3:], strict=True):  # general's dW: OpenBLAS's own product
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


@needs_pool
def test_mlstm_parallel_form_splits_its_products_and_gives_the_one_thread_bits(
        monkeypatch, restore_threads):
    """TimeMLSTM's parallel form (q @ k.T, S @ v and their gradients: stacks of products)
    on two threads, every stacked product split over the pool: the one-thread outputs, final
    state and gradients to float32 rounding (its input and weight products are OpenBLAS's
    own, whose bits may depend on the thread count)."""
    from bptt.nn.cells import TimeMLSTM

    done, real = [], blas.matmul_stacked
    monkeypatch.setattr(blas, "matmul_stacked",
                        lambda out, a, b: done.append(real(out, a, b)) or done[-1])
    g = np.random.default_rng(3)
    N, T, D, H = 16, 20, 12, 64
    params = [(g.standard_normal(s) * 0.2).astype(np.float32)
              for s in ((D, 4 * H), (4 * H,), (D, 2), (2,))]
    xs = g.standard_normal((N, T, D)).astype(np.float32)
    dhs = g.standard_normal((N, T, H)).astype(np.float32)

    def run():
        layer = TimeMLSTM(*[p.copy() for p in params])
        hs = layer.forward(xs)
        state = (layer.h.copy(), layer.c.copy())
        return [hs, *state, layer.backward(dhs), *layer.grads]
    blas.set_blas_threads(1)
    one = run()
    assert done and not any(done)
    done.clear()
    blas.set_blas_threads(2)
    two = run()
    assert len(done) == 7 and all(done)  # 3 forward (q k.T, S v, the final C), 4 backward
    for x, y in zip(one, two, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
