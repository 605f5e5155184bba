"""Batches for truncated BPTT: N parallel streams of one long token sequence.

Training (the book's ``RnnlmTrainer.get_batch``): inputs ``x = ids[:-1]``, targets
``t = ids[1:]``, ``S = len(x)``. Stream ``i`` starts at ``offset_i = i * (S // N)``; the batch at
stream position ``p`` (p = 0, T, 2T, ... over all epochs) is

    xs[i, k] = x[(offset_i + p + k) % S]      ts[i, k] = t[(offset_i + p + k) % S]    (N, T)

so row ``i`` of one batch continues row ``i`` of the previous one and a stateful model carries
its hidden state across batches. One epoch is ``S // (N * T)`` batches. The index array is built
at once with NumPy broadcasting (no loop over i or k).

Evaluation (:func:`eval_batches`): the ids cut into N contiguous streams of length
``L = (len(ids) - 1) // N`` and read in chunks of T (the last may be shorter): every token of
the streams is scored exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


class StreamBatcher:
    """The book's offset batching over ``ids``; ``position`` (p above) is all its state.

    ``next_batch()`` returns (xs, ts), int arrays (N, T), and advances ``position`` by T.
    Restore a run by passing the saved ``position``.
    """

    def __init__(self, ids: Any, batch_size: int, time_size: int, position: int = 0) -> None:
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise TypeError(f"ids must be a 1-D integer array, got {ids.dtype} of shape "
                            f"{ids.shape}")
        if batch_size < 1 or time_size < 1:
            raise ValueError(f"batch size and time size must be >= 1, got {batch_size}, "
                             f"{time_size}")
        self.x, self.t = ids[:-1], ids[1:]
        self.data_size = S = len(self.x)
        if S < batch_size * time_size:
            raise ValueError(
                f"the training split has {len(ids):,} tokens, too few for batch {batch_size} x "
                f"bptt {time_size} = {batch_size * time_size:,} tokens per step; lower --batch "
                f"or --bptt or use a longer text"
            )
        self.batch_size, self.time_size = batch_size, time_size
        self.offsets = np.arange(batch_size, dtype=np.int64) * (S // batch_size)  # (N,)
        self.steps = np.arange(time_size, dtype=np.int64)  # (T,)
        self.iters_per_epoch = S // (batch_size * time_size)
        if isinstance(position, bool) or not isinstance(position, (int, np.integer)) \
                or position < 0:
            raise ValueError(f"the stream position must be an integer >= 0, got {position!r} "
                             f"(state.json: field 'trainer.learner')")
        self.position = int(position)

    def indices(self, position: int, time_size: int | None = None) -> np.ndarray:
        """Positions in x/t of the batch at stream position ``position``: (N, T)."""
        steps = self.steps if time_size is None else np.arange(time_size, dtype=np.int64)
        return (self.offsets[:, None] + (position + steps)[None, :]) % self.data_size

    def next_batch(self, time_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The next (xs, ts), of ``time_size`` steps if given (variable-length BPTT)."""
        T = self.time_size if time_size is None else int(time_size)
        idx = self.indices(self.position, T)
        self.position += T
        return self.x[idx], self.t[idx]


def variable_bptt_length(bptt: int, seed: int, position: int) -> int:
    """AWD-LSTM's window length: bptt with probability 0.95 (else bptt / 2), then drawn from
    N(that, 5^2), at least 5 and at most bptt + 20. Drawn from (seed, stream position), so a
    resumed run draws the same lengths."""
    g = np.random.default_rng([int(seed), int(position)])
    base = bptt if g.random() < 0.95 else bptt / 2
    return int(min(max(5, round(g.normal(base, 5))), bptt + 20))


def eval_batches(ids: Any, batch_size: int = 10,
                 time_size: int = 35) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(xs, ts) chunks (N, <=T) covering N contiguous streams of ``ids``, in order.

    Stream ``i`` is ``ids[i*L : (i+1)*L]`` with ``L = (len(ids) - 1) // N`` (targets shifted by
    one); a stateful model fed the chunks in order sees each stream continuously. If the ids
    are too short for N streams, N shrinks to what fits.
    """
    ids = np.asarray(ids)
    n = len(ids) - 1
    if n < 1:
        raise ValueError(f"need at least 2 tokens to evaluate, got {len(ids)}")
    N = max(1, min(batch_size, n))
    L = n // N
    xs = ids[: N * L].reshape(N, L)  # (N, L)
    ts = ids[1 : N * L + 1].reshape(N, L)
    for s in range(0, L, time_size):
        yield xs[:, s : s + time_size], ts[:, s : s + time_size]
