"""TimeCell: any registered one-step cell run over a whole (N, T, D) sequence, the book's way.

    forward, t = 0..T-1:        state_t = cell_t.forward(x_t, state_{t-1})      hs[:, t] = h_t
    backward, t = T-1..0:       dx_t, dstate_{t-1} = cell_t.backward(dhs[:, t] + dh_t, dc_t)
                                grads = sum_t cell_t.grads

where ``state`` is (h,) or (h, c) (the cell's spec says which), every ``cell_t`` shares the
same parameter arrays, and the gradients are summed over time as in the book's
``TimeRNN.backward``. A new cell needs only its step: masks, ``stateful``, ``set_state`` /
``reset_state``, the initial-state gradients ``dh`` (``dc``) and ``dh_last`` (``dc_last``) work
as in the fused :class:`~bptt.TimeRNN` / :class:`~bptt.TimeLSTM` / :class:`~bptt.TimeGRU`, which
are tested equal to this layer.

Masks: where ``mask[n, t] == 0`` the state is carried unchanged and the output is 0; backward
sends the carried gradient straight to step t-1, and nothing through the cell.

xs (N, T, D) -> hs (N, T, H). Params: those of the cell (Wx (D, G*H), Wh (H, G*H), b (G*H,)...;
Wx first, from which D and H = G*H / G are read).
"""

from __future__ import annotations

import copy
from typing import Any

from ..backend import array_module
from .cell_spec import CellSpec, layer_param_names
from .cells.base import TimeRecurrentBase


class TimeCell(TimeRecurrentBase):
    """A registered cell (``spec``) over T steps, with exact BPTT (see the module docstring)."""

    def __init__(self, spec: CellSpec, *params: Any, stateful: bool = False,
                 **options: Any) -> None:
        self.spec = spec
        self.name = f"TimeCell({spec.name})"
        self.gates, self.has_cell = spec.gates, spec.has_cell_state
        self.cell = spec.make_step(*params, **options)  # checks and owns the parameters
        Wx = self.cell.params[0]
        self.D, self.H = int(Wx.shape[0]), int(Wx.shape[1]) // self.gates
        self.C = spec.state_widths(self.H)[-1]  # the cell state's width
        self._setup(self.cell.params, stateful)
        self.param_names = tuple(layer_param_names(self.cell))
        for name in spec.options:  # nonlinearity, reset_after...: as the fused layers show them
            if hasattr(self.cell, name):
                setattr(self, name, getattr(self.cell, name))
        self._make_grads()

    def forward(self, xs: Any, mask: Any = None) -> Any:
        xp, N, T, _, m, h0, c0 = self._begin(xs, mask)
        state = (h0, c0) if self.has_cell else (h0,)
        hs = xp.empty((N, T, self.H), dtype=xs.dtype)
        steps = []
        for t in range(T):
            cell = copy.copy(self.cell)  # its own cache; the same parameters
            new = self.spec.forward(cell, xs[:, t], state)
            if m is not None:  # padded: carry the state, output 0
                new = tuple(xp.where(m[0][t], s, n) for s, n in zip(state, new, strict=True))
                hs[:, t] = new[0] * m[1][t]
            else:
                hs[:, t] = new[0]
            steps.append(cell)
            state = new
        self.cache = (steps, m, N)
        self.h = state[0]
        self.c = state[1] if self.has_cell else None
        return hs

    def backward(self, dhs: Any, dh_last: Any = None, dc_last: Any = None) -> Any:
        steps, m, N = self._cache()
        xp = array_module(dhs)
        T = len(steps)
        self._check_dhs(dhs, N, T)
        dtype = self.params[0].dtype
        dstate = (self._start_dh(xp, dh_last, "dh_last", N, dtype),)
        if self.has_cell:
            dstate += (self._start_dh(xp, dc_last, "dc_last", N, dtype),)
        dxs = xp.empty((N, T, self.D), dtype=dtype)
        for g in self.grads:
            g[...] = 0
        for t in reversed(range(T)):
            cell = steps[t]
            upstream = (dhs[:, t] + dstate[0],) + dstate[1:]
            if m is not None:  # a padded step's output was 0: nothing flows through its cell
                upstream = tuple(u * m[1][t] for u in upstream)
            for g in cell.grads:  # a cell may add to its grads; start each step from zero
                g[...] = 0
            dx, dprev = self.spec.backward(cell, upstream)
            if m is not None:  # ... and its state was carried: its gradient goes straight on
                dprev = tuple(p + d * m[0][t] for p, d in zip(dprev, dstate, strict=True))
            for total, g in zip(self.grads, cell.grads, strict=True):
                total += g
            dxs[:, t] = dx
            dstate = dprev
        self.dh = dstate[0]
        self.dc = dstate[1] if self.has_cell else None
        return dxs
