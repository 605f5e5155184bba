"""The regularisers of AWD-LSTM (Merity, Keskar & Socher 2017, "Regularizing and Optimizing
LSTM Language Models"), each a layer with its own exact backward; all are off unless asked for.

- :class:`WeightDrop`: DropConnect on a recurrent layer's recurrent weight (Wh; IndRNN's u):
  one mask per forward, shared by every time step (the state path keeps the same weights
  through the sequence, unlike dropout on h)::

      Wh~ = Wh * m / (1 - p),  m ~ Bernoulli(1 - p) of shape Wh      (train; Wh~ = Wh in eval)
      hs = layer(xs; Wx, Wh~, b)        dWh = dWh~ * m / (1 - p)

- :class:`EmbeddingDropout`: drops whole words, i.e. rows of the embedding, the same word at
  every position of the batch::

      out[n, t] = W[xs[n, t]] * m[xs[n, t]] / (1 - p),  m ~ Bernoulli(1 - p) of shape (V,)
      dW[v] = sum over (n, t) with xs[n, t] == v of dout[n, t] * m[v] / (1 - p)

- :class:`ActivationPenalty`: activation regularisation (AR) and temporal activation
  regularisation (TAR) as an identity layer that adds their gradients on the way back::

      AR  = alpha * mean(h**2)                     dAR/dh = 2 alpha h / h.size
      TAR = beta * mean((h[:, 1:] - h[:, :-1])**2) dTAR/dh[:, t] = 2 beta / d.size *
                                                   (d[:, t-1] - d[:, t]),  d = h[:, 1:] - h[:, :-1]
                                                   (d[:, -1] and d[:, T-1] taken as 0)

  ``penalty`` holds AR + TAR of the last training forward; the language model adds it to the
  loss it reports for gradients, never to its perplexity (as AWD-LSTM does).

Masks come from ``generator`` if given, else ``bptt.backend.rng()``, so a checkpoint's RNG
state makes a resumed run draw the same masks.
"""

from __future__ import annotations

from typing import Any

from ..backend import array_module, rng, scatter_add_rows
from ..validate import check_labels
from .layers import TrainMode


def _check_ratio(name: str, p: float) -> float:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {p}")
    return float(p)


def _keep_mask(generator: Any, shape: tuple[int, ...], p: float, dtype: Any,
               like: Any) -> Any:
    """A scaled keep mask in the module of ``like`` (a host generator's is moved there)."""
    g = generator if generator is not None else rng()
    u = array_module(like).asarray(g.random(shape, dtype=dtype))
    mask = (u >= p).astype(dtype)
    mask *= 1.0 / (1.0 - p)
    return mask


class WeightDrop(TrainMode):
    """DropConnect on the recurrent weight of a Time layer (module docstring).

    Wraps ``layer`` (a fused Time layer or a TimeCell): ``params`` are the layer's with the
    dropped one replaced by the raw weight (what the optimizer updates and checkpoints hold);
    the layer itself runs on a masked copy. ``name``: which parameter ("Wh", or "u" for
    IndRNN); a layer without it is a ValueError naming the cell.
    """

    def __init__(self, layer: Any, p: float, name: str = "Wh", generator: Any = None) -> None:
        self.p = _check_ratio("weight drop", p)
        names = list(getattr(layer, "param_names", ("Wx", "Wh", "b")))[:len(layer.params)]
        if name not in names:
            raise ValueError(f"weight drop needs a recurrent weight {name!r}, and "
                             f"{getattr(layer, 'name', type(layer).__name__)} has only "
                             f"{', '.join(names)}")
        self.layer, self.index, self.generator = layer, names.index(name), generator
        self.name = f"WeightDrop({getattr(layer, 'name', type(layer).__name__)})"
        self.param_names = tuple(names)
        raw = layer.params[self.index]
        self.raw = raw
        layer.params[self.index] = raw.copy()  # the masked weight the layer computes with
        self.params = list(layer.params)
        self.params[self.index] = raw
        self.grads = list(layer.grads)
        self.grads[self.index] = array_module(raw).zeros_like(raw)
        self.train_flg = True
        self.mask: Any = None
        for attr in ("spec", "gates", "has_cell", "D", "H"):
            if hasattr(layer, attr):
                setattr(self, attr, getattr(layer, attr))

    def forward(self, xs: Any, mask: Any = None) -> Any:
        work = self.layer.params[self.index]
        if self.train_flg and self.p > 0:
            self.mask = _keep_mask(self.generator, self.raw.shape, self.p, self.raw.dtype,
                                   self.raw)
            array_module(work).multiply(self.raw, self.mask, out=work)
        else:
            self.mask = None
            work[...] = self.raw
        return self.layer.forward(xs, mask=mask) if mask is not None else self.layer.forward(xs)

    def backward(self, dhs: Any, **kw: Any) -> Any:
        dxs = self.layer.backward(dhs, **kw)
        g = self.layer.grads[self.index]
        self.grads[self.index][...] = g if self.mask is None else g * self.mask
        return dxs

    # the wrapped layer's state, as a Time layer shows it
    @property
    def stateful(self) -> bool:
        return self.layer.stateful

    @property
    def h(self) -> Any:
        return self.layer.h

    @property
    def c(self) -> Any:
        return self.layer.c

    @property
    def dh(self) -> Any:
        return self.layer.dh

    @property
    def dc(self) -> Any:
        return self.layer.dc

    def set_state(self, h: Any, c: Any = None) -> None:
        self.layer.set_state(h, c)

    def reset_state(self) -> None:
        self.layer.reset_state()


class EmbeddingDropout(TrainMode):
    """A TimeEmbedding whose words are dropped whole (module docstring). Params: W (V, D)."""

    param_names = ("W",)

    def __init__(self, W: Any, p: float, generator: Any = None) -> None:
        self.p = _check_ratio("embedding dropout", p)
        self.params = [W]
        self.grads = [array_module(W).zeros_like(W)]
        self.generator = generator
        self.train_flg = True
        self.idx: Any = None
        self.scale: Any = None  # m[xs] / (1 - p), (N, T, 1), or None
        self.accumulate = False  # add to grads[0] (a tied W), as TimeEmbedding

    def forward(self, xs: Any) -> Any:
        W = self.params[0]
        check_labels("EmbeddingDropout word ids xs", xs, W.shape[0])
        self.idx = xs
        if not self.train_flg or self.p == 0:
            self.scale = None
            return W[xs]  # (N, T, D)
        words = _keep_mask(self.generator, (W.shape[0],), self.p, W.dtype, W)  # (V,)
        self.scale = words[xs][..., None]  # (N, T, 1)
        return W[xs] * self.scale

    def backward(self, dout: Any) -> None:
        dW = self.grads[0]
        if not self.accumulate:
            dW[...] = 0
        if self.scale is not None:
            dout = dout * self.scale
        scatter_add_rows(dW, self.idx.reshape(-1), dout.reshape(-1, dW.shape[1]))  # (N*T, D)
        return None


class ActivationPenalty(TrainMode):
    """Identity on hs (N, T, H) that adds the AR and TAR gradients in backward (module
    docstring). ``alpha`` (AR) and ``beta`` (TAR) >= 0; off at evaluation."""

    def __init__(self, alpha: float = 0.0, beta: float = 0.0) -> None:
        for name, v in (("AR alpha", alpha), ("TAR beta", beta)):
            if not v >= 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        self.alpha, self.beta = float(alpha), float(beta)
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self.train_flg = True
        self.penalty = 0.0
        self.hs: Any = None

    def forward(self, hs: Any) -> Any:
        self.hs = hs if self.train_flg else None
        self.penalty = 0.0
        if self.hs is not None:
            xp = array_module(hs)
            if self.alpha:
                self.penalty += self.alpha * float(xp.mean(hs * hs))
            if self.beta and hs.shape[1] > 1:
                d = hs[:, 1:] - hs[:, :-1]
                self.penalty += self.beta * float(xp.mean(d * d))
        return hs

    def backward(self, dout: Any) -> Any:
        hs = self.hs
        if hs is None or not (self.alpha or self.beta):
            return dout
        dhs = dout.copy()
        if self.alpha:
            dhs += (2 * self.alpha / hs.size) * hs
        if self.beta and hs.shape[1] > 1:
            d = hs[:, 1:] - hs[:, :-1]  # (N, T-1, H)
            k = 2 * self.beta / d.size
            dhs[:, 1:] += k * d
            dhs[:, :-1] -= k * d
        return dhs
