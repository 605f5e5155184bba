"""``bptt bench``: training throughput of the book's language models, and the GEMM ceiling.

PyTorch-free: for the side-by-side comparison with PyTorch run
``python benchmarks/lm_throughput.py`` (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..tools.speed.bench import RECIPES, bench_phases, format_report, run_bench
from ..train.progress import work_bar


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="training throughput (tokens/s) of the book's language models",
        description="Train each recipe on random PTB-sized batches (V = 10000, batch 20, bptt "
                    "35, SGD, clipping, float32) and print the median tokens/s, the "
                    "matrix-product GFLOP/s reached and its fraction of this machine's float32 "
                    "GEMM ceiling (measured first). Recipes: " + ", ".join(
                        f"{r.name} ({r.layers} x {r.cell.upper()} {r.hidden})"
                        for r in RECIPES.values())
                    + ". For the comparison with PyTorch run benchmarks/lm_throughput.py. "
                    "Tip: OPENBLAS_CORETYPE set in the environment forces a slower kernel; the "
                    "header warns about it.")
    p.add_argument("--models", nargs="+", default=list(RECIPES), choices=list(RECIPES),
                   metavar="MODEL", help=f"recipes to run (default all: {', '.join(RECIPES)})")
    p.add_argument("--steps", type=int, default=None,
                   help="timed training steps per run (default per recipe: "
                        + ", ".join(f"{r.name} {r.steps}" for r in RECIPES.values()) + ")")
    p.add_argument("--repeats", type=int, default=3, help="runs per model; medians reported")
    p.add_argument("--gen-tokens", type=int, default=0,
                   help="also time generation (batch 1) of this many tokens (default: skip)")
    p.add_argument("--json", type=Path, default=None, help="also write all figures here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.gen_tokens < 0:
        raise ValueError(f"--gen-tokens must be >= 0, got {args.gen_tokens}")
    if args.steps is not None and args.steps < 1 or args.repeats < 1:
        raise ValueError(f"--steps and --repeats must be at least 1, got {args.steps} and "
                         f"{args.repeats}")
    phases = bench_phases(args.models, args.repeats, args.gen_tokens)
    with work_bar(phases, "timing", unit="run") as bar:
        result = run_bench(args.models, args.steps, args.repeats, args.gen_tokens,
                           done=bar.update)
    print(format_report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
        print(f"figures written to {args.json}")
    return 0
