"""Weight initializers: functions and DIVER-style objects with ``W(n_in, n_out)`` / ``B(n_out)``.

    W = xavier(D, H)                      # function form
    init = He(); W, b = init.W(D, H), init.B(H)   # object form (SimpleInitializer style)

All draw from :func:`bptt.backend.rng` (seed it with ``bptt.seed(n)``) or from the
``generator=`` given, in float64, and return arrays of ``dtype`` (default
:func:`~bptt.backend.default_dtype`, float32) on the current device (:func:`~bptt.backend.get_xp`).
Drawing in float64 first makes a float32 and a float64 model built from the same seed hold the
same weights up to rounding.

| name       | W (n_in, n_out)                   | B (n_out,)             |
| ---------- | --------------------------------- | ---------------------- |
| Normal     | N(0, std^2), std = 0.01           | N(0, std^2) (as DIVER) |
| Xavier     | N(0, 1/n_in)  (the book's Xavier) | 0                      |
| He         | N(0, 2/n_in)                      | 0                      |
| Orthogonal | gain * Q, orthonormal cols / rows | 0                      |
| Uniform    | U(-k, k)                          | U(-k, k) (PyTorch's)   |
| Recurrent  | Wx N(0, 1/n_in), then orthogonal  | 0                      |
|            | H x H blocks for the recurrent W  |                        |

"Xavier" follows the books: std 1/sqrt(n_in). Glorot & Bengio's normal variant would be
sqrt(2 / (n_in + n_out)).
"""

from __future__ import annotations

import math
from typing import Any

from .backend import array_module, default_dtype, get_xp, rng
from .validate import check_sizes

__all__ = [
    "normal", "xavier", "he", "orthogonal", "uniform", "zeros",
    "Normal", "Xavier", "He", "Orthogonal", "Uniform", "Recurrent", "get_initializer",
]

Shape = tuple[int, ...]


def _standard_normal(shape: Shape, generator: Any) -> Any:
    g = generator if generator is not None else rng()
    return g.standard_normal(shape)  # float64


def _finish(a: Any, dtype: Any) -> Any:
    return get_xp().asarray(a, dtype=dtype if dtype is not None else default_dtype())


def normal(shape: int | Shape, std: float = 0.01, *, dtype: Any = None,
           generator: Any = None) -> Any:
    """Array of ``shape`` drawn from N(0, std^2)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _finish(std * _standard_normal(shape, generator), dtype)


def xavier(n_in: int, n_out: int, *, dtype: Any = None, generator: Any = None) -> Any:
    """(n_in, n_out) from N(0, 1/n_in): the book's "Xavier" (keeps sigmoid/tanh activations' scale).

    Note: Glorot & Bengio's own normal variant has std sqrt(2 / (n_in + n_out)); the books and
    most RNN code use 1 / sqrt(n_in), which is what this is.
    """
    check_sizes(n_in=n_in, n_out=n_out)
    return normal((n_in, n_out), 1.0 / math.sqrt(n_in), dtype=dtype, generator=generator)


def he(n_in: int, n_out: int, *, dtype: Any = None, generator: Any = None) -> Any:
    """(n_in, n_out) from N(0, 2/n_in) (He et al. 2015, for ReLU layers)."""
    check_sizes(n_in=n_in, n_out=n_out)
    return normal((n_in, n_out), math.sqrt(2.0 / n_in), dtype=dtype, generator=generator)


def orthogonal(shape: int | Shape, gain: float = 1.0, *, dtype: Any = None,
               generator: Any = None) -> Any:
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al. 2014).

    For shape (R, C) (more axes are flattened to (shape[0], rest)): Q from the QR decomposition of
    a Gaussian matrix, with the signs of R's diagonal folded in so Q is uniformly distributed.
    Q.T @ Q = I when R >= C (orthonormal columns), Q @ Q.T = I when R < C (orthonormal rows).
    """
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"orthogonal needs at least 2 dimensions, got shape {shape}")
    rows, cols = shape[0], math.prod(shape[1:])
    check_sizes(rows=rows, cols=cols)
    a = _standard_normal((max(rows, cols), min(rows, cols)), generator)
    xp = array_module(a)
    q, r = xp.linalg.qr(a)                  # q (max, min) orthonormal columns
    q *= xp.sign(xp.diagonal(r))            # a sign per column: uniform (Haar) distribution
    if rows < cols:
        q = q.T                             # (min, max): orthonormal rows
    return _finish(gain * q.reshape(shape), dtype)


def uniform(shape: int | Shape, bound: float, *, dtype: Any = None,
            generator: Any = None) -> Any:
    """U(-bound, bound) of ``shape`` (PyTorch's default for RNN, LSTM, GRU and Linear weights
    and biases, with bound 1/sqrt(hidden size) or 1/sqrt(fan_in))."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    g = generator if generator is not None else rng()
    return _finish(g.uniform(-bound, bound, shape), dtype)


def zeros(shape: int | Shape, *, dtype: Any = None) -> Any:
    """Zeros of ``shape`` in ``dtype`` (default :func:`default_dtype`) on the current device."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return get_xp().zeros(shape, dtype=dtype if dtype is not None else default_dtype())


class _Initializer:
    """``W(n_in, n_out)`` -> (n_in, n_out) weights, ``B(n_out)`` -> (n_out,) biases."""

    def __init__(self, *, dtype: Any = None, generator: Any = None) -> None:
        self.dtype = dtype
        self.generator = generator

    def W(self, n_in: int, n_out: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def B(self, n_out: int) -> Any:
        return zeros(n_out, dtype=self.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Normal(_Initializer):
    """N(0, std^2) weights AND biases: DIVER's ``SimpleInitializer(sigma)``."""

    def __init__(self, std: float = 0.01, *, dtype: Any = None, generator: Any = None) -> None:
        super().__init__(dtype=dtype, generator=generator)
        self.std = float(std)

    def W(self, n_in: int, n_out: int) -> Any:
        check_sizes(n_in=n_in, n_out=n_out)
        return normal((n_in, n_out), self.std, dtype=self.dtype, generator=self.generator)

    def B(self, n_out: int) -> Any:
        return normal(n_out, self.std, dtype=self.dtype, generator=self.generator)

    def __repr__(self) -> str:
        return f"Normal(std={self.std})"


class Xavier(_Initializer):
    """W from N(0, 1/n_in) (see :func:`xavier`), B = 0."""

    def W(self, n_in: int, n_out: int) -> Any:
        return xavier(n_in, n_out, dtype=self.dtype, generator=self.generator)


class He(_Initializer):
    """W from N(0, 2/n_in) (see :func:`he`), B = 0."""

    def W(self, n_in: int, n_out: int) -> Any:
        return he(n_in, n_out, dtype=self.dtype, generator=self.generator)


class Orthogonal(_Initializer):
    """W = gain * (semi-)orthogonal matrix (see :func:`orthogonal`), B = 0."""

    def __init__(self, gain: float = 1.0, *, dtype: Any = None, generator: Any = None) -> None:
        super().__init__(dtype=dtype, generator=generator)
        self.gain = float(gain)

    def W(self, n_in: int, n_out: int) -> Any:
        return orthogonal((n_in, n_out), self.gain, dtype=self.dtype, generator=self.generator)

    def __repr__(self) -> str:
        return f"Orthogonal(gain={self.gain})"


class Uniform(_Initializer):
    """W and B from U(-bound, bound): ``torch.nn.LSTM``'s defaults with bound = 1/sqrt(H)."""

    def __init__(self, bound: float, *, dtype: Any = None, generator: Any = None) -> None:
        super().__init__(dtype=dtype, generator=generator)
        self.bound = float(bound)

    def W(self, n_in: int, n_out: int) -> Any:
        return uniform((n_in, n_out), self.bound, dtype=self.dtype, generator=self.generator)

    def B(self, n_out: int) -> Any:
        return uniform(n_out, self.bound, dtype=self.dtype, generator=self.generator)

    def __repr__(self) -> str:
        return f"Uniform(bound={self.bound})"


class Recurrent(_Initializer):
    """For a recurrent cell's ``init_params``: the first W (the input weight Wx) N(0, 1/n_in),
    every later W made of square (n_in, n_in) blocks (the recurrent weight Wh (H, G*H)) one
    orthogonal block per gate (Saxe et al. 2014), biases 0."""

    def __init__(self, *, dtype: Any = None, generator: Any = None) -> None:
        super().__init__(dtype=dtype, generator=generator)
        self.calls = 0

    def W(self, n_in: int, n_out: int) -> Any:
        self.calls += 1
        if self.calls == 1 or n_out % n_in:
            return xavier(n_in, n_out, dtype=self.dtype, generator=self.generator)
        blocks = [orthogonal((n_in, n_in), dtype=self.dtype, generator=self.generator)
                  for _ in range(n_out // n_in)]
        return get_xp().concatenate(blocks, axis=1)


def get_initializer(spec: Any, **kwargs: Any) -> _Initializer:
    """An initializer from a name ('normal', 'xavier', 'sigmoid', 'he', 'relu', 'orthogonal'),
    a float (a Normal std, as the book's ``weight_init_std``) or an initializer object."""
    if isinstance(spec, _Initializer):
        return spec
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Normal(float(spec), **kwargs)
    table = {"normal": Normal, "xavier": Xavier, "sigmoid": Xavier, "tanh": Xavier,
             "he": He, "relu": He, "orthogonal": Orthogonal}
    key = str(spec).lower()
    if key not in table:
        raise ValueError(f"unknown initializer {spec!r}: use a float std or one of "
                         f"{', '.join(sorted(table))}")
    return table[key](**kwargs)
