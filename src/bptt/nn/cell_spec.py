"""What the rest of the library may ask about a recurrent cell: :class:`CellSpec`.

A cell is a one-step class with the contract of :class:`bptt.RNN` / :class:`bptt.LSTM`:

    cell = Step(Wx (D, G*H), Wh (H, G*H), b (G*H,), **options)
    cell.params, cell.grads                      lists of arrays (grads overwritten by backward)
    h_next = cell.forward(x, h_prev)             without a cell state
    dx, dh_prev = cell.backward(dh_next)
    h_next, c_next = cell.forward(x, h_prev, c_prev)            with a cell state c
    dx, dh_prev, dc_prev = cell.backward(dh_next, dc_next)

The state is handled as a tuple everywhere else, ``(h,)`` or ``(h, c)``: :meth:`CellSpec.forward`
and :meth:`CellSpec.backward` are the only places that know which of the two calls a cell
takes. The registry (:mod:`bptt.nn.registry`) holds one spec per cell name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
class CellSpec:
    """Everything the rest of the library may ask about a cell (see the module docstring).

    ``carry_gate``: (block, sign) of the gate whose bias sets how much of the state is carried
    from step to step (LSTM's forget gate f: (0, +1); GRU's update gate z, carry = 1 - z:
    (0, -1)); ``bptt gradflow`` sets that bias. ``options``: the keyword options the cell and
    its Time layers take (``nonlinearity`` for the RNN, ``reset_after`` for the GRU).
    """

    name: str
    step: type
    gates: int
    has_cell_state: bool = False
    time_layer: type | None = None  # fused (N, T, D) fast path, tested equal to TimeCell
    torch: TorchLayout | None = None  # None: no PyTorch counterpart
    carry_gate: tuple[int, float] | None = None
    options: tuple[str, ...] = ()
    source: str = field(default="bptt", compare=False)  # who registered it (for messages)

    @property
    def num_states(self) -> int:
        """1 for (h,), 2 for (h, c)."""
        return 2 if self.has_cell_state else 1

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the step's first parameters (its class may list more in ``param_names``)."""
        return tuple(getattr(self.step, "param_names", DEFAULT_PARAM_NAMES))

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

    def make_step(self, Wx: Any, Wh: Any, b: Any, **options: Any) -> Any:
        """A one-step cell from its parameters."""
        return self.step(Wx, Wh, b, **options)


def option_values(spec: CellSpec, obj: Any) -> dict[str, Any]:
    """The cell options of a layer or cell object (``{"nonlinearity": "relu"}``)."""
    return {k: getattr(obj, k) for k in spec.options if hasattr(obj, k)}


def layer_param_names(layer: Any) -> list[str]:
    """Names of ``layer.params``: its ``param_names`` if given, else Wx, Wh, b, p3, p4..."""
    n = len(layer.params)
    names = list(getattr(layer, "param_names", DEFAULT_PARAM_NAMES))[:n]
    return names + [f"p{i}" for i in range(len(names), n)]
