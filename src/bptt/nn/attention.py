"""Attention (Deep Learning from Scratch 2, ch. 8): the book's layers, and a Time layer with
three scores and source padding masks.

The book's one-step layers (decoder state h (N, H), encoder states hs (N, T, H)):

- :class:`AttentionWeight`: ``a = softmax_T(sum_H hs * h)``, the weight of each source step;
- :class:`WeightSum`: ``c = sum_T hs * a``, the context vector;
- :class:`Attention`: both, ``c = WeightSum(hs, AttentionWeight(hs, h))``.

:class:`TimeAttention` does every decoder step at once with batched matrix products (the book
loops over t with one :class:`Attention` per step; a test checks they agree) and offers the
score functions of the literature (decoder state h_t, encoder state hs_i):

    dot       s_ti = hs_i . h_t                              (the book; Luong et al. 2015)
    general   s_ti = hs_i . (h_t @ W)         W (Hd, He)     (Luong et al. 2015)
    additive  s_ti = v . tanh(hs_i @ W1 + h_t @ W2)
                       W1 (He, A), W2 (Hd, A), v (A,)        (Bahdanau et al. 2015)

Source padding: ``mask`` (N, Ts) with 0 at padded positions gives them weight exactly 0.
Shape letters: N batch, T (Ts) source steps, Tt decoder steps, H (He, Hd) hidden sizes.
"""

from __future__ import annotations

from typing import Any

from ..backend import array_module, matmul_stacked, reused
from ..validate import check_ndim

SCORES = ("dot", "general", "additive")


def masked_softmax(s: Any, mask: Any = None) -> Any:
    """Softmax over the last axis; where ``mask`` (broadcastable) is 0 the weight is 0."""
    xp = array_module(s)
    if mask is not None:
        s = xp.where(mask, s, -xp.inf)
    s = s - s.max(axis=-1, keepdims=True)
    e = xp.exp(s)
    return e / e.sum(axis=-1, keepdims=True)


class AttentionWeight:
    """The weight of each encoder step for one decoder state (dot-product score).

        s = sum_H hs * h[:, None, :]          (N, T)
        a = softmax_T(s)                       (N, T)
    backward, with da = dL/da:
        ds  = a * (da - sum_T da * a)          (softmax's backward)
        dhs = ds[:, :, None] * h[:, None, :]   (N, T, H)
        dh  = sum_T ds[:, :, None] * hs        (N, H)

    hs (N, T, H), h (N, H). No parameters.
    """

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self.cache: tuple | None = None

    def forward(self, hs: Any, h: Any) -> Any:
        s = (hs * h[:, None, :]).sum(axis=2)  # (N, T)
        a = masked_softmax(s)
        self.cache = (hs, h, a)
        return a

    def backward(self, da: Any) -> tuple[Any, Any]:
        hs, h, a = self.cache
        ds = a * (da - (da * a).sum(axis=1, keepdims=True))
        dhs = ds[:, :, None] * h[:, None, :]
        dh = (ds[:, :, None] * hs).sum(axis=1)
        return dhs, dh


class WeightSum:
    """The context vector: the encoder states weighted by a.

        c = sum_T hs * a[:, :, None]           (N, H)
    backward, with dc = dL/dc:
        dhs = dc[:, None, :] * a[:, :, None]   (N, T, H)
        da  = sum_H dc[:, None, :] * hs        (N, T)

    hs (N, T, H), a (N, T). No parameters.
    """

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self.cache: tuple | None = None

    def forward(self, hs: Any, a: Any) -> Any:
        self.cache = (hs, a)
        return (hs * a[:, :, None]).sum(axis=1)

    def backward(self, dc: Any) -> tuple[Any, Any]:
        hs, a = self.cache
        dhs = dc[:, None, :] * a[:, :, None]
        da = (dc[:, None, :] * hs).sum(axis=2)
        return dhs, da


class Attention:
    """One decoder step of attention: ``c = WeightSum(hs, AttentionWeight(hs, h))``.

        a = softmax_T(sum_H hs * h)            (N, T)   kept in ``attention_weight``
        c = sum_T hs * a                       (N, H)
    backward: dhs = dhs_from_weight_sum + dhs_from_attention_weight, dh from the weights.

    hs (N, T, H), h (N, H) -> c (N, H). No parameters.
    """

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self.attention_weight_layer = AttentionWeight()
        self.weight_sum_layer = WeightSum()
        self.attention_weight: Any = None

    def forward(self, hs: Any, h: Any) -> Any:
        a = self.attention_weight_layer.forward(hs, h)
        self.attention_weight = a
        return self.weight_sum_layer.forward(hs, a)

    def backward(self, dc: Any) -> tuple[Any, Any]:
        dhs0, da = self.weight_sum_layer.backward(dc)
        dhs1, dh = self.attention_weight_layer.backward(da)
        return dhs0 + dhs1, dh


class TimeAttention:
    """Attention for every decoder step at once.

        s  = score(hs_enc, hs_dec)             (N, Tt, Ts)   see the module docstring
        a  = softmax_Ts(s), 0 where mask = 0   (N, Tt, Ts)   kept in ``attention_weights``
        c  = a @ hs_enc                        (N, Tt, He)
    backward, with dc = dL/dc:
        da = dc @ hs_enc.T                     (N, Tt, Ts)
        ds = a * (da - sum_Ts da * a)
        dhs_enc = a.T @ dc + (the score's part)
        dot:      dhs_dec = ds @ hs_enc        dhs_enc += ds.T @ hs_dec
        general:  u = hs_dec @ W;  du = ds @ hs_enc;  dhs_dec = du @ W.T;  dW = hs_dec.T @ du;
                  dhs_enc += ds.T @ u
        additive: z = tanh(e_i + f_t), e = hs_enc @ W1, f = hs_dec @ W2   (N, Tt, Ts, A)
                  dz = ds * v * (1 - z**2);  dv = sum ds * z;  de = sum_t dz;  df = sum_i dz
                  dhs_enc += de @ W1.T;  dW1 = hs_enc.T @ de;  dhs_dec = df @ W2.T;
                  dW2 = hs_dec.T @ df

    ``forward(hs_enc, hs_dec, mask=None)`` -> c; ``backward(dc)`` -> (dhs_enc, dhs_dec).
    Params: none (dot), W (Hd, He) (general), W1 (He, A), W2 (Hd, A), v (A,) (additive).
    """

    def __init__(self, score: str = "dot", params: list[Any] | None = None) -> None:
        if score not in SCORES:
            raise ValueError(f"unknown attention score {score!r}: choose one of "
                             f"{', '.join(SCORES)}")
        want = {"dot": 0, "general": 1, "additive": 3}[score]
        params = list(params or [])
        if len(params) != want:
            raise ValueError(f"the {score!r} score takes {want} parameter arrays "
                             f"({'W' if want == 1 else 'W1, W2, v' if want else 'none'}), got "
                             f"{len(params)}")
        self.score = score
        self.params = params
        self.grads = [array_module(p).zeros_like(p) for p in params]
        self.param_names = {"dot": (), "general": ("W",), "additive": ("W1", "W2", "v")}[score]
        self.attention_weights: Any = None
        self.cache: tuple | None = None
        self._scratch: dict[str, Any] = {}

    def _scores(self, xp: Any, hs_enc: Any, hs_dec: Any) -> tuple[Any, Any]:
        """(s (N, Tt, Ts), what backward needs of the score)."""
        if self.score == "dot":
            return matmul_stacked(hs_dec, hs_enc.transpose(0, 2, 1)), None  # hs_dec @ hs_enc.T
        if self.score == "general":
            u = hs_dec @ self.params[0]  # (N, Tt, He)
            return matmul_stacked(u, hs_enc.transpose(0, 2, 1)), u
        W1, W2, v = self.params
        e = hs_enc @ W1  # (N, Ts, A)
        f = hs_dec @ W2  # (N, Tt, A)
        z = xp.tanh(e[:, None, :, :] + f[:, :, None, :])  # (N, Tt, Ts, A)
        return z @ v, z

    def forward(self, hs_enc: Any, hs_dec: Any, mask: Any = None) -> Any:
        check_ndim("TimeAttention encoder states", hs_enc, 3, "N, Ts, He")
        check_ndim("TimeAttention decoder states", hs_dec, 3, "N, Tt, Hd")
        xp = array_module(hs_enc)
        s, extra = self._scores(xp, hs_enc, hs_dec)
        m = None
        if mask is not None:
            m = xp.asarray(mask).astype(bool)
            if tuple(m.shape) != (hs_enc.shape[0], hs_enc.shape[1]):
                raise ValueError(f"TimeAttention mask must have shape (N, Ts) = "
                                 f"{hs_enc.shape[:2]}, got {tuple(m.shape)}")
            if not bool(m.any(axis=1).all()):
                raise ValueError("TimeAttention mask leaves a sequence with no source step")
            m = m[:, None, :]
        a = masked_softmax(s, m)  # (N, Tt, Ts)
        self.attention_weights = a
        self.cache = (hs_enc, hs_dec, a, extra)
        return matmul_stacked(a, hs_enc)  # c = a @ hs_enc (N, Tt, He)

    def backward(self, dc: Any, out: Any = None) -> tuple[Any, Any]:
        """(dhs_enc, dhs_dec); ``out`` (N, Ts, He), when given, receives dhs_enc (the caller's
        memory, e.g. the encoder's gradient buffer: no fresh multi-MB array a step)."""
        hs_enc, hs_dec, a, extra = self.cache
        xp = array_module(dc)
        da = matmul_stacked(dc, hs_enc.transpose(0, 2, 1))  # dc @ hs_enc.T (N, Tt, Ts)
        ds = a * (da - (da * a).sum(axis=2, keepdims=True))
        if self.score == "dot":
            dhs_dec = matmul_stacked(ds, hs_enc)  # ds @ hs_enc
            # dhs_enc = a.T @ dc + ds.T @ hs_dec as ONE product over [a, ds] and [dc, hs_dec]
            N, Tt, He = dc.shape
            both = reused(self._scratch, "dc_hs", xp, (N, 2 * Tt, He), dc.dtype)
            both[:, :Tt], both[:, Tt:] = dc, hs_dec
            weights = reused(self._scratch, "a_ds", xp, (N, 2 * Tt, a.shape[2]), a.dtype)
            weights[:, :Tt], weights[:, Tt:] = a, ds
            return matmul_stacked(weights.transpose(0, 2, 1), both, out), dhs_dec
        dhs_enc = matmul_stacked(a.transpose(0, 2, 1), dc, out)  # (N, Ts, He)
        if self.score == "general":
            W, u = self.params[0], extra
            du = matmul_stacked(ds, hs_enc)  # (N, Tt, He)
            dhs_enc += matmul_stacked(ds.transpose(0, 2, 1), u)
            dhs_dec = du @ W.T
            self.grads[0][...] = hs_dec.reshape(-1, hs_dec.shape[2]).T @ du.reshape(-1,
                                                                                    du.shape[2])
        else:
            W1, W2, v = self.params
            z = extra
            self.grads[2][...] = (ds[..., None] * z).sum(axis=(0, 1, 2))
            dz = ds[..., None] * v * (1 - z * z)  # (N, Tt, Ts, A)
            de = dz.sum(axis=1)  # (N, Ts, A)
            df = dz.sum(axis=2)  # (N, Tt, A)
            dhs_enc += de @ W1.T
            dhs_dec = df @ W2.T
            self.grads[0][...] = (hs_enc.reshape(-1, hs_enc.shape[2]).T
                                  @ de.reshape(-1, de.shape[2]))
            self.grads[1][...] = (hs_dec.reshape(-1, hs_dec.shape[2]).T
                                  @ df.reshape(-1, df.shape[2]))
        return dhs_enc, dhs_dec
