"""Time per step of every registered cell's Time layer against TimeLSTM, and scan vs loop.

    python benchmarks/cell_speed.py                       # N=20 T=35 D=H=200, 1 BLAS thread
    python benchmarks/cell_speed.py --steps 35 256 1024 --cells mingru minlstm

Float32, forward + backward of one layer, each cell timed back to back with TimeLSTM at the same
sizes (interleaved repeats, so machine noise hits both); prints medians per time step and the
ratio cell / LSTM. minGRU and minLSTM are timed in both modes (parallel scan and step loop).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", nargs="*", default=None, help="default: every registered cell")
    p.add_argument("--batch", "-N", type=int, default=20)
    p.add_argument("--steps", "-T", type=int, nargs="+", default=[35])
    p.add_argument("--hidden", "-H", type=int, default=200)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    a = p.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)  # before NumPy loads its BLAS

    import numpy as np

    from bptt.blas import pool_status, share_threads
    from bptt.nn.registry import cell_names, get_cell, make_time_layer

    share_threads()  # as bptt train does: the products and the compiled loops share a pool

    class Uniform:
        def __init__(self, rng: np.random.Generator, H: int) -> None:
            self.rng, self.s = rng, 1 / np.sqrt(H)

        def W(self, n_in: int, n_out: int) -> np.ndarray:
            return self.rng.uniform(-self.s, self.s, (n_in, n_out)).astype(np.float32)

        def B(self, n: int) -> np.ndarray:
            return np.zeros(n, dtype=np.float32)

    def layer(cell: str, mode: str | None) -> object:
        ps = get_cell(cell).init_params(H, H, Uniform(np.random.default_rng(0), H))
        ps = [q.astype(np.float32) for q in ps]
        return make_time_layer(cell, *ps, **({"mode": mode} if mode else {}))

    def seconds(lay: object, xs: np.ndarray, dhs: np.ndarray) -> float:
        t0 = time.perf_counter()
        lay.forward(xs)
        lay.backward(dhs)
        return time.perf_counter() - t0

    N, H = a.batch, a.hidden
    cells = a.cells or [c for c in cell_names() if c != "lstm"]
    print(f"forward+backward per time step, N={N} D=H={H} float32, median of {a.repeats}; "
          f"BLAS threads {a.threads} ({pool_status()}), load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'cell':<16}{'T':>6}{'ms/step':>10}{'LSTM ms/step':>14}{'ratio':>8}")
    for T in a.steps:
        rng = np.random.default_rng(1)
        xs = rng.standard_normal((N, T, H)).astype(np.float32)
        dhs = rng.standard_normal((N, T, H)).astype(np.float32)
        lstm = layer("lstm", None)
        for cell in cells:
            for mode in (["scan", "loop"] if cell.startswith("min") else [None]):
                lay = layer(cell, mode)
                seconds(lay, xs, dhs), seconds(lstm, xs, dhs)  # warm up
                ours, ref = [], []
                for _ in range(a.repeats):
                    ours.append(seconds(lay, xs, dhs))
                    ref.append(seconds(lstm, xs, dhs))
                mo, ml = statistics.median(ours) / T, statistics.median(ref) / T
                name = f"{cell} ({mode})" if mode else cell
                print(f"{name:<16}{T:>6}{mo * 1e3:>10.3f}{ml * 1e3:>14.3f}{mo / ml:>8.2f}")


if __name__ == "__main__":
    main()
