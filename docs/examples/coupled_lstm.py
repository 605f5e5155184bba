"""Add your own cell: an LSTM with coupled input and forget gates in one file outside bptt.

Run it from anywhere: ``python coupled_lstm.py``. It registers the cell, checks its gradients
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


class CoupledLSTM:
    """One step of an LSTM whose input gate is tied to its forget gate, i = 1 - f (the "coupled
    input and forget gate" variant of Greff et al. 2017: 3 gate blocks f, g, o instead of 4).

        A = x @ Wx + h_prev @ Wh + b                                    (N, 3H)
        f = sigmoid(A[:, :H])    g = tanh(A[:, H:2H])    o = sigmoid(A[:, 2H:])
        c_next = f * c_prev + (1 - f) * g        h_next = o * tanh(c_next)
    backward, with dh_next, dc_next = dL/dh_next, dL/dc_next:
        da_o = dh_next * tanh(c_next) * o * (1 - o)
        ds = dc_next + dh_next * o * (1 - tanh(c_next)**2)
        da_f = ds * (c_prev - g) * f * (1 - f)    da_g = ds * (1 - f) * (1 - g**2)
        dA = [da_f, da_g, da_o]
        dx = dA @ Wx.T    dh_prev = dA @ Wh.T    dc_prev = ds * f
        dWx = x.T @ dA    dWh = h_prev.T @ dA    db = sum_N dA

    Params: Wx (D, 3H), Wh (H, 3H), b (3H,).
    """

    def __init__(self, Wx: Any, Wh: Any, b: Any) -> None:
        xp = array_module(Wx)
        self.params = [Wx, Wh, b]
        self.grads = [xp.zeros_like(q) for q in self.params]
        self.cache: tuple | None = None

    def forward(self, x: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
        Wx, Wh, b = self.params
        xp = array_module(x)
        H = Wh.shape[0]
        A = x @ Wx + h_prev @ Wh + b  # (N, 3H)
        f, g, o = sigmoid(A[:, :H]), xp.tanh(A[:, H:2 * H]), sigmoid(A[:, 2 * H:])
        c_next = f * c_prev + (1 - f) * g
        tanh_c = xp.tanh(c_next)
        self.cache = (x, h_prev, c_prev, f, g, o, tanh_c)
        return o * tanh_c, c_next

    def backward(self, dh_next: Any, dc_next: Any) -> tuple[Any, Any, Any]:
        Wx, Wh, _ = self.params
        x, h_prev, c_prev, f, g, o, tanh_c = self.cache
        xp = array_module(x)
        da_o = dh_next * tanh_c * o * (1 - o)
        ds = dc_next + dh_next * o * (1 - tanh_c**2)
        da_f = ds * (c_prev - g) * f * (1 - f)
        da_g = ds * (1 - f) * (1 - g**2)
        dA = xp.concatenate([da_f, da_g, da_o], axis=1)  # (N, 3H)
        self.grads[0][...] = x.T @ dA
        self.grads[1][...] = h_prev.T @ dA
        self.grads[2][...] = dA.sum(axis=0)
        return dA @ Wx.T, dA @ Wh.T, ds * f

    def activations(self) -> dict[str, Any]:
        """The gates of the last forward, for ``bptt plot gates``."""
        _, _, _, f, g, o, _ = self.cache
        return {"f": f, "o": o, "g": g}


def register() -> None:
    """What a package would name in its ``bptt.cells`` entry point."""
    bptt.register_cell("cifg", CoupledLSTM, gates=3, has_cell_state=True, carry_gate=(0, 1.0))


def main() -> int:
    register()

    # 1. gradients: the step and the generic Time layer, float64, against central differences
    rng = np.random.default_rng(0)
    N, T, D, H = 2, 5, 3, 4
    Wx, Wh, b = (rng.standard_normal(s) * 0.5 for s in [(D, 3 * H), (H, 3 * H), (3 * H,)])
    layer = bptt.make_time_layer("cifg", Wx, Wh, b)  # a TimeCell: no fused layer
    report = bptt.gradcheck(layer, [rng.standard_normal((N, T, D))], seed=0)
    print(f"gradcheck TimeCell[cifg]: worst relative error {report.worst:.1e}")
    assert report.worst < 1e-6, report

    # 2. a language model on the built-in corpus, like `bptt train --cell cifg`
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lm"
        config = bptt.TrainConfig(cell="cifg", embed=32, hidden=32, batch=10, bptt=10,
                                  max_steps=60, out=str(out), quiet=True)
        metrics = bptt.train_language_model(config)
        print(f"language model: {metrics['steps']} steps, valid perplexity "
              f"{metrics['valid_ppl']:.0f} (vocabulary {metrics['data']['vocab_size']})")
        ck = bptt.load_checkpoint(out / "best")  # a checkpoint of a registered cell
        print(f"reloaded: {ck.model}")

    # 3. a sequence regressor on the adding problem
    task = bptt.adding_problem(n_train=1000, n_valid=100, n_test=200, seq_len=10, seed=0)
    model = bptt.SequenceRegressor(cell="cifg", hidden_size=16, lr=0.01, seed=0)
    model.fit(task.X_train, task.y_train, epochs=8, batch_size=50)
    mse = model.evaluate(task.X_test, task.y_test)["mse"]
    print(f"adding problem (T=10): test MSE {mse:.4f} (predicting the mean: "
          f"{np.var(task.y_test):.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
