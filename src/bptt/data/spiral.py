"""The spiral toy set of Deep Learning from Scratch 2 (ch. 1): 2-D points on interleaved arms.

For class j and point i of n (rate = i / n):

    radius = rate
    theta  = 4 j + 4 rate + 0.2 * N(0, 1)
    x      = (radius * sin(theta), radius * cos(theta))

Generated, never downloaded. Not linearly separable: a linear classifier reaches about 1/C, a
small MLP close to 100%.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import default_dtype

__all__ = ["load_spiral"]


def load_spiral(n_per_class: int = 100, n_classes: int = 3, seed: int = 0, *,
                one_hot: bool = True, dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(x, t): x (n_per_class * n_classes, 2) points; t one-hot (N, C) int32 as in the book, or
    class ids (N,) int64 with ``one_hot=False``. NumPy arrays in ``dtype`` (default float32).

    The noise comes from ``numpy.random.default_rng(seed)``, so the set is the same on every
    machine (the points differ from the book's, which used the global ``np.random.seed(1984)``).
    """
    if n_per_class < 1 or n_classes < 1:
        raise ValueError(f"n_per_class and n_classes must be >= 1, got {n_per_class}, "
                         f"{n_classes}")
    rng = np.random.default_rng(seed)
    rate = np.arange(n_per_class) / n_per_class                          # (n,)
    j = np.repeat(np.arange(n_classes), n_per_class)                     # (N,)
    rate = np.tile(rate, n_classes)                                      # (N,)
    theta = 4.0 * j + 4.0 * rate + 0.2 * rng.standard_normal(j.shape[0])
    x = np.stack([rate * np.sin(theta), rate * np.cos(theta)], axis=1)  # (N, 2)
    x = x.astype(dtype if dtype is not None else default_dtype())
    if one_hot:
        t = np.zeros((j.shape[0], n_classes), dtype=np.int32)
        t[np.arange(j.shape[0]), j] = 1
        return x, t
    return x, j.astype(np.int64)
