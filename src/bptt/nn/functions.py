"""Stateless math shared by the layers: sigmoid, softmax, log-softmax, cross-entropy.

All functions take the array module from their input, so they run on NumPy or CuPy and in the
input's dtype.
"""

from __future__ import annotations

from typing import Any

from ..backend import array_module


def sigmoid(x: Any, out: Any = None) -> Any:
    """sigma(x) = 1 / (1 + exp(-x)), computed as (1 + tanh(x/2)) / 2: stable for any x."""
    xp = array_module(x)
    out = xp.multiply(x, 0.5, out=out)
    xp.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


def softmax(x: Any, axis: int = -1) -> Any:
    """y_i = exp(x_i - max x) / sum_j exp(x_j - max x) along ``axis`` (stable for large logits)."""
    xp = array_module(x)
    y = x - x.max(axis=axis, keepdims=True)
    xp.exp(y, out=y)
    y /= y.sum(axis=axis, keepdims=True)
    return y


def log_softmax(x: Any, axis: int = -1) -> Any:
    """log y_i = x_i - max x - log sum_j exp(x_j - max x) along ``axis``."""
    xp = array_module(x)
    z = x - x.max(axis=axis, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))


def cross_entropy(y: Any, t: Any, eps: float = 1e-12) -> Any:
    """Mean over the rows of -log y[k, t_k]: probabilities ``y`` (..., C) (e.g. (N, C) or
    (N, T, C)), class ids ``t`` (...) or one-hot ``t`` (..., C)."""
    xp = array_module(y)
    if t.ndim == y.ndim:  # one-hot -> ids
        t = t.argmax(axis=-1)
    y = y.reshape(-1, y.shape[-1])  # (rows, C)
    t = t.reshape(-1)
    n = y.shape[0]
    return -xp.log(y[xp.arange(n), t] + eps).sum() / n
