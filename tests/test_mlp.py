"""Feed-forward nets: backprop vs numerical gradients, learning the spiral set, training loop."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.data.spiral import load_spiral
from bptt.gradcheck import relative_error
from bptt.models.mlp import MultiLayerNet, TwoLayerNet, accuracy
from bptt.optim import SGD, Adam
from bptt.train.classifier import train_classifier


def _data(n=5, d=4, c=3, seed=0):
    r = np.random.default_rng(seed)
    return r.standard_normal((n, d)), r.integers(0, c, n)


def _agree(net, x, t):
    num = net.numerical_gradient(x, t, eps=1e-5)
    grads = net.gradient(x, t)
    assert set(num) == set(grads) == set(net.params)
    errs = {k: relative_error(grads[k], num[k]) for k in num}
    assert max(errs.values()) < 1e-6, errs
    return errs


def test_two_layer_net_backprop_matches_numerical():
    x, t = _data()
    net = TwoLayerNet(4, 6, 3, weight_init_std=1.0, dtype=np.float64,
                      generator=np.random.default_rng(1))
    net.params["b1"][...] = np.random.default_rng(2).standard_normal(6)  # non-zero biases
    _agree(net, x, t)
    _agree(net, x, np.eye(3)[t])  # one-hot labels


def test_two_layer_net_book_interface():
    net = TwoLayerNet(784, 50, 10)
    assert net.params["W1"].shape == (784, 50) and net.params["b2"].shape == (10,)
    assert net.params["W1"].dtype == np.float32
    assert list(net.layers) == ["Affine1", "Relu1", "Affine2"]
    assert net.layers["Affine1"].params[0] is net.params["W1"]  # the same arrays
    x = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    assert net.predict(x).shape == (3, 10)
    assert 0.0 <= net.accuracy(x, np.array([0, 1, 2])) <= 1.0
    # a plain book-style SGD step on the dict changes the layers' weights
    W1 = net.params["W1"].copy()
    grads = net.gradient(x, np.array([0, 1, 2]))
    for key in ("W1", "b1", "W2", "b2"):
        net.params[key] -= 0.1 * grads[key]
    assert not np.array_equal(net.layers["Affine1"].params[0], W1)


@pytest.mark.parametrize("activation,init", [("relu", "he"), ("sigmoid", "xavier"),
                                             ("tanh", 0.5)])
def test_multi_layer_net_gradients(activation, init):
    x, t = _data(n=6, d=5, c=4)
    net = MultiLayerNet(5, [7, 6], 4, activation=activation, weight_init=init,
                        weight_decay_lambda=0.1, dtype=np.float64,
                        generator=np.random.default_rng(0))
    assert list(net.layers) == ["Affine1", "Activation_function1", "Affine2",
                                "Activation_function2", "Affine3"]
    assert sorted(net.params) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    _agree(net, x, t)


def test_multi_layer_net_dropout_gradient_with_fixed_mask():
    class FixedU:  # stands in for the generator: the same uniforms every forward
        def __init__(self, seed):
            self.seed = seed

        def random(self, shape, dtype=np.float64):
            return np.random.default_rng(self.seed).random(shape, dtype=dtype)

    x, t = _data(n=6, d=5, c=4)
    net = MultiLayerNet(5, [8], 4, use_dropout=True, dropout_ratio=0.3, dtype=np.float64,
                        generator=np.random.default_rng(0))
    net.layers["Dropout1"].generator = FixedU(3)
    _agree(net, x, t)
    # evaluation switches dropout off: predictions are deterministic and unscaled
    a, b = net.predict(x), net.predict(x)
    np.testing.assert_array_equal(a, b)


def test_weight_decay_in_loss():
    x, t = _data()
    net = MultiLayerNet(4, [5], 3, weight_decay_lambda=0.0, dtype=np.float64,
                        generator=np.random.default_rng(0))
    base = float(net.loss(x, t))
    net.weight_decay_lambda = 2.0
    w2 = sum((net.params[k] ** 2).sum() for k in ("W1", "W2"))
    assert float(net.loss(x, t)) == pytest.approx(base + w2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        MultiLayerNet(2, [3], 2, activation="gelu")
    with pytest.raises(ValueError, match="unknown initializer"):
        MultiLayerNet(2, [3], 2, weight_init="bogus")
    net = TwoLayerNet(2, 3, 2)
    with pytest.raises(ValueError, match="x_train has 3 rows but t_train has 2"):
        train_classifier(net, np.zeros((3, 2)), np.zeros(2, int), SGD(), 1, 2)
    with pytest.raises(ValueError, match="both x_val and t_val"):
        train_classifier(net, np.zeros((2, 2)), np.zeros(2, int), SGD(), 1, 2,
                         x_val=np.zeros((1, 2)))


def test_accuracy_ids_and_one_hot():
    y = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert accuracy(y, np.array([1, 0, 0])) == pytest.approx(2 / 3)
    assert accuracy(y, np.eye(2)[[1, 0, 1]]) == 1.0


def test_two_layer_net_learns_spiral():
    x, t = load_spiral(seed=0)
    net = TwoLayerNet(2, 30, 3, weight_init_std=1.0, generator=np.random.default_rng(0))
    hist = train_classifier(net, x, t, SGD(lr=1.0), epochs=300, batch_size=30, seed=0)
    assert len(hist["loss"]) == 300 * 10 and len(hist["train_acc"]) == 300
    assert hist["train_acc"][-1] > 0.9, hist["train_acc"][-1]
    assert hist["epoch_loss"][-1] < 0.3 * hist["epoch_loss"][0]
    assert net.params["W1"].dtype == np.float32  # float64 data cast to the net's dtype


def test_train_classifier_deterministic_with_validation(capsys):
    x, t = load_spiral(n_per_class=30, one_hot=False)
    runs = []
    for _ in range(2):
        net = MultiLayerNet(2, [20, 20], 3, generator=np.random.default_rng(5))
        runs.append(train_classifier(net, x, t, Adam(lr=0.01), epochs=3, batch_size=16,
                                     seed=7, x_val=x[:20], t_val=t[:20], verbose=True))
    assert runs[0] == runs[1]
    assert len(runs[0]["val_acc"]) == 3 and len(runs[0]["loss"]) == 3 * 6
    assert "epoch   3" in capsys.readouterr().out


def test_optimizer_update_with_the_net_itself():
    x, t = _data(n=8, d=4, c=3)
    net = TwoLayerNet(4, 5, 3, weight_init_std=0.5, dtype=np.float64,
                      generator=np.random.default_rng(0))
    before = {k: v.copy() for k, v in net.params.items()}
    grads = {k: g.copy() for k, g in net.gradient(x, t).items()}
    SGD(lr=0.1).update(net)  # net.params / net.grads are dicts of the same keys
    for k in before:
        np.testing.assert_allclose(net.params[k], before[k] - 0.1 * grads[k], rtol=1e-14)
