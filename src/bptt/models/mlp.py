"""Feed-forward classifiers of Deep Learning from Scratch ch. 5-6 (trained by
:func:`bptt.train.classifier.train_classifier`).

    net = TwoLayerNet(input_size=784, hidden_size=50, output_size=10)
    grads = net.gradient(x_batch, t_batch)        # backprop: dict of 'W1', 'b1', 'W2', 'b2'
    optimizer.update(net.params, grads)           # or optimizer.update(net)

As in the book, ``params`` is a dict ('W1', 'b1', ...) of the very arrays the layers hold, and
``layers`` an ordered dict of layers; ``gradient`` returns the dict ``grads`` of the layers' own
gradient arrays (overwritten in place by the next call; copy them to keep them).
Shape letters: N batch, D input features, H hidden units, C classes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from ..gradcheck import numerical_gradient as _numgrad
from ..initializers import get_initializer, normal, zeros
from ..nn.layers import Affine, Dropout, ReLU, Sigmoid, SoftmaxWithLoss, Tanh, TrainMode

__all__ = ["TwoLayerNet", "MultiLayerNet", "accuracy"]

_ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}


def accuracy(y: Any, t: Any) -> float:
    """Fraction of rows whose largest score ``y`` (N, C) is at the label ``t`` ((N,) or one-hot)."""
    pred = y.argmax(axis=1)
    if t.ndim != 1:
        t = t.argmax(axis=1)
    return float((pred == t).sum()) / float(y.shape[0])


class _Classifier:
    """Shared by the two nets: ``layers`` (ordered), ``last_layer``, ``params``/``grads`` dicts."""

    layers: OrderedDict[str, Any]
    last_layer: SoftmaxWithLoss
    params: dict[str, Any]
    grads: dict[str, Any]

    def train(self) -> None:
        """Training mode: dropout acts."""
        for layer in self.layers.values():
            if isinstance(layer, TrainMode):
                layer.train()

    def eval(self) -> None:
        """Evaluation mode: dropout does not."""
        for layer in self.layers.values():
            if isinstance(layer, TrainMode):
                layer.eval()

    def predict(self, x: Any, train_flg: bool = False) -> Any:
        """Scores before the softmax: x (N, D) -> (N, C); ``train_flg`` (the book's argument)
        sets the mode first."""
        self.train() if train_flg else self.eval()
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def _penalty(self) -> float:
        return 0.0

    def loss(self, x: Any, t: Any, train_flg: bool = False) -> Any:
        """Mean cross-entropy of softmax(predict(x)) against ``t`` (+ weight decay, if any)."""
        y = self.predict(x, train_flg)
        return self.last_layer.forward(y, t) + self._penalty()

    def accuracy(self, x: Any, t: Any) -> float:
        """Classification accuracy on (x, t); ``t`` holds ids (N,) or one-hot rows (N, C)."""
        return accuracy(self.predict(x, train_flg=False), t)

    def _backward(self) -> None:
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)

    def loss_and_gradient(self, x: Any, t: Any) -> tuple[float, dict[str, Any]]:
        """One forward (training mode) and backward: (loss, grads)."""
        loss = self.loss(x, t, train_flg=True)
        self._backward()
        self._add_decay_grads()
        return float(loss), self.grads

    def gradient(self, x: Any, t: Any) -> dict[str, Any]:
        """Backprop gradients of :meth:`loss` (training mode): dict with the keys of ``params``."""
        return self.loss_and_gradient(x, t)[1]

    def _add_decay_grads(self) -> None:
        pass

    def numerical_gradient(self, x: Any, t: Any, eps: float = 1e-4) -> dict[str, Any]:
        """Central differences of :meth:`loss` (training mode) w.r.t. every parameter (slow)."""
        def f() -> float:
            return float(self.loss(x, t, train_flg=True))
        return {key: _numgrad(f, p, eps) for key, p in self.params.items()}


class TwoLayerNet(_Classifier):
    """Affine -> ReLU -> Affine -> SoftmaxWithLoss (the book's ``TwoLayerNet``, ch. 5).

        h = relu(x @ W1 + b1)          x (N, D), W1 (D, H), b1 (H,), h (N, H)
        y = h @ W2 + b2                W2 (H, C), b2 (C,), y (N, C)
        L = -(1/N) sum_n log softmax(y)[n, t_n]

    W1, W2 ~ N(0, weight_init_std^2), b1 = b2 = 0, in ``dtype`` (default float32).
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 weight_init_std: float = 0.01, *, dtype: Any = None,
                 generator: Any = None) -> None:
        D, H, C = input_size, hidden_size, output_size
        std = weight_init_std
        self.params = {
            "W1": normal((D, H), std, dtype=dtype, generator=generator),
            "b1": zeros(H, dtype=dtype),
            "W2": normal((H, C), std, dtype=dtype, generator=generator),
            "b2": zeros(C, dtype=dtype),
        }
        p = self.params
        self.layers = OrderedDict(
            Affine1=Affine(p["W1"], p["b1"]), Relu1=ReLU(), Affine2=Affine(p["W2"], p["b2"]))
        self.last_layer = SoftmaxWithLoss()
        a1, a2 = self.layers["Affine1"], self.layers["Affine2"]
        self.grads = {"W1": a1.grads[0], "b1": a1.grads[1], "W2": a2.grads[0], "b2": a2.grads[1]}


class MultiLayerNet(_Classifier):
    """Fully connected net: (Affine -> activation [-> Dropout]) * L -> Affine -> SoftmaxWithLoss.

        h_0 = x;  h_l = dropout(act(h_{l-1} @ W_l + b_l))  for l = 1..L    (L hidden layers)
        y = h_L @ W_{L+1} + b_{L+1}
        loss = cross_entropy(softmax(y), t) + (lambda / 2) * sum_l sum(W_l ** 2)
    backward adds the weight decay term to each weight gradient: dW_l += lambda * W_l.

    Args:
        hidden_size_list: sizes of the hidden layers, e.g. [100, 100].
        activation: 'relu', 'sigmoid' or 'tanh'.
        weight_init: 'he'/'relu' (std sqrt(2/n_in)), 'xavier'/'sigmoid' (std sqrt(1/n_in)),
            a float std, or an initializer object (see :mod:`bptt.initializers`). Biases are 0.
        weight_decay_lambda: L2 penalty lambda.
        use_dropout, dropout_ratio: a Dropout after each activation (training mode only).
    Layers are named as in the book: 'Affine1', 'Activation_function1', 'Dropout1', ...
    """

    def __init__(self, input_size: int, hidden_size_list: Sequence[int], output_size: int,
                 activation: str = "relu", weight_init: Any = "he",
                 weight_decay_lambda: float = 0.0, use_dropout: bool = False,
                 dropout_ratio: float = 0.5, *, dtype: Any = None, generator: Any = None) -> None:
        act = _ACTIVATIONS.get(str(activation).lower())
        if act is None:
            raise ValueError(f"unknown activation {activation!r}: use one of "
                             f"{', '.join(_ACTIVATIONS)}")
        init = get_initializer(weight_init, dtype=dtype, generator=generator)
        sizes = [input_size, *hidden_size_list, output_size]
        self.weight_decay_lambda = float(weight_decay_lambda)
        self.params, self.grads = {}, {}
        self.layers = OrderedDict()
        n_affine = len(sizes) - 1
        for i in range(1, n_affine + 1):
            W, b = init.W(sizes[i - 1], sizes[i]), zeros(sizes[i], dtype=dtype)
            self.params[f"W{i}"], self.params[f"b{i}"] = W, b
            affine = self.layers[f"Affine{i}"] = Affine(W, b)
            self.grads[f"W{i}"], self.grads[f"b{i}"] = affine.grads
            if i < n_affine:
                self.layers[f"Activation_function{i}"] = act()
                if use_dropout:
                    self.layers[f"Dropout{i}"] = Dropout(dropout_ratio, generator=generator)
        self.last_layer = SoftmaxWithLoss()
        self._weights = [self.params[f"W{i}"] for i in range(1, n_affine + 1)]
        self._weight_grads = [self.grads[f"W{i}"] for i in range(1, n_affine + 1)]

    def _penalty(self) -> float:
        lam = self.weight_decay_lambda
        if lam == 0.0:
            return 0.0
        return 0.5 * lam * sum(float((W * W).sum()) for W in self._weights)

    def _add_decay_grads(self) -> None:
        lam = self.weight_decay_lambda
        if lam != 0.0:
            for W, dW in zip(self._weights, self._weight_grads, strict=True):
                dW += lam * W
