"""How the gradient flows back through time: ||dL/dh_t|| for RNN, LSTM and GRU (book ch. 6).

The set-up: the adding problem (each sequence is T pairs ``(value, marker)``; the target is the
sum of the two marked values), a recurrent cell run for T steps from h = 0, and a loss on the
LAST step only::

    h_t = cell(x_t, h_{t-1})                 t = 0..T-1, x_t (N, 2), h_t (N, H)
    L   = sum_n (h_{T-1}[n] @ w - y[n])**2 / (2N)

Then dL/dh_t for t < T-1 is ONLY what flows back through the recurrence: the backward of one
cell per step (:mod:`bptt.nn.cells`), ``dh_prev = cell.backward(dh_next)``, exactly the loop
inside TimeRNN/TimeLSTM/TimeGRU. Its norm against t shows the vanishing (or exploding) gradient:

- RNN: each step multiplies by ``diag(1 - h_t**2) @ Wh.T``, so the norm shrinks or grows
  geometrically with the scale of Wh;
- LSTM: the gradient also flows along the cell state, ``dc_prev = ds * f``, an elementwise
  product with the forget gate and no matrix: it keeps what f keeps, whatever the scale of Wh;
- GRU: likewise along ``dh_prev = dh_next * (1 - z) + ...``.

The gates of an untrained cell sit near sigmoid(bias). ``carry_bias`` sets the bias of the
gate that keeps the state (LSTM forget gate b_f = carry_bias, GRU update gate b_z = -carry_bias,
so f = 1 - z = sigmoid(carry_bias) ~ 0.73 for 1.0, the Keras default of Jozefowicz et al.
2015); with 0 both gates start at 0.5 and the carried gradient halves at every step.

A cell whose step does not read h_{t-1} (mLSTM, Mamba, RWKV: ``reads_previous_h`` False in
its :class:`~bptt.nn.cell_spec.CellSpec`) carries its memory in the state's second part s_t
(mLSTM's C and n, Mamba's s, RWKV's sums): there dL/dh_t = 0 before the last step, and the
norm followed is that of the gradient of the whole state, ||dL/d(h_t, s_t)|| (``FlowRun.of``).

Gradient clipping does not change this picture (it rescales the parameter gradients after
backward), but it does tame what an exploding gradient does to an update: each run also
reports the global norm of the parameter gradients, that norm after ``clip_grads``, and the
loss after one SGD step with and without clipping.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...nn.cell_spec import layer_param_names
from ...nn.registry import get_cell
from ...optim import clip_grads
from ...validate import check_sizes

INITS = ("orthogonal", "normal")


@dataclass
class FlowRun:
    """One cell at one Wh scale: ``norms[t]`` = ||dL/dh_t||, t = 0..T-1 (2-norm over (N, H));
    for a cell whose step does not read h_{t-1}, ||dL/d(h_t, s_t)|| over its whole state
    (``of`` says which)."""

    cell: str
    scale: float
    init: str
    carry_bias: float
    T: int
    H: int
    N: int
    norms: list[float]
    dh0_norm: float  # ||dL/dh_init|| (layer.dh of a Time layer), or of the whole initial state
    loss: float
    grad_norm: float  # global norm of (dWx, dWh, db, dw) before clipping
    max_norm: float
    clipped_norm: float  # the same after clip_grads(max_norm)
    lr: float
    loss_after_sgd: float  # loss after p -= lr * g
    loss_after_clipped_sgd: float  # the same with the clipped gradients
    of: str = "h_t"  # what norms follow: "h_t", or "(h_t, s_t)" (module docstring)
    params: dict[str, Any] = field(default_factory=dict, repr=False)  # Wx, Wh, b, w (float64)

    @property
    def ratio(self) -> float:
        """||dL/dh_0|| / ||dL/dh_{T-1}||: << 1 vanishing, >> 1 exploding."""
        return self.norms[0] / self.norms[-1] if self.norms[-1] > 0 else math.inf

    @property
    def per_step(self) -> float:
        """The average factor by which the norm changes per step back: ratio ** (1 / (T-1))."""
        if self.T < 2 or self.ratio <= 0:
            return 1.0
        return math.exp(math.log(self.ratio) / (self.T - 1))


def adding_batch(N: int, T: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem: x (N, T, 2) = (value in [0, 1), marker), y (N,) = sum of the two
    marked values; one marker in each half of the sequence (Hochreiter & Schmidhuber 1997)."""
    if T < 2:
        raise ValueError(f"the adding problem needs T >= 2 (one marker per half), got T={T}")
    g = np.random.default_rng(seed)
    x = np.zeros((N, T, 2))
    x[:, :, 0] = g.random((N, T))
    half = T // 2
    first = g.integers(0, half, size=N)
    second = g.integers(half, T, size=N)
    rows = np.arange(N)
    x[rows, first, 1] = 1.0
    x[rows, second, 1] = 1.0
    y = (x[:, :, 0] * x[:, :, 1]).sum(axis=1)
    return x, y


class _FlowInit:
    """The set-up's initializer: the first weight (Wx) N(0, 1/n_in), a square-blocked recurrent
    weight (Wh (H, G*H)) orthogonal per block or N(0, 1/H), biases 0."""

    def __init__(self, init: str, g: np.random.Generator) -> None:
        self.init, self.g, self.calls = init, g, 0

    def W(self, n_in: int, n_out: int) -> np.ndarray:
        self.calls += 1
        if self.calls == 1 or n_out % n_in or self.init != "orthogonal":
            return self.g.standard_normal((n_in, n_out)) / math.sqrt(n_in)
        blocks = []  # one orthogonal (H, H) block per gate: singular values all 1
        for _ in range(n_out // n_in):
            q, r = np.linalg.qr(self.g.standard_normal((n_in, n_in)))
            blocks.append(q * np.sign(np.diag(r)))
        return np.concatenate(blocks, axis=1)

    def B(self, n_out: int) -> np.ndarray:
        return np.zeros(n_out)


def init_params(cell: str, H: int, D: int = 2, scale: float = 1.0, init: str = "orthogonal",
                carry_bias: float = 1.0, seed: int = 0) -> dict[str, np.ndarray]:
    """float64 parameters of the cell by name (its ``init_params`` with this initializer): Wx
    (D, GH) ~ N(0, 1/D), Wh (H, GH) = orthogonal blocks | N(0, 1/H), b (GH,) zeros but the
    carry gate's block; the recurrent weights (the cell's ``recurrent_params``, default Wh)
    times ``scale``; readout w (H,) ~ N(0, 1/H)."""
    spec = get_cell(cell)
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}: choose one of {', '.join(INITS)}")
    if not scale > 0:
        raise ValueError(f"the Wh scale must be positive, got {scale}")
    g = np.random.default_rng(seed)
    made = [np.asarray(a, dtype=np.float64) for a in spec.init_params(D, H, _FlowInit(init, g))]
    step = spec.make_step(*made)  # a cell may add parameters of its own (peepholes...)
    p = {k: np.array(a, dtype=np.float64)
         for k, a in zip(layer_param_names(step), step.params, strict=True)}
    for name in spec.recurrent_params:
        if name in p:
            p[name] = p[name] * scale
    b = p.get("b")
    G = spec.gates
    if spec.carry_gate is not None and b is not None and b.shape == (G * H,):
        block, sign = spec.carry_gate  # LSTM's forget gate f; GRU's z with carry = 1 - z
        b[block * H:(block + 1) * H] = sign * carry_bias
    p["w"] = g.standard_normal(H) / math.sqrt(H)
    return p


def _forward_backward(cell: str, p: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray,
                      backward: bool = True) -> tuple[float, list[float], float, dict]:
    """Loss, ||dL/dh_t|| for t = 0..T-1, ||dL/dh_init|| and the parameter gradients (of the
    whole state instead of h for a cell whose step does not read h_{t-1})."""
    spec = get_cell(cell)
    followed = slice(1) if spec.reads_previous_h else slice(None)  # (dh,) or (dh, ds)
    N, T, _ = x.shape
    H = p["w"].shape[0]
    names = [k for k in p if k != "w"]  # the cell's parameters, in its order
    state = spec.zero_state(np, N, H)  # (h,) or (h, c)
    given = len(spec.param_shapes(x.shape[2], H))  # what the constructor takes ...
    proto = spec.make_step(*(p[k] for k in names[:given]))
    for a, k in zip(proto.params[given:], names[given:], strict=True):
        a[...] = p[k]  # ... and what the cell made itself
    cells = []
    for t in range(T):
        layer = copy.copy(proto)  # one step's cache; the same parameters (as in TimeCell)
        state = spec.forward(layer, x[:, t], state)
        cells.append(layer)
    h = state[0]
    err = h @ p["w"] - y  # (N,)
    loss = float((err**2).sum() / (2 * N))
    if not backward:
        return loss, [], 0.0, {}
    grads = {k: np.zeros_like(p[k]) for k in names}
    grads["w"] = h.T @ err / N
    dstate = (np.outer(err / N, p["w"]),) + spec.zero_state(np, N, H)[1:]
    norms = [0.0] * T
    for t in reversed(range(T)):
        norms[t] = _norm(dstate[followed])  # the norm of dL/dh_t (or of dL/d(h_t, s_t))
        _, dstate = spec.backward(cells[t], dstate)
        for name, g in zip(names, cells[t].grads, strict=True):
            grads[name] += g  # the Time layers' sum over t
    return loss, norms, _norm(dstate[followed]), grads


def _norm(parts: tuple) -> float:
    """The 2-norm of all the arrays in ``parts`` together."""
    if len(parts) == 1:
        return float(np.linalg.norm(parts[0]))
    return float(np.sqrt(sum(float((d * d).sum()) for d in parts)))


def gradient_flow(cell: str = "rnn", scale: float = 1.0, *, T: int = 100, H: int = 32,
                  N: int = 16, init: str = "orthogonal", carry_bias: float = 1.0,
                  max_norm: float = 1.0, lr: float = 0.1, seed: int = 0) -> FlowRun:
    """||dL/dh_t|| for t = 0..T-1 of one cell with Wh scaled by ``scale`` (see the module doc)."""
    check_sizes(T=T, H=H, N=N)
    x, y = adding_batch(N, T, seed)
    p = init_params(cell, H, 2, scale, init, carry_bias, seed + 1)
    with np.errstate(over="ignore", invalid="ignore"):
        loss, norms, dh0, grads = _forward_backward(cell, p, x, y)
        gs = [grads[k] for k in p]
        after = {k: p[k] - lr * grads[k] for k in p}
        loss_sgd = _forward_backward(cell, after, x, y, backward=False)[0]
        clipped = [g.copy() for g in gs]
        grad_norm = clip_grads(clipped, max_norm)
        clipped_norm = float(np.sqrt(sum((g**2).sum() for g in clipped)))
        after = {k: p[k] - lr * g for k, g in zip(p, clipped, strict=True)}
        loss_clip = _forward_backward(cell, after, x, y, backward=False)[0]
    return FlowRun(cell=cell, scale=float(scale), init=init, carry_bias=float(carry_bias), T=T,
                   H=H, N=N, norms=norms, dh0_norm=dh0, loss=loss, grad_norm=grad_norm,
                   max_norm=float(max_norm), clipped_norm=clipped_norm, lr=float(lr),
                   loss_after_sgd=loss_sgd, loss_after_clipped_sgd=loss_clip,
                   of="h_t" if get_cell(cell).reads_previous_h else "(h_t, s_t)", params=p)


def gradient_flow_study(cells: tuple[str, ...] | list[str] = ("rnn", "lstm", "gru"),
                        scales: tuple[float, ...] | list[float] = (0.5, 1.0, 1.5, 2.0),
                        **kwargs: Any) -> list[FlowRun]:
    """:func:`gradient_flow` for every cell and Wh scale (same data and seed for all)."""
    return [gradient_flow(c, s, **kwargs) for c in cells for s in scales]


def format_table(runs: list[FlowRun], columns: int = 5) -> str:
    """A plain-text table: ||dL/dh_t|| at a few t, the ratio first/last, per-step factor, and
    the parameter-gradient norm with and without clipping."""
    if not runs:
        return ""
    T = runs[0].T
    ts = sorted({round(i * (T - 1) / max(columns - 1, 1)) for i in range(columns)})
    head = ["cell", "Wh scale"] + [f"t={t}" for t in ts] + [
        "first/last", "per step", "|grad|", "clipped", "loss", "SGD", "SGD clip"]
    rows = []
    for r in runs:
        rows.append([r.cell, f"{r.scale:g}"] + [f"{r.norms[t]:.2e}" for t in ts] + [
            f"{r.ratio:.2e}", f"{r.per_step:.3f}", f"{r.grad_norm:.2e}",
            f"{r.clipped_norm:.2e}", f"{r.loss:.3g}", _loss(r.loss_after_sgd),
            _loss(r.loss_after_clipped_sgd)])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    r0 = runs[0]
    whole = list(dict.fromkeys(r.cell for r in runs if r.of != "h_t"))
    lines = [
        f"||dL/dh_t|| with the loss on the last step only (adding problem, T={T}, "
        f"H={r0.H}, N={r0.N}, {r0.init} Wh times the scale, carry-gate bias {r0.carry_bias:g})",
        f"|grad|: global norm of the parameter gradients; clipped: after clip_grads(max_norm="
        f"{r0.max_norm:g}); SGD / SGD clip: the loss after one step of lr={r0.lr:g}",
    ]
    if whole:
        lines.append(f"{', '.join(whole)}: the step does not read h_(t-1), so dL/dh_t = 0 "
                     f"before the last step; these rows follow ||dL/d(h_t, s_t)||, s_t the "
                     f"memory the state carries")
    lines += [
        "",
        "  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)),
    ]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines) + "\n"


def _loss(v: float) -> str:
    return f"{v:.3g}" if math.isfinite(v) else "inf/nan"
