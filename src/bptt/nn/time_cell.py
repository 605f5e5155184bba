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

# defined beside the Time layers' base, so that a fused layer (TimeMLSTM) can fall back on it
from .cells.base import TimeCell

__all__ = ["TimeCell"]
