"""Layers of the sequence estimators: a regression loss and the many-to-one readout.

- :class:`MeanSquaredError`: mean squared error over the unmasked elements, any shape
  ((N, K) for many-to-one, (N, T, K) for many-to-many).
- :class:`LastStep`: the hidden state at each sequence's last real step, (N, T, H) -> (N, H).

Both follow the layer contract (no params; ``backward`` returns the input gradient).
Shape letters: N batch, T time steps, H hidden units, K outputs.
"""

from __future__ import annotations

from typing import Any

from ..backend import array_module
from ..validate import check_float, check_ndim, check_same_shape


class MeanSquaredError:
    """Mean squared error over the unmasked elements.

        m = mask broadcast to y's shape (all ones without a mask)
        L = sum(m * (y - t)**2) / max(sum m, 1)                  (scalar)
    backward (dout = dL/dL, 1 by default):
        dy = dout * 2 * m * (y - t) / max(sum m, 1)              (y's shape)

    y, t: predictions and targets of the same shape, e.g. (N, K) or (N, T, K). ``mask`` has y's
    shape or y's shape without the last axis, e.g. (N, T) for padded sequences (0/False =
    padding). Without a mask this is ``torch.nn.MSELoss()`` (mean over every element). The
    target gets no gradient (``backward`` returns dy only).
    """

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self.cache: tuple | None = None

    def forward(self, y: Any, t: Any, mask: Any = None) -> Any:
        xp = array_module(y)
        check_float("MeanSquaredError predictions y", y)
        check_same_shape("targets t", t, "predictions y", y)
        diff = y - t.astype(y.dtype, copy=False)
        if mask is None:
            m = None
            count = xp.asarray(max(y.size, 1), dtype=y.dtype)
        else:
            if tuple(mask.shape) == tuple(y.shape[:-1]):
                mask = mask[..., None]
            elif tuple(mask.shape) != tuple(y.shape):
                raise ValueError(f"mask has shape {tuple(mask.shape)} but predictions y have "
                                 f"shape {tuple(y.shape)}; the mask must be y.shape or "
                                 f"y.shape[:-1] = {tuple(y.shape[:-1])}")
            m = xp.broadcast_to(mask.astype(y.dtype, copy=False), y.shape)
            diff *= m
            count = xp.maximum(m.sum(), 1)  # no element: loss 0, gradient 0
        self.cache = (diff, count)
        return (diff * diff).sum() / count

    def backward(self, dout: Any = 1) -> Any:
        diff, count = self.cache  # masked entries of diff are already 0
        return diff * (2 * dout / count)


class LastStep:
    """Many-to-one readout: each sequence's hidden state at its last real step.

        forward:  h[n] = hs[n, last_n]          last_n = lengths[n] - 1 (T - 1 without lengths)
                  hs (N, T, H), lengths (N,) ints in [1, T], h (N, H)
        backward: dhs = 0 except dhs[n, last_n] = dh[n]                     (N, T, H)

    With ``reverse_units = R > 0`` (a bidirectional layer whose last R features run backward
    in time, e.g. TimeBidirectional's [forward, backward] concatenation), those R features are
    read at t = 0 instead, where the backward direction has seen the whole sequence:

        h[n, :H-R] = hs[n, last_n, :H-R]        h[n, H-R:] = hs[n, 0, H-R:]
    """

    def __init__(self, reverse_units: int = 0) -> None:
        if reverse_units < 0:
            raise ValueError(f"reverse_units must be >= 0, got {reverse_units}")
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self.reverse_units = int(reverse_units)
        self.cache: tuple | None = None

    def forward(self, hs: Any, lengths: Any = None) -> Any:
        xp = array_module(hs)
        check_ndim("LastStep input hs", hs, 3, "N, T, H")
        N, T, H = hs.shape
        if self.reverse_units > H:
            raise ValueError(f"reverse_units={self.reverse_units} exceeds the {H} features of hs")
        if lengths is None:
            last = xp.full((N,), T - 1)
        else:
            if tuple(lengths.shape) != (N,) or lengths.dtype.kind not in "iu":
                raise ValueError(f"lengths must be an integer array of shape ({N},), got "
                                 f"{getattr(lengths, 'dtype', None)} {tuple(lengths.shape)}")
            if N and (int(lengths.min()) < 1 or int(lengths.max()) > T):
                raise ValueError(f"lengths must lie in [1, T={T}], got values in "
                                 f"[{int(lengths.min())}, {int(lengths.max())}]")
            last = xp.asarray(lengths) - 1  # on hs's device
        rows = xp.arange(N)
        R = self.reverse_units
        h = hs[rows, last]  # (N, H) copy (fancy indexing)
        if R:
            h[:, H - R:] = hs[:, 0, H - R:]
        self.cache = (hs.shape, rows, last)
        return h

    def backward(self, dh: Any) -> Any:
        shape, rows, last = self.cache
        xp = array_module(dh)
        H, R = shape[2], self.reverse_units
        dhs = xp.zeros(shape, dtype=dh.dtype)
        dhs[rows, last, :H - R] = dh[:, :H - R]
        if R:
            dhs[:, 0, H - R:] = dh[:, H - R:]
        return dhs
