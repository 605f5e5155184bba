"""The step products on panels packed once (bptt.numba_gemm through bptt.kernels.packed_right):
right to rounding, the same bits on any number of threads and whatever rows are around a row,
every layout, declines what they do not take, and the layers use them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import backend, blas, kernels

pytest.importorskip("numba", reason="the packed products need the numba extra: "
                                    "pip install 'bptt[numba]'")

DTYPES = (np.float32, np.float64)


def compiled(dtype):
    gemm = kernels._kernels("gemm", np, dtype)
    assert gemm is not None, "Numba is installed: the packed products must compile"
    return gemm


def panels_of(b):
    """The reference packing: panels of W columns, zero-padded on the right (P, K, W)."""
    k, n = b.shape
    width = kernels.PANEL_BYTES // b.dtype.itemsize
    count = -(-n // width)
    wide = np.zeros((k, count * width), b.dtype)
    wide[:, :n] = b
    return wide.reshape(k, count, width).transpose(1, 0, 2).copy()


def layout(data, x, name):
    """x itself, or the same values with another layout: rows spread in a wider array, a
    transposed (column-major) copy, every other column of a wider array."""
    kind = data.draw(st.sampled_from(["c", "wide rows", "transposed", "strided"]), label=name)
    if kind == "wide rows":
        wide = np.full((x.shape[0], x.shape[1] + 3), np.nan, x.dtype)
        wide[:, 1:1 + x.shape[1]] = x
        return wide[:, 1:1 + x.shape[1]]
    if kind == "transposed":
        return np.ascontiguousarray(x.T).T
    if kind == "strided":
        wide = np.full((x.shape[0], 2 * x.shape[1]), np.nan, x.dtype)
        wide[:, ::2] = x
        return wide[:, ::2]
    return x


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 140), k=st.integers(1, 90), n=st.integers(1, 90),
       double=st.booleans(), seed=st.integers(0, 2**16), data=st.data())
def test_packed_product_is_right_and_the_same_on_any_threads_and_rows(m, k, n, double, seed,
                                                                       data):
    dtype = np.float64 if double else np.float32
    gemm = compiled(dtype)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = layout(data, rng.standard_normal((k, n)).astype(dtype), "b")
    packed = np.full(panels_of(b).shape, np.nan, dtype)
    gemm.pack(b, packed)
    assert np.array_equal(packed, panels_of(b))  # every layout, the padding zeroed
    parallel = np.full_like(packed, np.nan)
    gemm.pack_parallel(b, parallel, data.draw(st.integers(1, 4), label="pack threads"))
    assert np.array_equal(parallel, packed)

    # a's rows may lie apart (a slice of a wider array); out's too
    a_wide = np.full((m, k + 5), np.nan, dtype)
    a_wide[:, 2:2 + k] = a
    a_in = a_wide[:, 2:2 + k] if data.draw(st.booleans(), label="a apart") else a
    out = np.full((m, n + 4), np.nan, dtype)[:, 1:1 + n]
    gemm.product(a_in, packed, out)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = (k + 2) * np.finfo(dtype).eps * (np.abs(a).astype(np.float64)
                                             @ np.abs(b).astype(np.float64))
    assert np.all(np.abs(out - exact) <= bound)  # the classic bound of a sum of k products
    for threads in (1, 2, 3):  # each column the same chain of adds on any thread
        again = np.full((m, n), np.nan, dtype)
        gemm.product_parallel(a, packed, again, threads)
        assert np.array_equal(again, out)
    row = data.draw(st.integers(0, m - 1), label="row")  # a row alone: the same bits
    alone = np.full((1, n), np.nan, dtype)
    gemm.product(a[row:row + 1], packed, alone)
    assert np.array_equal(alone[0], out[row])


def test_packed_product_of_a_long_sum_keeps_float32_close_to_exact():
    """K 2600, as the backward of a 650-unit LSTM: within float32 rounding of the exact sum."""
    gemm = compiled(np.float32)
    rng = np.random.default_rng(3)
    a = rng.standard_normal((20, 2600)).astype(np.float32)
    b = rng.standard_normal((2600, 650)).astype(np.float32)
    packed = np.empty(panels_of(b).shape, np.float32)
    gemm.pack(b, packed)
    out = np.empty((20, 650), np.float32)
    gemm.product(a, packed, out)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert np.abs(out - exact).max() < 1e-3 * np.abs(exact).max() / 50
    assert np.abs(out - exact).max() <= 4 * np.abs(a @ b - exact).max() + 1e-4


def test_packed_right_declines_what_it_does_not_take(monkeypatch):
    b = np.ones((8, 40), np.float32)
    assert kernels.packed_right(b, 0) is None  # no rows
    assert kernels.packed_right(b, 1) is None  # one row: NumPy's vector product
    assert kernels.packed_right(b, kernels.packed_max_rows() + 1) is None  # OpenBLAS's
    assert kernels.packed_right(b.astype(np.float16), 4) is None
    assert kernels.packed_right(b[0], 4) is None  # a vector
    assert kernels.packed_right(np.ones((0, 40), np.float32), 4) is None  # empty
    assert kernels.packed_right(b.tolist(), 4) is None  # not a NumPy array
    monkeypatch.setenv("BPTT_NUMBA", "0")
    assert kernels.packed_right(b, 4) is None  # turned off


def test_packed_product_says_false_for_what_it_cannot_compute():
    rng = np.random.default_rng(0)
    b = rng.standard_normal((8, 40)).astype(np.float32)
    a = rng.standard_normal((4, 8)).astype(np.float32)
    product = kernels.packed_right(b, 4)
    out = np.empty((4, 40), np.float32)
    assert product(out, a)
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)
    assert not product(out, a.astype(np.float64))  # another dtype
    assert not product(out.astype(np.float64), a)
    assert not product(out[:, :-1], a) and not product(out, a[:3])  # other shapes
    assert not product(out, np.asfortranarray(a))  # a column stride
    assert not product(np.asfortranarray(out), a)
    shared = np.empty((4, 48), np.float32)
    assert not product(shared[:, :40], shared[:, 40:])  # out overlaps a
    frozen = np.empty((4, 40), np.float32)
    frozen.flags.writeable = False
    assert not product(frozen, a)
    assert not product(out, a[::-1])  # rows backwards
    overlapping = np.lib.stride_tricks.as_strided(out, (4, 40), (4, 4))
    assert not product(overlapping, a)  # rows of out on top of each other


def test_right_product_falls_back_to_numpy_and_packs_into_the_layers_scratch():
    rng = np.random.default_rng(1)
    Wh = rng.standard_normal((30, 120))
    scratch: dict = {}
    product = backend.right_product(Wh.T, 5, scratch, "packed Wh.T")  # (120, 30), a view
    assert list(scratch) == ["packed Wh.T"] and scratch["packed Wh.T"].ctypes.data % 64 == 0
    first = scratch["packed Wh.T"]
    dA = rng.standard_normal((5, 120))
    out = np.empty((5, 30))
    product(out, dA)
    np.testing.assert_allclose(out, dA @ Wh.T, rtol=1e-12, atol=1e-12)
    odd = np.empty((5, 30), np.float32)  # not what it was made for: NumPy's product
    product(odd, dA.astype(np.float32))
    np.testing.assert_allclose(odd, dA @ Wh.T, rtol=1e-5, atol=1e-4)
    backend.right_product(Wh.T, 5, scratch, "packed Wh.T")
    assert scratch["packed Wh.T"] is first  # the next call packs into the same memory
    few: dict = {}
    product = backend.right_product(Wh.T, 5, few, "packed", steps=3)  # not worth packing
    product(out, dA)
    assert not few
    np.testing.assert_allclose(out, dA @ Wh.T, rtol=1e-12, atol=1e-12)
    backend.right_product(Wh.T, 5, few, "packed", steps=4)
    assert list(few) == ["packed"]


def test_the_layers_use_the_packed_products_and_agree_with_numpy(monkeypatch):
    """TimeLSTM, TimeGRU and TimeRNN forward and backward with every step's product on the
    packed panels (counted) equal NumPy's path to float64 rounding."""
    from bptt.nn.cells import TimeGRU, TimeLSTM, TimeRNN

    calls = []
    real = kernels.packed_right

    def counted(b, rows, work=None, steps=None):
        product = real(b, rows, work, steps)
        return None if product is None else (
            lambda out, a: calls.append(product(out, a)) or calls[-1])
    monkeypatch.setattr(kernels, "packed_right", counted)
    g = np.random.default_rng(2)
    N, T, D, H = 6, 5, 7, 9
    xs, dhs = g.standard_normal((N, T, D)), g.standard_normal((N, T, H))
    for layer_class, gates in ((TimeLSTM, 4), (TimeGRU, 3), (TimeRNN, 1)):
        params = [g.standard_normal((D, gates * H)) * 0.5, g.standard_normal((H, gates * H)) * 0.5,
                  g.standard_normal(gates * H) * 0.1]
        results = []
        for numba in ("1", "0"):
            monkeypatch.setenv("BPTT_NUMBA", numba)
            calls.clear()
            layer = layer_class(*[p.copy() for p in params])
            hs = layer.forward(xs)
            results.append([hs, layer.backward(dhs), *layer.grads])
            if numba == "1":
                assert len(calls) >= 2 * T and all(calls), layer_class.__name__
            else:
                assert not calls
        for got, want in zip(*results, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.fixture
def restore_threads():
    before = blas.get_blas_threads()
    yield
    blas.set_blas_threads(before)


def test_a_layer_on_two_threads_gives_the_one_thread_bits(restore_threads):
    """TimeLSTM (float32, 20 rows, x_t in each step's product: every product of the time loop
    on the panels) on one thread and on two (the panels over the shared pool, the rows of the
    element-wise loops too): the same outputs, final state and state gradients, bit for bit.
    (The batched products after the loop are OpenBLAS's, whose bits depend on its threads.)"""
    from bptt.nn.cells import TimeLSTM

    blas.set_blas_threads(2)
    if not kernels._split:
        pytest.skip(f"no shared pool here ({blas.pool_status()}; needs Numba's OpenMP layer, "
                    "2 threads and OpenBLAS 0.3.27+)")
    g = np.random.default_rng(4)
    N, T, D, H = 20, 7, 3, 64
    params = [(g.standard_normal(s) * 0.2).astype(np.float32)
              for s in ((D, 4 * H), (H, 4 * H), (4 * H,))]
    xs = g.standard_normal((N, T, D)).astype(np.float32)
    dhs = g.standard_normal((N, T, H)).astype(np.float32)

    def run():
        layer = TimeLSTM(*[p.copy() for p in params])
        layer.input_in_step = True
        hs = layer.forward(xs)
        h, c = layer.h.copy(), layer.c.copy()
        layer.backward(dhs)
        return [hs, h, c, layer.dh, layer.dc]
    two = run()
    blas.set_blas_threads(1)
    assert not kernels._split
    one = run()
    for x, y in zip(one, two, strict=True):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("in_step", [True, False])
def test_whole_time_loops_on_row_blocks_give_the_step_by_step_bits(dtype, in_step, monkeypatch,
                                                                   restore_threads):
    """TimeLSTM's time loops run whole on blocks of rows, one thread a block
    (bptt.numba_time_loops), against the step-by-step compiled path, both on two threads:
    outputs, final state, input and state gradients and the weights' gradients bit for bit,
    with dh_last, dc_last and an upstream gradient that is not C-contiguous (x_t in each
    step's product, or projected at once: then only backward runs on row blocks)."""
    from bptt.nn.cells import TimeLSTM
    from bptt.nn.cells import lstm as lstm_module

    blas.set_blas_threads(2)
    if not kernels._split:
        pytest.skip(f"no shared pool here ({blas.pool_status()}; needs Numba's OpenMP layer, "
                    "2 threads and OpenBLAS 0.3.27+)")
    monkeypatch.setattr(kernels, "ROW_LOOP_MIN_ROWS", 8)  # 24 rows: two blocks on any CPU
    g = np.random.default_rng(5)
    N, T, D, H = 24, 6, 3 if in_step else 40, 40
    params = [(g.standard_normal(s) * 0.3).astype(dtype)
              for s in ((D, 4 * H), (H, 4 * H), (4 * H,))]
    xs = g.standard_normal((N, T, D)).astype(dtype)
    dhs = g.standard_normal((N, T, H + 5)).astype(dtype)[:, :, 2:H + 2]
    dh_last, dc_last = (g.standard_normal((N, H)).astype(dtype) for _ in range(2))
    real, used = lstm_module.lstm_row_loops, []

    def run(blocks: bool):
        monkeypatch.setattr(lstm_module, "lstm_row_loops",
                            lambda *a: used.append(real(*a) if blocks else None) or used[-1])
        layer = TimeLSTM(*[p.copy() for p in params])
        layer.input_in_step = in_step
        hs = layer.forward(xs)
        h, c = layer.h.copy(), layer.c.copy()
        dxs = layer.backward(dhs, dh_last, dc_last)
        return [hs, h, c, dxs, layer.dh, layer.dc, *layer.grads]
    on_blocks = run(True)
    assert len(used) == (2 if in_step else 1)  # forward, backward (or backward only)
    assert all(u is not None and u.parts == 2 for u in used)
    used.clear()
    step_by_step = run(False)
    assert used and not any(used)
    for x, y in zip(on_blocks, step_by_step, strict=True):
        assert np.array_equal(x, y)
    blas.set_blas_threads(1)
    assert kernels.lstm_row_loops(np, dtype, N, T) is None  # one thread: nothing to split
    one_thread = run(False)
    for k in (0, 1, 2, 4, 5):  # the loops' own results (dx and the weights' gradients are
        assert np.array_equal(on_blocks[k], one_thread[k])  # OpenBLAS's products after them)


def test_row_loops_apply_only_where_they_are_meant_to(monkeypatch, restore_threads):
    blas.set_blas_threads(2)
    if not kernels._split:
        pytest.skip(f"no shared pool here ({blas.pool_status()})")
    rows = 2 * kernels.ROW_LOOP_MIN_ROWS
    monkeypatch.setattr(kernels, "packed_max_rows", lambda: rows)
    assert kernels.lstm_row_loops(np, np.float32, rows, 10).parts == 2
    assert kernels.lstm_row_loops(np, np.float32, rows - 1, 10) is None  # a block too small
    assert kernels.lstm_row_loops(np, np.float32, rows + 16, 10) is None  # past the packed cap
    assert kernels.lstm_row_loops(np, np.float32, rows, kernels.PACKED_MIN_STEPS - 1) is None
    assert kernels.lstm_row_loops(np, np.float16, rows, 10) is None
    monkeypatch.setenv("BPTT_NUMBA", "0")
    assert kernels.lstm_row_loops(np, np.float32, rows, 10) is None
