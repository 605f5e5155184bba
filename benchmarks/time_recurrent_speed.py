"""Speed sanity check of one Time recurrent layer, forward + backward, bptt vs PyTorch.

    python benchmarks/time_recurrent_speed.py                      # LSTM, N=20 T=35 D=H=650
    python benchmarks/time_recurrent_speed.py --cell gru --repeats 9 --hidden 200

Float32, the PTB "medium" sizes by default. Each repeat times bptt and torch back to back
(interleaved, so machine noise hits both) on the same data; prints the medians and their ratio
(bptt time / torch time: below 1 means bptt is faster), for wall-clock time and for the CPU time
of the process (the steadier figure on a busy machine). ``--threads n`` pins both BLAS libraries
to n threads (NumPy's OpenBLAS through the environment, so it is set before NumPy loads).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cell", choices=list(GATES), default="lstm")
    p.add_argument("--batch", "-N", type=int, default=20)
    p.add_argument("--steps", "-T", type=int, default=35)
    p.add_argument("--input", "-D", type=int, default=650)
    p.add_argument("--hidden", "-H", type=int, default=650)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--iters", type=int, default=5, help="forward+backward passes per repeat")
    p.add_argument("--threads", type=int, default=None, help="BLAS threads for both (default: "
                   "each library's own default)")
    a = p.parse_args()
    if a.threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(a.threads)

    import numpy as np
    import torch

    from bptt import TimeGRU, TimeLSTM, TimeRNN

    if a.threads is not None:
        torch.set_num_threads(a.threads)

    N, T, D, H, k = a.batch, a.steps, a.input, a.hidden, GATES[a.cell]
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((N, T, D)).astype(np.float32)
    dhs = rng.standard_normal((N, T, H)).astype(np.float32)
    s = 1 / np.sqrt(H)
    Wx, Wh, b = (rng.uniform(-s, s, shape).astype(np.float32)
                 for shape in [(D, k * H), (H, k * H), (k * H,)])
    ours = {"rnn": TimeRNN, "lstm": TimeLSTM, "gru": TimeGRU}[a.cell](Wx, Wh, b)
    mod = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[a.cell](
        D, H, batch_first=True)
    tx = torch.from_numpy(xs).requires_grad_()
    tdh = torch.from_numpy(dhs)

    def run_ours() -> None:
        for _ in range(a.iters):
            ours.forward(xs)
            ours.backward(dhs)

    def run_torch() -> None:
        for _ in range(a.iters):
            out, _ = mod(tx)
            mod.zero_grad(set_to_none=False)
            tx.grad = None
            out.backward(tdh)

    def timed(fn) -> tuple[float, float]:
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        return (time.perf_counter() - w0) / a.iters, (time.process_time() - c0) / a.iters

    run_ours(), run_torch()  # warm up
    ts_ours, ts_torch = [], []
    for _ in range(a.repeats):
        ts_ours.append(timed(run_ours))
        ts_torch.append(timed(run_torch))
    print(f"Time{a.cell.upper()} N={N} T={T} D={D} H={H} float32, forward+backward, "
          f"median of {a.repeats} x {a.iters}; torch {torch.__version__} "
          f"threads={torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    for k, what in enumerate(["wall", "cpu"]):
        mo = statistics.median(t[k] for t in ts_ours)
        mt = statistics.median(t[k] for t in ts_torch)
        print(f"  {what:4}  bptt {mo * 1e3:8.2f} ms   torch {mt * 1e3:8.2f} ms   "
              f"ratio bptt/torch = {mo / mt:.2f}")


if __name__ == "__main__":
    main()
