"""The registry of layers that ``bptt gradcheck`` checks, and the function that runs it.

Each case builds a small float64 layer with random parameters (random biases too) and inputs on
the current device. Every cell of the registry (:func:`bptt.register_cell`) joins the suite:
its one-step class, its fused Time layer if it has one, and the generic ``TimeCell``.

    for r in run_suite(tol=1e-6):
        print(r.name, r.worst, r.passed)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...backend import to_device, to_numpy
from ...gradcheck import gradcheck
from ...nn.attention import Attention, AttentionWeight, TimeAttention, WeightSum
from ...nn.cell_spec import CellSpec
from ...nn.layers import (
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
from ...nn.registry import CELLS, make_time_layer
from ...nn.time_layers import TimeAffine, TimeDropout, TimeEmbedding, TimeSoftmaxWithLoss

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


class _Draws:
    """An initializer drawing every weight and bias from N(0, 0.5^2) in float64 (a cell's own
    ``init_params`` decides the rest, e.g. IndRNN's u inside its constraint)."""

    def __init__(self) -> None:
        self.rng = _rng()

    def W(self, n_in: int, n_out: int) -> Any:
        return to_device(0.5 * self.rng.standard_normal((n_in, n_out)), dtype=np.float64)

    def B(self, n_out: int) -> Any:
        return to_device(0.5 * self.rng.standard_normal(n_out), dtype=np.float64)


def _cell_params(spec: CellSpec) -> list[Any]:
    return spec.init_params(D, H, _Draws())


def _cell(spec: CellSpec) -> GradcheckCase:
    x, h, *c = _arrays((N, D), *[(N, w) for w in spec.state_widths(H)], scale=1.0)
    h = abs(h)  # h >= 0, as a ReLU cell's state is (a tanh cell's may be either sign)
    return GradcheckCase(spec.make_step(*_cell_params(spec)), [x, h, *c])


def _time_recurrent(spec: CellSpec, fused: bool) -> GradcheckCase:
    layer = make_time_layer(spec, *_cell_params(spec), fused=fused)
    return GradcheckCase(layer, _arrays((N, T, D), scale=1.0), {"setup": layer.reset_state})


def _time_softmax_loss(cls: Any) -> GradcheckCase:
    xs = _arrays((N, T, V), scale=2.0)[0]
    ts = _rng().integers(0, V, size=(N, T))
    ts[0, 1] = -1  # an ignored (padding) position
    return GradcheckCase(cls(), [xs, to_device(ts)], {"wrt": [0]})


def _time_attention(score: str, shapes: list[tuple[int, ...]]) -> GradcheckCase:
    layer = TimeAttention(score, _arrays(*shapes) if shapes else [])
    mask = to_device(np.arange(T)[None, :] < np.array([T, T - 1])[:, None])  # one padded
    return GradcheckCase(layer, [*_arrays((N, T, H), (N, T + 1, H), scale=1.0), mask],
                         {"wrt": [0, 1]})


def layer_cases() -> list[tuple[str, Callable[[], GradcheckCase]]]:
    """(name, factory) for every layer to check; factories build a fresh :class:`GradcheckCase`.

    Feed-forward layers; for every registered cell (:func:`bptt.register_cell`) its one-step
    class (RNN, LSTM, GRU...), its fused Time layer (TimeRNN...) and the generic
    ``TimeCell[name]``; TimeEmbedding(W), TimeAffine(W, b), TimeSoftmaxWithLoss() and
    TimeDropout when ``bptt`` exports them.
    """
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
    for spec in CELLS.values():  # every registered cell: its step, fused and generic layers
        cases.append((spec.step.__name__, lambda spec=spec: _cell(spec)))
        if spec.time_layer is not None:
            cases.append((spec.time_layer.__name__,
                          lambda spec=spec: _time_recurrent(spec, fused=True)))
        cases.append((f"TimeCell[{spec.name}]", lambda spec=spec: _time_recurrent(spec, False)))
    cases += [
        ("TimeEmbedding", lambda: GradcheckCase(TimeEmbedding(_arrays((V, D))[0]),
                                                [_ids((N, T), V)])),
        ("TimeAffine", lambda: GradcheckCase(TimeAffine(*_arrays((D, V), (V,))),
                                             _arrays((N, T, D), scale=1.0))),
        ("TimeSoftmaxWithLoss", lambda: _time_softmax_loss(TimeSoftmaxWithLoss)),
        ("TimeDropout", lambda: _reseeded_dropout(lambda g: TimeDropout(0.3, generator=g),
                                                  (N, T, D))),
        ("AttentionWeight", lambda: GradcheckCase(AttentionWeight(), _arrays((N, T, H), (N, H)))),
        ("WeightSum", lambda: GradcheckCase(WeightSum(), _arrays((N, T, H), (N, T)))),
        ("Attention", lambda: GradcheckCase(Attention(), _arrays((N, T, H), (N, H)))),
    ]
    for score, shapes in (("dot", []), ("general", [(H, H)]), ("additive", [(H, D), (H, D),
                                                                             (D,)])):
        cases.append((f"TimeAttention[{score}]", lambda score=score, shapes=shapes:
                      _time_attention(score, shapes)))
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
        grads = [to_numpy(g) for g in getattr(case.layer, "grads", [])]
        if grads and not any(g.any() for g in grads):  # nothing flowed: nothing was checked
            results.append(SuiteResult(name, worst, False, "every parameter gradient is 0 at "
                                                           "the check's point"))
            continue
        results.append(SuiteResult(name, worst, bool(worst < tol)))
    return results
