"""What the rest of the library may ask about a recurrent cell: :class:`CellSpec`.

A cell is a one-step class with the contract of :class:`bptt.RNN` / :class:`bptt.LSTM`:

    cell = Step(Wx (D, G*H), Wh (H, G*H), b (G*H,), **options)     the parameters, in order
    cell.params, cell.grads                      lists of arrays (grads overwritten by backward)
    h_next = cell.forward(x, h_prev)             without a cell state
    dx, dh_prev = cell.backward(dh_next)
    h_next, c_next = cell.forward(x, h_prev, c_prev)            with a cell state c
    dx, dh_prev, dc_prev = cell.backward(dh_next, dc_next)

A cell whose parameters are not (Wx, Wh, b) (minGRU has no Wh, IndRNN a vector u (H,), the
layer-normalised LSTM gains and shifts) says so with a classmethod
``init_params(D, H, init) -> [arrays]`` (``init.W(n_in, n_out)``, ``init.B(n)``: the
initializer of the model) and its ``param_names``; its first parameter must still be
``Wx (D, G*H)``, from which D and H are read.

The state is handled as a tuple everywhere else, ``(h,)`` or ``(h, c)``: :meth:`CellSpec.forward`
and :meth:`CellSpec.backward` are the only places that know which of the two calls a cell
takes. The registry (:mod:`bptt.nn.registry`) holds one spec per cell name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_PARAM_NAMES = ("Wx", "Wh", "b")


@dataclass(frozen=True)
class TorchLayout:
    """How one direction of a ``torch.nn.RNN/LSTM/GRU`` layer maps onto the cell's parameters.

    ``modes``: torch's ``RNNBase.mode`` values this cell stands for, each with the cell options
    that make it equal (``{"RNN_TANH": {"nonlinearity": "tanh"}, ...}``). ``block_order[k]``:
    the torch gate block that is the cell's block k; ``signs[k]``: its sign (GRU's z is torch's
    1 - z, so its block is negated). ``candidate_bias``: torch's recurrent bias of the last
    block stays inside the reset gate's product, as a 4th parameter ``bh`` (GRU, reset-after).
    """

    modes: dict[str, dict[str, Any]]
    block_order: tuple[int, ...]
    signs: tuple[float, ...]
    candidate_bias: bool = False


@dataclass(frozen=True)
class OnnxLayout:
    """The standard ONNX operator (``RNN``, ``LSTM``, ``GRU``) equal to this cell.

    ``block_order[k]``: the bptt gate block that is the operator's block k (ONNX LSTM: i, o, f,
    c; GRU: z, r, h); ``signs[k]`` its sign (ONNX's GRU z is 1 - bptt's z); ``attributes``:
    operator attributes for each value of the cell's options (``{("reset_after", True):
    {"linear_before_reset": 1}}``)."""

    op: str
    block_order: tuple[int, ...]
    signs: tuple[float, ...]
    attributes: dict[tuple[str, Any], dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class CellSpec:
    """Everything the rest of the library may ask about a cell (see the module docstring);
    nothing outside ``nn/cells/`` and the registry reads the step class itself.

    Fields:

    - ``name``: the registry's name, a command-line choice (``--cell NAME``).
    - ``step``: the one-step class (the contract of the module docstring).
    - ``gates``: G, the number of H-wide blocks of Wx, Wh and b (RNN 1, GRU 3, LSTM 4).
    - ``has_cell_state``: the state is (h, c), not (h,).
    - ``time_layer``: the fused (N, T, D) layer, tested equal to ``TimeCell`` over ``step``;
      None: ``TimeCell`` runs the step T times.
    - ``torch``, ``onnx``: the layouts of the equal PyTorch layer and ONNX operator (None:
      none).
    - ``carry_gate``: (block, sign) of the gate whose bias sets how much of the state is
      carried from step to step (LSTM's forget gate f: (0, +1); GRU's update gate z, carry =
      1 - z: (0, -1)); ``bptt gradflow`` sets that bias.
    - ``options``: the keyword options the step and its Time layer take (``nonlinearity`` for
      the RNN, ``reset_after`` for the GRU).
    - ``source``: who registered it (for messages).

    Read off the step class once, here: :attr:`param_names` (its ``param_names``, default
    ``Wx, Wh, b``), :meth:`init_params` (its ``init_params`` classmethod, default Wx, Wh, b
    drawn by the model's initializer), :attr:`recurrent_params` (its ``recurrent_params``:
    the weights that multiply the previous state, default ``Wh`` when it has one),
    :attr:`reads_previous_h` (its ``reads_previous_h``, default True) and :meth:`activations`
    (its ``activations()``: the gates of its last step, for pictures).
    """

    name: str
    step: type
    gates: int
    has_cell_state: bool = False
    time_layer: type | None = None  # fused (N, T, D) fast path, tested equal to TimeCell
    torch: TorchLayout | None = None  # None: no PyTorch counterpart
    onnx: OnnxLayout | None = None  # None: no standard ONNX operator
    carry_gate: tuple[int, float] | None = None
    options: tuple[str, ...] = ()
    source: str = field(default="bptt", compare=False)  # who registered it (for messages)

    @property
    def num_states(self) -> int:
        """1 for (h,), 2 for (h, c)."""
        return 2 if self.has_cell_state else 1

    @property
    def cell_state_blocks(self) -> int:
        """The cell state c is (N, k*H) with k this (the step's ``cell_state_blocks``, default
        1): a cell with more than one memory (sLSTM's [c, n, m]) keeps them side by side in c,
        so it travels wherever an LSTM's (h, c) does."""
        return int(getattr(self.step, "cell_state_blocks", 1))

    def state_widths(self, H: int) -> tuple[int, ...]:
        """The widths of the state (h,) or (h, c): (H,) or (H, k*H), or the step's own
        ``cell_state_width(H)`` (mLSTM's [C, n, m]: H*H + 2H)."""
        width = getattr(self.step, "cell_state_width", None)
        c = int(width(H)) if callable(width) else self.cell_state_blocks * H
        return (H, c)[:self.num_states]

    def zero_state(self, xp: Any, N: int, H: int, dtype: Any = None) -> tuple:
        """The fresh state of N sequences: zeros of the state's widths."""
        return tuple(xp.zeros((N, w), dtype=dtype) for w in self.state_widths(H))

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the step's first parameters (its class may list more in ``param_names``)."""
        return tuple(getattr(self.step, "param_names", DEFAULT_PARAM_NAMES))

    def checked_options(self, options: dict[str, Any] | None,
                        defaults: dict[str, Any] | None = None) -> dict[str, Any]:
        """The cell's options, as one dict (the one way they travel: a model's
        ``cell_options``, or ``make_recurrent_stack``'s torch-like keywords gathered into it):
        each must be one the cell takes; one left at its value in ``defaults`` is dropped
        when the cell does not take it."""
        out = {}
        for key, value in (options or {}).items():
            if key in self.options:
                out[key] = value
            elif not (defaults and key in defaults and value == defaults[key]):
                raise ValueError(f"{key}={value!r} is not an option of the {self.name!r} cell "
                                 f"(its options: {', '.join(self.options) or 'none'})")
        return out

    @property
    def recurrent_params(self) -> tuple[str, ...]:
        """The parameters that multiply the previous state (what weight drop drops and
        ``bptt gradflow`` scales); () for a cell whose state enters without a weight."""
        default = ("Wh",) if "Wh" in self.param_names else ()
        return tuple(getattr(self.step, "recurrent_params", default))

    @property
    def reads_previous_h(self) -> bool:
        """Whether a step reads h_{t-1} (its ``reads_previous_h``, default True): False for a
        cell whose state's second part carries all the memory (mLSTM's C and n, Mamba's s,
        RWKV's sums), so dL/dh_{t-1} = 0 and ``bptt gradflow`` follows (h_t, s_t) instead."""
        return bool(getattr(self.step, "reads_previous_h", True))

    def activations(self, cell: Any) -> dict[str, Any]:
        """The named activations of ``cell``'s last forward step (gates f, i, o, g...), or {}
        for a cell that shows none."""
        shown = getattr(cell, "activations", None)
        return dict(shown()) if callable(shown) else {}

    def forward(self, cell: Any, x: Any, state: tuple) -> tuple:
        """One step: ``state`` (h,) or (h, c) -> the next state, the same kind of tuple."""
        if self.has_cell_state:
            h, c = cell.forward(x, *state)
            return h, c
        return (cell.forward(x, state[0]),)

    def backward(self, cell: Any, dstate: tuple) -> tuple[Any, tuple]:
        """One step back: ``dstate`` (dh,) or (dh, dc) -> (dx, the gradient of the state before)."""
        if self.has_cell_state:
            dx, dh, dc = cell.backward(*dstate)
            return dx, (dh, dc)
        dx, dh = cell.backward(dstate[0])
        return dx, (dh,)

    def make_step(self, *params: Any, **options: Any) -> Any:
        """A one-step cell from its parameters (``init_params``'s list, in order)."""
        return self.step(*params, **options)

    def init_params(self, D: int, H: int, init: Any) -> list[Any]:
        """New parameters for input size D and hidden size H: the class's ``init_params`` if it
        has one, else Wx ``init.W(D, G*H)``, Wh ``init.W(H, G*H)``, b ``init.B(G*H)``."""
        custom = getattr(self.step, "init_params", None)
        if custom is not None:
            return list(custom(D, H, init))
        G = self.gates
        return [init.W(D, G * H), init.W(H, G * H), init.B(G * H)]

    def param_shapes(self, D: int, H: int) -> list[tuple[int, ...]]:
        """The shapes of :meth:`init_params` (nothing is drawn)."""
        return [tuple(p.shape) for p in self.init_params(D, H, _ShapesOnly())]

    def num_params(self, D: int, H: int) -> int:
        return sum(math.prod(s) for s in self.param_shapes(D, H))


class _ShapesOnly:
    """An initializer of read-only zero-stride views: shapes of any size, no memory."""

    def W(self, n_in: int, n_out: int) -> Any:
        return np.broadcast_to(np.float32(0), (n_in, n_out))

    def B(self, n_out: int) -> Any:
        return np.broadcast_to(np.float32(0), (n_out,))


def option_values(spec: CellSpec, obj: Any) -> dict[str, Any]:
    """The cell options of a layer or cell object (``{"nonlinearity": "relu"}``)."""
    return {k: getattr(obj, k) for k in spec.options if hasattr(obj, k)}


def layer_param_names(layer: Any) -> list[str]:
    """Names of ``layer.params``: its ``param_names`` if given, else Wx, Wh, b, p3, p4..."""
    n = len(layer.params)
    names = list(getattr(layer, "param_names", DEFAULT_PARAM_NAMES))[:n]
    return names + [f"p{i}" for i in range(len(names), n)]
