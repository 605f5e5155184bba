"""Initializers: statistics, orthogonality, dtype, device and seeding."""

from __future__ import annotations

import numpy as np
import pytest

import bptt
from bptt.backend import set_default_dtype
from bptt.initializers import (
    He,
    Normal,
    Orthogonal,
    Xavier,
    get_initializer,
    he,
    normal,
    orthogonal,
    xavier,
    zeros,
)


@pytest.fixture
def dtype64():
    old = bptt.default_dtype()
    set_default_dtype(np.float64)
    yield
    set_default_dtype(old)


@pytest.mark.parametrize("make,std", [
    (lambda: normal((400, 300), 0.05), 0.05),
    (lambda: xavier(400, 300), 1 / np.sqrt(400)),
    (lambda: he(400, 300), np.sqrt(2 / 400)),
    (lambda: Normal(0.02).W(400, 300), 0.02),
    (lambda: Xavier().W(400, 300), 1 / np.sqrt(400)),
    (lambda: He().W(400, 300), np.sqrt(2 / 400)),
])
def test_std_and_mean(make, std):
    bptt.seed(0)
    W = make()
    assert W.shape == (400, 300) and W.dtype == np.float32
    # 120000 samples: the sample std is within ~0.4% of the truth (5 sigma ~ 1%)
    assert abs(W.std() / std - 1) < 0.01
    assert abs(W.mean()) < 5 * std / np.sqrt(W.size)


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 5), (3, 2, 4)])
def test_orthogonal(shape, dtype64):
    bptt.seed(1)
    Q = orthogonal(shape, gain=2.0)
    assert Q.shape == shape and Q.dtype == np.float64
    M = Q.reshape(shape[0], -1) / 2.0
    r, c = M.shape
    gram = M.T @ M if r >= c else M @ M.T
    np.testing.assert_allclose(gram, np.eye(min(r, c)), atol=1e-12)
    W = Orthogonal(gain=2.0).W(6, 4)
    np.testing.assert_allclose(W.T @ W, 4 * np.eye(4), atol=1e-12)


def test_orthogonal_is_not_biased_to_positive_diagonal():
    # without the sign fix, QR returns R with a positive diagonal and Q is not Haar-distributed
    diag = np.concatenate([np.diag(orthogonal((3, 3), generator=np.random.default_rng(s)))
                           for s in range(40)])
    assert (diag < 0).sum() > 20 and (diag > 0).sum() > 20


def test_biases():
    assert np.all(Xavier().B(5) == 0) and np.all(He().B(5) == 0)
    assert np.all(Orthogonal().B(5) == 0)
    b = Normal(0.5, generator=np.random.default_rng(0)).B(1000)
    assert b.shape == (1000,) and 0.4 < b.std() < 0.6  # DIVER's SimpleInitializer draws B too
    assert zeros((2, 3)).dtype == np.float32


def test_seed_reproducible_and_generator_and_dtype_rounding():
    bptt.seed(123)
    a = xavier(5, 4)
    bptt.seed(123)
    b = xavier(5, 4)
    np.testing.assert_array_equal(a, b)
    c = xavier(5, 4, dtype=np.float64, generator=np.random.default_rng(7))
    d = xavier(5, 4, generator=np.random.default_rng(7))
    assert c.dtype == np.float64 and d.dtype == np.float32
    np.testing.assert_array_equal(c.astype(np.float32), d)  # same draws, rounded


def test_default_dtype_followed(dtype64):
    assert he(3, 2).dtype == np.float64
    assert Normal().B(3).dtype == np.float64
    assert Xavier(dtype=np.float32).W(3, 2).dtype == np.float32


def test_get_initializer_and_errors():
    assert isinstance(get_initializer("relu"), He)
    assert isinstance(get_initializer("sigmoid"), Xavier)
    n = get_initializer(0.1)
    assert isinstance(n, Normal) and n.std == 0.1
    obj = Orthogonal()
    assert get_initializer(obj) is obj
    with pytest.raises(ValueError, match="unknown initializer 'glorot'.*he"):
        get_initializer("glorot")
    with pytest.raises(ValueError, match="n_in must be a positive integer, got 0"):
        xavier(0, 3)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        orthogonal(5)
