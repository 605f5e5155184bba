"""Throughput of bptt's language models, and the machine's matrix-product ceiling.

Used by ``bptt bench`` and by ``benchmarks/lm_throughput.py`` (which adds the same models written
in PyTorch, timed side by side). Random tokens of a PTB-sized vocabulary are enough for speed.

FLOPs per token (multiply-add = 2) count the matrix products only, forward + backward (backward
costs twice the forward: one product for the input gradient, one for the weight gradient):

    recurrent layer with G gate blocks:  6 * (D + H) * G*H      (G = 1 RNN, 3 GRU, 4 LSTM)
    output projection:                   6 * H * V
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


@dataclass(frozen=True)
class Recipe:
    """A language-model training recipe, as in the book (SGD, clipping, truncated BPTT)."""

    name: str
    cell: str
    vocab: int
    embed: int
    hidden: int
    layers: int
    dropout: float
    tie: bool
    batch: int = 20
    bptt: int = 35
    lr: float = 20.0
    clip: float = 0.25

    @property
    def flops_per_token(self) -> float:
        g = GATES[self.cell]
        rec = sum(6 * ((self.embed if i == 0 else self.hidden) + self.hidden) * g * self.hidden
                  for i in range(self.layers))
        return float(rec + 6 * self.hidden * self.vocab)


RECIPES = {
    "rnnlm": Recipe("rnnlm", "lstm", 10000, 100, 100, 1, 0.0, False),
    "better-rnnlm": Recipe("better-rnnlm", "lstm", 10000, 650, 650, 2, 0.5, True),
    "gru": Recipe("gru", "gru", 10000, 100, 100, 1, 0.0, False),
    "rnn": Recipe("rnn", "rnn", 10000, 100, 100, 1, 0.0, False),
}


def gemm_ceiling(repeats: int = 5, dtype: Any = np.float32) -> dict[str, float]:
    """GFLOP/s of float32 products: one large square and the skinny per-step shape."""
    rng = np.random.default_rng(0)
    shapes = {"large (2048^3)": (2048, 2048, 2048), "per-step (20x650 @ 650x2600)": (20, 650, 2600)}
    out = {}
    for name, (m, k, n) in shapes.items():
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        inner = max(1, int(2e9 // (2 * m * k * n)))
        a @ b  # warm up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(inner):
                a @ b
            times.append((time.perf_counter() - t0) / inner)
        out[name] = 2 * m * k * n / statistics.median(times) / 1e9
    return out


def make_bptt_model(recipe: Recipe, seed: int = 0) -> Any:
    """The bptt model of a recipe (float32)."""
    from .models.rnnlm import LanguageModel

    return LanguageModel(recipe.vocab, recipe.embed, recipe.hidden, cell=recipe.cell,
                         num_layers=recipe.layers, dropout=recipe.dropout,
                         tie_weights=recipe.tie, seed=seed)


def bptt_train_step_fn(recipe: Recipe, seed: int = 0) -> Callable[[Any, Any], float]:
    """A function running one training step (forward, backward, clip, SGD) on (xs, ts)."""
    from .optim import SGD, clip_grads

    model = make_bptt_model(recipe, seed)
    opt = SGD(lr=recipe.lr)

    def step(xs: Any, ts: Any) -> float:
        loss = model.forward(xs, ts)
        model.backward()
        clip_grads(model.grads, recipe.clip)
        opt.update(model.params, model.grads)
        return float(loss)

    return step


def random_batches(recipe: Recipe, n: int, seed: int = 0) -> list[tuple[Any, Any]]:
    """``n`` (xs, ts) pairs of random token ids, shape (batch, bptt)."""
    rng = np.random.default_rng(seed)
    shape = (recipe.batch, recipe.bptt)
    return [(rng.integers(0, recipe.vocab, shape), rng.integers(0, recipe.vocab, shape))
            for _ in range(n)]


def time_steps(step: Callable[[Any, Any], Any], batches: list[tuple[Any, Any]]) -> float:
    """Tokens per second of running ``step`` over the batches (one warm-up step first)."""
    step(*batches[0])
    t0 = time.perf_counter()
    for xs, ts in batches:
        step(xs, ts)
    elapsed = time.perf_counter() - t0
    return sum(xs.size for xs, _ in batches) / elapsed


def bench_bptt(recipe: Recipe, steps: int = 20, repeats: int = 3) -> list[float]:
    """tokens/s of bptt training on a recipe, one figure per repeat."""
    step = bptt_train_step_fn(recipe)
    batches = random_batches(recipe, steps)
    return [time_steps(step, batches) for _ in range(repeats)]
