"""Add your own cell: a peephole LSTM (Gers & Schmidhuber 2000) in one file outside bptt.

Run it from anywhere: ``python peephole_lstm.py``. It registers the cell, checks its gradients
numerically in float64, trains a small language model and a sequence regressor with it, and
saves and reloads the model: no file of bptt is touched.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import bptt
from bptt.backend import array_module
from bptt.nn.functions import sigmoid


class PeepholeLSTM:
    """One step of an LSTM whose gates also see the cell state (blocks f, g, i, o as in bptt).

        A = x @ Wx + h_prev @ Wh + b                                    (N, 4H)
        f = sigmoid(A[:, :H] + pf * c_prev)      g = tanh(A[:, H:2H])
        i = sigmoid(A[:, 2H:3H] + pi * c_prev)
        c_next = f * c_prev + g * i
        o = sigmoid(A[:, 3H:] + po * c_next)     h_next = o * tanh(c_next)
    backward, with dh_next, dc_next = dL/dh_next, dL/dc_next:
        da_o = dh_next * tanh(c_next) * o * (1 - o)
        ds = dc_next + dh_next * o * (1 - tanh(c_next)**2) + da_o * po
        da_f = ds * c_prev * f * (1 - f)    da_g = ds * i * (1 - g**2)
        da_i = ds * g * i * (1 - i)         dA = [da_f, da_g, da_i, da_o]
        dpf = sum_N da_f * c_prev    dpi = sum_N da_i * c_prev    dpo = sum_N da_o * c_next
        dx = dA @ Wx.T    dh_prev = dA @ Wh.T    dc_prev = ds * f + da_f * pf + da_i * pi

    Params: Wx (D, 4H), Wh (H, 4H), b (4H,), p (3H,) = [pf, pi, po] (zeros: a plain LSTM).
    """

    param_names = ("Wx", "Wh", "b", "p")

    def __init__(self, Wx: Any, Wh: Any, b: Any) -> None:
        xp = array_module(Wx)
        H = Wh.shape[0]
        p = xp.zeros(3 * H, dtype=Wx.dtype)  # peepholes start closed
        self.params = [Wx, Wh, b, p]
        self.grads = [xp.zeros_like(q) for q in self.params]
        self.cache: tuple | None = None

    def forward(self, x: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
        Wx, Wh, b, p = self.params
        xp = array_module(x)
        H = Wh.shape[0]
        pf, pi, po = p[:H], p[H:2 * H], p[2 * H:]
        A = x @ Wx + h_prev @ Wh + b  # (N, 4H)
        f = sigmoid(A[:, :H] + pf * c_prev)
        g = xp.tanh(A[:, H:2 * H])
        i = sigmoid(A[:, 2 * H:3 * H] + pi * c_prev)
        c_next = f * c_prev + g * i
        o = sigmoid(A[:, 3 * H:] + po * c_next)
        h_next = o * xp.tanh(c_next)
        self.cache = (x, h_prev, c_prev, f, g, i, o, c_next)
        return h_next, c_next

    def backward(self, dh_next: Any, dc_next: Any) -> tuple[Any, Any, Any]:
        Wx, Wh, _, p = self.params
        x, h_prev, c_prev, f, g, i, o, c_next = self.cache
        xp = array_module(x)
        H = Wh.shape[0]
        pf, pi, po = p[:H], p[H:2 * H], p[2 * H:]
        tanh_c = xp.tanh(c_next)
        da_o = dh_next * tanh_c * o * (1 - o)
        ds = dc_next + dh_next * o * (1 - tanh_c**2) + da_o * po
        da_f = ds * c_prev * f * (1 - f)
        da_g = ds * i * (1 - g**2)
        da_i = ds * g * i * (1 - i)
        dA = xp.concatenate([da_f, da_g, da_i, da_o], axis=1)  # (N, 4H)
        self.grads[0][...] = x.T @ dA
        self.grads[1][...] = h_prev.T @ dA
        self.grads[2][...] = dA.sum(axis=0)
        self.grads[3][...] = xp.concatenate([(da_f * c_prev).sum(axis=0),
                                             (da_i * c_prev).sum(axis=0),
                                             (da_o * c_next).sum(axis=0)])
        dc_prev = ds * f + da_f * pf + da_i * pi
        return dA @ Wx.T, dA @ Wh.T, dc_prev

    def activations(self) -> dict[str, Any]:
        """The gates of the last forward, for ``bptt plot gates``."""
        _, _, _, f, g, i, o, _ = self.cache
        return {"f": f, "i": i, "o": o, "g": g}


def register() -> None:
    """What a package would name in its ``bptt.cells`` entry point."""
    bptt.register_cell("peephole", PeepholeLSTM, gates=4, has_cell_state=True)


def main() -> int:
    register()

    # 1. gradients: the step and the generic Time layer, float64, against central differences
    rng = np.random.default_rng(0)
    N, T, D, H = 2, 5, 3, 4
    Wx, Wh, b = (rng.standard_normal(s) * 0.5 for s in [(D, 4 * H), (H, 4 * H), (4 * H,)])
    layer = bptt.make_time_layer("peephole", Wx, Wh, b)  # a TimeCell: no fused layer
    layer.params[3][...] = rng.standard_normal(3 * H) * 0.5  # open the peepholes
    report = bptt.gradcheck(layer, [rng.standard_normal((N, T, D))], seed=0)
    print(f"gradcheck TimeCell[peephole]: worst relative error {report.worst:.1e}")
    assert report.worst < 1e-6, report

    # 2. a language model on the built-in corpus, like `bptt train --cell peephole`
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lm"
        config = bptt.TrainConfig(cell="peephole", embed=32, hidden=32, batch=10, bptt=10,
                                  max_steps=60, out=str(out), quiet=True)
        metrics = bptt.train_language_model(config)
        print(f"language model: {metrics['steps']} steps, valid perplexity "
              f"{metrics['valid_ppl']:.0f} (vocabulary {metrics['data']['vocab_size']})")
        ck = bptt.load_checkpoint(out / "best")  # a checkpoint of a registered cell
        print(f"reloaded: {ck.model}")

    # 3. a sequence regressor on the adding problem
    task = bptt.adding_problem(n_train=1000, n_valid=100, n_test=200, seq_len=10, seed=0)
    model = bptt.SequenceRegressor(cell="peephole", hidden_size=16, lr=0.01, seed=0)
    model.fit(task.X_train, task.y_train, epochs=8, batch_size=50)
    mse = model.evaluate(task.X_test, task.y_test)["mse"]
    print(f"adding problem (T=10): test MSE {mse:.4f} (predicting the mean: "
          f"{np.var(task.y_test):.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
