"""The GRU cell (詳解ディープラーニング ch. 5; Cho et al. 2014): its step (:class:`GRU`) and its
fused Time layer (:class:`TimeGRU`).

    Wx (D, 3H)   Wh (H, 3H)   b (3H,)    blocks z, r, h~   (+ bh (H,) when reset_after)

Shape letters: N batch, T time steps, D input features, H hidden units.
"""

from __future__ import annotations

from typing import Any

from ...backend import array_module, right_product
from ...kernels import gru_kernels
from ...validate import check_float
from ..functions import sigmoid
from .base import (
    TimeRecurrentBase,
    _matmul_into,
    _zeros_state,
    check_cell_params,
    check_state,
    check_step_input,
)


class GRU:
    """One step of a gated recurrent unit (gate blocks z, r, h~; the book's convention).

    Default (``reset_after=False``, the book and Cho et al. 2014): the reset gate scales h_prev
    before the candidate's matrix product.

        z  = sigmoid(x @ Wxz + h_prev @ Whz + bz)                   (N, H)
        r  = sigmoid(x @ Wxr + h_prev @ Whr + br)
        hh = tanh(x @ Wxh + (r * h_prev) @ Whh + bhh)                h~ in the text
        h_next = (1 - z) * h_prev + z * hh
    where Wx = [Wxz, Wxr, Wxh] (D, 3H), Wh = [Whz, Whr, Whh] (H, 3H), b = [bz, br, bhh] (3H,).

    ``reset_after=True`` (PyTorch, cuDNN, Keras): the reset gate scales the candidate's
    recurrent term, which has its own bias ``bh`` (H,), a 4th parameter (zeros by default):

        hh = tanh(x @ Wxh + bhh + r * (h_prev @ Whh + bh))

    backward, with dh_next = dL/dh_next (da_* = gradient of the pre-activation of gate *):
        da_h = dh_next * z * (1 - hh**2)
        da_z = dh_next * (hh - h_prev) * z * (1 - z)
        reset before:  drh = da_h @ Whh.T        da_r = drh * h_prev * r * (1 - r)
                       dWhh = (r * h_prev).T @ da_h                 dh_prev += drh * r
        reset after:   dn = da_h * r             da_r = da_h * (h_prev @ Whh + bh) * r * (1 - r)
                       dWhh = h_prev.T @ dn      dbh = sum_N dn     dh_prev += dn @ Whh.T
        dWx = x.T @ [da_z, da_r, da_h]   db = sum_N [da_z, da_r, da_h]
        dWhz, dWhr = h_prev.T @ da_z, h_prev.T @ da_r
        dx = [da_z, da_r, da_h] @ Wx.T
        dh_prev = dh_next * (1 - z) + [da_z, da_r] @ [Whz, Whr].T  (+ the term above)

    PyTorch's GRU (blocks r, z, n) uses h' = (1 - z_t) * n + z_t * h_prev, so our z = 1 - z_t =
    sigmoid(-(pre-activation of z_t)). Mapping torch -> ours (``reset_after=True``):
        Wxz = -weight_ih[H:2H].T   Whz = -weight_hh[H:2H].T   bz  = -(bias_ih[H:2H] + bias_hh[H:2H])
        Wxr =  weight_ih[:H].T     Whr =  weight_hh[:H].T     br  =   bias_ih[:H] + bias_hh[:H]
        Wxh =  weight_ih[2H:].T    Whh =  weight_hh[2H:].T    bhh =   bias_ih[2H:]
        bh  =  bias_hh[2H:]
    (negating the z rows, not just swapping labels; gradients map back the same way).

    Params: Wx (D, 3H), Wh (H, 3H), b (3H,) [, bh (H,) when reset_after]. x (N, D); h (N, H).
    """

    param_names = ("Wx", "Wh", "b", "bh")  # bh only with reset_after

    def __init__(self, Wx: Any, Wh: Any, b: Any, bh: Any = None,
                 reset_after: bool = False) -> None:
        self.D, self.H = check_cell_params("GRU", Wx, Wh, b, 3)
        self.reset_after = bool(reset_after)
        self.params = [Wx, Wh, b]
        if self.reset_after:
            self.params.append(_recurrent_bias("GRU", bh, Wh, self.H))
        elif bh is not None:
            raise ValueError("GRU bh (the candidate's recurrent bias) is only used with "
                             "reset_after=True; pass reset_after=True or drop bh")
        xp = array_module(Wx)
        self.grads = [xp.zeros_like(p) for p in self.params]
        self.cache: tuple | None = None

    def _check(self, x: Any, h_prev: Any) -> None:
        check_step_input("GRU", x, self.D, self.params[0].dtype)
        check_state("GRU h_prev", h_prev, x.shape[0], self.H, x.dtype)

    def _next(self, x: Any, h_prev: Any) -> tuple:
        Wx, Wh, b = self.params[:3]
        xp = array_module(x)
        H = self.H
        ax = x @ Wx + b  # (N, 3H)
        z = sigmoid(ax[:, :H] + h_prev @ Wh[:, :H])
        r = sigmoid(ax[:, H:2 * H] + h_prev @ Wh[:, H:2 * H])
        if self.reset_after:
            n = h_prev @ Wh[:, 2 * H:] + self.params[3]  # (N, H)
            hh = xp.tanh(ax[:, 2 * H:] + r * n)
            extra = n
        else:
            rh = r * h_prev
            hh = xp.tanh(ax[:, 2 * H:] + rh @ Wh[:, 2 * H:])
            extra = rh
        h_next = (1 - z) * h_prev + z * hh
        return h_next, (z, r, hh, extra)

    def forward(self, x: Any, h_prev: Any) -> Any:
        self._check(x, h_prev)
        h_next, acts = self._next(x, h_prev)
        self.cache = (x, h_prev, acts)
        return h_next

    def backward(self, dh_next: Any) -> tuple[Any, Any]:
        Wx, Wh = self.params[:2]
        x, h_prev, (z, r, hh, extra) = self.cache
        xp = array_module(x)
        H = self.H
        Whh = Wh[:, 2 * H:]
        da_h = dh_next * z * (1 - hh**2)
        da_z = dh_next * (hh - h_prev) * z * (1 - z)
        dh_prev = dh_next * (1 - z)
        if self.reset_after:
            n = extra
            dn = da_h * r
            da_r = da_h * n * r * (1 - r)
            dWhh = h_prev.T @ dn
            self.grads[3][...] = dn.sum(axis=0)
            dh_prev += dn @ Whh.T
        else:
            rh = extra
            drh = da_h @ Whh.T
            da_r = drh * h_prev * r * (1 - r)
            dWhh = rh.T @ da_h
            dh_prev += drh * r
        dA = xp.concatenate([da_z, da_r, da_h], axis=1)  # (N, 3H)
        dzr = dA[:, :2 * H]
        self.grads[0][...] = x.T @ dA
        self.grads[1][:, :2 * H] = h_prev.T @ dzr
        self.grads[1][:, 2 * H:] = dWhh
        self.grads[2][...] = dA.sum(axis=0)
        dh_prev += dzr @ Wh[:, :2 * H].T
        return dA @ Wx.T, dh_prev  # dx, dh_prev

    def activations(self) -> dict[str, Any]:
        """The gates of the last forward, (N, H) each: update z and reset r."""
        z, r = self.cache[2][:2]
        return {"z": z, "r": r}

    def step(self, x: Any, state: Any = None) -> tuple[Any, Any]:
        """Inference step without caching: ``state`` = h_prev (None = zeros) -> (h, h)."""
        h_prev = _zeros_state(x, self.H) if state is None else state
        self._check(x, h_prev)
        h, _ = self._next(x, h_prev)
        return h, h

def _recurrent_bias(name: str, bh: Any, Wh: Any, H: int) -> Any:
    """The candidate's recurrent bias of a reset-after GRU: given (checked) or zeros (H,)."""
    if bh is None:
        return array_module(Wh).zeros(H, dtype=Wh.dtype)
    check_float(f"{name} parameter bh", bh)
    if getattr(bh, "shape", None) != (H,):
        raise ValueError(f"{name} parameter bh must have shape (H,) = ({H},), got "
                         f"{tuple(getattr(bh, 'shape', ()))}")
    if bh.dtype != Wh.dtype:
        raise TypeError(f"{name} parameter bh is {bh.dtype} but Wh is {Wh.dtype}")
    return bh

class TimeGRU(TimeRecurrentBase):
    """T steps of the GRU cell (:class:`bptt.nn.cells.GRU`, blocks z, r, h~), exact BPTT.

        forward, t = 0..T-1 (reset_after=False, the book):
            z = sigmoid(x_t @ Wxz + h_{t-1} @ Whz + bz)
            r = sigmoid(x_t @ Wxr + h_{t-1} @ Whr + br)
            hh = tanh(x_t @ Wxh + (r * h_{t-1}) @ Whh + bhh)
            (reset_after=True: hh = tanh(x_t @ Wxh + bhh + r * (h_{t-1} @ Whh + bh)))
            h_t = (1 - z) * h_{t-1} + z * hh
        backward, t = T-1..0, with dh = dL/dh_t from step t+1 (0, or dh_last, at t = T-1)
        and dh_tot = dhs_t + dh:
            da_h = dh_tot * z * (1 - hh**2)      da_z = dh_tot * (hh - h_{t-1}) * z * (1 - z)
            reset before: drh = da_h @ Whh.T   da_r = drh * h_{t-1} * r(1-r)
                          dWhh += (r * h_{t-1}).T @ da_h
            reset after:  dn = da_h * r        da_r = da_h * (h_{t-1} @ Whh + bh) * r(1-r)
                          dWhh += h_{t-1}.T @ dn    dbh += sum_N dn
            dh_{t-1} = dh_tot * (1 - z) + [da_z, da_r] @ [Whz, Whr].T
                       + (drh * r  |  dn @ Whh.T)
            dWx = sum_t x_t.T @ dA_t with dA_t = [da_z, da_r, da_h]   db = sum_t,N dA_t
            [dWhz, dWhr] = sum_t h_{t-1}.T @ [da_z, da_r]              dx_t = dA_t @ Wx.T

    xs (N, T, D) -> hs (N, T, H). Params: Wx (D, 3H), Wh (H, 3H), b (3H,) [, bh (H,) with
    reset_after]. ``backward(dhs, dh_last=None)``. PyTorch mapping: see :class:`~bptt.GRU`.
    """

    name = "TimeGRU"
    gates = 3
    param_names = ("Wx", "Wh", "b", "bh")  # bh only with reset_after

    def __init__(self, Wx: Any, Wh: Any, b: Any, stateful: bool = False, bh: Any = None,
                 reset_after: bool = False) -> None:
        super().__init__(Wx, Wh, b, stateful)
        self.reset_after = bool(reset_after)
        if self.reset_after:
            self.params.append(_recurrent_bias(self.name, bh, Wh, self.H))
        elif bh is not None:
            raise ValueError("TimeGRU bh (the candidate's recurrent bias) is only used with "
                             "reset_after=True; pass reset_after=True or drop bh")
        self._make_grads()

    def forward(self, xs: Any, mask: Any = None) -> Any:
        Wx, Wh, b = self.params[:3]
        xp, N, T, xs_tm, m, h0, _ = self._begin(xs, mask)
        H, dtype = self.H, xs.dtype
        G = self._work(xp, "G", (T, N, 3 * H), dtype)
        _matmul_into(G.reshape(T * N, 3 * H), xs_tm, Wx)  # all input projections at once
        G += b
        hs = self._work(xp, "hs", (T + 1, N, H), dtype)  # hs[t + 1] = h_t, hs[0] = h0
        hs[0] = h0
        # q_t: r * h_{t-1} (reset before, left factor of Whh) or h_{t-1} @ Whh + bh (reset after)
        qs = self._work(xp, "qs", (T, N, H), dtype)
        Whzr, Whh = Wh[:, :2 * H], Wh[:, 2 * H:]
        rec = xp.empty((N, 3 * H if self.reset_after else 2 * H), dtype=dtype)
        tmp = xp.empty((N, H), dtype=dtype)
        if self.reset_after:
            by_wh = right_product(Wh, N, self._scratch, "packed Wh", steps=T)
        else:
            by_whzr = right_product(Whzr, N, self._scratch, "packed Whzr", steps=T)
            by_whh = right_product(Whh, N, self._scratch, "packed Whh", steps=T)
        compiled = gru_kernels(xp, dtype)
        if compiled is not None:  # the same steps, element-wise parts compiled (bptt.kernels)
            products = (by_wh,) if self.reset_after else (by_whzr, by_whh)
            self._compiled_forward(compiled, G, hs, qs, m, rec, tmp, products)
        for t in range(T if compiled is None else 0):
            g, hp = G[t], hs[t]
            zr, r, hh = g[:, :2 * H], g[:, H:2 * H], g[:, 2 * H:]
            if self.reset_after:
                by_wh(rec, hp)  # (N, 3H)
                zr += rec[:, :2 * H]
                sigmoid(zr, out=zr)
                xp.add(rec[:, 2 * H:], self.params[3], out=qs[t])
                xp.multiply(r, qs[t], out=tmp)
            else:
                by_whzr(rec, hp)  # (N, 2H)
                zr += rec
                sigmoid(zr, out=zr)
                xp.multiply(r, hp, out=qs[t])
                by_whh(tmp, qs[t])
            hh += tmp
            xp.tanh(hh, out=hh)
            h = hs[t + 1]  # h = h_prev + z * (hh - h_prev)
            xp.subtract(hh, hp, out=h)
            h *= g[:, :H]
            h += hp
            if m is not None:
                xp.copyto(h, hp, where=m[0][t])
        self.cache = (xs_tm, G, hs, qs, m)
        self.h = hs[T].copy()
        return self._outputs(xp, hs, m)

    def backward(self, dhs: Any, dh_last: Any = None) -> Any:
        Wh = self.params[1]
        xs_tm, G, hs, qs, m = self._cache()
        xp = array_module(hs)
        T, N, H, dtype = hs.shape[0] - 1, hs.shape[1], self.H, hs.dtype
        self._check_dhs(dhs, N, T)
        dhs_tm = dhs.transpose(1, 0, 2)
        Whzr, Whh = Wh[:, :2 * H], Wh[:, 2 * H:]
        dA = self._work(xp, "dA", (T, N, 3 * H), dtype)  # [da_z, da_r, da_h] per step
        dn = self._work(xp, "dn", (T, N, H), dtype) if self.reset_after else None
        dh = self._start_dh(xp, dh_last, "dh_last", N, dtype)
        dh_tot = xp.empty((N, H), dtype=dtype)
        tmp = xp.empty((N, H), dtype=dtype)
        rec = xp.empty((N, H), dtype=dtype)
        back_zr = right_product(Whzr.T, N, self._scratch, "packed Whzr.T", steps=T)
        back_hh = right_product(Whh.T, N, self._scratch, "packed Whh.T", steps=T)
        compiled = gru_kernels(xp, dtype)
        if compiled is not None:  # the same steps, element-wise parts compiled (bptt.kernels)
            self._compiled_backward(compiled, dhs, G, dA, hs, qs, dn, m, dh, rec,
                                    back_zr, back_hh)
        for t in reversed(range(T if compiled is None else 0)):
            a, da, hp = G[t], dA[t], hs[t]
            z, r, hh = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
            da_z, da_r, da_h = da[:, :H], da[:, H:2 * H], da[:, 2 * H:]
            if m is not None:  # padded step: gradient flows straight to h_{t-1}
                carry = dh * m[0][t]
            xp.add(dhs_tm[t], dh, out=dh_tot)
            if m is not None:
                dh_tot *= m[1][t]
            xp.multiply(hh, hh, out=da_h)  # da_h = dh_tot * z * (1 - hh**2)
            xp.subtract(1, da_h, out=da_h)
            da_h *= z
            da_h *= dh_tot
            xp.subtract(hh, hp, out=da_z)  # da_z = dh_tot * (hh - h_prev) * z * (1 - z)
            da_z *= dh_tot
            xp.subtract(1, z, out=tmp)
            da_z *= tmp
            da_z *= z
            xp.multiply(dh_tot, tmp, out=dh)  # dh_tot * (1 - z); dh is a fresh array owned here
            xp.subtract(1, r, out=tmp)
            tmp *= r  # r(1 - r)
            if self.reset_after:
                xp.multiply(da_h, r, out=dn[t])
                xp.multiply(da_h, qs[t], out=da_r)
                da_r *= tmp
                back_hh(rec, dn[t])  # @ Whh.T
            else:
                back_hh(rec, da_h)  # drh
                xp.multiply(rec, hp, out=da_r)
                da_r *= tmp
                rec *= r
            dh += rec
            back_zr(rec, da[:, :2 * H])  # @ [Whz, Whr].T
            dh += rec
            if m is not None:
                dh += carry
        dA_flat = dA.reshape(T * N, 3 * H)
        hp_flat = hs[:-1].reshape(T * N, H)
        dWh = self.grads[1]
        _matmul_into(dWh[:, :2 * H], hp_flat.T, dA_flat[:, :2 * H])
        if self.reset_after:
            dn_flat = dn.reshape(T * N, H)
            _matmul_into(dWh[:, 2 * H:], hp_flat.T, dn_flat)
            self.grads[3][...] = dn_flat.sum(axis=0)
        else:
            _matmul_into(dWh[:, 2 * H:], qs.reshape(T * N, H).T, dA_flat[:, 2 * H:])
        self.dh = dh
        return self._finish_backward(xp, dA, xs_tm, N, T)

    def _compiled_forward(self, compiled: Any, G: Any, hs: Any, qs: Any, m: tuple | None,
                          rec: Any, tmp: Any, products: tuple) -> None:
        """forward's loop over t with each step's element-wise work in two compiled passes
        (:mod:`bptt.kernels`): gates, then (after q @ Whh when the reset comes first) output.
        ``products``: (@ Wh,) with the reset after, else (@ [Whz, Whr], @ Whh)."""
        xp, (T, _, H3) = array_module(G), G.shape
        H, dtype = H3 // 3, G.dtype
        real = self._real_rows(xp, m, T, dtype)
        no_rows = xp.empty((0, H), dtype=dtype)
        if self.reset_after:
            bh, (by_wh,) = xp.ascontiguousarray(self.params[3]), products
        else:
            bh, (by_whzr, by_whh) = xp.empty(0, dtype=dtype), products
        for t in range(T):
            g, hp = G[t], hs[t]
            if self.reset_after:
                by_wh(rec, hp)  # (N, 3H)
                compiled.gates(g, rec, hp, qs[t], bh)
                compiled.output(g, no_rows, qs[t], hp, hs[t + 1], real[t])
            else:
                by_whzr(rec, hp)  # (N, 2H)
                compiled.gates(g, rec, hp, qs[t], bh)
                by_whh(tmp, qs[t])  # (r * h_prev) @ Whh
                compiled.output(g, tmp, qs[t], hp, hs[t + 1], real[t])

    def _compiled_backward(self, compiled: Any, dhs: Any, G: Any, dA: Any, hs: Any, qs: Any,
                           dn: Any, m: tuple | None, dh: Any, rec: Any, back_zr: Any,
                           back_hh: Any) -> None:
        """backward's loop over t (dh updated in place) with the element-wise work compiled."""
        xp, (T, N, H3) = array_module(G), G.shape
        H, dtype = H3 // 3, G.dtype
        real = self._real_rows(xp, m, T, dtype)
        ups = xp.ascontiguousarray(dhs, dtype=dtype).reshape(N, T * H)  # up_t: [:, tH:(t+1)H]
        no_rows = xp.empty((0, H), dtype=dtype)
        for t in reversed(range(T)):
            g, da, hp = G[t], dA[t], hs[t]
            if m is not None:  # padded step: gradient flows straight to h_{t-1}
                carry = dh * m[0][t]
            compiled.backward(g, da, ups, t * H, dh, hp, qs[t],
                              dn[t] if self.reset_after else no_rows, real[t])
            if self.reset_after:
                back_hh(rec, dn[t])  # @ Whh.T
                dh += rec
            else:
                back_hh(rec, da[:, 2 * H:])  # drh = da_h @ Whh.T
                compiled.reset_grad(g, da, rec, hp, dh)
            back_zr(rec, da[:, :2 * H])  # @ [Whz, Whr].T
            dh += rec
            if m is not None:
                dh += carry
