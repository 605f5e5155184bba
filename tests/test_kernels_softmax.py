"""TimeSoftmaxWithLoss's compiled passes (bptt.kernels.softmax_kernels) against NumPy's
(BPTT_NUMBA=0): loss and gradient equal to 1e-12 in float64 and within float32 rounding in
float32, over shapes, labels (ids, one-hot), padding and upstream scales; the float32 exp
within 2 units in the last place; NaN and infinite scores giving what NumPy gives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import gradcheck, kernels
from bptt.nn.time_layers import TimeSoftmaxWithLoss

pytest.importorskip("numba", reason="the compiled kernels need pip install 'bptt[numba]'")


def loss_and_grad(monkeypatch, path, xs, ts, dout=1.0, ignore_label=-1):
    monkeypatch.setenv("BPTT_NUMBA", "1" if path == "compiled" else "0")
    layer = TimeSoftmaxWithLoss(ignore_label=ignore_label)
    loss = layer.forward(xs, ts)
    return loss, layer.backward(dout).copy()


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 5), T=st.integers(1, 5), V=st.integers(1, 300),
       labels=st.sampled_from(["ids", "padded ids", "one-hot", "no ignore"]),
       spread=st.sampled_from([0.1, 3.0, 40.0]), double=st.booleans(),
       seed=st.integers(0, 2**16))
def test_compiled_softmax_equals_numpy(N, T, V, labels, spread, double, seed):
    monkeypatch = pytest.MonkeyPatch()
    try:
        dtype = np.float64 if double else np.float32
        rng = np.random.default_rng(seed)
        xs = (rng.standard_normal((N, T, V)) * spread).astype(dtype)
        ts = rng.integers(0, V, (N, T))
        ignore = -1 if labels != "no ignore" else None
        if labels == "padded ids":
            ts[rng.random((N, T)) < 0.4] = -1
        elif labels == "one-hot":
            onehot = np.eye(V, dtype=dtype)[ts]
            onehot[rng.random((N, T)) < 0.3] = 0  # all-zero rows: padding
            ts = onehot
        dout = float(rng.uniform(0.5, 2.0))
        want = loss_and_grad(monkeypatch, "numpy", xs, ts, dout, ignore)
        got = loss_and_grad(monkeypatch, "compiled", xs, ts, dout, ignore)
    finally:
        monkeypatch.undo()
    assert got[1].dtype == want[1].dtype == dtype
    if double:
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-15)
    else:  # exp within 2 ulp, sums in another order: a few ulp of each value
        np.testing.assert_allclose(got[0], want[0], rtol=2e-6, atol=1e-6)
        np.testing.assert_allclose(got[1], want[1], rtol=0, atol=4e-7 * max(1.0, dout))


@settings(max_examples=30, deadline=None)
@given(N=st.integers(1, 9), T=st.integers(1, 5), V=st.integers(1, 300), padded=st.booleans(),
       double=st.booleans(), seed=st.integers(0, 2**16))
def test_rows_split_over_threads_give_the_same_bits(N, T, V, padded, double, seed):
    import numba

    dtype = np.float64 if double else np.float32
    rng = np.random.default_rng(seed)
    xs = (rng.standard_normal((N, T, V)) * 3).astype(dtype)
    ts = rng.integers(0, V, (N, T))
    if padded:
        ts[rng.random((N, T)) < 0.4] = -1
    monkeypatch = pytest.MonkeyPatch()
    try:
        want = loss_and_grad(monkeypatch, "compiled", xs, ts, 1.5)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        monkeypatch.setattr(kernels, "_split", True)  # as with a shared pool
        got = loss_and_grad(monkeypatch, "compiled", xs, ts, 1.5)
    finally:
        monkeypatch.undo()
    assert got[0] == want[0] and np.array_equal(got[1], want[1])


def test_float32_exp_is_within_two_ulp():
    """e = exp(x - max x) over a dense grid of x - max x in [-104, 0], through the kernel."""
    z = np.concatenate([np.linspace(-104, 0, 400_001), -np.logspace(-30, 2, 1000), [0.0, -0.0]])
    x = z.astype(np.float32)[None, :]
    x = np.concatenate([x, np.zeros((1, x.shape[1]), np.float32)])[:, :]  # row max 0 in both
    x[1] = x[0]
    mx, s = np.empty(2, np.float32), np.empty(2, np.float32)
    e = np.empty_like(x)
    kernels.softmax_kernels(np, np.float32).forward(x, mx, e, s)
    assert mx[0] == 0
    exact = np.exp(x[0].astype(np.float64))
    normal = exact >= np.finfo(np.float32).tiny
    ulp = np.abs(e[0][normal] - exact[normal]) / np.spacing(exact[normal].astype(np.float32))
    assert ulp.max() <= 2
    assert np.all(e[0][~normal] <= np.finfo(np.float32).tiny)  # NumPy: a subnormal or 0
    np.testing.assert_allclose(s[0], exact.sum(), rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_infinite_scores_give_what_numpy_gives(monkeypatch, bad):
    xs = np.random.default_rng(0).standard_normal((2, 3, 7)).astype(np.float32)
    xs[0, 1, 4] = bad
    ts = np.array([[1, 2, 3], [4, 5, 6]])
    with np.errstate(invalid="ignore", over="ignore"):
        want = loss_and_grad(monkeypatch, "numpy", xs, ts)
        got = loss_and_grad(monkeypatch, "compiled", xs, ts)
    np.testing.assert_array_equal(np.isnan(got[0]), np.isnan(want[0]))
    np.testing.assert_array_equal(np.isnan(got[1]), np.isnan(want[1]))
    finite = np.isfinite(want[1])
    np.testing.assert_allclose(got[1][finite], want[1][finite], atol=1e-7)


def test_compiled_softmax_gradients_are_numerically_right(monkeypatch):
    monkeypatch.setenv("BPTT_NUMBA", "1")
    rng = np.random.default_rng(3)
    ts = np.array([[0, 4, -1], [2, -1, -1]])

    class Loss:  # gradcheck's layer shape: scores in, loss out
        params, grads = [], []

        def __init__(self):
            self.layer = TimeSoftmaxWithLoss()

        def forward(self, xs):
            return self.layer.forward(xs, ts)

        def backward(self, dout):
            return self.layer.backward(dout)

    report = gradcheck(Loss(), [rng.standard_normal((2, 3, 5)) * 2], seed=0)
    assert report.worst < 1e-7, report


def test_scores_in_any_layout(monkeypatch):
    xs = np.random.default_rng(1).standard_normal((6, 4, 5)).transpose(1, 0, 2)  # (4, 6, 5)
    ts = np.arange(24).reshape(4, 6) % 5
    want = loss_and_grad(monkeypatch, "numpy", np.ascontiguousarray(xs), ts)
    got = loss_and_grad(monkeypatch, "compiled", xs, ts)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-15)
