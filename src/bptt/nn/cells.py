"""One-step recurrent cells: RNN, LSTM, GRU (Deep Learning from Scratch 2, ch. 5-6).

Each cell follows the layer contract (``params``, ``grads`` overwritten in place, ``cache``,
``forward``/``backward``) for ONE time step of a batch; the Time layers in
:mod:`bptt.nn.time_recurrent` run a whole sequence with a fused fast path and are tested equal to
the generic :class:`~bptt.nn.time_cell.TimeCell` over these cells. Each cell is registered once in
:mod:`bptt.nn.registry`. ``step(x, state) -> (h, new_state)`` is the cache-free call for generation
loops.

Parameters are concatenated by gate along the last axis (the book's layout):

    RNN   Wx (D, H)    Wh (H, H)    b (H,)
    LSTM  Wx (D, 4H)   Wh (H, 4H)   b (4H,)    blocks f, g, i, o
    GRU   Wx (D, 3H)   Wh (H, 3H)   b (3H,)    blocks z, r, h~   (+ bh (H,) when reset_after)

Shape letters: N batch, D input features, H hidden units.
"""

from __future__ import annotations

from typing import Any

from ..backend import array_module
from ..validate import check_float, check_ndim
from .functions import sigmoid

NONLINEARITIES = ("tanh", "relu")


def check_cell_params(name: str, Wx: Any, Wh: Any, b: Any, gates: int) -> tuple[int, int]:
    """Check the shapes and dtypes of (Wx, Wh, b) with ``gates`` blocks; return (D, H)."""
    for pname, p in (("Wx", Wx), ("Wh", Wh), ("b", b)):
        check_float(f"{name} parameter {pname}", p)
    check_ndim(f"{name} parameter Wx", Wx, 2, f"D, {gates}H" if gates > 1 else "D, H")
    check_ndim(f"{name} parameter Wh", Wh, 2, f"H, {gates}H" if gates > 1 else "H, H")
    check_ndim(f"{name} parameter b", b, 1, f"{gates}H" if gates > 1 else "H")
    D, H = Wx.shape[0], Wh.shape[0]
    want = gates * H
    if Wh.shape[1] != want or Wx.shape[1] != want or b.shape[0] != want:
        blocks = f"{gates} gate blocks of H={H}" if gates > 1 else f"H={H}"
        raise ValueError(
            f"{name} parameters do not fit together: Wx {tuple(Wx.shape)}, Wh {tuple(Wh.shape)}, "
            f"b {tuple(b.shape)}; with {blocks} (from Wh's rows) they must be Wx ({D}, {want}), "
            f"Wh ({H}, {want}), b ({want},)"
        )
    if not (Wx.dtype == Wh.dtype == b.dtype):
        raise TypeError(
            f"{name} parameters must share one dtype, got Wx {Wx.dtype}, Wh {Wh.dtype}, "
            f"b {b.dtype}"
        )
    return D, H


def check_step_input(name: str, x: Any, D: int, dtype: Any) -> None:
    """Check one step's input x (N, D) against the cell's D and parameter dtype."""
    check_float(f"{name} input x", x)
    check_ndim(f"{name} input x", x, 2, "N, D")
    if x.shape[1] != D:
        raise ValueError(f"{name} input x has shape {tuple(x.shape)} but the cell expects "
                         f"(N, {D}) (D = rows of Wx)")
    if x.dtype != dtype:
        raise TypeError(f"{name} input x is {x.dtype} but the parameters are {dtype}; "
                        f"convert with x.astype({dtype})")


def check_state(name: str, s: Any, N: int, H: int, dtype: Any) -> None:
    """Check a state (h or c) of shape (N, H) and the parameters' dtype."""
    check_float(name, s)
    if getattr(s, "ndim", None) != 2 or tuple(s.shape) != (N, H):
        raise ValueError(f"{name} must have shape (N, H) = ({N}, {H}), got "
                         f"{tuple(getattr(s, 'shape', ()))} (is the batch size N the same?)")
    if s.dtype != dtype:
        raise TypeError(f"{name} is {s.dtype} but the parameters are {dtype}; "
                        f"convert with .astype({dtype})")


def _zeros_state(x: Any, H: int) -> Any:
    return array_module(x).zeros((x.shape[0], H), dtype=x.dtype)


class RNN:
    """One step of a vanilla (Elman) RNN.

        a      = x @ Wx + h_prev @ Wh + b        (N, H)
        h_next = tanh(a)    or relu(a) = max(a, 0) with nonlinearity="relu"
    backward, with dh_next = dL/dh_next:
        da      = dh_next * (1 - h_next**2)      (relu: dh_next * (h_next > 0))
        dWx = x.T @ da    dWh = h_prev.T @ da    db = sum_N da
        dx  = da @ Wx.T   dh_prev = da @ Wh.T

    Params: Wx (D, H), Wh (H, H), b (H,). x (N, D), h_prev and h_next (N, H).
    """

    def __init__(self, Wx: Any, Wh: Any, b: Any, nonlinearity: str = "tanh") -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
        self.D, self.H = check_cell_params("RNN", Wx, Wh, b, 1)
        self.nonlinearity = nonlinearity
        self.params = [Wx, Wh, b]
        xp = array_module(Wx)
        self.grads = [xp.zeros_like(p) for p in self.params]
        self.cache: tuple | None = None

    def _check(self, x: Any, h_prev: Any) -> None:
        check_step_input("RNN", x, self.D, self.params[0].dtype)
        check_state("RNN h_prev", h_prev, x.shape[0], self.H, x.dtype)

    def _next(self, x: Any, h_prev: Any) -> Any:
        Wx, Wh, b = self.params
        a = x @ Wx + h_prev @ Wh + b  # (N, H)
        if self.nonlinearity == "tanh":
            return array_module(a).tanh(a, out=a)
        return array_module(a).maximum(a, 0, out=a)

    def forward(self, x: Any, h_prev: Any) -> Any:
        self._check(x, h_prev)
        h_next = self._next(x, h_prev)
        self.cache = (x, h_prev, h_next)
        return h_next

    def backward(self, dh_next: Any) -> tuple[Any, Any]:
        Wx, Wh, _ = self.params
        x, h_prev, h_next = self.cache
        if self.nonlinearity == "tanh":
            da = dh_next * (1 - h_next**2)
        else:
            da = dh_next * (h_next > 0)
        self.grads[0][...] = x.T @ da  # in place: optimizers hold these arrays
        self.grads[1][...] = h_prev.T @ da
        self.grads[2][...] = da.sum(axis=0)
        return da @ Wx.T, da @ Wh.T  # dx, dh_prev

    def activations(self) -> dict[str, Any]:
        """The gate values of the last forward, by name (none: a plain RNN has no gates)."""
        return {}

    def step(self, x: Any, state: Any = None) -> tuple[Any, Any]:
        """Inference step without caching: ``state`` = h_prev (None = zeros) -> (h, h)."""
        h_prev = _zeros_state(x, self.H) if state is None else state
        self._check(x, h_prev)
        h = self._next(x, h_prev)
        return h, h


class LSTM:
    """One step of a long short-term memory cell (gate blocks in the book's order f, g, i, o).

        A      = x @ Wx + h_prev @ Wh + b                          (N, 4H)
        f = sigmoid(A[:, :H])     g = tanh(A[:, H:2H])
        i = sigmoid(A[:, 2H:3H])  o = sigmoid(A[:, 3H:])            (N, H) each
        c_next = f * c_prev + g * i
        h_next = o * tanh(c_next)
    backward, with dh_next, dc_next = dL/dh_next, dL/dc_next:
        ds = dc_next + dh_next * o * (1 - tanh(c_next)**2)
        df = ds * c_prev * f * (1 - f)     dg = ds * i * (1 - g**2)
        di = ds * g * i * (1 - i)          do = dh_next * tanh(c_next) * o * (1 - o)
        dA = [df, dg, di, do]                                       (N, 4H)
        dWx = x.T @ dA    dWh = h_prev.T @ dA    db = sum_N dA
        dx  = dA @ Wx.T   dh_prev = dA @ Wh.T    dc_prev = ds * f

    Params: Wx (D, 4H), Wh (H, 4H), b (4H,). x (N, D); h_*, c_* (N, H).
    PyTorch orders the blocks i, f, g, o: see the mapping in :mod:`bptt.tools.interop`.
    """

    def __init__(self, Wx: Any, Wh: Any, b: Any) -> None:
        self.D, self.H = check_cell_params("LSTM", Wx, Wh, b, 4)
        self.params = [Wx, Wh, b]
        xp = array_module(Wx)
        self.grads = [xp.zeros_like(p) for p in self.params]
        self.cache: tuple | None = None

    def _check(self, x: Any, h_prev: Any, c_prev: Any) -> None:
        check_step_input("LSTM", x, self.D, self.params[0].dtype)
        check_state("LSTM h_prev", h_prev, x.shape[0], self.H, x.dtype)
        check_state("LSTM c_prev", c_prev, x.shape[0], self.H, x.dtype)

    def _next(self, x: Any, h_prev: Any, c_prev: Any) -> tuple:
        Wx, Wh, b = self.params
        xp = array_module(x)
        H = self.H
        A = x @ Wx + h_prev @ Wh + b  # (N, 4H)
        f = sigmoid(A[:, :H])
        g = xp.tanh(A[:, H:2 * H])
        i = sigmoid(A[:, 2 * H:3 * H])
        o = sigmoid(A[:, 3 * H:])
        c_next = f * c_prev + g * i
        h_next = o * xp.tanh(c_next)
        return h_next, c_next, (f, g, i, o)

    def forward(self, x: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
        self._check(x, h_prev, c_prev)
        h_next, c_next, gates = self._next(x, h_prev, c_prev)
        self.cache = (x, h_prev, c_prev, gates, c_next)
        return h_next, c_next

    def backward(self, dh_next: Any, dc_next: Any) -> tuple[Any, Any, Any]:
        Wx, Wh, _ = self.params
        x, h_prev, c_prev, (f, g, i, o), c_next = self.cache
        xp = array_module(x)
        tanh_c = xp.tanh(c_next)
        ds = dc_next + dh_next * o * (1 - tanh_c**2)
        df = ds * c_prev * f * (1 - f)
        dg = ds * i * (1 - g**2)
        di = ds * g * i * (1 - i)
        do = dh_next * tanh_c * o * (1 - o)
        dA = xp.concatenate([df, dg, di, do], axis=1)  # (N, 4H)
        self.grads[0][...] = x.T @ dA
        self.grads[1][...] = h_prev.T @ dA
        self.grads[2][...] = dA.sum(axis=0)
        return dA @ Wx.T, dA @ Wh.T, ds * f  # dx, dh_prev, dc_prev

    def activations(self) -> dict[str, Any]:
        """The gates of the last forward, (N, H) each: f, i, o, g (``bptt plot gates``)."""
        f, g, i, o = self.cache[3]
        return {"f": f, "i": i, "o": o, "g": g}

    def step(self, x: Any, state: Any = None) -> tuple[Any, tuple[Any, Any]]:
        """Inference step without caching: ``state`` = (h_prev, c_prev) or None (zeros)
        -> (h, (h, c))."""
        if state is None:
            state = (_zeros_state(x, self.H), _zeros_state(x, self.H))
        h_prev, c_prev = state
        self._check(x, h_prev, c_prev)
        h, c, _ = self._next(x, h_prev, c_prev)
        return h, (h, c)


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
