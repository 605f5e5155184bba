"""SimpleRNN (DIVER exercise, seed 003): the exercise's numbers, gradients, updates."""

import numpy as np
import pytest

from bptt.gradcheck import gradcheck, numerical_gradient
from bptt.nn.simple_rnn import SimpleRNN


class FixedInit:
    """Initializer handing out given arrays (duck-typed like bptt.initializers)."""

    def __init__(self, *arrays):
        self.arrays = list(arrays)

    def W(self, n_in, n_out):
        a = self.arrays.pop(0)
        assert a.shape == (n_in, n_out)
        return a.copy()

    def B(self, n_out):
        a = self.arrays.pop(0)
        assert a.shape == (n_out,)
        return a.copy()


class RecordingOptimizer:
    def __init__(self):
        self.seen = []

    def update(self, layer):
        self.seen.append([g.copy() for g in layer.grads])


def seed_layer(**kw):
    W_x = np.array([[1, 3, 5, 7], [3, 5, 7, 8]]) / 100
    W_h = np.array([[1, 3, 5, 7], [2, 4, 6, 8], [3, 5, 7, 8], [4, 6, 8, 10]]) / 100
    B = np.array([1.0, 1, 1, 1])
    return SimpleRNN(2, 4, FixedInit(W_x, W_h, B), **kw)


def random_layer(rng, F, H, **kw):
    init = FixedInit(rng.standard_normal((F, H)) * 0.5, rng.standard_normal((H, H)) * 0.5,
                     rng.standard_normal(H) * 0.5)
    return SimpleRNN(F, H, init, **kw)


def test_seed_003_forward_numbers():
    x = np.array([[[1, 2], [2, 3], [3, 4]]]) / 100  # (batch_size, n_sequences, n_features)
    layer = seed_layer()
    h = layer.forward(x)
    np.testing.assert_allclose(h, [[0.79494228, 0.81839002, 0.83939649, 0.85584174]],
                               rtol=0, atol=1e-8)
    assert layer.h_all.shape == (1, 3, 4)
    np.testing.assert_array_equal(layer.h_all[:, -1], h)
    # h0 = 0 given explicitly is the same; return_sequences returns all states
    np.testing.assert_array_equal(layer.forward(x, h0=np.zeros((1, 4))), h)
    seq = seed_layer(return_sequences=True).forward(x)
    np.testing.assert_array_equal(seq, layer.h_all)


def test_forward_equals_step_by_step_equations(rng):
    layer = random_layer(rng, 3, 5)
    X = rng.standard_normal((2, 4, 3))
    h0 = rng.standard_normal((2, 5))
    out = layer.forward(X, h0)
    h = h0
    for t in range(4):
        h = np.tanh(X[:, t] @ layer.W_x + h @ layer.W_h + layer.B)
    np.testing.assert_allclose(out, h, rtol=1e-13)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("N,T,F,H", [(1, 1, 2, 3), (2, 5, 3, 4), (3, 3, 4, 2)])
def test_gradients(activation, return_sequences, N, T, F, H, rng):
    layer = random_layer(rng, F, H, activation=activation, return_sequences=return_sequences)
    X = rng.standard_normal((N, T, F))
    report = gradcheck(layer, [X])
    assert report.worst < 1e-6, report


def test_gradient_of_initial_state(rng):
    layer = random_layer(rng, 3, 4, return_sequences=True)
    X = rng.standard_normal((2, 3, 3))
    h0 = rng.standard_normal((2, 4))
    r = rng.standard_normal((2, 3, 4))
    layer.forward(X, h0)
    layer.backward(r)
    num = numerical_gradient(lambda: (layer.forward(X, h0) * r).sum(), h0)
    np.testing.assert_allclose(layer.dh0, num, rtol=1e-6, atol=1e-9)


def test_relu_activation_clips_at_zero(rng):
    layer = random_layer(rng, 3, 6, activation="relu", return_sequences=True)
    out = layer.forward(rng.standard_normal((4, 5, 3)))
    assert (out >= 0).all() and (out == 0).any() and (out > 0).any()
    with pytest.raises(ValueError, match="activation"):
        SimpleRNN(2, 3, activation="sigmoidal")


def test_optimizer_sees_the_gradients(rng):
    opt = RecordingOptimizer()
    layer = random_layer(rng, 2, 3, optimizer=opt)
    X = rng.standard_normal((2, 4, 2))
    layer.forward(X)
    layer.backward(np.ones((2, 3)))
    assert len(opt.seen) == 1
    for seen, g in zip(opt.seen[0], layer.grads, strict=True):
        np.testing.assert_array_equal(seen, g)
    assert np.abs(opt.seen[0][0]).sum() > 0


def test_sgd_update_changes_weights_by_minus_lr_grad(rng):
    optim = pytest.importorskip("bptt.optim")
    lr = 0.1
    layer = random_layer(rng, 2, 3, optimizer=optim.SGD(lr))
    before = [p.copy() for p in layer.params]
    X = rng.standard_normal((2, 4, 2))
    layer.forward(X)
    dA = rng.standard_normal((2, 3))
    layer.backward(dA)
    for b, p, g in zip(before, layer.params, layer.grads, strict=True):
        assert np.abs(g).sum() > 0
        np.testing.assert_allclose(p, b - lr * g, rtol=1e-14, atol=1e-15)
    # the updated weights are the ones used next time
    h = layer.forward(X)
    ref = random_layer(np.random.default_rng(99), 2, 3)
    ref.W_x, ref.W_h, ref.B = (p.copy() for p in layer.params)
    np.testing.assert_array_equal(ref.forward(X), h)


def test_assigned_weights_are_used_and_exposed(rng):
    layer = random_layer(rng, 2, 3)
    layer.W_x = np.zeros((2, 3))
    layer.W_h = np.zeros((3, 3))
    layer.B = np.full(3, 0.5)
    assert layer.params[0] is layer.W_x
    np.testing.assert_allclose(layer.forward(rng.standard_normal((1, 2, 2))), np.tanh(0.5))
    layer.W_x = rng.standard_normal((5, 3))  # new n_features: grads follow
    X = rng.standard_normal((2, 3, 5))
    report = gradcheck(layer, [X])
    assert report.worst < 1e-6 and layer.dW_x.shape == (5, 3)


def test_float32_and_errors(rng):
    layer = random_layer(rng, 2, 3)
    for p in ("W_x", "W_h", "B"):
        setattr(layer, p, getattr(layer, p).astype(np.float32))
    X = rng.standard_normal((2, 4, 2)).astype(np.float32)
    h = layer.forward(X)
    dX = layer.backward(np.ones((2, 3), np.float32))
    assert h.dtype == np.float32 and dX.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layer.grads)
    with pytest.raises(ValueError, match="n_features"):
        layer.forward(np.zeros((2, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"batch_size, n_sequences, n_features"):
        layer.forward(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="dA must have shape"):
        layer.forward(X)
        layer.backward(np.ones((2, 4, 3), np.float32))


def test_default_initializer_uses_bptt_seed():
    import bptt.backend as backend

    backend.seed(3)
    a = SimpleRNN(2, 3)
    backend.seed(3)
    b = SimpleRNN(2, 3)
    np.testing.assert_array_equal(a.W_h, b.W_h)
    assert a.W_x.dtype == backend.default_dtype() and not a.B.any()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_with_bptt_initializers_and_optimizer(rng):
    init = pytest.importorskip("bptt.initializers")
    optim = pytest.importorskip("bptt.optim")
    layer = SimpleRNN(3, 4, init.Xavier(), optim.SGD(0.05))
    assert layer.W_x.shape == (3, 4) and layer.W_h.shape == (4, 4) and layer.B.shape == (4,)
    X = rng.standard_normal((5, 6, 3)).astype(layer.W_x.dtype)
    target = np.full((5, 4), 0.5, dtype=layer.W_x.dtype)
    losses = []
    for _ in range(30):  # regress the last state to 0.5: the loss must go down
        h = layer.forward(X)
        losses.append(float(((h - target) ** 2).sum() / 2))
        layer.backward(h - target)
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_equals_time_rnn(activation, rng):
    """SimpleRNN and TimeRNN compute the same states and gradients (same equations)."""
    from bptt.nn.cells import TimeRNN

    layer = random_layer(rng, 3, 4, activation=activation, return_sequences=True)
    ref = TimeRNN(layer.W_x.copy(), layer.W_h.copy(), layer.B.copy(), nonlinearity=activation)
    X = rng.standard_normal((2, 5, 3))
    h0 = rng.standard_normal((2, 4))
    ref.set_state(h0)
    np.testing.assert_allclose(layer.forward(X, h0), ref.forward(X), rtol=1e-13, atol=1e-15)
    dA = rng.standard_normal((2, 5, 4))
    np.testing.assert_allclose(layer.backward(dA), ref.backward(dA), rtol=1e-12, atol=1e-15)
    for g, gr in zip(layer.grads, ref.grads, strict=True):
        np.testing.assert_allclose(g, gr, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(layer.dh0, ref.dh, rtol=1e-12, atol=1e-15)
