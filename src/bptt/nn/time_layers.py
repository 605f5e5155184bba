"""Time layers without recurrence: each applies one operation to all T steps at once.

They take (N, T, ...) arrays like the recurrent Time layers (``TimeRNN``, ``TimeLSTM``...) and
do the work of T per-step layers in one call: one lookup, one GEMM over the (N*T, D) view, one
softmax over (N*T, V). Shape letters: N batch, T time steps, D features, V vocabulary/classes.

- :class:`TimeEmbedding`: word ids (N, T) -> vectors (N, T, D)
- :class:`TimeAffine`: (N, T, D) -> (N, T, V), one GEMM
- :class:`TimeSoftmaxWithLoss`: mean cross-entropy over the tokens, padding ignored
- :class:`TimeSigmoidWithLoss`: mean binary cross-entropy with logits, padding ignored
- ``TimeDropout``: the book's name for :class:`bptt.nn.layers.Dropout` (any shape; optionally
  one mask for all time steps, variational)
"""

from __future__ import annotations

from typing import Any

from ..backend import array_module, matmul_into, scatter_add_rows
from ..kernels import softmax_kernels
from ..validate import check_float, check_labels, check_last_dim, check_same_shape
from .functions import sigmoid
from .layers import Dropout


class TimeEmbedding:
    """Row lookup for every time step.

        forward:  out[n, t] = W[xs[n, t]]          xs (N, T) ints, W (V, D), out (N, T, D)
        backward: dW[v] = sum over (n, t) with xs[n, t] == v of dout[n, t]

    The backward sums repeated ids exactly with one sort (``scatter_add_rows``), not with
    ``np.add.at`` or a loop over t; it returns None (ids have no gradient). With
    ``accumulate = True`` it adds to ``grads[0]`` instead of overwriting it: a tied W whose
    other use (the output layer, backpropagated first) has already written its gradient there.

    Params: W (V, D)
    """

    param_names = ("W",)

    def __init__(self, W: Any) -> None:
        self.params = [W]
        self.grads = [array_module(W).zeros_like(W)]
        self.idx = None
        self.accumulate = False

    def forward(self, xs: Any) -> Any:
        W = self.params[0]
        check_labels("TimeEmbedding word ids xs", xs, W.shape[0])
        self.idx = xs
        return W[xs]  # (N, T, D)

    def backward(self, dout: Any) -> None:
        dW = self.grads[0]
        if not self.accumulate:
            dW[...] = 0
        scatter_add_rows(dW, self.idx.reshape(-1), dout.reshape(-1, dW.shape[1]))  # (N*T, D)
        return None


class TimeAffine:
    """The same affine map at every time step, as one GEMM on the (N*T, H) view.

        forward:  out = xs @ W + b                  xs (N, T, H), W (H, V), b (V,), out (N, T, V)
        backward: dxs = dout @ W.T                  (N, T, H)
                  dW  = sum_{n,t} xs[n,t].T dout[n,t] = xs2.T @ dout2     (H, V)
                  db  = sum_{n,t} dout[n, t]                              (V,)
    where xs2 = xs.reshape(N*T, H) and dout2 = dout.reshape(N*T, V); H is the number of features
    read (the hidden size of the recurrent layer below). Any leading shape works.

    Params: W (H, V), b (V,)
    """

    param_names = ("W", "b")

    def __init__(self, W: Any, b: Any) -> None:
        self.params = [W, b]
        xp = array_module(W)
        self.grads = [xp.zeros_like(W), xp.zeros_like(b)]
        self.x = None

    def forward(self, xs: Any) -> Any:
        W, b = self.params
        check_float("TimeAffine input xs", xs)
        check_last_dim("TimeAffine input xs", xs, W.shape[0], "the rows of W")
        self.x = xs
        out = xs.reshape(-1, W.shape[0]) @ W  # (N*T, V)
        out += b
        return out.reshape(*xs.shape[:-1], W.shape[1])

    def backward(self, dout: Any) -> Any:
        W, _ = self.params
        x2 = self.x.reshape(-1, W.shape[0])  # (N*T, D)
        dout2 = dout.reshape(-1, W.shape[1])  # (N*T, V)
        matmul_into(self.grads[0], x2.T, dout2)  # no (D, V) temporary, also for a tied W = E.T
        xp = array_module(dout2)
        matmul_into(self.grads[1], xp.ones(dout2.shape[0], dtype=dout2.dtype), dout2)  # sum_k
        return (dout2 @ W.T).reshape(self.x.shape)


_CACHE_BLOCK_BYTES = 1 << 20  # rows of (N*T, V) processed together by TimeSoftmaxWithLoss


class TimeSoftmaxWithLoss:
    """Softmax and cross-entropy at every time step, averaged over the unmasked tokens.

        z    = xs - max_v xs                       (N*T, V)  scores shifted, row by row
        e    = exp(z);  s = sum_v e                (N*T, V), (N*T,)
        y    = e / s                               (N*T, V)  softmax (never stored: see below)
        m    = (ts != ignore_label)                (N*T,)    1 for real tokens, 0 for padding
        L    = sum_k m_k (log s_k - z_k[ts_k]) / sum_k m_k
    backward (dout = dL/dL, 1 by default), with c_k = dout * m_k / sum_k m_k:
        dxs[k] = c_k * (y[k] - onehot(ts_k)) = e[k] * (c_k / s_k) - c_k * onehot(ts_k)  (N, T, V)

    xs (N, T, V) scores (any leading shape); ts (N, T) ids, or one-hot (N, T, V) whose all-zero
    rows count as padding. ``ignore_label=None`` masks nothing. With no real token the loss is
    0 and so is the gradient.

    Memory and passes: one (N*T, V) buffer owned by the layer holds z, then e, then dxs, all in
    place; it is reused while the shape and dtype stay the same. The forward pass runs over
    blocks of rows small enough to stay in the CPU cache (max, shift, exp and the row sum, the
    sum as a matrix-vector product ``e @ 1``), so xs and the buffer are each swept once. It only
    needs s, so y is not formed there: backward scales e by c_k / s_k, one pass for both the
    softmax division and the loss scale. The one-hot matrix is never built (c_k is subtracted at
    ``[k, ts_k]`` by fancy indexing). The ``dxs`` that ``backward`` returns IS that buffer: it
    stays valid until the next ``forward``.

    With ``pip install 'bptt[numba]'`` both directions are compiled loops over the rows
    instead (:func:`bptt.kernels.softmax_kernels`: a row's max, exp and sum while it is in
    cache; the scale and the target's subtraction in one pass); float32 exp within 2 units in
    the last place. NumPy's passes above stay the reference.
    """

    def __init__(self, ignore_label: int | None = -1) -> None:
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self.ignore_label = ignore_label
        self._buf = None  # (N*T, V): z -> e -> dxs
        self._ready = False  # the buffer holds e of the last forward, not yet turned into dxs
        self.t = self.mask = self.count = self.s = None
        self.xs_shape: tuple[int, ...] | None = None

    def _buffer(self, xp: Any, shape: tuple[int, int], dtype: Any) -> Any:
        b = self._buf
        if b is None or b.shape != shape or b.dtype != dtype or array_module(b) is not xp:
            b = self._buf = xp.empty(shape, dtype=dtype)
        return b

    def _labels(self, xs: Any, ts: Any) -> tuple[Any, Any]:
        """Flat ids (N*T,) and mask (N*T,) or None."""
        V = xs.shape[-1]
        if ts.ndim == xs.ndim:  # one-hot (N, T, V): all-zero rows are padding
            check_same_shape("one-hot labels ts", ts, "scores xs", xs)
            t2 = ts.reshape(-1, V)
            mask = t2.max(axis=1) > 0
            return t2.argmax(axis=1), mask
        if tuple(ts.shape) != tuple(xs.shape[:-1]):
            raise ValueError(
                f"labels ts have shape {tuple(ts.shape)} but scores xs have shape "
                f"{tuple(xs.shape)}; ts must be xs.shape[:-1] = {tuple(xs.shape[:-1])} (ids) "
                f"or xs.shape (one-hot)"
            )
        check_labels("labels ts", ts, V, self.ignore_label)
        t = ts.reshape(-1)
        if self.ignore_label is None:
            return t, None
        mask = t != self.ignore_label
        xp = array_module(t)
        return xp.where(mask, t, 0), mask  # padding points at id 0; its row is masked anyway

    @staticmethod
    def _forward_blocks(xp: Any, x2: Any, mx: Any, buf: Any, s: Any) -> None:
        """mx, buf, s = max x2, exp(x2 - mx), sum exp(x2 - mx) row by row, in NumPy's passes."""
        M, V = x2.shape
        ones = xp.ones(V, dtype=x2.dtype)
        block = max(1, _CACHE_BLOCK_BYTES // max(1, V * x2.dtype.itemsize))
        if xp.__name__ != "numpy":  # a GPU wants one launch per step over all rows, not blocks
            block = M
        for lo in range(0, M, block):  # row blocks that stay in cache between the four steps
            xb, eb = x2[lo:lo + block], buf[lo:lo + block]
            xb.max(axis=1, out=mx[lo:lo + block])
            xp.subtract(xb, mx[lo:lo + block, None], out=eb)  # z
            xp.exp(eb, out=eb)  # e
            xp.matmul(eb, ones, out=s[lo:lo + block])  # s = sum_v e

    def forward(self, xs: Any, ts: Any) -> Any:
        xp = array_module(xs)
        check_float("TimeSoftmaxWithLoss scores xs", xs)
        if xs.ndim < 2:
            raise ValueError(f"scores xs must have shape (N, T, V), got {tuple(xs.shape)}")
        t, mask = self._labels(xs, ts)
        V = xs.shape[-1]
        x2 = xs.reshape(-1, V)  # (N*T, V)
        M = x2.shape[0]
        buf = self._buffer(xp, (M, V), xs.dtype)
        mx, s = xp.empty(M, dtype=xs.dtype), xp.empty(M, dtype=xs.dtype)  # (N*T,) each
        compiled = softmax_kernels(xp, xs.dtype) if V else None
        if compiled is not None:  # the same, compiled, a row at a time
            compiled.forward(xp.ascontiguousarray(x2), mx, buf, s)
        else:
            self._forward_blocks(xp, x2, mx, buf, s)
        nll = xp.log(s)
        nll -= x2[xp.arange(M), t] - mx  # -log y[k, t_k] = log s_k - z_k[t_k], no log of 0
        if mask is None:
            count = xp.asarray(M, dtype=xs.dtype)
        else:
            nll *= mask
            count = xp.maximum(mask.sum(dtype=xs.dtype), 1)  # no token: loss 0, grad 0
        self.t, self.mask, self.count, self.s, self.xs_shape = t, mask, count, s, xs.shape
        self._ready = True
        return nll.sum() / count

    def backward(self, dout: Any = 1) -> Any:
        if not self._ready:
            raise RuntimeError("TimeSoftmaxWithLoss.backward needs a forward first "
                               "(each forward allows one backward: its buffer becomes dxs)")
        xp = array_module(self._buf)
        buf = self._buf  # e
        M = buf.shape[0]
        c = xp.empty(M, dtype=buf.dtype)  # (N*T,)
        c[...] = dout / self.count
        if self.mask is not None:
            c *= self.mask  # padding rows get 0
        scale = c / self.s
        compiled = softmax_kernels(xp, buf.dtype)
        if compiled is not None:  # the same two steps, one compiled pass a row
            compiled.backward(buf, scale, self.t, c)
        else:
            buf *= scale[:, None]  # c * y, one pass over (N*T, V)
            buf[xp.arange(M), self.t] -= c  # c * (y - onehot(t)), in place
        self._ready = False
        return buf.reshape(self.xs_shape)


class TimeSigmoidWithLoss:
    """Binary cross-entropy with logits, averaged over the unmasked elements.

        y = sigmoid(xs)                                      xs, ts, y: same shape, e.g. (N, T)
        m = (ts != ignore_label)                             1 for real targets, 0 for padding
        l = softplus(xs) - ts * xs = max(xs, 0) - ts * xs + log(1 + exp(-|xs|))
          (= -ts log y - (1 - ts) log(1 - y), without log of a rounded 0)
        L = sum m * l / sum m
    backward (dout = 1 by default):
        dxs = dout * m * (y - ts) / sum m

    ts holds targets in [0, 1] (floats or ints; soft targets allowed); entries equal to
    ``ignore_label`` (default -1) are padding. xs may also have one more trailing axis of size
    1 than ts, e.g. xs (N, T, 1) with ts (N, T).
    """

    def __init__(self, ignore_label: float | None = -1) -> None:
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self.ignore_label = ignore_label
        self.cache = None

    def forward(self, xs: Any, ts: Any) -> Any:
        xp = array_module(xs)
        check_float("TimeSigmoidWithLoss logits xs", xs)
        if xs.ndim == ts.ndim + 1 and xs.shape[-1] == 1:
            ts = ts.reshape(xs.shape)
        check_same_shape("targets ts", ts, "logits xs", xs)
        t = ts.astype(xs.dtype, copy=False)
        mask = None if self.ignore_label is None else t != self.ignore_label
        if mask is not None:
            t = xp.where(mask, t, 0)
        if t.size and (float(t.min()) < 0 or float(t.max()) > 1):
            pad = f" (or {self.ignore_label} for padding)" if mask is not None else ""
            raise ValueError(f"targets ts must lie in [0, 1]{pad}, got values in "
                             f"[{float(t.min())}, {float(t.max())}]")
        loss = xp.maximum(xs, 0) - t * xs + xp.log1p(xp.exp(-xp.abs(xs)))
        if mask is None:
            count = xp.asarray(max(xs.size, 1), dtype=xs.dtype)
        else:
            loss *= mask
            count = xp.maximum(mask.sum(dtype=xs.dtype), 1)
        self.cache = (sigmoid(xs), t, mask, count)
        return loss.sum() / count

    def backward(self, dout: Any = 1) -> Any:
        y, t, mask, count = self.cache
        dx = y - t
        dx *= dout / count
        if mask is not None:
            dx *= mask
        return dx


# DL2's name for dropout over (N, T, D): the same layer (one class, one parameter name)
TimeDropout = Dropout
