"""TimeSoftmaxWithLoss, forward + backward: NumPy's passes against the compiled ones
(bptt.kernels.softmax_kernels), side by side, each right after the output layer's product as
in a training step.

    python benchmarks/softmax_kernels.py --threads 1      # the language models' 700 x 10,000
    python benchmarks/softmax_kernels.py --threads 2      # products on Numba's pool (shared)
    BPTT_SHARED_POOL=0 python benchmarks/softmax_kernels.py --threads 2   # on OpenBLAS's own
    python benchmarks/softmax_kernels.py -M 1408 -V 59    # the dates seq2seq's decoder

Float32. Each figure: the median of ``--repeats`` interleaved rounds and its ratio to NumPy's
time. The last two ways split the compiled forward's rows: over Numba's pool (``prange``, what
the layer does when the pool also runs the products) and between two Python threads (the loop
releases the GIL); compare them with the forward alone. With two BLAS threads on OpenBLAS's
own workers neither pays: the second worker spins after the product on the core the split
wants; with the products on the shared pool, the prange split does (docs/benchmarks.md).
Needs ``pip install 'bptt[numba]'``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-M", type=int, default=700, help="rows: batch x time steps")
    p.add_argument("-V", type=int, default=10_000, help="vocabulary")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads")
    p.add_argument("--repeats", type=int, default=15)
    a = p.parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = str(a.threads)  # before NumPy starts OpenBLAS
    import numpy as np

    from bptt import kernels
    from bptt.blas import pool_status, set_blas_threads
    from bptt.nn.time_layers import TimeSoftmaxWithLoss

    set_blas_threads(a.threads)  # as bptt train --threads N: shares Numba's pool when it can
    compiled = kernels.softmax_kernels(np, np.float32, parallel=False)
    split = kernels.softmax_kernels(np, np.float32, parallel=True)
    if compiled is None:
        raise SystemExit("the compiled kernels need pip install 'bptt[numba]' (and BPTT_NUMBA "
                         "not 0)")
    rng = np.random.default_rng(0)
    M, V = a.M, a.V
    h = rng.standard_normal((M, 100)).astype(np.float32)
    w = (rng.standard_normal((100, V)) * 0.3).astype(np.float32)
    ts = rng.integers(0, V, M)
    xs = np.empty((M, V), np.float32)
    layer = TimeSoftmaxWithLoss()
    pool = ThreadPoolExecutor(1)
    mx, e, s = np.empty(M, np.float32), np.empty((M, V), np.float32), np.empty(M, np.float32)

    def forward_on_two_threads() -> None:
        half = M // 2
        other = pool.submit(compiled.forward, xs[half:], mx[half:], e[half:], s[half:])
        compiled.forward(xs[:half], mx[:half], e[:half], s[:half])
        other.result()

    def layer_step(numba: str) -> None:
        os.environ["BPTT_NUMBA"] = numba
        layer.forward(xs, ts)
        layer.backward()

    ways = {"numpy": lambda: layer_step("0"), "compiled": lambda: layer_step("1"),
            "compiled forward alone": lambda: compiled.forward(xs, mx, e, s),
            "compiled forward, rows over the pool": lambda: split.forward(xs, mx, e, s),
            "compiled forward, rows on 2 threads": forward_on_two_threads}
    times: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(a.repeats + 1):  # the first round warms up (and compiles)
        for k, fn in ways.items():
            np.matmul(h, w, out=xs)  # the output layer's product, on the BLAS threads
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    print(f"TimeSoftmaxWithLoss forward + backward, ({M}, {V}) float32, after a product on "
          f"{a.threads} BLAS thread(s), {pool_status()}; {kernels.status()}; load average "
          f"{os.getloadavg()[0]:.2f}")
    first = statistics.median(times["numpy"][1:])
    for k, ts_ in times.items():
        med = statistics.median(ts_[1:])
        print(f"  {k:36s} {med * 1e3:8.2f} ms   {med / first:5.2f}x numpy's time")


if __name__ == "__main__":
    main()
