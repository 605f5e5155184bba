"""What each cell buys on long sequences: the adding problem at several T, one step budget.

    python benchmarks/adding_cells.py                         # every cell, T = 100 200 400 1000
    python benchmarks/adding_cells.py --cells lstm indrnn --lengths 100 --steps 200
    python benchmarks/adding_cells.py --out docs/img/adding_cells.png --json adding.json

Every cell gets the same model size (H = 32, one layer, the last state read by a linear
output), the same optimizer (Adam lr 0.01, clip 5), the same data (2,000 training sequences,
batch 50) and the same number of updates; the score is the test MSE against 0.167, the MSE of
always answering the mean (Var(v_a + v_b) = 2/12). Runs on one BLAS thread, as `bptt train`.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", nargs="*", default=None, help="default: every registered cell")
    p.add_argument("--lengths", type=int, nargs="+", default=[100, 200, 400, 1000])
    p.add_argument("--steps", type=int, default=600, help="updates per run (default 600)")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, metavar="PNG", help="plot test MSE against T")
    p.add_argument("--json", default=None, metavar="FILE", help="write the results")
    a = p.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # before NumPy loads its BLAS

    import bptt

    cells = a.cells or list(bptt.cell_names())
    batch, n_train = 50, 2000
    epochs = -(-a.steps * batch // n_train)
    results = []
    print(f"adding problem: H={a.hidden}, {a.steps} updates of batch {batch}, Adam lr 0.01; "
          f"test MSE (mean-answer baseline 0.167)")
    print(f"{'cell':<10}" + "".join(f"{'T=' + str(T):>12}" for T in a.lengths) + "   seconds")
    for cell in cells:
        row, t0 = [], time.perf_counter()
        for T in a.lengths:
            task = bptt.adding_problem(n_train=n_train, n_valid=200, n_test=500, seq_len=T,
                                       seed=a.seed)
            model = bptt.SequenceRegressor(cell=cell, hidden_size=a.hidden, lr=0.01,
                                           seed=a.seed)
            model.fit(task.X_train, task.y_train, epochs=epochs, batch_size=batch,
                      max_steps=a.steps)
            mse = float(model.evaluate(task.X_test, task.y_test)["mse"])
            row.append(mse)
            results.append({"cell": cell, "T": T, "test_mse": mse,
                            "baseline": float(task.baselines["variance"])})
        print(f"{cell:<10}" + "".join(f"{m:>12.4f}" for m in row)
              + f"   {time.perf_counter() - t0:7.0f}", flush=True)
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"steps": a.steps, "hidden": a.hidden, "results": results}, f, indent=1)
    if a.out:
        plot(results, a.lengths, a.out, a.steps)


def plot(results: list[dict], lengths: list[int], path: str, steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for cell in dict.fromkeys(r["cell"] for r in results):
        rs = [r for r in results if r["cell"] == cell]
        ax.plot([r["T"] for r in rs], [r["test_mse"] for r in rs], marker="o", label=cell)
    ax.axhline(results[0]["baseline"], color="grey", ls="--", label="answer the mean")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(lengths, [str(T) for T in lengths])
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("test MSE")
    ax.set_title(f"Adding problem, H=32, {steps} updates of 50 sequences")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
