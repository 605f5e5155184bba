"""Training throughput of bptt vs PyTorch on the book's language-model recipes, side by side.

    python benchmarks/lm_throughput.py                       # all recipes
    python benchmarks/lm_throughput.py --models rnnlm --repeats 5 --steps 30

For each recipe it alternates bptt and PyTorch runs (interleaved, so machine noise hits both),
prints the median tokens/s of each, their ratio bptt/PyTorch and the fraction of the float32
matrix-product ceiling each reaches (measured here, first). Then generation speed (batch 1) and
peak memory (max RSS of a fresh process training each model a few steps).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # torch_models beside this file

from bptt.bench import (  # noqa: E402
    RECIPES,
    bptt_train_step_fn,
    gemm_ceiling,
    make_bptt_model,
    random_batches,
    time_steps,
)


def bench_training(names: list[str], steps: int, repeats: int, ceiling: float) -> list[dict]:
    from torch_models import torch_train_step_fn

    rows = []
    for name in names:
        r = RECIPES[name]
        batches = random_batches(r, steps)
        ours, theirs = bptt_train_step_fn(r), torch_train_step_fn(r)
        b, t = [], []
        for _ in range(repeats):  # interleaved
            b.append(time_steps(ours, batches))
            t.append(time_steps(theirs, batches))
        mb, mt = statistics.median(b), statistics.median(t)
        rows.append({"model": name, "bptt_tok_s": mb, "torch_tok_s": mt, "ratio": mb / mt,
                     "bptt_ceiling": mb * r.flops_per_token / (ceiling * 1e9),
                     "torch_ceiling": mt * r.flops_per_token / (ceiling * 1e9),
                     "bptt_runs": b, "torch_runs": t})
    return rows


def bench_generation(names: list[str], n_tokens: int, repeats: int) -> list[dict]:
    import time

    from bptt.generate import generate_ids
    from torch_models import torch_generate_fn

    rows = []
    for name in names:
        r = RECIPES[name]
        model = make_bptt_model(r)
        tgen = torch_generate_fn(r)
        b, t = [], []
        for k in range(repeats):
            t0 = time.perf_counter()
            generate_ids(model, [0], n_tokens, seed=k)
            b.append(n_tokens / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            tgen(n_tokens)
            t.append(n_tokens / (time.perf_counter() - t0))
        mb, mt = statistics.median(b), statistics.median(t)
        rows.append({"model": name, "bptt_tok_s": mb, "torch_tok_s": mt, "ratio": mb / mt})
    return rows


def peak_rss_mb(framework: str, name: str, steps: int) -> float:
    """Max RSS (MiB) of a fresh process that builds the model and trains ``steps`` steps."""
    out = subprocess.run([sys.executable, __file__, "--_memory", framework, name, str(steps)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _memory_child(framework: str, name: str, steps: int) -> None:
    r = RECIPES[name]
    if framework == "torch":
        from torch_models import torch_train_step_fn

        step = torch_train_step_fn(r)
    else:
        step = bptt_train_step_fn(r)
    for xs, ts in random_batches(r, steps):
        step(xs, ts)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--steps", type=int, default=20, help="training steps per timed run")
    p.add_argument("--repeats", type=int, default=3, help="interleaved runs per framework")
    p.add_argument("--gen-tokens", type=int, default=300, help="tokens per generation run")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    p.add_argument("--json", type=Path, help="also write all figures to this JSON file")
    p.add_argument("--_memory", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a._memory:
        _memory_child(a._memory[0], a._memory[1], int(a._memory[2]))
        return

    import numpy as np
    import torch

    print(f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads),"
          f" {os.cpu_count()} cpus")
    ceil = gemm_ceiling()
    for k, v in ceil.items():
        print(f"float32 GEMM ceiling, {k}: {v:.0f} GFLOP/s")
    big = max(ceil.values())

    train = bench_training(a.models, a.steps, a.repeats, big)
    print(f"\ntraining, tokens/s (median of {a.repeats} interleaved runs of {a.steps} steps)")
    print(f"{'model':<14}{'bptt':>10}{'pytorch':>10}{'bptt/pt':>9}{'bptt %ceil':>12}"
          f"{'pt %ceil':>10}")
    for r in train:
        print(f"{r['model']:<14}{r['bptt_tok_s']:>10.0f}{r['torch_tok_s']:>10.0f}"
              f"{r['ratio']:>9.2f}{100 * r['bptt_ceiling']:>11.0f}%"
              f"{100 * r['torch_ceiling']:>9.0f}%")

    gen = bench_generation(a.models, a.gen_tokens, a.repeats)
    print("\ngeneration, batch 1, tokens/s (median)")
    for r in gen:
        print(f"{r['model']:<14}{r['bptt_tok_s']:>10.0f}{r['torch_tok_s']:>10.0f}"
              f"{r['ratio']:>9.2f}")

    mem = []
    if not a.no_memory:
        print("\npeak RSS of a process training 10 steps, MiB")
        for name in a.models:
            m = {"model": name, "bptt_mb": peak_rss_mb("bptt", name, 10),
                 "torch_mb": peak_rss_mb("torch", name, 10)}
            mem.append(m)
            print(f"{name:<14}{m['bptt_mb']:>10.0f}{m['torch_mb']:>10.0f}")
    if a.json:
        a.json.write_text(json.dumps({"ceiling_gflops": ceil, "training": train,
                                      "generation": gen, "memory": mem}, indent=1))


if __name__ == "__main__":
    main()
