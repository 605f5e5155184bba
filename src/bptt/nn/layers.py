"""Feed-forward layers with hand-written backward passes (Deep Learning from Scratch ch. 5).

The layer contract (the one of Deep Learning from Scratch 2):

- ``params``: list of parameter arrays; ``grads``: arrays of the same shapes, overwritten in
  place by ``backward`` (optimizers hold these very arrays);
- ``forward(...)`` computes and caches what ``backward`` needs;
- ``backward(dout)`` returns the gradient(s) of the input(s), a tuple when there are several.

Shape letters: N batch, D input features, H output features, C classes, V vocabulary.
"""

from __future__ import annotations

from typing import Any

from ..backend import array_module, rng, scatter_add_rows
from ..validate import check_float, check_labels, check_last_dim, check_same_shape
from .functions import sigmoid, softmax


class MulLayer:
    """Multiplication node of a computational graph.

        forward:  out = x * y
        backward: dx = dout * y,  dy = dout * x
    """

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self.x = self.y = None

    def forward(self, x: Any, y: Any) -> Any:
        self.x, self.y = x, y
        return x * y

    def backward(self, dout: Any) -> tuple[Any, Any]:
        return dout * self.y, dout * self.x  # dx, dy: the inputs swapped


class AddLayer:
    """Addition node of a computational graph.

        forward:  out = x + y
        backward: dx = dout,  dy = dout
    """

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.grads: list[Any] = []

    def forward(self, x: Any, y: Any) -> Any:
        return x + y

    def backward(self, dout: Any) -> tuple[Any, Any]:
        return dout * 1, dout * 1  # passed through unchanged (copies, not aliases)


class ReLU:
    """Rectified linear unit, any shape.

        forward:  out = max(0, x)          mask = (x <= 0)
        backward: dx = dout,  0 where mask
    """

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self.mask = None

    def forward(self, x: Any) -> Any:
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout: Any) -> Any:
        dx = dout.copy()
        dx[self.mask] = 0
        return dx


class Sigmoid:
    """Logistic sigmoid, any shape.

        forward:  out = 1 / (1 + exp(-x))
        backward: dx = dout * out * (1 - out)
    """

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self.out = None

    def forward(self, x: Any) -> Any:
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout: Any) -> Any:
        return dout * self.out * (1.0 - self.out)


class Tanh:
    """Hyperbolic tangent, any shape.

        forward:  out = tanh(x)
        backward: dx = dout * (1 - out**2)
    """

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self.out = None

    def forward(self, x: Any) -> Any:
        self.out = array_module(x).tanh(x)
        return self.out

    def backward(self, dout: Any) -> Any:
        return dout * (1.0 - self.out**2)


class Affine:
    """Fully connected layer. N-D input is flattened to (N, D) like the book.

        forward:  out = x @ W + b                         x (N, D), W (D, H), b (H,), out (N, H)
        backward: dx = dout @ W.T   (reshaped to x's original shape)
                  dW = x.T @ dout   db = sum_N dout

    Params: W (D, H), b (H,)
    """

    def __init__(self, W: Any, b: Any) -> None:
        self.params = [W, b]
        self.grads = [array_module(W).zeros_like(W), array_module(b).zeros_like(b)]
        self.x = None
        self.original_x_shape: tuple[int, ...] | None = None

    def forward(self, x: Any) -> Any:
        W, b = self.params
        check_float("Affine input x", x)
        self.original_x_shape = x.shape
        x = x.reshape(x.shape[0], -1) if x.ndim != 2 else x  # (N, D)
        check_last_dim("Affine input x (flattened)", x, W.shape[0], "the rows of W")
        self.x = x
        return x @ W + b  # (N, H)

    def backward(self, dout: Any) -> Any:
        W, _ = self.params
        self.grads[0][...] = self.x.T @ dout
        self.grads[1][...] = dout.sum(axis=0)
        return (dout @ W.T).reshape(self.original_x_shape)


class Softmax:
    """Softmax over the last axis.

        forward:  y = exp(x - max x) / sum exp(x - max x)
        backward: dx = y * (dout - sum(dout * y, last axis))
    """

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self.out = None

    def forward(self, x: Any) -> Any:
        self.out = softmax(x)
        return self.out

    def backward(self, dout: Any) -> Any:
        y = self.out
        return y * (dout - (dout * y).sum(axis=-1, keepdims=True))


class SoftmaxWithLoss:
    """Softmax followed by the mean cross-entropy over the batch.

        forward:  y = softmax(x)      L = -(1/N) sum_n log y[n, t_n]
        backward: dx = dout * (y - onehot(t)) / N

    x (N, C) logits; t (N,) class ids or (N, C) one-hot. Stable for any logits (the max is
    subtracted before exp; the log is taken of the shifted values, never of a rounded 0).
    """

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self.y = self.t = None

    def forward(self, x: Any, t: Any) -> Any:
        xp = array_module(x)
        check_float("SoftmaxWithLoss logits x", x)
        if t.ndim == x.ndim:  # one-hot
            check_same_shape("one-hot labels t", t, "logits x", x)
            t = t.argmax(axis=-1)
        x2 = x.reshape(-1, x.shape[-1])
        t = t.reshape(-1)
        if t.shape[0] != x2.shape[0]:
            raise ValueError(f"labels t have {t.shape[0]} entries but logits x have "
                             f"{x2.shape[0]} rows (shape {tuple(x.shape)})")
        check_labels("labels t", t, x2.shape[-1])
        n = x2.shape[0]
        z = x2 - x2.max(axis=1, keepdims=True)
        ez = xp.exp(z)
        sum_ez = ez.sum(axis=1)
        self.y = ez / sum_ez[:, None]
        self.t = t
        self.x_shape = x.shape
        # -log y[n, t] = log sum exp z - z[n, t]: no log of an underflowed 0
        return (xp.log(sum_ez) - z[xp.arange(n), t]).sum() / n

    def backward(self, dout: Any = 1) -> Any:
        xp = array_module(self.y)
        n = self.y.shape[0]
        dx = self.y.copy()
        dx[xp.arange(n), self.t] -= 1
        dx *= dout / n
        return dx.reshape(self.x_shape)


class TrainMode:
    """The one way to switch what a layer or a model does only in training (dropout, weight
    drop, activation penalties): ``train()`` and ``eval()``. ``train_flg``, the book's name,
    is the flag they set; the book's ``forward(..., train_flg)`` arguments call them."""

    train_flg = True

    def train(self) -> None:
        self.train_flg = True

    def eval(self) -> None:
        self.train_flg = False


class Dropout(TrainMode):
    """Inverted dropout: scale at training time, identity at evaluation, on arrays of any shape
    (the book's ``Dropout`` of DL1 and ``TimeDropout`` of DL2 are this one layer).

        forward (train): mask = (u > dropout_ratio) / (1 - dropout_ratio), u ~ U[0, 1)
                         out = x * mask
                         u has the shape of x, or (N, 1, D) for x (N, T, D) when
                         ``variational`` (one mask for all time steps, Gal & Ghahramani 2016)
        forward (eval):  out = x
        backward:        dx = dout * mask    (dout in eval)

    ``train()``/``eval()`` switch the mode (:class:`TrainMode`). Masks come from ``generator``
    if given, else from ``bptt.backend.rng()`` (seeded by ``bptt.seed``).
    """

    def __init__(self, dropout_ratio: float = 0.5, variational: bool = False,
                 generator: Any = None) -> None:
        if not 0.0 <= dropout_ratio < 1.0:
            raise ValueError(f"dropout ratio must be in [0, 1), got {dropout_ratio}")
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self.dropout_ratio = dropout_ratio
        self.variational = variational
        self.generator = generator
        self.train_flg = True
        self.mask = None

    def forward(self, x: Any) -> Any:
        if not self.train_flg or self.dropout_ratio == 0.0:
            self.mask = None
            return x
        check_float("Dropout input x", x)
        shape = x.shape
        if self.variational:
            if x.ndim != 3:
                raise ValueError(f"variational dropout needs x of shape (N, T, D), got "
                                 f"{tuple(x.shape)}")
            shape = (x.shape[0], 1, x.shape[2])  # one mask per sequence, all t
        g = self.generator if self.generator is not None else rng()
        u = array_module(x).asarray(g.random(shape, dtype=x.dtype))  # a host generator's too
        mask = (u > self.dropout_ratio).astype(x.dtype)
        mask *= 1.0 / (1.0 - self.dropout_ratio)
        self.mask = mask
        return x * mask

    def backward(self, dout: Any) -> Any:
        return dout if self.mask is None else dout * self.mask


class Embedding:
    """Row lookup of word vectors.

        forward:  out = W[idx]                 idx (...) ints, W (V, D), out (..., D)
        backward: dW[v] = sum over positions k with idx[k] == v of dout[k]

    The backward sums repeated ids exactly, by sorting once (see ``scatter_add_rows``), not with
    the slow ``np.add.at``; it returns None (ids have no gradient).
    """

    def __init__(self, W: Any) -> None:
        self.params = [W]
        self.grads = [array_module(W).zeros_like(W)]
        self.idx = None

    def forward(self, idx: Any) -> Any:
        W = self.params[0]
        check_labels("Embedding ids", idx, W.shape[0])
        self.idx = idx
        return W[idx]

    def backward(self, dout: Any) -> None:
        dW = self.grads[0]
        dW[...] = 0
        scatter_add_rows(dW, self.idx, dout.reshape(-1, dW.shape[1]))
        return None
