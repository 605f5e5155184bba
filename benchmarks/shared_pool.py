"""What the shared thread pool buys: bptt alone, at two (or more) BLAS threads, with OpenBLAS's
jobs on Numba's pool and the compiled loops split over it (the default with the numba extra)
against OpenBLAS's own workers and the loops on one thread (``BPTT_SHARED_POOL=0``). Each
round runs one fresh process each way, one after the other (switching ways inside one process
leaves the other way's threads spinning and slows both).

    python benchmarks/shared_pool.py --threads 2 --repeats 7
    python benchmarks/shared_pool.py --threads 2 --models seq2seq --repeats 9

Prints each way's median rate and the median of the paired ratios (shared / own). Needs
``pip install 'bptt[numba]'``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("rnnlm", "better-rnnlm", "gru", "rnn", "seq2seq")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="BLAS threads (2 or more)")
    p.add_argument("--models", nargs="+", choices=MODELS, default=["rnnlm", "better-rnnlm",
                                                                  "seq2seq"])
    p.add_argument("--steps", type=int, default=None, help="training steps per timed run")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--_child", nargs=2, metavar=("WAY", "MODEL"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.threads < 2:
        raise SystemExit("--threads: the pool is shared at 2 or more BLAS threads")
    os.environ["OPENBLAS_NUM_THREADS"] = str(a.threads)  # before NumPy starts OpenBLAS
    if a._child:
        return child(a._child[0] == "shared", a._child[1], a.threads, a.steps)
    from bptt.tools.speed.bench import environment, environment_lines

    for line in environment_lines(environment()):
        print(line)
    print(f"\nbptt training rate, shared pool against OpenBLAS's own threads, {a.threads} "
          f"threads, medians of {a.repeats} rounds (a fresh process each way, alternating)")
    print(f"{'model':<14}{'shared':>10}{'own':>10}{'shared/own':>12}{'paired':>8}  unit")
    for name in a.models:
        rates: dict[str, list[float]] = {"shared": [], "own": []}
        for _ in range(a.repeats):
            for way in rates:
                cmd = [sys.executable, __file__, "--threads", str(a.threads), "--_child", way,
                       name] + (["--steps", str(a.steps)] if a.steps else [])
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                rates[way].append(float(out.split()[-1]))
        shared, own = rates["shared"], rates["own"]
        ratios = [s / o for s, o in zip(shared, own, strict=True)]
        s_med, o_med = statistics.median(shared), statistics.median(own)
        unit = "seq/s" if name == "seq2seq" else "tokens/s"
        print(f"{name:<14}{s_med:>10.0f}{o_med:>10.0f}{s_med / o_med:>12.2f}"
              f"{statistics.median(ratios):>8.2f}  {unit}", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


def child(shared: bool, name: str, threads: int, steps: int | None) -> None:
    """One way, one model, in this fresh process: print its training rate (one warm-up run)."""
    os.environ["BPTT_SHARED_POOL"] = "1" if shared else "0"
    from bptt.blas import kernel_threads, pool_status, set_blas_threads
    from bptt.tools.speed.bench import RECIPES, bptt_train_step_fn, random_batches, time_steps

    set_blas_threads(threads)
    if shared and kernel_threads() == 1:
        raise SystemExit(f"the pool cannot be shared here: {pool_status()} (needs the numba "
                         f"extra on its OpenMP layer and OpenBLAS 0.3.27+)")
    if name == "seq2seq":
        sys.path.insert(0, str(HERE))
        from seq2seq_throughput import batches, bptt_step_fn

        step, data = bptt_step_fn(), batches((steps or 20) + 1)
        per_token = data[0][1].shape[0] / data[0][0].size  # sequences per token of xs
    else:
        recipe = RECIPES[name]
        step, data = bptt_train_step_fn(recipe), random_batches(recipe, (steps or recipe.steps) + 1)
        per_token = 1.0
    time_steps(step, data)  # warm-up run: compiles, fills caches
    print(time_steps(step, data) * per_token)


if __name__ == "__main__":
    main()
