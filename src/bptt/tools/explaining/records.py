"""What ``bptt explain`` records and reports, as data: arrays, calls, flows, time steps.

:class:`Tracer` wraps every layer's ``forward`` and ``backward`` for one run and keeps a
:class:`Record` of each call (arguments, result, the state it started from); the other modules
of ``bptt explain`` turn those into :class:`Call` lists (:mod:`bptt.tools.explaining.flow`) and
text (:mod:`bptt.tools.explaining.report`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...backend import to_numpy

# sizes of the built-in examples: all different, so every number names one letter
DEFAULT_DIMS = {"N": 2, "T": 3, "V": 11, "D": 4, "H": 5}
LETTER_MEANING = {
    "N": "batch size", "T": "time steps", "V": "vocabulary size", "D": "input/embedding size",
    "H": "hidden size", "C": "classes",
}


@dataclass
class ArrayInfo:
    """One array that went into or came out of a call."""

    name: str  # the argument's name in the code: xs, dout, dhs, W...
    shape: list[int]
    letters: str  # e.g. "(N, T, H)"; numbers with no letter stay numbers
    dtype: str
    norm: float | None = None  # the 2-norm, for gradients
    peer: str = ""  # where it came from / goes to, e.g. "(2) TimeAffine"

    @property
    def shape_text(self) -> str:
        """``(N, T, H) = (2, 3, 5)``, or just the numbers when no letter fits."""
        if not self.shape:
            if self.dtype in ("int", "float") and self.norm is not None:
                return f"{self.norm:g}"  # a Python number, e.g. dout = 1
            return {"None": "None", "default": "1 (default)"}.get(self.dtype, "scalar")
        nums = "(" + ", ".join(str(s) for s in self.shape) + ("," if len(self.shape) == 1 else "")
        nums += ")"
        return nums if self.letters == nums else f"{self.letters} = {nums}"


@dataclass
class Flow:
    """One gradient entering or leaving a time step of a recurrent layer's backward."""

    name: str  # e.g. "dhs[:, 2]", "dh_next", "dxs[:, 2]", "dh_prev"
    letters: str
    peer: str  # e.g. "(2) TimeAffine", "(4) t=1", "layer.dh"
    norm: float | None


@dataclass
class TimeStep:
    """The backward of one time step t inside a Time recurrent layer."""

    number: int
    t: int
    dh_next: float | None = None  # norm of the cell's dh_next = dhs[:, t] + dh (from t+1)
    receives: list[Flow] = field(default_factory=list)
    sends: list[Flow] = field(default_factory=list)


@dataclass
class Call:
    """One forward or backward call of one layer."""

    number: int  # execution order within its pass (a Time layer's backward has several)
    layer: str  # display name, e.g. "TimeRNN" or "Affine1"
    cls: str  # class name
    qualname: str
    inputs: list[ArrayInfo] = field(default_factory=list)
    outputs: list[ArrayInfo] = field(default_factory=list)
    params: list[ArrayInfo] = field(default_factory=list)  # forward: params, backward: grads
    equations: list[str] = field(default_factory=list)
    note: str = ""  # the docstring's qualifier, e.g. "with dh_next = dL/dh_next"
    steps: list[TimeStep] = field(default_factory=list)  # backward of Time RNN/LSTM/GRU
    cell: str = ""  # the one-step cell replayed for the steps, e.g. "RNN"
    replay_ok: bool | None = None  # the cell replay reproduced the layer's numbers

    @property
    def numbers(self) -> str:
        """"(3)" or "(3)-(5)" for a call spanning several numbered steps."""
        if self.steps:
            lo = min(s.number for s in self.steps)
            hi = max(s.number for s in self.steps)
            return f"({lo})" if lo == hi else f"({lo})-({hi})"
        return f"({self.number})"


# -- shape letters --------------------------------------------------------------------------------
def letters_for(shape: tuple[int, ...] | list[int], dims: Mapping[str, int],
                ids: bool = False) -> str:
    """Write a shape with letters: ``(2, 3, 5)`` -> ``(N, T, H)`` for dims N=2, T=3, H=5.

    Products and gate multiples are recognised too (``N*T``, ``4H``); a number that fits
    several letters is written with all of them (``D=H``), one that fits none stays a number.
    When N == T, batch-first (N, T, X) arrays and (N, T) ``ids`` are read by position.
    """
    names: dict[int, list[str]] = {}
    for k, v in dims.items():
        names.setdefault(int(v), []).append(k)
    derived: dict[int, list[str]] = {}
    if "H" in dims:
        for g in (2, 3, 4):
            derived.setdefault(g * int(dims["H"]), []).append(f"{g}H")
    if "N" in dims and "T" in dims:
        derived.setdefault(int(dims["N"]) * int(dims["T"]), []).append("N*T")
    parts = []
    batch_first = len(shape) >= 2 and int(shape[0]) == dims.get("N")
    for pos, s in enumerate(shape):
        cand = names.get(int(s)) or derived.get(int(s))
        if cand and len(cand) > 1:  # N == T, say: the position decides, (N, T, ...) first
            if pos == 0 and "N" in cand:
                cand = ["N"]
            elif pos == 1 and batch_first and "T" in cand and (len(shape) == 3 or ids):
                cand = ["T"]
        parts.append("=".join(cand) if cand else str(int(s)))
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def array_info(name: str, a: Any, dims: Mapping[str, int], norm: bool = False) -> ArrayInfo:
    if a is None or not hasattr(a, "shape"):
        return ArrayInfo(name, [], "", type(a).__name__ if a is not None else "None",
                         float(a) if isinstance(a, (int, float)) else None)
    shape = [int(s) for s in a.shape]
    n = None
    if norm and getattr(a, "dtype", None) is not None and a.dtype.kind == "f":
        n = float(np.linalg.norm(to_numpy(a).astype(np.float64).ravel()))
    ids = getattr(a, "dtype", None) is not None and a.dtype.kind in "iu"
    return ArrayInfo(name, shape, letters_for(shape, dims, ids), str(a.dtype), n)


# -- finding the layers of a model ----------------------------------------------------------------
def model_layers(model: Any) -> list[tuple[str, Any]]:
    """(name, layer) pairs of a model in forward order, the loss layer last.

    Understands DL2 models (``layers`` list + ``loss_layer``), DL1 nets (``layers``
    OrderedDict + ``lastLayer``) and containers whose layers have ``layers`` of their own.
    """
    out: list[tuple[str, Any]] = []

    def add(name: str, layer: Any) -> None:
        inner = getattr(layer, "layers", None)
        if inner is not None:
            items = inner.items() if isinstance(inner, Mapping) else enumerate(inner)
            children = [(f"{name}.{k}", v) for k, v in items]
            if children and all(hasattr(v, "forward") for _, v in children):
                for cname, child in children:
                    add(cname, child)
                return
        if any(layer is l for _, l in out):
            return
        out.append((name, layer))

    layers = getattr(model, "layers", None)
    if layers is None:
        raise TypeError(f"{type(model).__name__} has no .layers: bptt explain needs a model "
                        f"with a list (or OrderedDict) of layers in forward order")
    items = list(layers.items()) if isinstance(layers, Mapping) else [
        (type(l).__name__, l) for l in layers]
    for name, layer in items:
        add(name, layer)
    for attr in ("loss_layer", "lastLayer", "last_layer"):
        loss = getattr(model, attr, None)
        if loss is not None:
            add(type(loss).__name__, loss)
    # the same class twice: number them (TimeLSTM 1, TimeLSTM 2)
    counts: dict[str, int] = {}
    for name, _ in out:
        counts[name] = counts.get(name, 0) + 1
    seen: dict[str, int] = {}
    named = []
    for name, layer in out:
        if counts[name] > 1:
            seen[name] = seen.get(name, 0) + 1
            name = f"{name} {seen[name]}"
        named.append((name, layer))
    return named


# -- tracing --------------------------------------------------------------------------------------
@dataclass
class Record:
    index: int  # position in model_layers order
    name: str
    layer: Any
    kind: str  # "forward" | "backward"
    args: dict[str, Any]
    result: Any
    state0: tuple[Any, Any] = (None, None)  # (h, c) before a forward


def arg_names(fn: Any) -> list[str]:
    try:
        return [p.name for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return []


class Tracer:
    """Wraps every layer's forward/backward (instance attributes, removed afterwards)."""

    def __init__(self, layers: list[tuple[str, Any]]) -> None:
        self.layers = layers
        self.records: list[Record] = []

    def _wrap(self, index: int, name: str, layer: Any, kind: str) -> None:
        orig = getattr(layer, kind)
        names = arg_names(orig)
        records = self.records

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            bound = dict(zip(names, args, strict=False))
            bound.update(kwargs)
            state0 = (getattr(layer, "h", None), getattr(layer, "c", None))
            state0 = tuple(s.copy() if hasattr(s, "copy") else s for s in state0)
            result = orig(*args, **kwargs)
            records.append(Record(index, name, layer, kind, bound, result, state0))
            return result

        wrapped.__signature__ = inspect.signature(orig)  # type: ignore[attr-defined]
        setattr(layer, kind, wrapped)

    def __enter__(self) -> Tracer:
        for i, (name, layer) in enumerate(self.layers):
            for kind in ("forward", "backward"):
                self._wrap(i, name, layer, kind)
        return self

    def __exit__(self, *exc: Any) -> None:
        for _, layer in self.layers:
            for kind in ("forward", "backward"):
                layer.__dict__.pop(kind, None)


def outputs_of(result: Any) -> list[Any]:
    return list(result) if isinstance(result, tuple) else [result]


def output_names(layer: Any, n: int) -> list[str]:
    """Forward outputs are named after backward's argument: backward(dhs) -> "hs"."""
    names = arg_names(type(layer).backward) if hasattr(type(layer), "backward") else []
    names = [a for a in names if a != "self"]
    base = [a[1:] if a.startswith("d") and len(a) > 1 else "out" for a in names] or ["out"]
    if n == 1:
        return [base[0]]
    return [base[i] if i < len(base) else f"out{i}" for i in range(n)]
