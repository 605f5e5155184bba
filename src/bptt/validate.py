"""Checks that turn bad input into errors naming the problem and the fix.

Kept cheap (shape and dtype comparisons, one min/max on label arrays), so layers call them on
every forward.
"""

from __future__ import annotations

from typing import Any

from .backend import array_module


def check_sizes(**sizes: Any) -> None:
    """Each size (``hidden_size=H``, ...) is a positive integer, or a ValueError naming it: the
    one check of sizes in the library (the command line names its flags instead)."""
    for name, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


def check_float(name: str, x: Any) -> None:
    """Raise TypeError unless ``x`` is a floating-point array."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or dtype.kind != "f":
        raise TypeError(
            f"{name} must be a floating-point array (float32 or float64), got "
            f"{type(x).__name__} of dtype {dtype}; convert with x.astype(np.float32)"
        )


def check_last_dim(name: str, x: Any, size: int, what: str) -> None:
    """Raise ValueError unless ``x.shape[-1] == size``."""
    if x.ndim == 0 or x.shape[-1] != size:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)} but its last axis must be {size} ({what})"
        )


def check_ndim(name: str, x: Any, ndim: int, letters: str) -> None:
    """Raise ValueError unless ``x`` has ``ndim`` axes, naming the expected shape letters."""
    if getattr(x, "ndim", None) != ndim:
        raise ValueError(
            f"{name} must have shape ({letters}), got shape {tuple(getattr(x, 'shape', ()))}"
        )


def check_labels(name: str, t: Any, n_classes: int, ignore_label: int | None = None) -> None:
    """Raise unless ``t`` holds integer ids in [0, n_classes) (``ignore_label`` allowed too)."""
    dtype = getattr(t, "dtype", None)
    if dtype is None or dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of class ids, got dtype {dtype}")
    if t.size == 0:
        return
    xp = array_module(t)
    valid = t if ignore_label is None else t[t != ignore_label]
    if valid.size == 0:
        return
    lo, hi = int(xp.min(valid)), int(xp.max(valid))
    if lo < 0 or hi >= n_classes:
        bad = lo if lo < 0 else hi
        extra = f" (or {ignore_label} for padding)" if ignore_label is not None else ""
        raise ValueError(
            f"{name} holds id {bad}, outside the valid range [0, {n_classes - 1}]{extra}; "
            f"is the vocabulary or the number of classes right?"
        )


def check_same_shape(a_name: str, a: Any, b_name: str, b: Any) -> None:
    """Raise ValueError unless two arrays have the same shape."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{a_name} has shape {tuple(a.shape)} but {b_name} has shape {tuple(b.shape)}; "
            f"they must match"
        )
