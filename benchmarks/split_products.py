"""A recurrent step's product with few rows, (N, K) @ (K, 4H): OpenBLAS's threads, its columns
split over the shared pool (bptt.blas.split_right) and the product on weights packed once
(bptt.kernels.packed_right), side by side.

    python benchmarks/split_products.py                 # two threads, the models' step shapes
    python benchmarks/split_products.py --threads 4

Then the dates seq2seq attention's stacked products (N 128 items, Tt 10, Ts 29, H 256): NumPy's
matmul, one item after the other, against the items split over the pool
(bptt.blas.matmul_stacked), and a whole TimeAttention forward + backward each way.

Float32. For each shape: the median of ``--repeats`` interleaved rounds (each round ``--calls``
products back to back, as a layer's time loop makes them) of NumPy's product on the BLAS
threads (with the products' jobs on the shared pool, as ``bptt train --threads N`` runs them),
of the split product, of the packed product on the pool's threads (its packing, once a layer
call, included: one per round), and of NumPy's and the packed product on one thread; then the
split's and the packed product's speed-ups over OpenBLAS's threads, and the packed product's
on one thread over NumPy's on one. Needs ``pip install 'bptt[numba]'`` (the pool).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

# (rows, K, N) of the step products: forward h @ Wh (H, 4H) (the dates model: [h, x, 1] @
# [Wh; Wx; b], K = H + D + 1), backward dA @ Wh.T (4H, H)
SHAPES = {"better-rnnlm (H 650) forward": (20, 650, 2600),
          "better-rnnlm (H 650) backward": (20, 2600, 650),
          "cpu-hour (H 300) forward": (20, 300, 1200),
          "cpu-hour (H 300) backward": (20, 1200, 300),
          "H 200 forward": (20, 200, 800),
          "H 150 forward": (20, 150, 600),
          "rnnlm (H 100) forward": (20, 100, 400),
          "rnnlm (H 100) backward": (20, 400, 100),
          "dates seq2seq (H 256, N 128) forward": (128, 273, 1024),
          "dates seq2seq (H 256, N 128) backward": (128, 1024, 256),
          "40 rows, H 650": (40, 650, 2600),
          "64 rows, H 650": (64, 650, 2600),
          "160 rows, H 650": (160, 650, 2600),
          "256 rows, H 650": (256, 650, 2600)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="BLAS threads (2 or more)")
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--calls", type=int, default=35, help="products per round (a step loop)")
    a = p.parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = str(a.threads)  # before NumPy starts OpenBLAS
    import numpy as np

    from bptt import kernels
    from bptt.blas import get_blas_threads, pool_status, set_blas_threads, split_right
    from bptt.kernels import packed_right

    cap = kernels.packed_max_rows()
    kernels.packed_max_rows = lambda: 1 << 30  # measured past the cap too: where it sits, why

    set_blas_threads(a.threads)  # as bptt train --threads N: shares Numba's pool when it can
    rng = np.random.default_rng(0)
    print(f"float32 step products, {a.calls} a round, medians of {a.repeats} rounds; BLAS "
          f"threads {get_blas_threads()}, {pool_status()}; load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"{'shape':38s} {'(rows, K, N)':>16s} {'openblas':>9s} {'split':>9s} {'packed':>9s} "
          f"{'1 thread':>9s} {'packed 1':>9s} {'split x':>8s} {'packed x':>8s} {'1 thr x':>8s}")
    for name, (m, k, n) in SHAPES.items():
        x = rng.standard_normal((m, k)).astype(np.float32)
        w = rng.standard_normal((k, n)).astype(np.float32)
        out = np.empty((m, n), np.float32)
        split = split_right(w, m)
        if split is None:
            raise SystemExit(f"no split product here ({pool_status()}): needs pip install "
                             "'bptt[numba]' and --threads 2 or more")

        def openblas(x=x, w=w, out=out) -> None:
            for _ in range(a.calls):
                np.matmul(x, w, out=out)

        def split_columns(x=x, out=out, split=split) -> None:
            for _ in range(a.calls):
                split(out, x)

        def packed_columns(x=x, w=w, out=out, m=m) -> None:
            product = packed_right(w, m)  # packs w: once a layer call
            for _ in range(a.calls):
                product(out, x)

        def one_thread() -> None:
            set_blas_threads(1)
            openblas()
            set_blas_threads(a.threads)

        def packed_one_thread() -> None:
            set_blas_threads(1)
            packed_columns()
            set_blas_threads(a.threads)
        ways = {"openblas": openblas, "split": split_columns, "packed": packed_columns,
                "one": one_thread, "packed one": packed_one_thread}
        if packed_right(w, m) is None:
            raise SystemExit("no packed product here: needs pip install 'bptt[numba]'")
        times: dict[str, list[float]] = {k_: [] for k_ in ways}
        for _ in range(a.repeats + 1):  # the first round warms up (and compiles)
            for k_, fn in ways.items():
                start = time.perf_counter()
                fn()
                times[k_].append((time.perf_counter() - start) / a.calls)
        med = {k_: statistics.median(v[1:]) * 1e3 for k_, v in times.items()}
        print(f"{name:38s} {str((m, k, n)):>16s} {med['openblas']:7.3f}ms {med['split']:7.3f}ms "
              f"{med['packed']:7.3f}ms {med['one']:7.3f}ms {med['packed one']:7.3f}ms "
              f"{med['openblas'] / med['split']:7.2f}x {med['openblas'] / med['packed']:7.2f}x "
              f"{med['one'] / med['packed one']:7.2f}x{'' if m <= cap else '  (over the cap)'}")
    attention_products(a)


# the attention's products at the dates seq2seq's sizes: (name, a's shape, b's shape, transposes)
N, TT, TS, H = 128, 10, 29, 256
STACKED = {"scores hs_dec @ hs_enc.T": ((N, TT, H), (N, TS, H), False, True),
           "context a @ hs_enc": ((N, TT, TS), (N, TS, H), False, False),
           "da = dc @ hs_enc.T": ((N, TT, H), (N, TS, H), False, True),
           "dhs_enc = [a, ds].T @ [dc, hs_dec]": ((N, 2 * TT, TS), (N, 2 * TT, H), True, False)}


def attention_products(a: argparse.Namespace) -> None:
    import numpy as np

    from bptt import blas
    from bptt.nn.attention import TimeAttention

    rng = np.random.default_rng(0)
    print(f"\nthe attention's stacked products, medians of {a.repeats} rounds of {a.calls}")
    print(f"{'product':36s} {'numpy':>9s} {'split':>9s} {'split x':>8s}")

    def rounds(ways: dict) -> dict[str, float]:
        times: dict[str, list[float]] = {k: [] for k in ways}
        for _ in range(a.repeats + 1):
            for k, fn in ways.items():
                start = time.perf_counter()
                for _ in range(a.calls):
                    fn()
                times[k].append((time.perf_counter() - start) / a.calls)
        return {k: statistics.median(v[1:]) * 1e3 for k, v in times.items()}
    for name, (shape_a, shape_b, trans_a, trans_b) in STACKED.items():
        x = rng.standard_normal(shape_a).astype(np.float32)
        y = rng.standard_normal(shape_b).astype(np.float32)
        x = x.transpose(0, 2, 1) if trans_a else x
        y = y.transpose(0, 2, 1) if trans_b else y
        out = np.empty((N, x.shape[1], y.shape[2]), np.float32)
        if not blas.matmul_stacked(out, x, y):
            raise SystemExit(f"no split here ({blas.pool_status()}): needs pip install "
                             "'bptt[numba]' and --threads 2 or more")
        med = rounds({"numpy": lambda x=x, y=y, out=out: np.matmul(x, y, out=out),
                      "split": lambda x=x, y=y, out=out: blas.matmul_stacked(out, x, y)})
        print(f"{name:36s} {med['numpy']:7.3f}ms {med['split']:7.3f}ms "
              f"{med['numpy'] / med['split']:7.2f}x")
    hs_enc = rng.standard_normal((N, TS, H)).astype(np.float32)
    hs_dec, dc = (rng.standard_normal((N, TT, H)).astype(np.float32) for _ in range(2))
    layer = TimeAttention()

    def step() -> None:
        layer.forward(hs_enc, hs_dec)
        layer.backward(dc)
    real = blas.matmul_stacked
    try:
        med = rounds({"numpy": lambda: (setattr(blas, "matmul_stacked", lambda *_: False),
                                        step()),
                      "split": lambda: (setattr(blas, "matmul_stacked", real), step())})
    finally:
        blas.matmul_stacked = real
    print(f"{'TimeAttention forward + backward':36s} {med['numpy']:7.3f}ms {med['split']:7.3f}ms "
          f"{med['numpy'] / med['split']:7.2f}x")


if __name__ == "__main__":
    main()
