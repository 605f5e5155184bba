"""The benchmark recipes written in PyTorch: the reference bptt is timed against.

Same sizes, optimizer (plain SGD), clipping (global L2 norm), dtype (float32), truncated BPTT
with the hidden state carried and detached between chunks, default threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from bptt.tools.speed.bench import Recipe

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class TorchLM(nn.Module):
    """Embedding -> dropout -> stacked RNN/LSTM/GRU -> dropout -> Linear (optionally tied)."""

    def __init__(self, r: Recipe) -> None:
        super().__init__()
        self.embed = nn.Embedding(r.vocab, r.embed)
        self.rnn = CELLS[r.cell](r.embed, r.hidden, num_layers=r.layers, batch_first=True,
                                 dropout=r.dropout if r.layers > 1 else 0.0)
        self.drop = nn.Dropout(r.dropout)
        self.out = nn.Linear(r.hidden, r.vocab)
        if r.tie:
            self.out.weight = self.embed.weight
        self.state: Any = None

    def forward(self, xs: torch.Tensor) -> torch.Tensor:
        h, state = self.rnn(self.drop(self.embed(xs)), self.state)
        self.state = (tuple(s.detach() for s in state) if isinstance(state, tuple)
                      else state.detach())
        return self.out(self.drop(h))


def torch_train_step_fn(r: Recipe, seed: int = 0) -> Callable[[Any, Any], float]:
    """One training step of the PyTorch model on NumPy (xs, ts)."""
    torch.manual_seed(seed)
    model = TorchLM(r)
    opt = torch.optim.SGD(model.parameters(), lr=r.lr)
    loss_fn = nn.CrossEntropyLoss()

    def step(xs: np.ndarray, ts: np.ndarray) -> float:
        x, t = torch.from_numpy(xs), torch.from_numpy(ts)
        scores = model(x)
        loss = loss_fn(scores.reshape(-1, r.vocab), t.reshape(-1))
        opt.zero_grad(set_to_none=False)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), r.clip)
        opt.step()
        return loss.item()

    return step


def torch_generate_fn(r: Recipe, seed: int = 0) -> Callable[[int], None]:
    """Sample ``n`` tokens one at a time (batch 1) from the PyTorch model, no gradients."""
    torch.manual_seed(seed)
    model = TorchLM(r).eval()

    @torch.no_grad()
    def generate(n: int) -> None:
        model.state = None
        x = torch.zeros((1, 1), dtype=torch.long)
        for _ in range(n):
            p = torch.softmax(model(x)[0, -1], dim=0)
            x = torch.multinomial(p, 1).reshape(1, 1)

    return generate
