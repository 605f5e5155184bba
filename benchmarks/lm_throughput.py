"""Training throughput of bptt vs PyTorch on the book's language-model recipes, side by side.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/lm_throughput.py
    python benchmarks/lm_throughput.py --models rnnlm --repeats 5 --steps 100
    python benchmarks/lm_throughput.py --threads 1        # both libraries on one thread

First the machine: versions, load average, the BLAS kernels NumPy and PyTorch use (a warning if
OPENBLAS_CORETYPE forces one), the float32 GEMM ceiling. Then for each recipe it alternates
bptt and PyTorch training runs on the same batches (interleaved, in ABBA order, so machine noise
and drift hit both), and prints the median tokens/s of each, their ratio bptt/PyTorch (ratio of
the medians, and the median of the per-pair ratios) and the fraction of the GEMM ceiling each
reaches. Then generation speed (batch 1, sampling) and peak memory (max RSS of a fresh process
that builds the model and trains a few steps, and that RSS minus the process's RSS after its
imports, i.e. what the model and its training step hold).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from bptt.tools.speed.bench import RECIPES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--steps", type=int, default=None,
                   help="training steps per timed run (default per recipe: "
                        + ", ".join(f"{r.name} {r.steps}" for r in RECIPES.values()) + ")")
    p.add_argument("--repeats", type=int, default=5, help="interleaved runs per framework")
    p.add_argument("--gen-tokens", type=int, default=200, help="tokens per generation run")
    p.add_argument("--mem-steps", type=int, default=5, help="training steps of the memory runs")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for both libraries (default: each library's default)")
    p.add_argument("--no-generation", action="store_true", help="skip generation speed")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    p.add_argument("--json", type=Path, help="also write all figures to this JSON file")
    p.add_argument("--_memory", nargs=3, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def interleaved(a, b, repeats: int) -> tuple[list[float], list[float]]:
    """Alternate the two measurements in ABBA order; returns (a values, b values)."""
    xa, xb = [], []
    for k in range(repeats):
        if k % 2 == 0:
            xa.append(a())
            xb.append(b())
        else:
            xb.append(b())
            xa.append(a())
    return xa, xb


def bench_training(names: list[str], steps: int | None, repeats: int, ceiling: float
                   ) -> list[dict]:
    from torch_models import torch_train_step_fn

    from bptt.tools.speed.bench import RECIPES, bptt_train_step_fn, random_batches, time_steps

    rows = []
    for name in names:
        r = RECIPES[name]
        batches = random_batches(r, steps or r.steps)
        ours, theirs = bptt_train_step_fn(r), torch_train_step_fn(r)
        b, t = interleaved(lambda f=ours, x=batches: time_steps(f, x),
                           lambda f=theirs, x=batches: time_steps(f, x), repeats)
        mb, mt = statistics.median(b), statistics.median(t)
        row = {"model": name, "bptt_tok_s": mb, "torch_tok_s": mt, "ratio": mb / mt,
               "paired_ratio": statistics.median(x / y for x, y in zip(b, t, strict=True)),
               "bptt_ceiling": mb * r.flops_per_token / (ceiling * 1e9),
               "torch_ceiling": mt * r.flops_per_token / (ceiling * 1e9),
               "bptt_runs": b, "torch_runs": t, "load": os.getloadavg()[0]}
        rows.append(row)
        print(f"{name:<14}{mb:>10.0f}{mt:>10.0f}{row['ratio']:>9.2f}{row['paired_ratio']:>8.2f}"
              f"{100 * row['bptt_ceiling']:>11.0f}%{100 * row['torch_ceiling']:>9.0f}%"
              f"{row['load']:>7.2f}", flush=True)
    return rows


def bench_generation(names: list[str], n_tokens: int, repeats: int) -> list[dict]:
    from torch_models import torch_generate_fn

    from bptt.tools.speed.bench import RECIPES, bptt_generate_fn, time_generation

    rows = []
    for name in names:
        r = RECIPES[name]
        ours, theirs = bptt_generate_fn(r), torch_generate_fn(r)
        b, t = interleaved(lambda f=ours: time_generation(f, n_tokens),
                           lambda f=theirs: time_generation(f, n_tokens), repeats)
        mb, mt = statistics.median(b), statistics.median(t)
        rows.append({"model": name, "bptt_tok_s": mb, "torch_tok_s": mt, "ratio": mb / mt})
        print(f"{name:<14}{mb:>10.0f}{mt:>10.0f}{mb / mt:>9.2f}", flush=True)
    return rows


def peak_rss_mb(framework: str, name: str, steps: int) -> dict[str, float]:
    """{'base': RSS after imports, 'peak': max RSS} (MiB) of a fresh process that builds the
    model and trains ``steps`` steps."""
    out = subprocess.run([sys.executable, __file__, "--_memory", framework, name, str(steps)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, MiB. Not getrusage's ru_maxrss: Linux
    carries that across fork + exec, so a child would report its parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _memory_child(framework: str, name: str, steps: int) -> None:
    from bptt.tools.speed.bench import RECIPES, bptt_train_step_fn, random_batches

    r = RECIPES[name]
    batches = random_batches(r, steps)
    if framework == "torch":
        import torch  # noqa: F401  (imported before the baseline is read)
        from torch_models import torch_train_step_fn

        make = torch_train_step_fn
    else:
        make = bptt_train_step_fn
    base = _status_mb("VmRSS")
    step = make(r)
    for xs, ts in batches:
        step(xs, ts)
    peak = _status_mb("VmHWM")
    print(json.dumps({"base": base, "peak": peak}))


def main() -> None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--threads", type=int, default=None)
    threads = pre.parse_known_args()[0].threads
    if threads is not None:  # before NumPy or PyTorch start their thread pools
        for var in THREAD_VARS:
            os.environ[var] = str(threads)
    sys.path.insert(0, str(HERE))  # torch_models beside this file
    a = parse_args()
    if a._memory:
        _memory_child(a._memory[0], a._memory[1], int(a._memory[2]))
        return

    import torch

    from bptt.blas import share_threads
    from bptt.tools.speed.bench import environment, environment_lines, gemm_ceiling

    if a.threads is not None:
        torch.set_num_threads(a.threads)
    share_threads()  # as bptt train does: BLAS's threads also run the compiled loops
    env = environment()
    for line in environment_lines(env):
        print(line)
    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads, "
          f"MKL {torch.backends.mkl.is_available()}, oneDNN {torch.backends.mkldnn.is_available()}")
    ceil = gemm_ceiling()
    for k, v in ceil.items():
        print(f"float32 GEMM ceiling (NumPy), {k}: {v:.0f} GFLOP/s")
    big = max(ceil.values())

    print(f"\ntraining tokens/s, medians of {a.repeats} interleaved runs (forward, backward, "
          f"clip, SGD; float32; batch 20 x bptt 35)")
    print(f"{'model':<14}{'bptt':>10}{'pytorch':>10}{'bptt/pt':>9}{'paired':>8}{'bptt %ceil':>12}"
          f"{'pt %ceil':>10}{'load':>7}")
    train = bench_training(a.models, a.steps, a.repeats, big)

    gen = []
    if not a.no_generation:
        print(f"\ngeneration, batch 1, tokens/s (medians of {a.repeats}, {a.gen_tokens} tokens)")
        print(f"{'model':<14}{'bptt':>10}{'pytorch':>10}{'bptt/pt':>9}")
        gen = bench_generation(a.models, a.gen_tokens, a.repeats)

    mem = []
    if not a.no_memory:
        print(f"\npeak RSS (MiB) of a fresh process training {a.mem_steps} steps; in brackets "
              f"minus its RSS after imports")
        print(f"{'model':<14}{'bptt':>16}{'pytorch':>16}")
        for name in a.models:
            m = {"model": name, "bptt": peak_rss_mb("bptt", name, a.mem_steps),
                 "torch": peak_rss_mb("torch", name, a.mem_steps)}
            mem.append(m)
            cells = [f"{m[k]['peak']:.0f} ({m[k]['peak'] - m[k]['base']:.0f})"
                     for k in ("bptt", "torch")]
            print(f"{name:<14}{cells[0]:>16}{cells[1]:>16}", flush=True)
    end = os.getloadavg()
    print("\nload average at the end " + " ".join(f"{v:.2f}" for v in end))
    if a.json:
        a.json.write_text(json.dumps({"environment": env, "torch": torch.__version__,
                                      "torch_threads": torch.get_num_threads(),
                                      "ceiling_gflops": ceil, "training": train,
                                      "generation": gen, "memory": mem, "loadavg_end": end},
                                     indent=1))


if __name__ == "__main__":
    main()
