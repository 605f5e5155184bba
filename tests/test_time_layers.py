"""Time layers without recurrence: gradients, masking, PyTorch agreement, dtypes, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.gradcheck import gradcheck
from bptt.nn.time_layers import (
    TimeAffine,
    TimeDropout,
    TimeEmbedding,
    TimeSigmoidWithLoss,
    TimeSoftmaxWithLoss,
)

SHAPES = [(1, 1, 3, 4), (2, 5, 3, 4), (3, 4, 6, 2)]  # N, T, D, V


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def reference_ce(xs, ts, ignore=-1):
    """Per-token loop in float64: mean of -log softmax(xs[n, t])[ts[n, t]] over real tokens."""
    total, count = 0.0, 0
    for n in range(xs.shape[0]):
        for t in range(xs.shape[1]):
            if ts[n, t] == ignore:
                continue
            x = xs[n, t].astype(np.float64)
            lse = x.max() + np.log(np.exp(x - x.max()).sum())
            total += lse - x[ts[n, t]]
            count += 1
    return total / max(count, 1)


# ---------------------------------------------------------------- TimeEmbedding


@pytest.mark.parametrize("N,T,D,V", SHAPES)
def test_time_embedding_forward_and_gradient(N, T, D, V, rng):
    W = rng.standard_normal((V, D))
    layer = TimeEmbedding(W)
    xs = rng.integers(0, V, (N, T))
    out = layer.forward(xs)
    assert out.shape == (N, T, D)
    np.testing.assert_array_equal(out[-1, -1], W[xs[-1, -1]])
    report = gradcheck(layer, [xs])
    assert report.worst < 1e-6, report


def test_time_embedding_backward_sums_repeated_ids_exactly(rng):
    W = rng.standard_normal((5, 3))
    layer = TimeEmbedding(W)
    xs = np.array([[1, 1, 4], [1, 0, 4]])
    layer.forward(xs)
    dout = rng.standard_normal((2, 3, 3))
    assert layer.backward(dout) is None
    expected = np.zeros_like(W)
    np.add.at(expected, xs.ravel(), dout.reshape(-1, 3))
    np.testing.assert_allclose(layer.grads[0], expected, rtol=0, atol=1e-15)
    assert not layer.grads[0][[2, 3]].any()


def test_time_embedding_rejects_bad_ids(rng):
    layer = TimeEmbedding(rng.standard_normal((5, 3)))
    with pytest.raises(ValueError, match="id 5, outside the valid range"):
        layer.forward(np.array([[0, 5]]))
    with pytest.raises(TypeError, match="integer"):
        layer.forward(np.array([[0.0, 1.0]]))


# ---------------------------------------------------------------- TimeAffine


@pytest.mark.parametrize("N,T,D,V", SHAPES)
def test_time_affine_gradients(N, T, D, V, rng):
    layer = TimeAffine(rng.standard_normal((D, V)), rng.standard_normal(V))
    xs = rng.standard_normal((N, T, D))
    out = layer.forward(xs)
    assert out.shape == (N, T, V)
    W, b = layer.params
    np.testing.assert_allclose(out[0, -1], xs[0, -1] @ W + b, rtol=1e-12)
    report = gradcheck(layer, [xs])
    assert report.worst < 1e-6, report


def test_time_affine_shape_error(rng):
    layer = TimeAffine(rng.standard_normal((3, 4)), np.zeros(4))
    with pytest.raises(ValueError, match=r"last axis must be 3"):
        layer.forward(np.zeros((2, 5, 4)))


# ---------------------------------------------------------------- TimeSoftmaxWithLoss


@pytest.mark.parametrize("N,T,D,V", SHAPES)
def test_time_softmax_with_loss_value_and_gradient(N, T, D, V, rng):
    layer = TimeSoftmaxWithLoss()
    xs = rng.standard_normal((N, T, V)) * 3
    ts = rng.integers(0, V, (N, T))
    loss = layer.forward(xs, ts)
    assert loss == pytest.approx(reference_ce(xs, ts), rel=1e-12)
    report = gradcheck(layer, [xs, ts])
    assert report.worst < 1e-6, report


def test_time_softmax_with_loss_masked_gradient(rng):
    N, T, V = 3, 6, 5
    xs = rng.standard_normal((N, T, V))
    ts = rng.integers(0, V, (N, T))
    ts[0, 4:] = -1
    ts[2, 1:] = -1
    layer = TimeSoftmaxWithLoss()
    report = gradcheck(layer, [xs, ts])
    assert report.worst < 1e-6, report
    layer.forward(xs, ts)
    dxs = layer.backward()
    assert not dxs[ts == -1].any()  # zero at padding
    assert np.abs(dxs[ts != -1]).min() > 0


def test_time_softmax_with_loss_padding_equals_unpadded_tokens(rng):
    """Loss with padding == loss of the real tokens alone; gradients of the real ones match."""
    V = 7
    lengths = [5, 2, 4]
    xs = rng.standard_normal((3, 5, V))
    ts = np.full((3, 5), -1)
    for n, L in enumerate(lengths):
        ts[n, :L] = rng.integers(0, V, L)
    real = ts != -1
    padded = TimeSoftmaxWithLoss()
    loss_p = padded.forward(xs, ts)
    dxs_p = padded.backward().copy()
    flat = TimeSoftmaxWithLoss()
    loss_f = flat.forward(xs[real][None], ts[real][None])  # (1, sum lengths, V)
    dxs_f = flat.backward()
    assert loss_p == pytest.approx(loss_f, rel=1e-13)
    np.testing.assert_allclose(dxs_p[real], dxs_f[0], rtol=1e-13, atol=0)


def test_time_softmax_with_loss_all_padding_is_zero(rng):
    layer = TimeSoftmaxWithLoss()
    loss = layer.forward(rng.standard_normal((2, 3, 4)), np.full((2, 3), -1))
    assert loss == 0.0
    assert not layer.backward().any()


def test_time_softmax_with_loss_one_hot_labels(rng):
    N, T, V = 2, 4, 5
    xs = rng.standard_normal((N, T, V))
    ts = rng.integers(0, V, (N, T))
    ts[1, 3] = -1
    onehot = np.zeros((N, T, V))
    real = ts != -1
    onehot[real, ts[real]] = 1  # padding: all-zero row
    a, b = TimeSoftmaxWithLoss(), TimeSoftmaxWithLoss()
    assert a.forward(xs, ts) == pytest.approx(b.forward(xs, onehot), rel=1e-14)
    np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-14)


def test_time_softmax_with_loss_huge_logits_are_stable():
    xs = np.array([[[1e4, 0.0, -1e4], [-3e4, 3e4, 0.0]]], dtype=np.float32)
    ts = np.array([[2, 1]])
    layer = TimeSoftmaxWithLoss()
    loss = layer.forward(xs, ts)
    assert np.isfinite(loss) and loss == pytest.approx((2e4 + 0.0) / 2, rel=1e-6)
    dxs = layer.backward()
    assert np.isfinite(dxs).all()
    np.testing.assert_allclose(dxs[0, 0], [0.5, 0, -0.5], atol=1e-6)


def test_time_softmax_with_loss_matches_torch(rng):
    torch = pytest.importorskip("torch")
    N, T, V = 3, 4, 6
    xs = rng.standard_normal((N, T, V)) * 4
    ts = rng.integers(0, V, (N, T))
    ts[0, 2:] = -1
    ts[2, 0] = -1
    for dtype, tol in [(np.float64, 1e-12), (np.float32, 1e-5)]:
        x = xs.astype(dtype)
        layer = TimeSoftmaxWithLoss(ignore_label=-1)
        loss = layer.forward(x, ts)
        dxs = layer.backward(2.5)
        xt = torch.tensor(x, requires_grad=True)
        lt = torch.nn.functional.cross_entropy(xt.reshape(-1, V), torch.tensor(ts).reshape(-1),
                                               ignore_index=-1)
        (lt * 2.5).backward()
        assert loss.dtype == dtype and dxs.dtype == dtype
        np.testing.assert_allclose(loss, lt.item(), rtol=tol)
        np.testing.assert_allclose(dxs, xt.grad.numpy(), rtol=tol, atol=tol * 1e-2)


def test_time_softmax_with_loss_reuses_one_buffer(rng):
    layer = TimeSoftmaxWithLoss()
    xs = rng.standard_normal((2, 3, 4))
    ts = rng.integers(0, 4, (2, 3))
    layer.forward(xs, ts)
    d1 = layer.backward()
    layer.forward(xs * 2, ts)
    d2 = layer.backward()
    assert np.shares_memory(d1, d2)  # no new (N*T, V) array per step
    with pytest.raises(RuntimeError, match="forward first"):
        layer.backward()  # the buffer already holds dxs


def test_time_softmax_with_loss_errors(rng):
    layer = TimeSoftmaxWithLoss()
    xs = rng.standard_normal((2, 3, 4))
    with pytest.raises(ValueError, match=r"id 4, outside the valid range \[0, 3\]"):
        layer.forward(xs, np.array([[0, 1, 4], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"id -2"):
        layer.forward(xs, np.array([[0, 1, -2], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"must be xs.shape\[:-1\]"):
        layer.forward(xs, np.zeros((2, 4), dtype=int))
    with pytest.raises(TypeError, match="floating-point"):
        layer.forward(np.zeros((2, 3, 4), dtype=int), np.zeros((2, 3), dtype=int))


# ---------------------------------------------------------------- TimeSigmoidWithLoss


@pytest.mark.parametrize("N,T", [(1, 1), (2, 5), (4, 3)])
def test_time_sigmoid_with_loss(N, T, rng):
    xs = rng.standard_normal((N, T)) * 3
    ts = rng.integers(0, 2, (N, T)).astype(np.float64)
    layer = TimeSigmoidWithLoss()
    loss = layer.forward(xs, ts)
    y = 1 / (1 + np.exp(-xs))
    assert loss == pytest.approx(-np.mean(ts * np.log(y) + (1 - ts) * np.log(1 - y)), rel=1e-12)
    report = gradcheck(layer, [xs, ts], wrt=[0])
    assert report.worst < 1e-6, report


def test_time_sigmoid_with_loss_mask_and_stability(rng):
    xs = np.array([[800.0, -800.0, 3.0], [0.5, -0.5, 2.0]])
    ts = np.array([[0.0, 1.0, -1.0], [1.0, -1.0, 0.0]])
    layer = TimeSigmoidWithLoss()
    loss = layer.forward(xs, ts)
    real = ts != -1
    sp = np.logaddexp(0, xs)
    assert loss == pytest.approx((sp - ts * xs)[real].mean(), rel=1e-12)
    assert loss > 300  # the 800s are counted, not lost to overflow
    report = gradcheck(layer, [rng.standard_normal((2, 3)), ts], wrt=[0])
    assert report.worst < 1e-6, report
    layer.forward(xs, ts)
    dxs = layer.backward()
    assert not dxs[~real].any() and np.isfinite(dxs).all()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        layer.forward(xs, ts * 2)


def test_time_sigmoid_with_loss_trailing_axis_and_torch(rng):
    torch = pytest.importorskip("torch")
    xs = rng.standard_normal((3, 4, 1)).astype(np.float32)
    ts = rng.integers(0, 2, (3, 4)).astype(np.float32)
    layer = TimeSigmoidWithLoss()
    loss = layer.forward(xs, ts)
    dxs = layer.backward()
    xt = torch.tensor(xs, requires_grad=True)
    lt = torch.nn.functional.binary_cross_entropy_with_logits(xt[..., 0], torch.tensor(ts))
    lt.backward()
    assert loss.dtype == np.float32 and dxs.dtype == np.float32 and dxs.shape == xs.shape
    np.testing.assert_allclose(loss, lt.item(), rtol=1e-5)
    np.testing.assert_allclose(dxs, xt.grad.numpy(), rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- TimeDropout


def test_time_dropout_masks_and_gradient(rng):
    xs = rng.standard_normal((4, 50, 30))
    layer = TimeDropout(0.3, generator=np.random.default_rng(1))
    out = layer.forward(xs)
    kept = out != 0
    assert 0.62 < kept.mean() < 0.78
    np.testing.assert_allclose(out[kept], xs[kept] / 0.7)
    dout = rng.standard_normal(xs.shape)
    np.testing.assert_array_equal(layer.backward(dout), dout * layer.mask)
    small = rng.standard_normal((2, 3, 4))
    report = gradcheck(layer, [small], setup=lambda: setattr(
        layer, "generator", np.random.default_rng(5)))
    assert report.worst < 1e-6, report
    layer.eval()
    assert layer.forward(xs) is xs and layer.backward(dout) is dout


def test_time_dropout_variational_shares_mask_over_time(rng):
    xs = rng.standard_normal((3, 7, 20)) + 5  # no zeros in the input
    layer = TimeDropout(0.5, variational=True, generator=np.random.default_rng(2))
    out = layer.forward(xs)
    assert layer.mask.shape == (3, 1, 20)
    dropped = out == 0
    assert (dropped == dropped[:, :1]).all()  # same units dropped at every t
    assert 0 < dropped.mean() < 1
    with pytest.raises(ValueError, match=r"\(N, T, D\)"):
        layer.forward(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        TimeDropout(1.0)


def test_time_dropout_uses_bptt_seed():
    import bptt.backend as backend

    xs = np.ones((2, 3, 4))
    backend.seed(7)
    a = TimeDropout(0.5).forward(xs)
    backend.seed(7)
    b = TimeDropout(0.5).forward(xs)
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- dtypes and property tests


def test_float32_in_float32_out(rng):
    f32 = np.float32
    V, D = 6, 4
    ids = rng.integers(0, V, (2, 3))
    emb = TimeEmbedding(rng.standard_normal((V, D)).astype(f32))
    aff = TimeAffine(rng.standard_normal((D, V)).astype(f32), np.zeros(V, f32))
    drop = TimeDropout(0.5, variational=True, generator=np.random.default_rng(0))
    loss_layer = TimeSoftmaxWithLoss()
    h = drop.forward(emb.forward(ids))
    s = aff.forward(h)
    loss = loss_layer.forward(s, ids)
    assert h.dtype == f32 and s.dtype == f32 and loss.dtype == f32
    ds = loss_layer.backward()
    dh = drop.backward(aff.backward(ds))
    emb.backward(dh)
    assert ds.dtype == f32 and dh.dtype == f32
    assert all(g.dtype == f32 for g in aff.grads + emb.grads)


@settings(max_examples=25, deadline=None)
@given(N=st.integers(1, 4), T=st.integers(1, 5), V=st.integers(1, 6), seed=st.integers(0, 999))
def test_softmax_loss_matches_reference_with_random_padding(N, T, V, seed):
    r = np.random.default_rng(seed)
    xs = r.standard_normal((N, T, V)) * 5
    ts = r.integers(-1, V, (N, T))  # -1 = padding, anywhere
    layer = TimeSoftmaxWithLoss()
    assert layer.forward(xs, ts) == pytest.approx(reference_ce(xs, ts), rel=1e-12, abs=1e-14)
    dxs = layer.backward()
    real = ts != -1
    # each real row of dxs sums to 0 (softmax minus one-hot), padding rows are 0
    np.testing.assert_allclose(dxs.sum(axis=-1), 0, atol=1e-15)
    assert not dxs[~real].any()


def test_time_softmax_with_loss_allocates_no_big_array_after_the_first_call(rng):
    import tracemalloc

    N, T, V = 4, 10, 2000
    xs = rng.standard_normal((N, T, V))
    ts = rng.integers(-1, V, (N, T))
    layer = TimeSoftmaxWithLoss()
    layer.forward(xs, ts)
    layer.backward()
    big = N * T * V * xs.itemsize
    tracemalloc.start()
    try:
        layer.forward(xs, ts)
        layer.backward()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < big / 4, (peak, big)  # only (N*T,)-sized temporaries
