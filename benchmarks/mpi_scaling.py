"""Data-parallel scaling on one machine: 1 rank x 2 BLAS threads, 1 rank x 1 thread and
2 ranks x 1 thread (mpiexec), side by side, for the book's language-model recipes.

    python benchmarks/mpi_scaling.py --ptb ../shared/data/ptb
    python benchmarks/mpi_scaling.py --ptb ../shared/data/ptb --models better-rnnlm --repeats 5
    python benchmarks/mpi_scaling.py --ptb ../shared/data/ptb --models better-rnnlm --weak

Each configuration trains ``bptt train --preset MODEL --max-steps S`` on PTB (the full training
split; validation and test cut to 200 lines so the evaluations at the end stay short) and
reports the training tokens/s of its metrics.json (time in training steps only). The three
configurations alternate, ``--repeats`` times; printed: the medians, and the parallel
efficiency of 2 ranks against twice the 1-thread rank.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bptt.train.comm import find_mpiexec

STEPS = {"rnnlm": 150, "better-rnnlm": 40}
CONFIGS = [("1 rank x 2 threads", 1, 2), ("1 rank x 1 thread", 1, 1),
           ("2 ranks x 1 thread", 2, 1)]
WEAK = "2 ranks x 1 thread, batch 40"


def small_ptb(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "ptb.train.txt", dst / "ptb.train.txt")
    for split in ("valid", "test"):
        lines = (src / f"ptb.{split}.txt").read_text(encoding="utf-8").splitlines()[:200]
        (dst / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dst


def run(model: str, ranks: int, threads: int, data: Path, out: Path, steps: int,
        batch: int | None = None) -> float:
    mpiexec = find_mpiexec() or "mpiexec"
    cmd = [sys.executable, "-m", "bptt", "train", "--data", str(data), "--preset", model,
           "--max-steps", str(steps), "--threads", str(threads), "--quiet", "--out", str(out),
           "--overwrite"]
    if batch is not None:
        cmd += ["--batch", str(batch)]
    if ranks > 1:
        cmd = [mpiexec, "-n", str(ranks), *cmd]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMP_NUM",
                                                                      "OPENBLAS_NUM"))}
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return json.loads((out / "metrics.json").read_text())["train_tokens_per_sec"]


def paper_figure(path: Path, step_seconds: dict[str, float]) -> None:
    """Ring-allreduce time per step against compute time per step, for K ranks sharing the
    global batch: bytes = params x 4 x 2(K - 1)/K; compute = (one process's step) / K."""
    from bptt.figures import new_figure, save_figure
    from bptt.models.rnnlm import BetterRnnlm, Rnnlm

    params = {"rnnlm": Rnnlm().num_params(), "better-rnnlm": BetterRnnlm().num_params()}
    Ks = [2, 4, 8, 16, 32, 64, 128, 256, 512]
    fig = new_figure(7.2, 3.6)
    for i, model in enumerate(params):
        ax = fig.add_subplot(1, 2, i + 1)
        comp = [1e3 * step_seconds[model] / K for K in Ks]
        ax.loglog(Ks, comp, "k-o", markersize=3, label="compute (ideal split)")
        for gbit, style in ((10, "--"), (100, ":")):
            comm = [1e3 * params[model] * 4 * 2 * (K - 1) / K / (gbit * 1e9 / 8) for K in Ks]
            ax.loglog(Ks, comm, style, label=f"allreduce, {gbit} Gbit/s")
        ax.set_title(f"{model}: {params[model] / 1e6:.1f} M parameters", fontsize=9)
        ax.set_xlabel("ranks K")
        ax.set_ylabel("ms per step")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    print(f"wrote {save_figure(fig, path)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ptb", type=Path, default=Path("../shared/data/ptb"))
    p.add_argument("--models", nargs="+", default=list(STEPS), choices=list(STEPS))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--weak", action="store_true",
                   help="also 2 ranks x 1 thread with the recipe's 20 streams on EACH rank "
                        "(--batch 40: weak scaling), against 1 rank x 1 thread with 20")
    p.add_argument("--paper", type=Path, default=None, metavar="PNG",
                   help="also draw the communication/compute model for a cluster")
    a = p.parse_args()
    step_seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = small_ptb(a.ptb, Path(tmp) / "ptb")
        print(f"load average at the start {os.getloadavg()[0]:.2f}; "
              f"{os.cpu_count()} CPUs; tokens/s of training steps, medians of {a.repeats}")
        for model in a.models:
            configs = CONFIGS + ([(WEAK, 2, 1)] if a.weak else [])
            rates: dict[str, list[float]] = {name: [] for name, _, _ in configs}
            for k in range(a.repeats):
                order = configs if k % 2 == 0 else configs[::-1]
                for name, ranks, threads in order:
                    batch = 2 * 20 if name == WEAK else None
                    rates[name].append(run(model, ranks, threads, data, Path(tmp) / "out",
                                           STEPS[model], batch))
            med = {name: statistics.median(v) for name, v in rates.items()}
            eff = med["2 ranks x 1 thread"] / (2 * med["1 rank x 1 thread"])
            print(f"{model:13s} " + "   ".join(f"{n}: {v:8,.0f}" for n, v in med.items())
                  + f"   efficiency of 2 ranks: {eff:.2f}")
            if a.weak:
                print(f"{'':13s} efficiency of 2 ranks with 20 streams each: "
                      f"{med[WEAK] / (2 * med['1 rank x 1 thread']):.2f}")
            step_seconds[model] = 20 * 35 / med["1 rank x 2 threads"]  # tokens per step / rate
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if a.paper is not None and len(step_seconds) == len(STEPS):
        paper_figure(a.paper, step_seconds)


if __name__ == "__main__":
    main()
