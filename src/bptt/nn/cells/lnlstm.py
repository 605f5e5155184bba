"""Layer-normalised LSTM (Ba, Kiros & Hinton 2016, "Layer Normalization", sec. 3.1 and A).

Layer norm of a row v (N, K), with gain gamma and shift beta (K,):

    mu = mean_k v    sigma = sqrt(mean_k (v - mu)**2 + eps)    v^ = (v - mu) / sigma
    LN(v) = gamma * v^ + beta
backward, with dy = dL/dLN(v):
    dgamma = sum_N dy * v^        dbeta = sum_N dy        dv^ = dy * gamma
    dv = (dv^ - mean_k dv^ - v^ * mean_k (dv^ * v^)) / sigma

The cell (the book's blocks f, g, i, o; the input and recurrent products normalised apart, so
neither can swamp the other, and the cell state normalised before the output):

    A = LN(x @ Wx; gx, 0) + LN(h_prev @ Wh; gh, 0) + b                (N, 4H)
    f, g, i, o = sigmoid(A_f), tanh(A_g), sigmoid(A_i), sigmoid(A_o)
    c_next = f * c_prev + g * i        h_next = o * tanh(LN(c_next; gc, bc))
backward, with dh_next, dc_next:
    dn = dh_next * o * (1 - tanh(n)**2), n = LN(c_next)       ds = dc_next + LN backward of dn
    dA = [ds c_prev f (1 - f), ds i (1 - g**2), ds g i (1 - i), dh_next tanh(n) o (1 - o)]
    dx = LN backward (gx) of dA @ Wx.T     dh_prev = LN backward (gh) of dA @ Wh.T
    dc_prev = ds * f

Params: Wx (D, 4H), Wh (H, 4H), b (4H,), gx (4H,), gh (4H,), gc (H,), bc (H,); gains start at
1 and shifts at 0 (the shift of the two gate norms is b). Shape letters: N batch, D, H.
"""

from __future__ import annotations

from typing import Any

from ...backend import array_module, right_product
from ...kernels import lnlstm_kernels
from ..functions import sigmoid
from .base import TimeRecurrentBase, check_cell_params, check_state, check_step_input

EPS = 1e-5


def layer_norm(v: Any, gamma: Any, beta: Any = None, eps: float = EPS) -> tuple[Any, tuple]:
    """LN over the last axis: (gamma * v^ + beta, cache for :func:`layer_norm_backward`)."""
    xp = array_module(v)
    mu = v.mean(axis=-1, keepdims=True)
    centred = v - mu
    sigma = xp.sqrt((centred * centred).mean(axis=-1, keepdims=True) + eps)
    v_hat = centred / sigma
    y = v_hat * gamma
    if beta is not None:
        y += beta
    return y, (v_hat, sigma, gamma)


def layer_norm_backward(dy: Any, cache: tuple) -> tuple[Any, Any, Any]:
    """(dv, dgamma, dbeta) of :func:`layer_norm` (the module docstring)."""
    v_hat, sigma, gamma = cache
    dv_hat = dy * gamma
    dv = (dv_hat - dv_hat.mean(axis=-1, keepdims=True)
          - v_hat * (dv_hat * v_hat).mean(axis=-1, keepdims=True)) / sigma
    lead = tuple(range(dy.ndim - 1))
    return dv, (dy * v_hat).sum(axis=lead), dy.sum(axis=lead)


class LayerNormLSTM:
    """One step of the layer-normalised LSTM (the module docstring)."""

    param_names = ("Wx", "Wh", "b", "gx", "gh", "gc", "bc")

    @classmethod
    def init_params(cls, D: int, H: int, init: Any) -> list[Any]:
        Wx, Wh, b = init.W(D, 4 * H), init.W(H, 4 * H), init.B(4 * H)
        xp = array_module(Wx)
        ones = xp.ones(4 * H, dtype=Wx.dtype)
        return [Wx, Wh, b, ones, ones.copy(), ones[:H].copy(), xp.zeros(H, dtype=Wx.dtype)]

    def __init__(self, Wx: Any, Wh: Any, b: Any, gx: Any, gh: Any, gc: Any, bc: Any) -> None:
        self.D, self.H = check_cell_params("LayerNormLSTM", Wx, Wh, b, 4)
        H = self.H
        for name, p, n in (("gx", gx, 4 * H), ("gh", gh, 4 * H), ("gc", gc, H), ("bc", bc, H)):
            if tuple(getattr(p, "shape", ())) != (n,) or p.dtype != Wx.dtype:
                raise ValueError(f"LayerNormLSTM parameter {name} must be ({n},) {Wx.dtype}, "
                                 f"got {tuple(getattr(p, 'shape', ()))} "
                                 f"{getattr(p, 'dtype', type(p).__name__)}")
        xp = array_module(Wx)
        self.params = [Wx, Wh, b, gx, gh, gc, bc]
        self.grads = [xp.zeros_like(p) for p in self.params]
        self.cache: tuple | None = None

    def forward(self, x: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
        Wx, Wh, b, gx, gh, gc, bc = self.params
        check_step_input("LayerNormLSTM", x, self.D, Wx.dtype)
        for name, s in (("h_prev", h_prev), ("c_prev", c_prev)):
            check_state(f"LayerNormLSTM {name}", s, x.shape[0], self.H, Wx.dtype)
        xp = array_module(x)
        H = self.H
        ax, cache_x = layer_norm(x @ Wx, gx)       # (N, 4H)
        ah, cache_h = layer_norm(h_prev @ Wh, gh)  # (N, 4H)
        A = ax + ah + b
        f, g = sigmoid(A[:, :H]), xp.tanh(A[:, H:2 * H])
        i, o = sigmoid(A[:, 2 * H:3 * H]), sigmoid(A[:, 3 * H:])
        c_next = f * c_prev + g * i
        n, cache_c = layer_norm(c_next, gc, bc)
        tanh_n = xp.tanh(n)
        self.cache = (x, h_prev, c_prev, f, g, i, o, tanh_n, cache_x, cache_h, cache_c)
        return o * tanh_n, c_next

    def backward(self, dh_next: Any, dc_next: Any) -> tuple[Any, Any, Any]:
        Wx, Wh = self.params[:2]
        x, h_prev, c_prev, f, g, i, o, tanh_n, cache_x, cache_h, cache_c = self.cache
        xp = array_module(x)
        dn = dh_next * o * (1 - tanh_n**2)
        dc, dgc, dbc = layer_norm_backward(dn, cache_c)
        ds = dc_next + dc
        dA = xp.concatenate([ds * c_prev * f * (1 - f), ds * i * (1 - g**2),
                             ds * g * i * (1 - i), dh_next * tanh_n * o * (1 - o)], axis=1)
        dpx, dgx, _ = layer_norm_backward(dA, cache_x)  # dL/d(x @ Wx)
        dph, dgh, _ = layer_norm_backward(dA, cache_h)  # dL/d(h_prev @ Wh)
        for k, grad in enumerate((x.T @ dpx, h_prev.T @ dph, dA.sum(axis=0), dgx, dgh, dgc,
                                  dbc)):
            self.grads[k][...] = grad
        return dpx @ Wx.T, dph @ Wh.T, ds * f

    def activations(self) -> dict[str, Any]:
        """The gates of the last forward, for ``bptt plot gates``."""
        f, g, i, o = self.cache[3:7]
        return {"f": f, "i": i, "o": o, "g": g}


class TimeLayerNormLSTM(TimeRecurrentBase):
    """The layer-normalised LSTM over T steps (the equations of :class:`LayerNormLSTM`).

    The input half needs no recurrence: ``LN(x_t @ Wx; gx)`` of every step is ONE matrix
    product and one vectorised layer norm before the loop, and its backward one after it;
    inside the loop remain ``h_{t-1} @ Wh``, its layer norm, the gates and ``LN(c_t)``.
    Masks: a padded step carries (h, c) and outputs 0, as in every Time layer. With ``pip
    install 'bptt[numba]'`` each step's element-wise part (both layer norms, the gates, the
    cell) is one compiled pass each way (:func:`bptt.kernels.lnlstm_kernels`); the loop here
    stays the reference.

    xs (N, T, D) -> hs (N, T, H). Params: Wx (D, 4H), Wh (H, 4H), b (4H,), gx (4H,), gh (4H,),
    gc (H,), bc (H,).
    """

    name = "TimeLayerNormLSTM"
    gates = 4
    has_cell = True
    param_names = LayerNormLSTM.param_names

    def __init__(self, Wx: Any, Wh: Any, b: Any, gx: Any, gh: Any, gc: Any, bc: Any,
                 stateful: bool = False) -> None:
        step = LayerNormLSTM(Wx, Wh, b, gx, gh, gc, bc)  # checks every shape and dtype
        self.D, self.H = step.D, step.H
        self._setup(step.params, stateful)
        self._make_grads()

    def forward(self, xs: Any, mask: Any = None) -> Any:
        Wx, Wh, b, gx, gh, gc, bc = self.params
        xp, N, T, xs_tm, m, h0, c0 = self._begin(xs, mask)
        H = self.H
        AX, cache_x = layer_norm((xs_tm @ Wx).reshape(T, N, 4 * H), gx)  # (T, N, 4H)
        hs = xp.empty((T + 1, N, H), dtype=xs.dtype)
        cs = xp.empty((T + 1, N, H), dtype=xs.dtype)
        hs[0], cs[0] = h0, c0
        compiled = lnlstm_kernels(xp, xs.dtype)
        steps: list | tuple = []
        if compiled is not None:  # the same step in one compiled pass (bptt.kernels)
            steps = self._compiled_forward(compiled, xp, AX, hs, cs, m)
        for t in range(T if compiled is None else 0):
            ah, cache_h = layer_norm(hs[t] @ Wh, gh)
            A = AX[t] + ah + b
            f, g = sigmoid(A[:, :H]), xp.tanh(A[:, H:2 * H])
            i, o = sigmoid(A[:, 2 * H:3 * H]), sigmoid(A[:, 3 * H:])
            c = f * cs[t] + g * i
            n, cache_c = layer_norm(c, gc, bc)
            tanh_n = xp.tanh(n)
            h = o * tanh_n
            if m is not None:  # padded: carry the state
                h, c = xp.where(m[0][t], hs[t], h), xp.where(m[0][t], cs[t], c)
            hs[t + 1], cs[t + 1] = h, c
            steps.append((f, g, i, o, tanh_n, cache_h, cache_c))
        self.cache = (xs_tm, cache_x, hs, cs, steps, m, N, T, compiled)
        self.h, self.c = hs[T].copy(), cs[T].copy()
        return self._outputs(xp, hs, m)

    def _compiled_forward(self, compiled: Any, xp: Any, AX: Any, hs: Any, cs: Any,
                          m: tuple | None) -> tuple:
        """The forward loop on the compiled step; returns what backward needs of each step:
        gates (T, N, 4H) [f, g, i, o], tanh(n) (T, N, H), the normalised rec^ (T, N, 4H) and
        c^ (T, N, H), and their sigmas (T, N) each."""
        Wh, b, gh, gc, bc = self.params[1], self.params[2], *self.params[4:]
        T, N, H4 = AX.shape
        dtype, H = AX.dtype, H4 // 4
        real = self._real_rows(xp, m, T, dtype)
        gates, vh = xp.empty((T, N, H4), dtype=dtype), xp.empty((T, N, H4), dtype=dtype)
        tanh_n, vc = xp.empty((T, N, H), dtype=dtype), xp.empty((T, N, H), dtype=dtype)
        sh, sc = xp.empty((T, N), dtype=dtype), xp.empty((T, N), dtype=dtype)
        rec = xp.empty((N, H4), dtype=dtype)
        product = right_product(Wh, N, self._scratch, "packed Wh", steps=T)
        eps = dtype.type(EPS)
        for t in range(T):
            product(rec, hs[t])  # h_{t-1} @ Wh
            compiled.forward(AX[t], rec, b, gh, gc, bc, cs[t], hs[t], cs[t + 1], hs[t + 1],
                             gates[t], tanh_n[t], vh[t], sh[t], vc[t], sc[t], real[t], eps)
        return gates, tanh_n, vh, sh, vc, sc

    def backward(self, dhs: Any, dh_last: Any = None, dc_last: Any = None) -> Any:
        xs_tm, cache_x, hs, cs, steps, m, N, T, compiled = self._cache()
        Wx, Wh = self.params[:2]
        xp = array_module(dhs)
        self._check_dhs(dhs, N, T)
        dtype = Wx.dtype
        H = self.H
        up = self._upstream(xp, dhs, m)  # (T, N, H)
        dh = self._start_dh(xp, dh_last, "dh_last", N, dtype)
        dc = self._start_dh(xp, dc_last, "dc_last", N, dtype)
        dA_all = xp.zeros((T, N, 4 * H), dtype=dtype)
        dph_all = xp.empty((T, N, 4 * H), dtype=dtype)  # dL/d(h_{t-1} @ Wh), every step
        grads = [xp.zeros_like(p) for p in self.params]
        if compiled is not None:  # the same steps, each in one compiled pass (bptt.kernels)
            self._compiled_backward(compiled, xp, steps, cs, up, dh, dc, m, dA_all, dph_all,
                                    grads)
        for t in range(T - 1, -1, -1) if compiled is None else ():
            f, g, i, o, tanh_n, cache_h, cache_c = steps[t]
            dh_t = up[t] + dh
            dc_t = dc
            if m is not None:  # a padded step: its gradient passes to t-1 unchanged
                keep = m[0][t]
                dh_carry, dc_carry = dh_t * keep, dc_t * keep
                dh_t, dc_t = dh_t * m[1][t], dc_t * m[1][t]
            dn = dh_t * o * (1 - tanh_n**2)
            dcn, dgc, dbc = layer_norm_backward(dn, cache_c)
            ds = dc_t + dcn
            dA = xp.concatenate([ds * cs[t] * f * (1 - f), ds * i * (1 - g**2),
                                 ds * g * i * (1 - i), dh_t * tanh_n * o * (1 - o)], axis=1)
            dA_all[t] = dA
            dph, dgh, _ = layer_norm_backward(dA, cache_h)  # dL/d(h_{t-1} @ Wh)
            dph_all[t] = dph
            grads[4] += dgh
            grads[5] += dgc
            grads[6] += dbc
            dh, dc = dph @ Wh.T, ds * f
            if m is not None:
                dh, dc = dh + dh_carry, dc + dc_carry
        grads[1][...] = hs[:-1].reshape(T * N, H).T @ dph_all.reshape(T * N, 4 * H)
        dpx, dgx, _ = layer_norm_backward(dA_all, cache_x)  # (T, N, 4H), all steps at once
        dpx_flat = dpx.reshape(T * N, 4 * H)
        grads[0][...] = xs_tm.T @ dpx_flat
        grads[2][...] = dA_all.reshape(T * N, 4 * H).sum(axis=0)
        grads[3][...] = dgx
        for total, g in zip(self.grads, grads, strict=True):
            total[...] = g
        self.dh, self.dc = dh, dc
        dxs = (dpx_flat @ Wx.T).reshape(T, N, self.D)
        return xp.ascontiguousarray(dxs.transpose(1, 0, 2))  # (N, T, D)

    def _compiled_backward(self, compiled: Any, xp: Any, steps: tuple, cs: Any, up: Any,
                           dh: Any, dc: Any, m: tuple | None, dA_all: Any, dph_all: Any,
                           grads: list) -> None:
        """The backward loop on the compiled step: fills dA_all, dph_all, dgh, dgc, dbc and
        leaves dL/dh_0, dL/dc_0 in dh, dc."""
        gates, tanh_n, vh, sh, vc, sc = steps
        Wh, gh, gc = self.params[1], self.params[4], self.params[5]
        T, N, H4 = dA_all.shape
        dtype, H = dA_all.dtype, H4 // 4
        real = self._real_rows(xp, m, T, dtype)
        sums = xp.zeros((3, H4), dtype=dtype)  # dgh (4H), dgc (H), dbc (H)
        dn, rec = xp.empty((N, H), dtype=dtype), xp.empty((N, H), dtype=dtype)
        back = right_product(Wh.T, N, self._scratch, "packed Wh.T", steps=T)
        for t in range(T - 1, -1, -1):  # dh becomes what a padded step passes on
            compiled.backward(gates[t], tanh_n[t], vh[t], sh[t], vc[t], sc[t], cs[t], up[t], dh,
                              dc, gh, gc, dn, dA_all[t], dph_all[t], sums, real[t])
            if m is None:
                back(dh, dph_all[t])  # dh_{t-1} = dph_t @ Wh.T
            else:
                back(rec, dph_all[t])
                dh += rec
        grads[4][...], grads[5][...], grads[6][...] = sums[0], sums[1, :H], sums[2, :H]
