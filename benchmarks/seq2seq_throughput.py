"""Training throughput of the book's AttentionSeq2seq, bptt vs the same model in PyTorch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/seq2seq_throughput.py
    python benchmarks/seq2seq_throughput.py --threads 1 --repeats 7

The dates task at the book's sizes: batch 128, source 29 characters, answer 10 (+ start),
vocabulary 59, embedding 16, hidden 256, one LSTM on each side, dot-product attention, Adam
(lr 0.001), global-norm clipping 5. Both libraries train on the same random batches, in float32,
alternating in ABBA order (machine noise and drift hit both); printed: the median sequences/s of
each and their ratio (of the medians, and the median of the per-pair ratios).
PyTorch side: nn.Embedding, nn.LSTM (batch_first), scores = dec_hs @ enc_hs^T, softmax,
context = a @ enc_hs, nn.Linear on [context, dec_hs], CrossEntropyLoss, clip_grad_norm_, Adam.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

N, TS, TT, V, D, H = 128, 29, 11, 59, 16, 256


def batches(steps: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    g = np.random.default_rng(seed)
    return [(g.integers(0, V, (N, TS)), g.integers(0, V, (N, TT))) for _ in range(steps)]


def bptt_step_fn():
    from bptt.models.seq2seq import AttentionSeq2seq
    from bptt.optim import Adam, clip_grads

    model = AttentionSeq2seq(V, D, H, seed=0)
    opt = Adam(lr=0.001)

    def step(xs, ts):
        model.forward(xs, ts)
        model.backward()
        clip_grads(model.grads, 5.0)
        opt.update(model.params, model.grads)
    return step


def torch_step_fn():
    import torch
    from torch import nn

    torch.manual_seed(0)

    class AttentionSeq2seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc_embed, self.dec_embed = nn.Embedding(V, D), nn.Embedding(V, D)
            self.enc = nn.LSTM(D, H, batch_first=True)
            self.dec = nn.LSTM(D, H, batch_first=True)
            self.affine = nn.Linear(2 * H, V)

        def forward(self, xs, ts_in):
            enc_hs, (h, _) = self.enc(self.enc_embed(xs))
            dec_hs, _ = self.dec(self.dec_embed(ts_in), (h, torch.zeros_like(h)))
            a = torch.softmax(dec_hs @ enc_hs.transpose(1, 2), dim=2)
            return self.affine(torch.cat([a @ enc_hs, dec_hs], dim=2))

    model = AttentionSeq2seq()
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    loss_fn = nn.CrossEntropyLoss()

    def step(xs, ts):
        xs, ts = torch.from_numpy(xs), torch.from_numpy(ts)
        scores = model(xs, ts[:, :-1])
        loss = loss_fn(scores.reshape(-1, V), ts[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    return step


def timed(step, data) -> float:
    step(*data[0])  # warm-up
    t0 = time.perf_counter()
    for xs, ts in data[1:]:
        step(xs, ts)
    return N * (len(data) - 1) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="training steps per timed run")
    p.add_argument("--repeats", type=int, default=5, help="interleaved runs per framework")
    p.add_argument("--threads", type=int, default=None, help="threads for both libraries")
    a = p.parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    if a.threads:
        torch.set_num_threads(a.threads)
    limit = threadpool_limits(a.threads) if a.threads else None
    data = batches(a.steps + 1)
    ours, theirs = bptt_step_fn(), torch_step_fn()
    b, t = [], []
    for k in range(a.repeats):
        pair = [(b, ours), (t, theirs)]
        for out, fn in (pair if k % 2 == 0 else pair[::-1]):
            out.append(timed(fn, data))
    mb, mt = statistics.median(b), statistics.median(t)
    paired = statistics.median(x / y for x, y in zip(b, t, strict=True))
    print(f"AttentionSeq2seq, dates at the book's sizes (N {N}, Ts {TS}, Tt {TT}, V {V}, D {D}, "
          f"H {H}); threads: {a.threads or 'defaults'}; load {os.getloadavg()[0]:.2f}")
    print(f"bptt    {mb:8.0f} seq/s   (runs: {', '.join(f'{x:.0f}' for x in b)})")
    print(f"pytorch {mt:8.0f} seq/s   (runs: {', '.join(f'{x:.0f}' for x in t)})")
    print(f"bptt / pytorch: {mb / mt:.2f} (median of paired ratios {paired:.2f})")
    if limit is not None:
        limit.unregister()


if __name__ == "__main__":
    main()
