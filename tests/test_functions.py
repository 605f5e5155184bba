"""The stateless math of bptt.nn.functions against direct formulas."""

import numpy as np
import pytest

from bptt.nn.functions import cross_entropy, log_softmax, sigmoid, softmax


def test_sigmoid_values_and_out():
    x = np.array([-800.0, -3.0, 0.0, 2.5, 800.0])
    want = np.array([0.0, 1 / (1 + np.exp(3.0)), 0.5, 1 / (1 + np.exp(-2.5)), 1.0])
    np.testing.assert_allclose(sigmoid(x), want, rtol=1e-12, atol=1e-300)
    out = np.empty_like(x)
    assert sigmoid(x, out=out) is out
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-300)
    assert sigmoid(x.astype(np.float32)).dtype == np.float32


def test_softmax_and_log_softmax_values():
    x = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 0.0]])
    e = np.exp(x[0] - 3.0)
    np.testing.assert_allclose(softmax(x)[0], e / e.sum(), rtol=1e-12)
    np.testing.assert_allclose(softmax(x)[1], [0.5, 0.5, 0.0], atol=1e-300)
    np.testing.assert_allclose(log_softmax(x)[0], np.log(e / e.sum()), rtol=1e-12)
    np.testing.assert_allclose(log_softmax(x)[1, :2], np.log(0.5), rtol=1e-12)
    np.testing.assert_allclose(softmax(x, axis=0)[:, 0], softmax(x.T)[0], rtol=1e-12)


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5)])
def test_cross_entropy_ids_and_one_hot(shape):
    rng = np.random.default_rng(0)
    y = softmax(rng.standard_normal(shape))
    t = rng.integers(0, shape[-1], size=shape[:-1])
    y2, t2 = y.reshape(-1, shape[-1]), t.reshape(-1)
    want = -np.mean(np.log(y2[np.arange(len(t2)), t2]))
    assert cross_entropy(y, t) == pytest.approx(want, rel=1e-9)
    one_hot = np.eye(shape[-1])[t]  # (..., C)
    assert cross_entropy(y, one_hot) == pytest.approx(want, rel=1e-9)
