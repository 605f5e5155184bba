"""Optimizers, gradient clipping and tied-weight merging (Deep Learning from Scratch 1 ch. 6, 2).

Every optimizer updates the parameter arrays IN PLACE (``p -= ...``; layers and models hold these
very arrays) in the parameters' own dtype and array module (NumPy or CuPy). ``update`` takes

- ``update(params, grads)`` with two lists (DL2: ``model.params, model.grads``),
- ``update(params, grads)`` with two dicts of the same keys (DL1: ``network.params, grads``),
- ``update(layer)`` with one object having ``.params`` and ``.grads`` (one layer or a model).

State (velocities, moments) is kept per parameter position (list index or dict key) and created
on the first update. ``state_dict()`` returns plain NumPy arrays and Python scalars, so a
checkpoint can store it in ``.npz``/JSON; ``load_state_dict`` restores it and training resumes
exactly. ``lr`` is a plain attribute: change it between updates for learning-rate decay.

Symbols: p parameter, g its gradient, lr learning rate, t the update count (from 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from . import kernels
from .backend import array_module, to_numpy

__all__ = [
    "Optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "NTASGD",
    "OPTIMIZERS", "make_optimizer", "clip_grads", "merge_shared",
]


def _pairs(params: Any, grads: Any) -> list[tuple[str, Any, Any]]:
    """(key, p, g) triples from lists, dicts or one object with ``.params``/``.grads``."""
    if grads is None:
        if not (hasattr(params, "params") and hasattr(params, "grads")):
            raise TypeError(
                "update(x) with one argument needs an object with .params and .grads "
                f"(a layer or a model), got {type(params).__name__}; or call update(params, grads)"
            )
        params, grads = params.params, params.grads
    if isinstance(params, Mapping):
        if not isinstance(grads, Mapping) or set(grads) != set(params):
            got = sorted(grads) if isinstance(grads, Mapping) else type(grads).__name__
            raise ValueError(f"params has keys {sorted(params)} but grads has {got}; "
                             f"they must match")
        triples = [(str(k), params[k], grads[k]) for k in params]
    else:
        params, grads = list(params), list(grads)
        if len(params) != len(grads):
            raise ValueError(f"{len(params)} params but {len(grads)} grads; they must pair up")
        triples = [(str(i), p, g) for i, (p, g) in enumerate(zip(params, grads, strict=True))]
    for key, p, g in triples:
        if tuple(p.shape) != tuple(g.shape):
            raise ValueError(f"parameter {key} has shape {tuple(p.shape)} but its gradient has "
                             f"shape {tuple(g.shape)}")
    return triples


class Optimizer:
    """Base class: subclasses define ``_step(p, g, state)`` and the names of their state arrays.

    ``slots`` name the per-parameter arrays (e.g. ``("m", "v")``); ``hyper`` the float
    hyperparameters saved in ``state_dict`` besides ``lr``.
    """

    slots: tuple[str, ...] = ()
    hyper: tuple[str, ...] = ()

    def __init__(self, lr: float) -> None:
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.lr = float(lr)
        self.iter = 0  # number of updates done (t)
        self.state: dict[str, dict[str, Any]] = {}  # key -> slot -> array
        self._scratch: dict[tuple, Any] = {}  # work arrays by shape (not state, never saved)

    def update(self, params: Any, grads: Any = None) -> None:
        """One step on every parameter, in place. See the module docstring for the forms."""
        triples = _pairs(params, grads)
        self.iter += 1
        for key, p, g in triples:
            st = self.state.get(key)
            if st is None:
                xp = array_module(p)
                st = self.state[key] = {s: xp.zeros_like(p) for s in self.slots}
            else:
                st = self._on_device(key, st, p)
            self._step(p, g, st)

    def _on_device(self, key: str, st: dict[str, Any], p: Any) -> dict[str, Any]:
        # state loaded by load_state_dict is NumPy: move it to p's module and dtype once
        xp = array_module(p)
        for s, a in st.items():
            if tuple(a.shape) != tuple(p.shape):
                raise ValueError(f"optimizer state {s}/{key} has shape {tuple(a.shape)} but the "
                                 f"parameter has shape {tuple(p.shape)}: wrong model?")
            if array_module(a) is not xp or a.dtype != p.dtype:
                st[s] = xp.asarray(a, dtype=p.dtype)
        return st

    def _step(self, p: Any, g: Any, st: dict[str, Any]) -> None:  # pragma: no cover
        raise NotImplementedError

    def _scratch_like(self, p: Any) -> Any:
        """An uninitialised work array of p's shape and dtype, reused across steps (not state)."""
        xp = array_module(p)
        key = (tuple(p.shape), str(p.dtype), xp.__name__)
        if key not in self._scratch:
            self._scratch[key] = xp.empty(p.shape, dtype=p.dtype)
        return self._scratch[key]

    def state_dict(self) -> dict[str, Any]:
        """``{'lr', 'iter', hyperparameters..., '<slot>/<key>': array}``, NumPy arrays only."""
        d: dict[str, Any] = {"lr": self.lr, "iter": self.iter}
        d.update({h: getattr(self, h) for h in self.hyper})
        for key, st in self.state.items():
            for s, a in st.items():
                d[f"{s}/{key}"] = np.array(to_numpy(a))  # a copy, never an alias
        return d

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (arrays may come back from an .npz)."""
        allowed = {"lr", "iter", *self.hyper}
        state: dict[str, dict[str, Any]] = {}
        for name, v in d.items():
            if name in allowed:
                continue
            slot, sep, key = name.partition("/")
            if not sep or slot not in self.slots:
                raise ValueError(f"unexpected entry {name!r} in the state of "
                                 f"{type(self).__name__} (state of another optimizer?)")
            state.setdefault(key, {})[slot] = np.array(v)
        for key, st in state.items():
            missing = set(self.slots) - set(st)
            if missing:
                raise ValueError(f"state of parameter {key} lacks {sorted(missing)}")
        self.lr = float(d["lr"]) if "lr" in d else self.lr
        self.iter = int(d.get("iter", 0))
        for h in self.hyper:
            if h in d:
                setattr(self, h, float(d[h]))
        self.state = state

    def __repr__(self) -> str:
        hp = "".join(f", {h}={getattr(self, h)}" for h in self.hyper)
        return f"{type(self).__name__}(lr={self.lr}{hp})"


def _flat_alike(*arrays: Any) -> list[Any] | None:
    """1-D views of arrays laid out alike (same shape, dtype and strides, one contiguous
    block), element i of each the same position; None otherwise."""
    first = arrays[0]
    if not (first.flags.c_contiguous or first.flags.f_contiguous):
        return None
    for a in arrays:
        if (a.shape != first.shape or a.dtype != first.dtype or a.strides != first.strides
                or not a.flags.writeable):
            return None
    return [a.ravel("K") for a in arrays]


def _compiled(p: Any, *others: Any) -> tuple[Any, list[Any]] | tuple[None, None]:
    """The compiled updates (:func:`bptt.kernels.update_kernels`) and 1-D views of p and the
    others, when they apply (NumPy arrays laid out alike, float32/float64, Numba installed)."""
    updates = kernels.update_kernels(array_module(p), p.dtype)
    flat = _flat_alike(p, *others) if updates is not None else None
    return (updates, flat) if flat is not None else (None, None)


class SGD(Optimizer):
    """Stochastic gradient descent.

        p -= lr * g

    One compiled pass with the ``numba`` extra (:mod:`bptt.numba_updates`), the same bits.
    """

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)

    def _step(self, p: Any, g: Any, st: dict[str, Any]) -> None:
        updates, flat = _compiled(p, g)
        if updates is not None:
            updates.sgd(*flat, p.dtype.type(self.lr))
            return
        step = self._scratch_like(p)  # no temporary of p's size (page faults each update)
        array_module(p).multiply(g, self.lr, out=step)
        p -= step


class Momentum(Optimizer):
    """Momentum SGD, the book's form (learning rate inside the velocity v, v0 = 0).

        v = momentum * v - lr * g
        p += v

    With a constant lr this equals ``torch.optim.SGD(lr, momentum)`` (whose buffer is -v / lr).
    """

    slots = ("v",)
    hyper = ("momentum",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = float(momentum)

    def _step(self, p: Any, g: Any, st: dict[str, Any]) -> None:
        v = st["v"]
        v *= self.momentum
        v -= self.lr * g
        p += v


class Nesterov(Optimizer):
    """Nesterov accelerated gradient (Sutskever et al. 2013, in the form of Bengio et al. 2012).

    With mu = momentum and v the velocity before this step (v0 = 0):

        p += mu * mu * v - (1 + mu) * lr * g       (uses the OLD v)
        v  = mu * v - lr * g

    i.e. ``p += mu * v_new - lr * g``. (Code that updates v first and then adds mu*mu*v_new is
    not Nesterov's method: the order above is the corrected one.) With a constant lr it equals
    ``torch.optim.SGD(lr, momentum=mu, nesterov=True)``, whose lr-free buffer is -v / lr; a
    test checks this.
    """

    slots = ("v",)
    hyper = ("momentum",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = float(momentum)

    def _step(self, p: Any, g: Any, st: dict[str, Any]) -> None:
        mu, v = self.momentum, st["v"]
        p += (mu * mu) * v
        p -= ((1 + mu) * self.lr) * g
        v *= mu
        v -= self.lr * g


class AdaGrad(Optimizer):
    """AdaGrad: per-element learning rates shrinking with the sum of squared gradients.

        h += g * g
        p -= lr * g / (sqrt(h) + eps)

    ``eps`` = 1e-7 as in the book (torch.optim.Adagrad uses 1e-10).
    """

    slots = ("h",)
    hyper = ("eps",)

    def __init__(self, lr: float = 0.01, eps: float = 1e-7) -> None:
        super().__init__(lr)
        self.eps = float(eps)

    def _step(self, p: Any, g: Any, st: dict[str, Any]) -> None:
        xp, h = array_module(p), st["h"]
        h += g * g
        p -= self.lr * g / (xp.sqrt(h) + self.eps)


class RMSprop(Optimizer):
    """RMSprop: AdaGrad with an exponential moving average of squared gradients.

        h = decay_rate * h + (1 - decay_rate) * g * g
        p -= lr * g / (sqrt(h) + eps)

    ``eps`` = 1e-7 as in the book; ``torch.optim.RMSprop(alpha=decay_rate, eps=eps)`` is the same.
    """

    slots = ("h",)
    hyper = ("decay_rate", "eps")

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99, eps: float = 1e-7) -> None:
        super().__init__(lr)
        self.decay_rate = float(decay_rate)
        self.eps = float(eps)

    def _step(self, p: Any, g: Any, st: dict[str, Any]) -> None:
        xp, h = array_module(p), st["h"]
        h *= self.decay_rate
        h += (1 - self.decay_rate) * g * g
        p -= self.lr * g / (xp.sqrt(h) + self.eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, in the form of ``torch.optim.Adam``.

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    t counts updates from 1. (The book folds both corrections into lr_t and adds eps to sqrt(v);
    the two differ only through eps.) ``eps`` = 1e-8 as in the paper and PyTorch. One compiled
    pass with the ``numba`` extra (:mod:`bptt.numba_updates`), the same bits as the passes below.
    """

    slots = ("m", "v")
    hyper = ("beta1", "beta2", "eps")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8) -> None:
        super().__init__(lr)
        for name, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {b}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def _step(self, p: Any, g: Any, st: dict[str, Any]) -> None:
        xp, m, v = array_module(p), st["m"], st["v"]
        t = self.iter
        root_bc2 = math.sqrt(1 - self.beta2**t)
        updates, flat = _compiled(p, g, m, v)
        if updates is not None:
            f = p.dtype.type  # NumPy's passes take each Python float in p's dtype
            updates.adam(*flat, f(1 - self.beta1), f(self.beta2), f(1 - self.beta2),
                         f(self.eps * root_bc2), f(self.lr * root_bc2 / (1 - self.beta1**t)))
            return
        tmp = self._scratch_like(p)  # every pass in place: no temporaries
        xp.subtract(g, m, out=tmp)  # m = m + (1 - beta1) (g - m), PyTorch's lerp_
        tmp *= 1 - self.beta1
        m += tmp
        v *= self.beta2  # v = beta2 v + (1 - beta2) g g
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - self.beta2
        v += tmp
        # p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
        #    = lr sqrt(bc2) / bc1 * m / (sqrt(v) + eps sqrt(bc2)),  bc_k = 1 - beta_k**t
        xp.sqrt(v, out=tmp)
        tmp += self.eps * root_bc2
        xp.divide(m, tmp, out=tmp)
        tmp *= self.lr * root_bc2 / (1 - self.beta1**t)
        p -= tmp


class NTASGD(Optimizer):
    """Non-monotonically triggered averaged SGD (Merity, Keskar & Socher 2017, AWD-LSTM).

        p -= lr * g                                       every update (plain SGD)
        trigger: at an evaluation, the monitored value (validation loss or perplexity) is
                 worse than the best of all evaluations but the last ``nonmono``
        after it, k = updates since the trigger:  avg += (p - avg) / k

    The trainer calls ``observe(value)`` at every epoch's evaluation and evaluates (and saves as
    the best) the averaged weights: ``swap_average(params)`` exchanges p and avg in place, a
    second call swaps back. ``state_dict`` holds avg, the trigger, k and the evaluations seen.
    """

    slots = ("avg",)
    hyper = ("nonmono", "triggered", "averaged")

    def __init__(self, lr: float = 30.0, nonmono: int = 5) -> None:
        super().__init__(lr)
        if int(nonmono) != nonmono or nonmono < 1:
            raise ValueError(f"nonmono must be a positive integer, got {nonmono!r}")
        self.nonmono = float(nonmono)
        self.triggered = 0.0  # 1 once averaging has started
        self.averaged = 0.0   # k: updates averaged so far
        self.history: list[float] = []

    def update(self, params: Any, grads: Any = None) -> None:
        if self.triggered:
            self.averaged += 1
        super().update(params, grads)

    def _step(self, p: Any, g: Any, st: dict[str, Any]) -> None:
        p -= self.lr * g
        if self.triggered:
            avg = st["avg"]
            avg += (p - avg) / self.averaged  # avg = p at the first averaged update

    def observe(self, value: float) -> bool:
        """Record an evaluation; start averaging when the trigger fires. True if it fired."""
        self.history.append(float(value))
        n = int(self.nonmono)
        if not self.triggered and len(self.history) > n \
                and self.history[-1] > min(self.history[:-n]):
            self.triggered = 1.0
            return True
        return False

    def swap_average(self, params: Any) -> bool:
        """Exchange the parameters with their averages (in place); False if not averaging yet."""
        if not self.averaged:
            return False
        for key, p, _ in _pairs(params, params):
            avg = self._on_device(key, self.state[key], p)["avg"]
            held = p.copy()
            p[...] = avg
            avg[...] = held
        return True

    def state_dict(self) -> dict[str, Any]:
        d = super().state_dict()
        d["history"] = np.array(self.history, dtype=np.float64)
        return d

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        d = dict(d)
        history = d.pop("history", np.zeros(0))
        super().load_state_dict(d)
        self.history = [float(v) for v in np.asarray(history, dtype=np.float64).ravel()]


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD, "momentum": Momentum, "nesterov": Nesterov,
    "adagrad": AdaGrad, "rmsprop": RMSprop, "adam": Adam, "ntasgd": NTASGD,
}


def make_optimizer(name: str, lr: float | None = None, **kwargs: Any) -> Optimizer:
    """An optimizer by name ('sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adam';
    case-insensitive), with ``lr`` (None: the class default) and its other keyword arguments."""
    cls = OPTIMIZERS.get(str(name).lower())
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}: use one of {', '.join(OPTIMIZERS)}")
    return cls(**kwargs) if lr is None else cls(lr=lr, **kwargs)


def _values(grads: Any) -> list[Any]:
    return list(grads.values()) if isinstance(grads, Mapping) else list(grads)


def clip_grads(grads: Iterable[Any] | Mapping[str, Any], max_norm: float) -> float:
    """Scale all gradients in place so their global L2 norm is at most ``max_norm``.

        norm = sqrt(sum over all g of sum(g**2))
        if norm > max_norm:  g *= max_norm / norm   (for every g)

    Returns the norm BEFORE clipping (as a Python float). Call it between ``backward`` and
    ``update``, never inside a layer. A non-finite norm is returned as is and nothing is scaled.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    gs = _values(grads)
    if not gs:
        return 0.0
    xp = array_module(gs[0])
    # sum(g**2) as one BLAS dot product per array, in its own dtype: no squared or float64 copy
    # (10x faster on float32 grads); ravel('K') copies nothing for any contiguous layout
    total = math.sqrt(sum(float(xp.vdot(v, v)) for v in (g.ravel("K") for g in gs)))
    if not math.isfinite(total):  # a float32 sum of squares may overflow: redo in float64
        total = float(xp.sqrt(sum((g.astype(xp.float64, copy=False) ** 2).sum() for g in gs)))
    if math.isfinite(total) and total > max_norm:
        rate = max_norm / total
        for g in gs:
            g *= rate
    return total


def _data_ptr(a: Any) -> int:
    if hasattr(a, "__array_interface__"):
        return a.__array_interface__["data"][0]
    return int(a.data.ptr)  # cupy


def _relation(a: Any, b: Any) -> str | None:
    """'same' if b is a (or the same view), 'T' if b is a's 2-D transpose, None if disjoint."""
    if a is b:
        return "same"
    xp = array_module(a)
    if array_module(b) is not xp or a.dtype != b.dtype or a.size != b.size:
        return None
    if not xp.shares_memory(a, b):
        return None
    if _data_ptr(a) == _data_ptr(b):
        if a.shape == b.shape and a.strides == b.strides:
            return "same"
        if a.ndim == b.ndim == 2 and b.shape == a.shape[::-1] and b.strides == a.strides[::-1]:
            return "T"
    raise ValueError(f"parameters of shapes {tuple(a.shape)} and {tuple(b.shape)} overlap in "
                     f"memory but are neither the same array nor a transpose; cannot merge them")


def merge_shared(params: list[Any], grads: list[Any]) -> tuple[list[Any], list[Any]]:
    """Keep each shared parameter once and sum the gradients of all its uses into it.

    Two entries are the same parameter when they are the same array (``is``) or views of the same
    memory (also a 2-D transpose, e.g. an embedding matrix ``W`` tied to a softmax weight
    ``W.T``). Values are never compared: two equal but separate arrays stay separate. For a
    transposed use, ``g_kept += g.T``. The kept gradient arrays are updated in place (the next
    ``backward`` overwrites them anyway); a gradient that is the very same array as the kept one
    (a layer listed twice) is not added twice. Returns new lists (params, grads).
    This is the book's ``remove_duplicate``, without its value comparison.
    """
    params, grads = list(params), list(grads)
    if len(params) != len(grads):
        raise ValueError(f"{len(params)} params but {len(grads)} grads; they must pair up")
    kept_p: list[Any] = []
    kept_g: list[Any] = []
    for p, g in zip(params, grads, strict=True):
        for i, q in enumerate(kept_p):
            rel = _relation(q, p)
            if rel is None:
                continue
            if g is not kept_g[i]:
                kept_g[i] += g if rel == "same" else g.T
            break
        else:
            kept_p.append(p)
            kept_g.append(g)
    return kept_p, kept_g
