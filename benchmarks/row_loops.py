"""TimeLSTM's time loop on blocks of rows (bptt.numba_time_loops) against the step-by-step loop,
inside the dates seq2seq's training step, alternating in one process.

    python benchmarks/row_loops.py                    # two threads, 40 rounds
    python benchmarks/row_loops.py --threads 4 --rounds 20

The book's AttentionSeq2seq at its sizes (benchmarks/seq2seq_throughput.py: N 128, H 256,
Adam, clipping), ``--steps`` training steps a round with the row blocks and as many without
(``bptt.kernels.lstm_row_loops`` answering None), in ABBA order; printed: the median step time
each way, and the median and quartiles of the per-round ratio (step-by-step / row blocks).
Needs ``pip install 'bptt[numba]'`` and 2+ threads (where the row blocks apply: 32+ rows a
thread on packed weights).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="BLAS threads (2 or more)")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--steps", type=int, default=10, help="training steps a round and way")
    a = p.parse_args()
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):  # before NumPy starts OpenBLAS
        os.environ[name] = str(a.threads)
    import numpy as np
    from seq2seq_throughput import batches, bptt_step_fn

    from bptt import kernels
    from bptt.blas import pool_status, share_threads
    from bptt.nn.cells import lstm

    share_threads()  # as bptt train does: the products and the compiled loops share the pool
    blocks = lstm.lstm_row_loops
    if blocks(np, np.float32, 128, 29) is None:
        raise SystemExit(f"no row blocks here ({pool_status()}, packed rows up to "
                         f"{kernels.packed_max_rows()}): needs pip install 'bptt[numba]', "
                         "--threads 2 or more, 32+ rows a thread")
    step = bptt_step_fn()
    data = batches(a.steps)
    for xs, ts in data:  # warm-up: compiles, allocates
        step(xs, ts)
    times: dict[str, list[float]] = {"row blocks": [], "step by step": []}
    for r in range(a.rounds):
        for way in (("row blocks", "step by step") if r % 2 == 0
                    else ("step by step", "row blocks")):
            lstm.lstm_row_loops = blocks if way == "row blocks" else (lambda *_: None)
            start = time.perf_counter()
            for xs, ts in data:
                step(xs, ts)
            times[way].append((time.perf_counter() - start) / len(data) * 1e3)
    lstm.lstm_row_loops = blocks
    ratios = [s / b for s, b in zip(times["step by step"], times["row blocks"], strict=True)]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    print(f"AttentionSeq2seq training step, dates, {a.threads} threads ({pool_status()}); "
          f"load {os.getloadavg()[0]:.2f}")
    for way, v in times.items():
        print(f"  {way:13s} {statistics.median(v):6.1f} ms")
    print(f"  step by step / row blocks: median {statistics.median(ratios):.3f} "
          f"(quartiles {q1:.3f}, {q3:.3f}) over {a.rounds} rounds")


if __name__ == "__main__":
    main()
