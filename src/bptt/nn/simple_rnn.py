"""``SimpleRNN``: the DIVER exercise's RNN layer, in the style of its FC layer.

Same math as ``TimeRNN``, with the exercise's names and interface::

    rnn = SimpleRNN(n_features=2, n_nodes=4, initializer=Xavier(), optimizer=SGD(0.01))
    h_T = rnn.forward(X)     # X (batch_size, n_sequences, n_features) -> (batch_size, n_nodes)
    dX = rnn.backward(dh_T)  # computes dW_x, dW_h, dB, then optimizer.update(rnn)
"""

from __future__ import annotations

from typing import Any

from ..backend import array_module
from ..initializers import Xavier
from ..validate import check_float, check_last_dim, check_ndim

_ACTIVATIONS = ("tanh", "relu")


class SimpleRNN:
    """Vanilla RNN over a whole sequence, updating its own weights in ``backward``.

    Forward, for t = 1..T (T = n_sequences), h_0 = ``h0`` or zeros:
        a_t = x_t @ W_x + h_{t-1} @ W_h + B           (batch_size, n_nodes)
        h_t = tanh(a_t)        (or relu(a_t))          (batch_size, n_nodes)
    returns h_T, or all h_1..h_T (batch_size, n_sequences, n_nodes) when ``return_sequences``;
    all states are kept in ``h_all`` either way.

    Backward, with dh_t = dL/dh_t = (gradient from the output at t) + (gradient from step t+1):
        da_t     = dh_t * (1 - h_t**2)     (relu: dh_t * (a_t > 0))
        dB       = sum_t sum_batch da_t
        dW_x     = sum_t x_t.T @ da_t
        dW_h     = sum_t h_{t-1}.T @ da_t
        dh_{t-1} = da_t @ W_h.T   (added to the output gradient at t-1)
        dx_t     = da_t @ W_x.T
    then ``optimizer.update(self)``: e.g. SGD's W_x <- W_x - lr * dW_x. ``backward`` returns
    dX (batch_size, n_sequences, n_features); dL/dh_0 is kept in ``dh0``.

    Attributes: W_x (n_features, n_nodes), W_h (n_nodes, n_nodes), B (n_nodes,), which you may
    read or assign; dW_x, dW_h, dB after ``backward``. ``params`` = [W_x, W_h, B] and ``grads``
    = [dW_x, dW_h, dB] always reflect the current attributes (an optimizer updates them in
    place). ``optimizer=None`` computes the gradients without updating.

    The x_t @ W_x for all t is one GEMM on (batch*T, n_features), as are dW_x and dX; only the
    h_{t-1} @ W_h recursion loops over t.
    """

    def __init__(self, n_features: int, n_nodes: int, initializer: Any = None,
                 optimizer: Any = None, activation: str = "tanh",
                 return_sequences: bool = False) -> None:
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, "
                             f"got {activation!r}")
        self.n_features, self.n_nodes = n_features, n_nodes
        self.activation = activation
        self.return_sequences = return_sequences
        self.optimizer = optimizer
        init = initializer if initializer is not None else Xavier()  # std 1/sqrt(n_in): tanh
        self.W_x = init.W(n_features, n_nodes)
        self.W_h = init.W(n_nodes, n_nodes)
        xp = array_module(self.W_x)
        self.B = (init.B(n_nodes) if hasattr(init, "B")
                  else xp.zeros(n_nodes, dtype=self.W_x.dtype))
        self.dW_x, self.dW_h, self.dB = (xp.zeros_like(p) for p in (self.W_x, self.W_h, self.B))
        self.X = self.h_all = self.h0 = self.dh0 = None

    @property
    def params(self) -> list[Any]:
        return [self.W_x, self.W_h, self.B]

    @property
    def grads(self) -> list[Any]:
        return [self.dW_x, self.dW_h, self.dB]

    def forward(self, X: Any, h0: Any = None) -> Any:
        """X (batch_size, n_sequences, n_features) -> h_T (batch_size, n_nodes), or all states."""
        xp = array_module(X, self.W_x)
        check_float("SimpleRNN input X", X)
        check_ndim("SimpleRNN input X", X, 3, "batch_size, n_sequences, n_features")
        check_last_dim("SimpleRNN input X", X, self.W_x.shape[0], "n_features, the rows of W_x")
        N, T, F = X.shape
        H = self.W_x.shape[1]
        dtype = self.W_x.dtype
        if h0 is not None and tuple(h0.shape) != (N, H):
            raise ValueError(f"h0 must have shape {(N, H)}, got {tuple(h0.shape)}")
        h = self.h0 = xp.zeros((N, H), dtype=dtype) if h0 is None else h0
        A = (X.reshape(N * T, F) @ self.W_x).reshape(N, T, H)  # x_t @ W_x for all t
        A += self.B
        h_all = xp.empty((N, T, H), dtype=A.dtype)
        for t in range(T):
            a = A[:, t] + h @ self.W_h  # (N, H)
            h = xp.tanh(a) if self.activation == "tanh" else xp.maximum(a, 0)
            h_all[:, t] = h
        self.X, self.h_all = X, h_all
        return h_all if self.return_sequences else h_all[:, -1]

    def backward(self, dA: Any) -> Any:
        """dA = dL/dh_T (batch_size, n_nodes), or dL/dh_t for all t when ``return_sequences``."""
        xp = array_module(self.h_all)
        X, h_all = self.X, self.h_all
        N, T, F = X.shape
        H = h_all.shape[2]
        if self.return_sequences:
            if tuple(dA.shape) != (N, T, H):
                raise ValueError(f"dA must have shape {(N, T, H)} (all states), "
                                 f"got {tuple(dA.shape)}")
            dH = dA
        else:
            if tuple(dA.shape) != (N, H):
                raise ValueError(f"dA must have shape {(N, H)} (the last state), "
                                 f"got {tuple(dA.shape)}")
            dH = None
        dA_all = xp.empty_like(h_all)  # da_t for all t
        dh = xp.zeros((N, H), dtype=h_all.dtype) if dH is not None else dA
        for t in reversed(range(T)):
            if dH is not None:
                dh = dh + dH[:, t]
            h = h_all[:, t]
            da = dh * (1 - h * h) if self.activation == "tanh" else dh * (h > 0)
            dA_all[:, t] = da
            dh = da @ self.W_h.T  # dL/dh_{t-1}
        self.dh0 = dh
        h_prev = xp.concatenate([self.h0[:, None], h_all[:, :-1]], axis=1)  # (N, T, H)
        da2 = dA_all.reshape(N * T, H)
        grads = (X.reshape(N * T, F).T @ da2, h_prev.reshape(N * T, H).T @ da2, da2.sum(axis=0))
        for name, g in zip(("dW_x", "dW_h", "dB"), grads, strict=True):
            old = getattr(self, name)
            if old.shape == g.shape and old.dtype == g.dtype:
                old[...] = g  # in place: an optimizer may hold these arrays
            else:  # W_x etc. were reassigned with another shape
                setattr(self, name, g)
        dX = (da2 @ self.W_x.T).reshape(N, T, F)
        if self.optimizer is not None:
            self.optimizer.update(self)
        return dX
