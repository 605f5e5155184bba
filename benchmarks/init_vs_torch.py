"""Does bptt's initialisation learn as fast as PyTorch's defaults? Side by side, equal steps.

    python benchmarks/init_vs_torch.py --data ../shared/data/ptb                  # words
    python benchmarks/init_vs_torch.py --data ../shared/data/ptb --level char --hidden 256
    python benchmarks/init_vs_torch.py --data ../shared/data/ptb --cells lstm --steps 400

For each cell with a PyTorch counterpart (rnn, lstm, gru): bptt's LanguageModel under each
``init`` scheme ("book", "torch", "orthogonal"; see bptt.models.rnnlm) and the same model in
PyTorch with its own defaults (nn.Embedding, nn.LSTM/GRU/RNN, nn.Linear), 1 layer, no dropout,
untied, float32, trained on the very same batches (the book's offset batching, state carried)
with Adam and global-norm clipping for the same number of steps; then the validation
perplexity of each (the first 20,000 validation tokens, 10 streams x 35 steps). One BLAS thread
and one torch thread, as `bptt train`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a corpus directory or file (bptt train --data)")
    p.add_argument("--level", choices=["word", "char"], default="word")
    p.add_argument("--cells", nargs="*", default=["rnn", "lstm", "gru"])
    p.add_argument("--inits", nargs="*", default=["book", "torch", "orthogonal"])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--embed", type=int, default=200)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--bptt", type=int, default=35)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, metavar="FILE")
    a = p.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # before NumPy and torch load their BLAS

    import numpy as np
    import torch
    from torch import nn

    from bptt.data.batching import StreamBatcher
    from bptt.data.corpus import load_corpus
    from bptt.models.rnnlm import LanguageModel
    from bptt.optim import Adam, clip_grads
    from bptt.train import perplexity

    torch.set_num_threads(1)
    corpus = load_corpus(a.data, a.level)
    V = len(corpus.vocab)
    valid = corpus.valid[:20001]
    modules = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

    def train_bptt(cell: str, init: str) -> float:
        model = LanguageModel(V, a.embed, a.hidden, cell=cell, init=init, seed=a.seed)
        opt, batches = Adam(lr=a.lr), StreamBatcher(corpus.train, a.batch, a.bptt)
        for _ in range(a.steps):
            xs, ts = batches.next_batch()
            model.forward(xs, ts)
            model.backward()
            clip_grads(model.grads, a.clip)
            opt.update(model.params, model.grads)
        model.reset_state()
        return perplexity(model, valid, 10, 35)

    def train_torch(cell: str) -> float:
        torch.manual_seed(a.seed)
        embed, rnn = nn.Embedding(V, a.embed), modules[cell](a.embed, a.hidden, batch_first=True)
        out = nn.Linear(a.hidden, V)
        params = [*embed.parameters(), *rnn.parameters(), *out.parameters()]
        opt, loss_fn = torch.optim.Adam(params, lr=a.lr, eps=1e-8), nn.CrossEntropyLoss()
        batches, state = StreamBatcher(corpus.train, a.batch, a.bptt), None
        for _ in range(a.steps):
            xs, ts = (torch.from_numpy(v.astype(np.int64)) for v in batches.next_batch())
            h, state = rnn(embed(xs), state)
            state = tuple(s.detach() for s in state) if cell == "lstm" else state.detach()
            loss = loss_fn(out(h).reshape(-1, V), ts.reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, a.clip)
            opt.step()
        total, count, state = 0.0, 0, None
        n = (len(valid) - 1) // 10
        xs_all = torch.from_numpy(np.asarray(valid[:10 * n], dtype=np.int64).reshape(10, n))
        ts_all = torch.from_numpy(np.asarray(valid[1:10 * n + 1], dtype=np.int64).reshape(10, n))
        with torch.no_grad():
            for s in range(0, n, 35):
                h, state = rnn(embed(xs_all[:, s:s + 35]), state)
                scores = out(h)
                t = ts_all[:, s:s + 35]
                total += float(loss_fn(scores.reshape(-1, V), t.reshape(-1))) * t.numel()
                count += t.numel()
        return math.exp(total / count)

    print(f"{corpus.name} ({a.level}, V={V}): 1 layer, D={a.embed} H={a.hidden}, Adam lr "
          f"{a.lr}, clip {a.clip}, batch {a.batch} x {a.bptt}, {a.steps} steps; validation "
          f"perplexity (first {len(valid) - 1:,} tokens)")
    print(f"{'cell':<6}" + "".join(f"{'bptt ' + i:>17}" for i in a.inits) + f"{'PyTorch':>12}"
          + "   seconds")
    rows = []
    for cell in a.cells:
        t0 = time.perf_counter()
        ours = {i: train_bptt(cell, i) for i in a.inits}
        theirs = train_torch(cell)
        rows.append({"cell": cell, **{f"bptt_{i}": v for i, v in ours.items()},
                     "torch": theirs})
        print(f"{cell:<6}" + "".join(f"{ours[i]:>17.2f}" for i in a.inits)
              + f"{theirs:>12.2f}   {time.perf_counter() - t0:7.0f}", flush=True)
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(a), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
