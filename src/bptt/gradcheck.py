"""Numerical differentiation and the gradient check every layer's tests use.

The check builds the scalar ``L = sum_k sum(out_k * r_k)`` from a layer's outputs with random
upstream gradients ``r_k`` (a plain sum would hide errors that cancel, e.g. in softmax), runs the
layer's own ``backward(r)`` and compares every input gradient and every ``grads[i]`` against
central differences

    dL/dx[i] ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

in float64. Each array's error is ``|a - n| / max(|a| + |n|, tiny)`` in the 2-norm; the report's
``worst`` is the largest of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backend import array_module, to_numpy


def numerical_gradient(f: Callable[[], float], x: Any, eps: float = 1e-6,
                       index: Sequence[tuple] | None = None) -> Any:
    """Central-difference gradient of the scalar ``f()`` with respect to the array ``x``.

    ``f`` takes no arguments and reads ``x`` (which is changed in place and restored), so it
    works for inputs and parameters alike. ``index`` limits the check to these positions
    (others are left 0). The book's ``numerical_gradient(f, x)`` with ``f(x)`` is
    :func:`numerical_gradient_fx`.
    """
    xp = array_module(x)
    grad = xp.zeros_like(x)
    positions = index if index is not None else np.ndindex(*x.shape)
    for i in positions:
        old = x[i].copy() if hasattr(x[i], "copy") else x[i]
        x[i] = old + eps
        f_plus = float(f())
        x[i] = old - eps
        f_minus = float(f())
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def numerical_gradient_fx(f: Callable[[Any], float], x: Any, eps: float = 1e-4) -> Any:
    """The book's form: gradient of ``f(x)`` at ``x`` by central differences."""
    return numerical_gradient(lambda: f(x), x, eps)


@dataclass
class GradcheckReport:
    """Relative error of each checked gradient; ``worst`` is the largest."""

    errors: dict[str, float] = field(default_factory=dict)

    @property
    def worst(self) -> float:
        return max(self.errors.values(), default=0.0)

    def __str__(self) -> str:
        rows = [f"  {name:<12} {err:.2e}" for name, err in self.errors.items()]
        return f"gradcheck worst relative error {self.worst:.2e}\n" + "\n".join(rows)


def relative_error(a: Any, n: Any) -> float:
    """``|a - n| / max(|a| + |n|, 1e-30)`` in the 2-norm (0 when both are exactly zero)."""
    a, n = to_numpy(a).astype(np.float64), to_numpy(n).astype(np.float64)
    diff = np.linalg.norm((a - n).ravel())
    scale = np.linalg.norm(a.ravel()) + np.linalg.norm(n.ravel())
    return float(diff / max(scale, 1e-30))


def _as_tuple(v: Any) -> tuple:
    return v if isinstance(v, tuple) else (v,)


def _is_float_array(v: Any) -> bool:
    return hasattr(v, "dtype") and v.dtype.kind == "f"


def gradcheck(layer: Any, inputs: Sequence[Any], *, wrt: Sequence[int] | None = None,
              seed: int = 0, eps: float = 1e-6, setup: Callable[[], None] | None = None,
              samples: int | None = None, check_params: bool = True) -> GradcheckReport:
    """Check ``layer.backward`` against numerical gradients of its inputs and parameters.

    Args:
        layer: object with ``forward(*inputs)``, ``backward(*douts)``, ``params`` and ``grads``.
            ``backward`` returns the gradients of the inputs in order (a tuple when several).
        inputs: arrays passed to ``forward``; use float64 for a meaningful check.
        wrt: indices of the inputs to check (default: every floating-point input); the
            gradient of ``inputs[i]`` is ``backward(...)[i]``.
        seed: seed of the random upstream gradients ``r``.
        setup: called before every forward, e.g. to re-seed dropout or reset a state.
        samples: check only this many random positions of each array (for big arrays).
        check_params: also check ``layer.grads`` against ``layer.params``.
    """
    rng = np.random.default_rng(seed)
    inputs = list(inputs)
    if wrt is None:
        wrt = [i for i, v in enumerate(inputs) if _is_float_array(v)]

    def run_forward() -> tuple:
        if setup is not None:
            setup()
        return _as_tuple(layer.forward(*inputs))

    outs = run_forward()
    xp = array_module(*outs)
    rs = tuple(xp.asarray(rng.standard_normal(o.shape), dtype=getattr(o, "dtype", None))
               for o in outs)

    def loss() -> float:
        return float(sum((o * r).sum() for o, r in zip(run_forward(), rs, strict=True)))

    loss()  # forward again so backward sees the caches of this exact call
    dins = _as_tuple(layer.backward(*rs))
    analytic: dict[str, tuple[Any, Any]] = {}
    for i in wrt:  # dins[i] is the gradient of inputs[i]
        if i >= len(dins) or dins[i] is None:
            raise AssertionError(f"backward returned no gradient for input {i}")
        analytic[f"input[{i}]"] = (inputs[i], dins[i].copy())
    if check_params:
        for j, (p, g) in enumerate(zip(layer.params, layer.grads, strict=True)):
            analytic[f"param[{j}]"] = (p, g.copy())

    report = GradcheckReport()
    for name, (x, a) in analytic.items():
        index = None
        if samples is not None and x.size > samples:
            flat = rng.choice(x.size, samples, replace=False)
            index = [np.unravel_index(f, x.shape) for f in flat]
        n = numerical_gradient(loss, x, eps, index)
        if index is not None:
            a = to_numpy(a)
            sel = tuple(np.array(ix) for ix in zip(*index, strict=True))
            a, n = a[sel], to_numpy(n)[sel]
        report.errors[name] = relative_error(a, n)
    return report
