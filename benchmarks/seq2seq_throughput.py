"""Training throughput of the book's AttentionSeq2seq, bptt vs the same model in PyTorch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/seq2seq_throughput.py
    python benchmarks/seq2seq_throughput.py --threads 1 --repeats 7
    python benchmarks/seq2seq_throughput.py --ranks 2 --repeats 5     # two cores, bptt on MPI

The dates task at the book's sizes: batch 128, source 29 characters, answer 10 (+ start),
vocabulary 59, embedding 16, hidden 256, one LSTM on each side, dot-product attention, Adam
(lr 0.001), global-norm clipping 5. Both libraries train on the same random batches, in float32,
alternating in ABBA order (machine noise and drift hit both); printed: the median sequences/s of
each and their ratio (of the medians, and the median of the per-pair ratios).
PyTorch side: nn.Embedding, nn.LSTM (batch_first), scores = dec_hs @ enc_hs^T, softmax,
context = a @ enc_hs, nn.Linear on [context, dec_hs], CrossEntropyLoss, clip_grad_norm_, Adam.

``--ranks K``: K cores each way, as each library spreads over them. bptt trains data-parallel on
K MPI ranks of one BLAS thread each (``mpiexec -n K bptt seq2seq train --data date --model
attention --hidden 256 --max-steps S``, the global batch of 128 split over the ranks; its
metrics.json gives the time in training steps, which also covers making the batches), PyTorch
on K threads in this process; runs alternate, and the printed rates are sequences/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

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


def bptt_on_ranks(ranks: int, steps: int, folder: Path) -> float:
    """Sequences/s of ``mpiexec -n ranks bptt seq2seq train`` (dates, book sizes), 1 thread
    per rank, from the run's own training time."""
    out = folder / "run"
    cmd = ["mpiexec", "-n", str(ranks), "bptt", "seq2seq", "train", "--data", "date", "--model",
           "attention", "--embed", str(D), "--hidden", str(H), "--batch", str(N),
           "--max-steps", str(steps), "--eval-size", "100", "--threads", "1", "--out", str(out),
           "--overwrite", "--quiet"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=folder)
    metrics = json.loads((out / "metrics.json").read_text())
    return N * metrics["steps"] / metrics["train_time_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="training steps per timed run")
    p.add_argument("--repeats", type=int, default=5, help="interleaved runs per framework")
    p.add_argument("--threads", type=int, default=None, help="threads for both libraries")
    p.add_argument("--ranks", type=int, default=None,
                   help="bptt on this many MPI ranks x 1 thread, PyTorch on as many threads")
    a = p.parse_args()
    if a.ranks:
        return compare_on_ranks(a.ranks, a.repeats)
    import torch
    from threadpoolctl import threadpool_limits

    if a.threads:
        torch.set_num_threads(a.threads)
    limit = threadpool_limits(a.threads) if a.threads else None
    from bptt.blas import pool_status, share_threads

    share_threads()  # as bptt train does: BLAS's threads also run the compiled loops
    print(f"bptt's BLAS threads: {pool_status()}")
    data = batches(a.steps + 1)
    ours, theirs = bptt_step_fn(), torch_step_fn()
    b, t = alternate(lambda: timed(ours, data), lambda: timed(theirs, data), a.repeats)
    report(f"AttentionSeq2seq, dates at the book's sizes (N {N}, Ts {TS}, Tt {TT}, V {V}, "
           f"D {D}, H {H}); threads: {a.threads or 'defaults'}", b, t)
    if limit is not None:
        limit.unregister()


def compare_on_ranks(ranks: int, repeats: int, steps: int = 60) -> None:
    """bptt on ``ranks`` MPI ranks against PyTorch on ``ranks`` threads (module docstring)."""
    if shutil.which("mpiexec") is None:
        raise SystemExit("mpiexec not found: pip install 'bptt[mpi]' (mpi4py and MPICH)")
    import torch

    torch.set_num_threads(ranks)
    theirs = torch_step_fn()
    data = batches(steps + 1)
    with tempfile.TemporaryDirectory() as tmp:
        bptt_on_ranks(ranks, 5, Path(tmp))  # warm-up (imports, the generated pairs)
        b, t = alternate(lambda: bptt_on_ranks(ranks, steps, Path(tmp)),
                         lambda: timed(theirs, data), repeats)
    report(f"AttentionSeq2seq, dates at the book's sizes, {ranks} cores: bptt on {ranks} MPI "
           f"ranks x 1 thread, PyTorch on {ranks} threads", b, t)


def alternate(ours, theirs, repeats: int) -> tuple[list[float], list[float]]:
    """Rates of ``repeats`` runs of each, in ABBA order (noise and drift hit both)."""
    b, t = [], []
    for k in range(repeats):
        pair = [(b, ours), (t, theirs)]
        for out, fn in (pair if k % 2 == 0 else pair[::-1]):
            out.append(fn())
    return b, t


def report(title: str, b: list[float], t: list[float]) -> None:
    mb, mt = statistics.median(b), statistics.median(t)
    paired = statistics.median(x / y for x, y in zip(b, t, strict=True))
    print(f"{title}; load {os.getloadavg()[0]:.2f}")
    print(f"bptt    {mb:8.0f} seq/s   (runs: {', '.join(f'{x:.0f}' for x in b)})")
    print(f"pytorch {mt:8.0f} seq/s   (runs: {', '.join(f'{x:.0f}' for x in t)})")
    print(f"bptt / pytorch: {mb / mt:.2f} (median of paired ratios {paired:.2f})")

if __name__ == "__main__":
    main()
