"""The cell registry: every recurrent cell described once, by name.

    from bptt import register_cell
    register_cell("cifg", CoupledLSTM, gates=3, has_cell_state=True)

After registration the name works wherever a built-in cell name does: ``make_recurrent_stack``,
``LanguageModel``, the sequence estimators, ``bptt train --cell``, ``bptt gradcheck``,
``bptt explain``, ``bptt gradflow``, checkpoints. Nothing else in bptt compares cell names or
classes: it asks the :class:`~bptt.nn.cell_spec.CellSpec` found here (gate count, cell state,
fused Time layer, PyTorch layout...).

A cell without a fused Time layer runs through the generic :class:`~bptt.nn.time_cell.TimeCell`.
Packages ship cells through the ``bptt.cells`` entry-point group: each entry point names a
module (importing it registers its cells) or a function (called with no arguments).
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from typing import Any

from ..backend import get_xp
from .cell_spec import CellSpec, OnnxLayout, TorchLayout
from .cells import (
    GRU,
    LSTM,
    MLSTM,
    RNN,
    RWKV,
    SLSTM,
    IndRNN,
    LayerNormLSTM,
    Mamba,
    MinGRU,
    MinLSTM,
    PeepholeLSTM,
    TimeGRU,
    TimeIndRNN,
    TimeLayerNormLSTM,
    TimeLSTM,
    TimeMamba,
    TimeMinGRU,
    TimeMinLSTM,
    TimeMLSTM,
    TimePeepholeLSTM,
    TimeRNN,
    TimeRWKV,
)
from .time_cell import TimeCell

ENTRY_POINT_GROUP = "bptt.cells"
CELLS: dict[str, CellSpec] = {}  # name -> spec; register_cell adds to it, nothing else
_NAME = re.compile(r"[a-z][a-z0-9_\-]*")


def register_cell(name: str, cell_class: type, gates: int, has_cell_state: bool = False, *,
                  time_layer: type | None = None, torch: TorchLayout | None = None,
                  carry_gate: tuple[int, float] | None = None, options: tuple[str, ...] = (),
                  source: str | None = None, onnx: OnnxLayout | None = None) -> CellSpec:
    """Register a one-step cell class under ``name`` and return its spec.

    ``cell_class`` follows the contract of :class:`bptt.RNN` / :class:`bptt.LSTM`: built from
    ``Wx (D, G*H), Wh (H, G*H), b (G*H,)`` (or from the list its classmethod
    ``init_params(D, H, init)`` makes, Wx first); ``params`` (those very arrays, in order: the
    optimizer updates them in place), ``grads``; ``forward(x, h_prev[,
    c_prev])``; ``backward(dh_next[, dc_next])`` returning ``(dx, dh_prev[, dc_prev])``. It is
    tried once on a tiny float64 batch, so a ``gates`` or ``has_cell_state`` that disagrees
    with the class is an error here, not a wrong shape later.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"a cell name is lower-case letters, digits, '_' or '-' starting with "
                         f"a letter (it is a command-line choice), got {name!r}")
    if name in CELLS:
        old = CELLS[name]
        raise ValueError(f"cell {name!r} is already registered (as {old.step.__name__} by "
                         f"{old.source}); choose another name, or unregister_cell({name!r}) "
                         f"first")
    if not isinstance(cell_class, type):
        raise TypeError(f"cannot register cell {name!r}: cell_class must be a class, got "
                        f"{type(cell_class).__name__}")
    for method in ("forward", "backward"):
        if not callable(getattr(cell_class, method, None)):
            raise TypeError(f"cannot register cell {name!r}: {cell_class.__name__} has no "
                            f"{method} method; a cell needs forward(x, h_prev[, c_prev]) and "
                            f"backward(dh_next[, dc_next])")
    if isinstance(gates, bool) or not isinstance(gates, int) or gates < 1:
        raise ValueError(f"cannot register cell {name!r}: gates must be a positive integer "
                         f"(the number of G*H blocks of Wx, Wh and b), got {gates!r}")
    spec = CellSpec(name, cell_class, gates, bool(has_cell_state), time_layer=time_layer,
                    torch=torch, onnx=onnx, carry_gate=carry_gate, options=tuple(options),
                    source=source or getattr(cell_class, "__module__", "?"))
    _try_once(spec)
    CELLS[name] = spec
    return spec


def unregister_cell(name: str) -> None:
    """Forget a registered cell (its name can be registered again)."""
    get_cell(name)
    del CELLS[name]


def cell_names() -> tuple[str, ...]:
    """The registered cell names, built-in ones first."""
    return tuple(CELLS)


def get_cell(name: str) -> CellSpec:
    """The spec of a registered cell; an unknown name is a ValueError naming the known ones."""
    spec = CELLS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ValueError(f"unknown cell {name!r}: registered cells are {', '.join(CELLS)} "
                         f"(register your own with bptt.register_cell, or install the package "
                         f"that provides it)")
    return spec


def spec_of(obj: Any) -> CellSpec | None:
    """The spec of a one-step cell or a recurrent Time layer object; None for anything else."""
    spec = getattr(obj, "spec", None)
    if isinstance(spec, CellSpec):
        return spec
    for spec in CELLS.values():
        if type(obj) is spec.step or (spec.time_layer is not None and type(obj) is spec.time_layer):
            return spec
    return None


def make_time_layer(cell: str | CellSpec, *params: Any, stateful: bool = False,
                    fused: bool = True, **options: Any) -> Any:
    """A Time layer of a registered cell over ``params`` (Wx, Wh, b for the built-in cells;
    the cell's ``init_params`` order for others): its fused layer if it has one (and
    ``fused``), else the generic :class:`~bptt.nn.time_cell.TimeCell`. ``options``: the cell's
    own (``nonlinearity``, ``reset_after``, ``bh``...)."""
    spec = cell if isinstance(cell, CellSpec) else get_cell(cell)
    if fused and spec.time_layer is not None:
        return spec.time_layer(*params, stateful=stateful, **options)
    return TimeCell(spec, *params, stateful=stateful, **options)


def load_plugin_cells() -> list[str]:
    """Import the cells that installed packages announce in the ``bptt.cells`` entry points.

    Returns one line per plugin that failed (the others are registered all the same)."""
    problems = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in CELLS:
            continue
        try:
            obj = ep.load()
            if callable(obj):
                obj()
        except Exception as e:  # a broken plugin must not break bptt itself
            problems.append(f"the cell plugin {ep.name!r} ({ep.value}) did not load: "
                            f"{type(e).__name__}: {e}")
    return problems


def _try_once(spec: CellSpec) -> None:
    """Build the cell on tiny float64 shapes and run one step each way; explain a mismatch."""
    xp = get_xp()
    N, D, H, G = 2, 3, 2, spec.gates
    what = f"cannot register cell {spec.name!r}"
    try:
        params = spec.init_params(D, H, _Constant(xp))
    except Exception as e:
        raise ValueError(f"{what}: {spec.step.__name__}.init_params({D}, {H}, init) failed "
                         f"({type(e).__name__}: {e})") from None
    shapes = ", ".join(str(tuple(p.shape)) for p in params)
    call = f"{spec.step.__name__}({shapes})"
    if not params or tuple(params[0].shape) != (D, G * H):
        raise ValueError(f"{what}: its first parameter must be Wx (D, gates*H) = ({D}, "
                         f"{G * H}) for D={D}, H={H}, gates={G}; got {call}")
    try:
        cell = spec.make_step(*params)
    except Exception as e:
        raise ValueError(f"{what}: {call} failed with gates={G} ({e}); gates must be the "
                         f"number of H-wide blocks the cell slices out of Wx, Wh and b") from None
    widths = spec.state_widths(H)
    state = tuple(xp.full((N, w), 0.5) for w in widths)
    try:
        out = spec.forward(cell, xp.ones((N, D)), state)
        dx, dstate = spec.backward(cell, tuple(xp.ones((N, w)) for w in widths))
    except Exception as e:
        kind = "(h, c) with has_cell_state=True" if spec.has_cell_state else "h alone"
        raise ValueError(f"{what}: one step of {spec.step.__name__} with state {kind} and "
                         f"gates={G} failed ({type(e).__name__}: {e}); check gates and "
                         f"has_cell_state") from None
    shapes = [tuple(getattr(a, "shape", ())) for a in (*out, *dstate)]
    want = [(N, w) for w in widths] * 2
    if shapes != want or tuple(getattr(dx, "shape", ())) != (N, D):
        raise ValueError(f"{what}: with gates={G}, {call} maps x ({N}, {D}) and states "
                         f"{want[:len(widths)]} to states {shapes[:len(out)]} and dx "
                         f"{tuple(getattr(dx, 'shape', ()))}; they must be "
                         f"{want[:len(widths)]} and ({N}, {D}): check gates")
    for p, g in zip(cell.params, cell.grads, strict=False):
        if tuple(p.shape) != tuple(g.shape):
            raise ValueError(f"{what}: its grads must have the shapes of its params, got "
                             f"{tuple(g.shape)} for {tuple(p.shape)}")
    if len(cell.params) != len(cell.grads):
        raise ValueError(f"{what}: it has {len(cell.params)} params but {len(cell.grads)} grads")
    copied = [k for k, (p, q) in enumerate(zip(params, cell.params, strict=False)) if p is not q]
    if len(cell.params) != len(params) or copied:
        raise ValueError(f"{what}: its params must be the very arrays it is built from, in "
                         f"order (the optimizer updates those in place); "
                         + (f"parameter {copied[0]} is a copy" if copied else
                            f"it keeps {len(cell.params)} of {len(params)}")
                         + ": store them as given, self.params = [Wx, Wh, b]")


class _Constant:
    """Weights 0.1 and biases 0: the tiny trial step of :func:`_try_once`."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp

    def W(self, n_in: int, n_out: int) -> Any:
        return self.xp.full((n_in, n_out), 0.1)

    def B(self, n_out: int) -> Any:
        return self.xp.zeros(n_out)


# -- the built-in cells: the book's RNN, LSTM (blocks f, g, i, o) and GRU (z, r, h~) ----------
register_cell("rnn", RNN, 1, time_layer=TimeRNN, options=("nonlinearity",),
              torch=TorchLayout({"RNN_TANH": {"nonlinearity": "tanh"},
                                 "RNN_RELU": {"nonlinearity": "relu"}}, (0,), (1.0,)),
              onnx=OnnxLayout("RNN", (0,), (1.0,),
                              {("nonlinearity", "tanh"): {"activations": ["Tanh"]},
                               ("nonlinearity", "relu"): {"activations": ["Relu"]}}))
register_cell("lstm", LSTM, 4, has_cell_state=True, time_layer=TimeLSTM, carry_gate=(0, 1.0),
              torch=TorchLayout({"LSTM": {}}, (1, 2, 0, 3), (1.0, 1.0, 1.0, 1.0)),
              onnx=OnnxLayout("LSTM", (2, 3, 0, 1), (1.0, 1.0, 1.0, 1.0)))
register_cell("gru", GRU, 3, time_layer=TimeGRU, carry_gate=(0, -1.0), options=("reset_after",),
              torch=TorchLayout({"GRU": {"reset_after": True}}, (1, 0, 2), (-1.0, 1.0, 1.0),
                                candidate_bias=True),
              onnx=OnnxLayout("GRU", (0, 1, 2), (-1.0, 1.0, 1.0),
                              {("reset_after", True): {"linear_before_reset": 1},
                               ("reset_after", False): {"linear_before_reset": 0}}))

# -- cells recurrent research moved on to (each in its own file; see its docstring) -----------
register_cell("mingru", MinGRU, 2, time_layer=TimeMinGRU, carry_gate=(0, -1.0))
register_cell("minlstm", MinLSTM, 3, time_layer=TimeMinLSTM, carry_gate=(0, 1.0))
register_cell("indrnn", IndRNN, 1, time_layer=TimeIndRNN)
register_cell("lnlstm", LayerNormLSTM, 4, has_cell_state=True, time_layer=TimeLayerNormLSTM,
              carry_gate=(0, 1.0))
register_cell("peephole", PeepholeLSTM, 4, has_cell_state=True, time_layer=TimePeepholeLSTM,
              carry_gate=(0, 1.0))
register_cell("slstm", SLSTM, 4, has_cell_state=True, carry_gate=(1, 1.0))  # c = [c, n, m]
register_cell("mlstm", MLSTM, 4, has_cell_state=True, time_layer=TimeMLSTM)  # c = [C, n, m]
register_cell("mamba", Mamba, 2, has_cell_state=True, time_layer=TimeMamba)  # c = s (N, 16H)
register_cell("rwkv", RWKV, 3, has_cell_state=True, time_layer=TimeRWKV)  # c (N, 7H)
