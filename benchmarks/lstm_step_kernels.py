"""The LSTM's element-wise step: NumPy's ufuncs against the compiled loops (bptt.kernels), one
thread, side by side: tanh alone, one forward step, and TimeLSTM forward + backward.

    python benchmarks/lstm_step_kernels.py                  # the seq2seq sizes, N 128 H 256
    python benchmarks/lstm_step_kernels.py -N 20 -H 650 -D 650 -T 35   # better-rnnlm's

Float32. Each figure: the median of ``--repeats`` interleaved rounds, and the ratio of the
compiled time to NumPy's (below 1: the compiled loop is faster). Needs ``pip install
'bptt[numba]'``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def timed(fn, iters: int) -> float:
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - start) / iters


def compare(name: str, ways: dict, iters: int, repeats: int) -> None:
    """Print each way's median time and its ratio to the first way's."""
    for fn in ways.values():
        fn()  # warm up (and compile)
    times: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(repeats):
        for k, fn in ways.items():
            times[k].append(timed(fn, iters))
    first = statistics.median(next(iter(times.values())))
    print(name)
    for k, ts in times.items():
        med = statistics.median(ts)
        print(f"  {k:10s} {med * 1e6:10.0f} us   {med / first:5.2f}x numpy's time")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-N", type=int, default=128, help="batch")
    p.add_argument("-H", type=int, default=256, help="hidden size")
    p.add_argument("-D", type=int, default=16, help="input size")
    p.add_argument("-T", type=int, default=29, help="time steps (the layer)")
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy starts OpenBLAS
    import numpy as np

    from bptt import kernels
    from bptt.nn.cells import TimeLSTM

    compiled = kernels.lstm_kernels(np, np.float32)
    if compiled is None:
        raise SystemExit("the compiled kernels need pip install 'bptt[numba]' (and BPTT_NUMBA "
                         "not 0)")
    print(f"one thread; {kernels.status()}; load average {os.getloadavg()[0]:.2f}")
    N, H, D, T = a.N, a.H, a.D, a.T
    rng = np.random.default_rng(0)
    f32 = np.float32

    x = rng.standard_normal(N * 4 * H).astype(f32)
    out = np.empty_like(x)
    compare(f"tanh over {x.size} values", {"numpy": lambda: np.tanh(x, out=out),
                                           "compiled": lambda: compiled.tanh(x, out)}, 50,
            a.repeats)

    scale = np.full(4 * H, 0.5, f32)
    scale[H:2 * H] = 1
    shift = 0.5 - 0.5 * (scale == 1).astype(f32)
    a0 = (rng.standard_normal((N, 4 * H)) * scale).astype(f32)
    gates, c_prev = a0.copy(), rng.standard_normal((N, H)).astype(f32)
    c, tanh_c, h, h_prev, gi = (np.empty((N, H), f32) for _ in range(5))
    no_add, no_mask = np.empty((0, 4 * H), f32), np.empty(0, f32)

    def numpy_step():  # TimeLSTM's NumPy path, the same passes (gates already scaled)
        gates[...] = a0
        np.tanh(gates, out=gates)
        np.multiply(gates, scale, out=gates)
        np.add(gates, shift, out=gates)
        np.multiply(gates[:, :H], c_prev, out=c)
        np.multiply(gates[:, H:2 * H], gates[:, 2 * H:3 * H], out=gi)
        np.add(c, gi, out=c)
        np.tanh(c, out=tanh_c)
        np.multiply(gates[:, 3 * H:], tanh_c, out=h)

    def compiled_step():
        gates[...] = a0
        compiled.forward(gates, no_add, c_prev, h_prev, c, tanh_c, h, no_mask)

    compare(f"one forward step's element-wise part, N {N}, H {H} (both copy the gates in)",
            {"numpy": numpy_step, "compiled": compiled_step}, 50, a.repeats)

    params = [rng.standard_normal(s).astype(f32) * 0.1 for s in ((D, 4 * H), (H, 4 * H),
                                                                 (4 * H,))]
    xs = rng.standard_normal((N, T, D)).astype(f32)
    dhs = rng.standard_normal((N, T, H)).astype(f32)
    layer = TimeLSTM(*params)

    def layer_with(flag: str):
        def run():
            os.environ["BPTT_NUMBA"] = flag
            layer.forward(xs)
            layer.backward(dhs)
        return run

    compare(f"TimeLSTM N {N} T {T} D {D} H {H}, forward + backward",
            {"numpy": layer_with("0"), "compiled": layer_with("1")}, 3, a.repeats)


if __name__ == "__main__":
    main()
