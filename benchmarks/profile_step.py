"""Where a bptt training step spends its time: per layer and phase (forward, backward, clip, SGD).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/profile_step.py rnnlm
    python benchmarks/profile_step.py better-rnnlm --steps 10 --threads 1 --clock cpu
    python benchmarks/profile_step.py better-rnnlm --steps 10 --threads 1 --batch 10

Runs the recipe's training step (the calls of :func:`bptt.tools.speed.bench.bptt_train_step_fn`)
layer by layer, timing each call, and prints the median time per step of every (phase, layer)
with its share, and the matrix-product FLOPs of that layer where it has some. ``--clock cpu``
uses the process CPU time (steadier on a busy machine, but it counts both BLAS threads when
there are two), ``wall`` (default) the elapsed time.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from collections import defaultdict


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default="rnnlm")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=None, help="BLAS threads (default: library's)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    p.add_argument("--batch", type=int, default=None,
                   help="streams per step instead of the recipe's (e.g. one MPI rank's share)")
    a = p.parse_args()
    if a.threads is not None:  # before NumPy starts OpenBLAS
        os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(a.threads)

    from bptt.blas import share_threads
    from bptt.optim import SGD, clip_grads
    from bptt.tools.speed.bench import (
        RECIPES,
        environment,
        environment_lines,
        make_bptt_model,
        random_batches,
    )

    share_threads()  # as bptt train does: BLAS's threads also run the compiled loops
    r = RECIPES[a.model]
    if a.batch is not None:
        r = dataclasses.replace(r, batch=a.batch)
    model = make_bptt_model(r)
    opt = SGD(lr=r.lr)
    clock = time.perf_counter if a.clock == "wall" else time.process_time
    names = {}
    counts: dict[str, int] = defaultdict(int)
    for layer in model.layers:
        kind = type(layer).__name__
        names[id(layer)] = f"{kind}{counts[kind]}" if kind in ("TimeLSTM", "TimeGRU", "TimeRNN",
                                                               "TimeDropout") else kind
        counts[kind] += 1
    per_step: dict[str, list[float]] = defaultdict(list)

    def timed(key: str, fn, *args):
        t0 = clock()
        out = fn(*args)
        per_step[key].append(clock() - t0)
        return out

    for k, (xs, ts) in enumerate(random_batches(r, a.steps + 1)):
        if k == 1:
            per_step.clear()  # the first step warms up
        model.train()
        out = xs
        for layer in model.layers:
            out = timed(f"forward  {names[id(layer)]}", layer.forward, out)
        timed("forward  TimeSoftmaxWithLoss", model.loss_layer.forward, out, ts)
        d = timed("backward TimeSoftmaxWithLoss", model.loss_layer.backward, 1)
        for layer in reversed(model.layers):
            d = timed(f"backward {names[id(layer)]}", layer.backward, d)
        timed("clip_grads", clip_grads, model.grads, r.clip)
        timed("SGD update", opt.update, model.params, model.grads)

    for line in environment_lines(environment()):
        print(line)
    med = {k: statistics.median(v) for k, v in per_step.items()}
    total = sum(med.values())
    tokens = r.tokens_per_step
    print(f"\n{a.model}: {a.clock} time per training step, median of {a.steps} steps "
          f"({tokens} tokens)")
    for k, v in med.items():
        print(f"  {k:<34}{1e3 * v:9.2f} ms {100 * v / total:6.1f}%")
    print(f"  {'total':<34}{1e3 * total:9.2f} ms   -> {tokens / total:,.0f} tokens/s")


if __name__ == "__main__":
    main()
