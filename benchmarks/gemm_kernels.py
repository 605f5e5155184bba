"""The recurrent layers' matrix products on one thread: NumPy (OpenBLAS) vs bptt.mkl (MKL,
plain and with the weights packed once) vs PyTorch's torch.mm, side by side.

    python benchmarks/gemm_kernels.py                 # the seq2seq dates sizes (N 128, H 256)
    python benchmarks/gemm_kernels.py -N 20 -H 650 -D 650 --steps 35   # better-rnnlm's

Products (float32): forward per step [h, x, 1] (N, H+D+1) @ W (H+D+1, 4H) (or h @ Wh when
D + 1 > max(H/8, 32), as TimeLSTM chooses), backward per step dA (N, 4H) @ Wh.T (4H, H), and
the weight gradient Z.T (K, T*N) @ dA (T*N, 4H). Each: median microseconds of ``--repeats``
interleaved rounds of ``--iters`` calls, and the ratio to NumPy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-N", type=int, default=128, help="batch (rows of the per-step products)")
    p.add_argument("-H", type=int, default=256, help="hidden size")
    p.add_argument("-D", type=int, default=16, help="input size")
    p.add_argument("--steps", type=int, default=29, help="T, for the weight gradient")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--iters", type=int, default=20)
    a = p.parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy starts OpenBLAS
    os.environ["BPTT_MKL"] = "1"  # compare MKL on any CPU: this is how the default was chosen
    import numpy as np

    from bptt import mkl
    from bptt.nn.cells.base import _small_input

    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    N, H, D, T = a.N, a.H, a.D, a.steps
    K = H + D + 1 if _small_input(D, H) else H
    rng = np.random.default_rng(0)
    f32 = np.float32
    cases = {  # name: (a, b, out)
        f"forward  ({N}, {K}) @ ({K}, {4 * H})": (rng.standard_normal((N, K)), (K, 4 * H)),
        f"backward ({N}, {4 * H}) @ ({4 * H}, {H})": (rng.standard_normal((N, 4 * H)),
                                                       (4 * H, H)),
        f"weight gradient ({K}, {T * N}) @ ({T * N}, {4 * H})":
            (rng.standard_normal((T * N, K)).T, (T * N, 4 * H)),
    }
    print(f"one thread; MKL: {mkl.status() or 'not installed'} on {mkl.cpu_vendor()}; "
          f"load average {os.getloadavg()[0]:.2f}")
    for name, (left, right_shape) in cases.items():
        right = rng.standard_normal(right_shape).astype(f32)
        compare(name, left.astype(f32), right, torch, a.iters, a.repeats)


def compare(name: str, left, right, torch, iters: int, repeats: int) -> None:
    """Print the median time of each way to compute left @ right, and its ratio to NumPy's."""
    import numpy as np

    from bptt import mkl
    from bptt.backend import matmul_into, right_product

    out = np.empty((left.shape[0], right.shape[1]), dtype=left.dtype)
    runs = {"numpy": lambda: np.matmul(left, right, out=out)}
    if mkl.active():
        runs["mkl"] = lambda: matmul_into(out, left, right)
        if left.flags.c_contiguous:  # the per-step products: packed once per layer call
            product = right_product(right, left.shape[0])
            runs["mkl packed"] = lambda: product(out, left)
    if torch is not None:
        tl, tr, to = (torch.from_numpy(x) for x in (left, right, out))
        runs["torch.mm"] = lambda: torch.mm(tl, tr, out=to)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(repeats):
        for k in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            runs[k]()
            t0 = time.perf_counter()
            for _ in range(iters):
                runs[k]()
            times[k].append((time.perf_counter() - t0) / iters)
    base = statistics.median(times["numpy"])
    print(name)
    for k, ts in times.items():
        m = statistics.median(ts)
        print(f"  {k:11s} {m * 1e6:9.0f} us   {m / base:5.2f}x numpy's time")

if __name__ == "__main__":
    main()
