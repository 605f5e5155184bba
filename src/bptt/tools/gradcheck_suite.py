"""The registry of layers that ``bptt gradcheck`` checks, and the function that runs it.

Each case builds a small float64 layer with random parameters (random biases too) and inputs on
the current device. Recurrent and Time layers are looked up by name on the ``bptt`` package, so
they join the suite as soon as they are exported there.

    for r in run_suite(tol=1e-6):
        print(r.name, r.worst, r.passed)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backend import to_device
from ..gradcheck import gradcheck
from ..nn.layers import (
    AddLayer,
    Affine,
    Dropout,
    Embedding,
    MulLayer,
    ReLU,
    Sigmoid,
    Softmax,
    SoftmaxWithLoss,
    Tanh,
)

__all__ = ["GradcheckCase", "SuiteResult", "layer_cases", "run_suite"]

# sizes of every case: batch N, time T, input D, hidden H, vocabulary / classes V
N, T, D, H, V = 2, 3, 3, 4, 5


@dataclass
class GradcheckCase:
    """A layer, the inputs of its ``forward`` and extra :func:`gradcheck` arguments."""

    layer: Any
    inputs: list[Any]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SuiteResult:
    name: str
    worst: float
    passed: bool
    error: str | None = None  # the case could not be built or run


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _arrays(*shapes: tuple[int, ...], scale: float = 0.5) -> list[Any]:
    r = _rng()
    return [to_device(scale * r.standard_normal(s), dtype=np.float64) for s in shapes]


def _ids(shape: tuple[int, ...], high: int) -> Any:
    return to_device(_rng().integers(0, high, size=shape))


def _away_from_zero(shape: tuple[int, ...]) -> Any:
    x = _rng().standard_normal(shape)
    return to_device(np.where(np.abs(x) < 0.1, 0.5, x))  # ReLU's kink is at 0


def _stateless(cls: Any, *inputs: Any) -> Callable[[], GradcheckCase]:
    return lambda: GradcheckCase(cls(), list(inputs))


def _reseeded_dropout(make: Callable[[Any], Any], shape: tuple[int, ...]) -> GradcheckCase:
    layer = make(np.random.default_rng(0))

    def setup() -> None:  # the same mask on every forward of the check
        layer.generator = np.random.default_rng(1)

    return GradcheckCase(layer, _arrays(shape, scale=1.0), {"setup": setup})


def _cell(cls: Any, gates: int, n_states: int) -> GradcheckCase:
    Wx, Wh, b = _arrays((D, gates * H), (H, gates * H), (gates * H,))
    x, *states = _arrays((N, D), *[(N, H)] * n_states, scale=1.0)
    return GradcheckCase(cls(Wx, Wh, b), [x, *states])


def _time_recurrent(cls: Any, gates: int) -> GradcheckCase:
    Wx, Wh, b = _arrays((D, gates * H), (H, gates * H), (gates * H,))
    layer = cls(Wx, Wh, b)
    setup = getattr(layer, "reset_state", None)
    return GradcheckCase(layer, _arrays((N, T, D), scale=1.0), {"setup": setup})


def _time_softmax_loss(cls: Any) -> GradcheckCase:
    xs = _arrays((N, T, V), scale=2.0)[0]
    ts = _rng().integers(0, V, size=(N, T))
    ts[0, 1] = -1  # an ignored (padding) position
    return GradcheckCase(cls(), [xs, to_device(ts)], {"wrt": [0]})


def layer_cases() -> list[tuple[str, Callable[[], GradcheckCase]]]:
    """(name, factory) for every layer to check; factories build a fresh :class:`GradcheckCase`.

    Feed-forward layers always; RNN, LSTM, GRU, TimeRNN, TimeLSTM, TimeGRU (constructors
    ``(Wx, Wh, b)`` with 1, 4, 3 gate blocks), TimeEmbedding(W), TimeAffine(W, b),
    TimeSoftmaxWithLoss() and TimeDropout when ``bptt`` exports them.
    """
    import bptt  # at call time: layers other modules export join the suite

    def xy() -> list[Any]:
        return _arrays((N, H), (N, H), scale=1.0)

    cases: list[tuple[str, Callable[[], GradcheckCase]]] = [
        ("MulLayer", lambda: GradcheckCase(MulLayer(), xy())),
        ("AddLayer", lambda: GradcheckCase(AddLayer(), xy())),
        ("ReLU", lambda: GradcheckCase(ReLU(), [_away_from_zero((N, H))])),
        ("Sigmoid", lambda: GradcheckCase(Sigmoid(), _arrays((N, H), scale=2.0))),
        ("Tanh", lambda: GradcheckCase(Tanh(), _arrays((N, H), scale=2.0))),
        ("Softmax", lambda: GradcheckCase(Softmax(), _arrays((N, V), scale=2.0))),
        ("Affine", lambda: GradcheckCase(Affine(*_arrays((D * 2, H), (H,))),
                                         _arrays((N, D, 2), scale=1.0))),
        ("SoftmaxWithLoss", lambda: GradcheckCase(
            SoftmaxWithLoss(), [_arrays((N + 2, V), scale=2.0)[0], _ids((N + 2,), V)])),
        ("Dropout", lambda: _reseeded_dropout(lambda g: Dropout(0.3, generator=g), (N, H))),
        ("Embedding", lambda: GradcheckCase(
            Embedding(_arrays((V, D))[0]), [to_device(np.array([[1, 3, 1], [4, 1, 0]]))])),
    ]
    gates = {"RNN": 1, "LSTM": 4, "GRU": 3}
    for name, g in gates.items():
        cls = getattr(bptt, name, None)
        if cls is not None:
            cases.append((name, lambda cls=cls, g=g: _cell(cls, g, 2 if g == 4 else 1)))
    for name, g in gates.items():
        cls = getattr(bptt, "Time" + name, None)
        if cls is not None:
            cases.append(("Time" + name, lambda cls=cls, g=g: _time_recurrent(cls, g)))
    cls = getattr(bptt, "TimeEmbedding", None)
    if cls is not None:
        cases.append(("TimeEmbedding", lambda cls=cls: GradcheckCase(
            cls(_arrays((V, D))[0]), [_ids((N, T), V)])))
    cls = getattr(bptt, "TimeAffine", None)
    if cls is not None:
        cases.append(("TimeAffine", lambda cls=cls: GradcheckCase(
            cls(*_arrays((D, V), (V,))), _arrays((N, T, D), scale=1.0))))
    cls = getattr(bptt, "TimeSoftmaxWithLoss", None)
    if cls is not None:
        cases.append(("TimeSoftmaxWithLoss", lambda cls=cls: _time_softmax_loss(cls)))
    cls = getattr(bptt, "TimeDropout", None)
    if cls is not None:
        cases.append(("TimeDropout", lambda cls=cls: _reseeded_dropout(
            lambda g: cls(0.3, generator=g), (N, T, D))))
    return cases


def run_suite(names: Sequence[str] | None = None, tol: float = 1e-6,
              seed: int = 0) -> list[SuiteResult]:
    """Gradcheck the layers named (case-insensitive; default all) and report each one.

    Raises ValueError for an unknown name, listing the known ones. A case that raises is
    reported as failed with its error message instead of stopping the run.
    """
    cases = layer_cases()
    if names:
        by_name = {n.lower(): (n, f) for n, f in cases}
        unknown = [n for n in names if n.lower() not in by_name]
        if unknown:
            raise ValueError(f"unknown layer {', '.join(map(repr, unknown))}; known layers: "
                             f"{', '.join(n for n, _ in cases)}")
        wanted = dict.fromkeys(n.lower() for n in names)  # keep order, drop repeats
        cases = [by_name[n] for n in wanted]
    results = []
    for name, factory in cases:
        try:
            case = factory()
            report = gradcheck(case.layer, case.inputs, seed=seed, **case.options)
        except Exception as e:  # report and go on: one broken layer must not hide the rest
            results.append(SuiteResult(name, float("nan"), False, f"{type(e).__name__}: {e}"))
            continue
        worst = report.worst
        results.append(SuiteResult(name, worst, bool(worst < tol)))
    return results
