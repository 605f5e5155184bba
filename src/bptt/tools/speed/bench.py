"""Throughput of bptt's language models, and the machine's matrix-product ceiling.

Used by ``bptt bench`` and by ``benchmarks/lm_throughput.py`` (which adds the same models written
in PyTorch, timed side by side). Random tokens of a PTB-sized vocabulary are enough for speed.

FLOPs per token (multiply-add = 2) count the matrix products only, forward + backward (backward
costs twice the forward: one product for the input gradient, one for the weight gradient):

    recurrent layer with G gate blocks:  6 * (D + H) * G*H      (G = 1 RNN, 3 GRU, 4 LSTM;
                                                                  D = embed for layer 0, else H)
    output projection:                   6 * H * V
    embedding, softmax, gates:           0 (no products; they are the "elementwise" time)

``rnnlm`` (1 x LSTM 100, V = 10k): 6*200*400 + 6*100*10000 = 6.48 MFLOP/token;
``better-rnnlm`` (2 x LSTM 650, tied): 2 * 6*1300*2600 + 6*650*10000 = 79.56 MFLOP/token.

Measurement notes. Wall-clock tokens/s of whole training steps (forward, backward, clipping,
SGD), after one warm-up step, on a stream of batches with the recurrent state carried, as in
training. The machine's other load shows up in the figures: :func:`environment` records the
load average, and callers take medians of interleaved repeats. ``OPENBLAS_CORETYPE`` (and
``OPENBLAS_L2_SIZE``), when set, force OpenBLAS's kernel choice; on an AVX-512 CPU
``OPENBLAS_CORETYPE=Haswell`` halves float32 GEMM speed, so :func:`environment` reports them and
:func:`environment_lines` warns.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ... import blas, kernels, mkl
from ...models.rnnlm import LanguageModel
from ...nn.registry import get_cell
from ...optim import SGD, clip_grads
from ...train.generate import sample_ids

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass(frozen=True)
class Recipe:
    """A language-model training recipe, as in the book (SGD, clipping, truncated BPTT).

    ``steps`` is the default number of timed training steps per run (about 2-4 s here).
    """

    name: str
    cell: str
    vocab: int
    embed: int
    hidden: int
    layers: int
    dropout: float
    tie: bool
    batch: int = 20
    bptt: int = 35
    lr: float = 20.0
    clip: float = 0.25
    steps: int = 60

    @property
    def flops_per_token(self) -> float:
        spec = get_cell(self.cell)  # 2 flops per matrix weight forward, 4 backward
        rec = sum(6 * math.prod(shape) for i in range(self.layers)
                  for shape in spec.param_shapes(self.embed if i == 0 else self.hidden,
                                                 self.hidden) if len(shape) == 2)
        return float(rec + 6 * self.hidden * self.vocab)

    @property
    def tokens_per_step(self) -> int:
        return self.batch * self.bptt


RECIPES = {
    "rnnlm": Recipe("rnnlm", "lstm", 10000, 100, 100, 1, 0.0, False),
    "better-rnnlm": Recipe("better-rnnlm", "lstm", 10000, 650, 650, 2, 0.5, True, steps=10),
    "gru": Recipe("gru", "gru", 10000, 100, 100, 1, 0.0, False),
    "rnn": Recipe("rnn", "rnn", 10000, 100, 100, 1, 0.0, False),
}


# -- the machine ---------------------------------------------------------------------------------
def blas_info() -> list[dict[str, Any]]:
    """The BLAS libraries loaded in this process (threadpoolctl's view: library, version,
    threads, and the kernel ``architecture`` OpenBLAS picked); [] without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture",
                                   "threading_layer", "filepath")}
            for d in threadpool_info() if d.get("user_api") == "blas"]


def environment() -> dict[str, Any]:
    """Versions, CPU count, load average, BLAS kernels and the OpenBLAS overrides in effect."""
    try:
        load = list(os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux/macOS
        load = []
    return {"python": platform.python_version(), "numpy": np.__version__,
            "machine": platform.machine(), "processor": _cpu_name(), "cpus": os.cpu_count(),
            "loadavg": load, "blas": blas_info(),
            "mkl": mkl.status(), "kernels": kernels.status(), "pool": blas.pool_status(),
            "openblas_env": {v: os.environ[v] for v in OPENBLAS_VARS if v in os.environ}}


def _cpu_name() -> str:
    return mkl.cpuinfo("model name") or platform.processor()


def environment_lines(env: dict[str, Any]) -> list[str]:
    """The benchmark header: one line each, then a WARNING line per forced OpenBLAS setting."""
    lines = [f"python {env['python']}, numpy {env['numpy']}, {env['cpus']} cpus "
             f"({env['processor'] or env['machine']})",
             "load average " + (" ".join(f"{v:.2f}" for v in env["loadavg"]) or "unknown")
             + " (1/5/15 min)"]
    for b in env["blas"]:
        if b["internal_api"] == "mkl":  # bptt's own (bptt.mkl), reported below
            continue
        lines.append(f"numpy BLAS: {b['internal_api']} {b['version']}, {b['num_threads']} "
                     f"threads, kernel {b['architecture']}")
    if env.get("mkl"):
        lines.append(f"bptt's MKL products (sequential, weights packed once per layer call, "
                     f"used while NumPy's BLAS runs one thread): {env['mkl']}")
    kernels_status = env.get("kernels")
    lines.append("bptt's LSTM element-wise step: " + (
        "NumPy ufuncs (pip install 'bptt[numba]' compiles it)" if not kernels_status else
        f"NumPy ufuncs ({kernels_status})" if "off" in kernels_status else
        f"compiled ({kernels_status})"))
    if env.get("pool"):
        lines.append(f"BLAS threads: {env['pool']}")
    if not env["blas"]:
        lines.append("numpy BLAS kernel: unknown (pip install threadpoolctl to see it)")
    if env["openblas_env"]:
        forced = " ".join(f"{k}={v}" for k, v in env["openblas_env"].items())
        lines.append(f"WARNING: {forced} is set: it forces OpenBLAS's kernel choice (on AVX-512 "
                     f"CPUs Haswell halves float32 GEMM speed); for benchmarks run the command "
                     f"under `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`")
    return lines


def gemm_ceiling(repeats: int = 5, dtype: Any = np.float32, seconds: float = 0.2
                 ) -> dict[str, float]:
    """GFLOP/s of float32 products: one large square and the skinny per-step shape (median)."""
    rng = np.random.default_rng(0)
    shapes = {"large (2048^3)": (2048, 2048, 2048), "per-step (20x650 @ 650x2600)": (20, 650, 2600)}
    out = {}
    for name, (m, k, n) in shapes.items():
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        c = np.empty((m, n), dtype=dtype)
        np.matmul(a, b, out=c)  # warm up
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        inner = max(1, int(seconds / max(time.perf_counter() - t0, 1e-6)))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(inner):
                np.matmul(a, b, out=c)
            times.append((time.perf_counter() - t0) / inner)
        out[name] = 2 * m * k * n / statistics.median(times) / 1e9
    return out


# -- bptt models ---------------------------------------------------------------------------------
def make_bptt_model(recipe: Recipe, seed: int = 0) -> Any:
    """The bptt model of a recipe (float32)."""
    return LanguageModel(recipe.vocab, recipe.embed, recipe.hidden, cell=recipe.cell,
                         num_layers=recipe.layers, dropout=recipe.dropout,
                         tie_weights=recipe.tie, dtype=np.float32, seed=seed)


def bptt_train_step_fn(recipe: Recipe, seed: int = 0) -> Callable[[Any, Any], float]:
    """A function running one training step (forward, backward, clip, SGD) on (xs, ts), the
    same calls as :class:`bptt.train.Trainer`."""
    model = make_bptt_model(recipe, seed)
    opt = SGD(lr=recipe.lr)

    def step(xs: Any, ts: Any) -> float:
        loss = model.forward(xs, ts)
        model.backward()
        clip_grads(model.grads, recipe.clip)
        opt.update(model.params, model.grads)
        return float(loss)

    return step


def bptt_generate_fn(recipe: Recipe, seed: int = 0) -> Callable[[int], Any]:
    """Sample ``n`` tokens one at a time (batch 1) with :func:`bptt.train.generate.sample_ids`."""
    model = make_bptt_model(recipe, seed)
    return lambda n: sample_ids(model, [0], n, seed=seed)


def random_batches(recipe: Recipe, n: int, seed: int = 0) -> list[tuple[Any, Any]]:
    """``n`` (xs, ts) pairs of random token ids, shape (batch, bptt)."""
    rng = np.random.default_rng(seed)
    shape = (recipe.batch, recipe.bptt)
    return [(rng.integers(0, recipe.vocab, shape), rng.integers(0, recipe.vocab, shape))
            for _ in range(n)]


def time_steps(step: Callable[[Any, Any], Any], batches: list[tuple[Any, Any]],
               warmup: bool = True) -> float:
    """Tokens per second of running ``step`` over the batches (one warm-up step first)."""
    if warmup:
        step(*batches[0])
    t0 = time.perf_counter()
    for xs, ts in batches:
        step(xs, ts)
    elapsed = time.perf_counter() - t0
    return sum(xs.size for xs, _ in batches) / elapsed


def time_generation(generate: Callable[[int], Any], n_tokens: int) -> float:
    """Tokens per second of ``generate(n_tokens)`` (after a short warm-up)."""
    generate(2)
    t0 = time.perf_counter()
    generate(n_tokens)
    return n_tokens / (time.perf_counter() - t0)


def bench_bptt(recipe: Recipe, steps: int | None = None, repeats: int = 3,
               done: Callable[[int], Any] = lambda n: None) -> list[float]:
    """tokens/s of bptt training on a recipe, one figure per repeat; ``done(1)`` after each
    (outside the timing: a progress bar)."""
    step = bptt_train_step_fn(recipe)
    batches = random_batches(recipe, steps or recipe.steps)
    runs = []
    for _ in range(repeats):
        runs.append(time_steps(step, batches))
        done(1)
    return runs


@dataclass
class BenchRow:
    """One model's figures: medians of the repeats, and the repeats themselves."""

    model: str
    tok_s: float
    gflops: float  # matrix-product GFLOP/s reached (tok_s * FLOPs per token)
    ceiling_frac: float  # of the large-GEMM ceiling
    runs: list[float]
    gen_tok_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench_phases(models: list[str], repeats: int = 3, gen_tokens: int = 0) -> int:
    """How many times :func:`run_bench` calls ``done(1)``: the ceiling, then each timed run."""
    return 1 + len(models) * repeats * (2 if gen_tokens else 1)


def run_bench(models: list[str], steps: int | None = None, repeats: int = 3,
              gen_tokens: int = 0, ceiling: dict[str, float] | None = None,
              done: Callable[[int], Any] = lambda n: None) -> dict[str, Any]:
    """bptt training throughput (and generation, if ``gen_tokens``) of the named recipes,
    with the GEMM ceiling; the figures ``bptt bench`` prints. ``done(1)`` after each of the
    :func:`bench_phases` phases, outside the timing (a progress bar)."""
    unknown = [m for m in models if m not in RECIPES]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}: choose among "
                         f"{', '.join(RECIPES)}")
    if steps is not None and steps < 1 or repeats < 1:
        raise ValueError(f"steps and repeats must be at least 1, got {steps} and {repeats}")
    env = environment()
    ceiling = ceiling if ceiling is not None else gemm_ceiling()
    done(1)
    big = max(ceiling.values())
    rows = []
    for name in models:
        r = RECIPES[name]
        runs = bench_bptt(r, steps, repeats, done)
        tok = statistics.median(runs)
        gen = None
        if gen_tokens:
            sample = bptt_generate_fn(r)
            gens = []
            for _ in range(repeats):
                gens.append(time_generation(sample, gen_tokens))
                done(1)
            gen = statistics.median(gens)
        rows.append(BenchRow(name, tok, tok * r.flops_per_token / 1e9,
                             tok * r.flops_per_token / (big * 1e9), runs, gen))
    env["loadavg_end"] = environment()["loadavg"]
    return {"environment": env, "ceiling_gflops": ceiling,
            "training": [row.as_dict() for row in rows]}


def format_report(result: dict[str, Any]) -> str:
    """The text ``bptt bench`` prints."""
    env = result["environment"]
    lines = environment_lines(env)
    for k, v in result["ceiling_gflops"].items():
        lines.append(f"float32 GEMM ceiling, {k}: {v:.0f} GFLOP/s")
    rows = result["training"]
    gen = any(r["gen_tok_s"] is not None for r in rows)
    lines.append("")
    lines.append("training (forward, backward, clip, SGD), float32, batch 20 x bptt 35:")
    lines.append(f"{'model':<14}{'tokens/s':>10}{'GFLOP/s':>9}{'% ceiling':>11}{'MFLOP/tok':>11}"
                 + (f"{'gen tok/s':>11}" if gen else ""))
    for r in rows:
        mflop = RECIPES[r["model"]].flops_per_token / 1e6
        lines.append(f"{r['model']:<14}{r['tok_s']:>10.0f}{r['gflops']:>9.1f}"
                     f"{100 * r['ceiling_frac']:>10.0f}%{mflop:>11.2f}"
                     + (f"{r['gen_tok_s']:>11.0f}" if r["gen_tok_s"] is not None else ""))
    n = len(rows[0]["runs"]) if rows else 0
    lines.append(f"(medians of {n} runs; load average at the end "
                 + " ".join(f"{v:.2f}" for v in env.get("loadavg_end", [])) + ")")
    return "\n".join(lines)
