"""The gradient checker itself: it must fail on a wrong backward."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.gradcheck import (
    gradcheck,
    numerical_gradient,
    numerical_gradient_fx,
    relative_error,
)
from bptt.nn.layers import Affine, Tanh


class WrongTanh(Tanh):
    """tanh with a classic mistake in backward: 1 - out instead of 1 - out**2."""

    def backward(self, dout):
        return dout * (1.0 - self.out)


class WrongAffine(Affine):
    """Affine whose dW forgets the transpose pattern (uses the mean instead of the sum)."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads[1][...] = dout.mean(axis=0)
        return dx


def test_checker_fails_on_wrong_backward():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    assert gradcheck(Tanh(), [x]).worst < 1e-8
    report = gradcheck(WrongTanh(), [x])
    assert report.worst > 0.1, report
    layer = WrongAffine(rng.standard_normal((4, 2)), rng.standard_normal(2))
    report = gradcheck(layer, [x])
    assert report.errors["param[1]"] > 0.1 and report.errors["param[0]"] < 1e-8
    assert "param[1]" in str(report)


def test_numerical_gradient_of_known_function():
    # f(x) = sum(x**3) + x0*x1  ->  df/dx = 3 x**2 + (x1, x0, 0)
    x = np.array([1.0, -2.0, 0.5])
    g = numerical_gradient(lambda: (x**3).sum() + x[0] * x[1], x)
    np.testing.assert_allclose(g, 3 * x**2 + np.array([-2.0, 1.0, 0.0]), rtol=1e-8)
    np.testing.assert_array_equal(x, [1.0, -2.0, 0.5])  # restored
    # the book's form f(x)
    g2 = numerical_gradient_fx(lambda v: (v**2).sum(), np.array([3.0, 4.0]))
    np.testing.assert_allclose(g2, [6.0, 8.0], rtol=1e-8)
    # only the positions asked for
    x = np.arange(4.0).reshape(2, 2)
    g3 = numerical_gradient(lambda: (x**2).sum(), x, index=[(1, 0)])
    np.testing.assert_allclose(g3, [[0, 0], [4.0, 0]], atol=1e-6)


def test_samples_limits_positions_and_still_catches_errors():
    rng = np.random.default_rng(0)
    calls = {"n": 0}

    class Counting(Tanh):
        def forward(self, x):
            calls["n"] += 1
            return super().forward(x)

    x = rng.standard_normal((20, 30))  # 600 entries
    report = gradcheck(Counting(), [x], samples=10)
    assert report.worst < 1e-6
    assert calls["n"] <= 2 + 2 * 10
    assert gradcheck(WrongTanh(), [x], samples=10).worst > 0.1


def test_relative_error_and_missing_gradient():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.array([1.0]), np.array([-1.0])) == pytest.approx(1.0)

    class NoGrad(Tanh):
        def backward(self, dout):
            return None

    with pytest.raises(AssertionError, match="no gradient for input 0"):
        gradcheck(NoGrad(), [np.ones(3)])


def test_wrt_picks_the_gradient_of_that_input():
    """wrt=[1] compares backward()[1] (dy) with the numerical gradient of inputs[1]."""
    from bptt.nn.layers import MulLayer

    class WrongDx(MulLayer):  # dx wrong, dy right
        def backward(self, dout):
            dx, dy = super().backward(dout)
            return 2 * dx, dy

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    report = gradcheck(WrongDx(), [x, y], wrt=[1])
    assert list(report.errors) == ["input[1]"] and report.worst < 1e-8, report
    assert gradcheck(WrongDx(), [x, y], wrt=[0]).worst > 0.1
