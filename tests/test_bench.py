"""``bptt bench``, the FLOP count behind "% of the GEMM ceiling", and the fast kernels it measures
(in-place products, clipping by dot products) keeping exact results."""

import json

import numpy as np
import pytest

from bptt.backend import HUGE_PAGE, empty_work, matmul_into
from bptt.cli import main
from bptt.nn.cells import TimeGRU, TimeLSTM, TimeRNN
from bptt.optim import clip_grads
from bptt.tools.speed.bench import (
    RECIPES,
    Recipe,
    environment,
    environment_lines,
    format_report,
    run_bench,
)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def products_per_token(r: Recipe) -> int:
    """Multiply-adds of one training step divided by its tokens, counted product by product as
    the layers do them (forward, then backward), for batch N and T steps."""
    N, T, V, H = r.batch, r.bptt, r.vocab, r.hidden
    G = {"rnn": 1, "gru": 3, "lstm": 4}[r.cell]
    macs = 0
    for i in range(r.layers):
        D = r.embed if i == 0 else H
        macs += N * T * D * G * H          # forward: xs (NT, D) @ Wx (D, GH), all steps at once
        macs += T * (N * H * G * H)        # forward: h_{t-1} (N, H) @ Wh (H, GH), per step
        macs += T * (N * G * H * H)        # backward: dA_t (N, GH) @ Wh.T, per step
        macs += H * N * T * G * H          # backward: dWh = hs.T (H, NT) @ dA (NT, GH)
        macs += D * N * T * G * H          # backward: dWx = xs.T (D, NT) @ dA
        macs += N * T * G * H * D          # backward: dxs = dA (NT, GH) @ Wx.T
    macs += N * T * H * V                  # forward: h (NT, H) @ W (H, V)
    macs += H * N * T * V + N * T * V * H  # backward: dW = h.T @ dout, dh = dout @ W.T
    return 2 * macs // (N * T)             # FLOPs (multiply + add) per token


@pytest.mark.parametrize("name", list(RECIPES))
def test_flop_formula_matches_a_product_by_product_count(name):
    r = RECIPES[name]
    assert r.flops_per_token == products_per_token(r)


def test_flop_formula_figures_in_the_docs():
    assert RECIPES["rnnlm"].flops_per_token == 6_480_000  # 6*200*400 + 6*100*10000
    assert RECIPES["better-rnnlm"].flops_per_token == 79_560_000
    assert RECIPES["gru"].flops_per_token == 6_360_000
    assert RECIPES["rnn"].flops_per_token == 6_120_000


def test_bptt_bench_runs_tiny(capsys, tmp_path):
    out = tmp_path / "bench.json"
    code = main(["bench", "--steps", "2", "--models", "rnn", "--repeats", "1",
                 "--gen-tokens", "3", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "float32 GEMM ceiling, large (2048^3)" in text
    row = next(line for line in text.splitlines() if line.startswith("rnn "))
    tok_s, gflops, pct = row.split()[1:4]
    assert float(tok_s) > 0 and float(gflops) > 0 and pct.endswith("%")
    result = json.loads(out.read_text())
    (r,) = result["training"]
    assert r["model"] == "rnn" and len(r["runs"]) == 1 and r["gen_tok_s"] > 0
    # GFLOP/s is tokens/s times the recipe's FLOPs per token
    assert r["gflops"] == pytest.approx(r["tok_s"] * RECIPES["rnn"].flops_per_token / 1e9)


def test_bptt_bench_shows_its_progress(monkeypatch, capsys):
    """`bench` works for half a minute: a bar on a terminal, one step per timed run."""
    import io

    import bptt.commands.bench as command
    from bptt.train.progress import work_bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal, bars = Terminal(), []
    monkeypatch.setattr(command, "work_bar", lambda *a, **k: bars.append(
        work_bar(*a, **k, stream=terminal)) or bars[-1])
    assert main(["bench", "--steps", "1", "--models", "rnn", "gru", "--repeats", "2",
                 "--gen-tokens", "2"]) == 0
    assert "timing" in terminal.getvalue()
    assert bars[0].total == bars[0].n == 9  # the ceiling, 2 x 2 training runs, 2 x 2 generation


def test_bptt_bench_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--models", "transformer"])
    assert main(["bench", "--models", "rnn", "--steps", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown model"):
        run_bench(["lstm-9000"])


def test_header_warns_when_openblas_kernel_is_forced(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.delenv("OPENBLAS_L2_SIZE", raising=False)
    env = environment()
    assert env["openblas_env"] == {"OPENBLAS_CORETYPE": "Haswell"}
    warn = [line for line in environment_lines(env) if line.startswith("WARNING")]
    assert len(warn) == 1 and "OPENBLAS_CORETYPE=Haswell" in warn[0]
    assert "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE" in warn[0]
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert not any(line.startswith("WARNING") for line in environment_lines(environment()))


@pytest.mark.parametrize(("kernels", "mkl", "want"), [
    (None, None, "NumPy ufuncs (pip install 'bptt[numba]' compiles it)"),
    ("numba 0.68.1, on", None, "compiled (numba 0.68.1, on)"),
    ("numba 0.68.1, off (BPTT_NUMBA=0)", None, "NumPy ufuncs (numba 0.68.1, off (BPTT_NUMBA=0))"),
    (None, "installed, off on this CPU (AuthenticAMD; BPTT_MKL=1 forces it)", None)])
def test_header_says_which_step_and_products_run(kernels, mkl, want):
    env = {**environment(), "kernels": kernels, "mkl": mkl}
    lines = environment_lines(env)
    step = [line for line in lines if line.startswith("bptt's LSTM element-wise step: ")]
    assert len(step) == 1
    if want:
        assert step[0].endswith(want)
    products = [line for line in lines if line.startswith("bptt's MKL products")]
    assert (products[0].endswith(mkl) if mkl else not products)


def test_report_lists_every_model_with_its_ceiling_fraction():
    result = {"environment": {**environment(), "loadavg_end": [0.5, 0.5, 0.5]},
              "ceiling_gflops": {"large (2048^3)": 200.0},
              "training": [{"model": "rnnlm", "tok_s": 10000.0, "gflops": 64.8,
                            "ceiling_frac": 0.324, "runs": [1.0], "gen_tok_s": None}]}
    text = format_report(result)
    assert "rnnlm" in text and "32%" in text and "6.48" in text


# -- the fast kernels ------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["C", "F"])
def test_matmul_into_writes_in_place_in_either_layout(order, rng):
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 7))
    out = np.zeros((5, 7), order=order)
    same = out
    matmul_into(out, a, b)
    assert out is same
    np.testing.assert_allclose(out, a @ b, rtol=1e-14)
    strided = np.zeros((5, 14))[:, ::2]  # neither layout: falls back to a copy, same values
    matmul_into(strided, a, b)
    np.testing.assert_allclose(strided, a @ b, rtol=1e-14)


@pytest.mark.parametrize("shape, dtype", [((3, 5), np.float32), ((29, 128, 1024), np.float32),
                                          ((600, 1000), np.float64), ((0, 4), np.float64)])
def test_empty_work_gives_separate_aligned_arrays(shape, dtype):
    arrays = [empty_work(np, shape, dtype) for _ in range(3)]
    for a in arrays:
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
        if a.nbytes >= HUGE_PAGE:  # large ones start on a huge-page boundary
            assert a.ctypes.data % HUGE_PAGE == 0
        a[...] = 1
    if arrays[0].size:
        arrays[0][...] = 7  # no two share memory
        assert (arrays[1] == 1).all() and (arrays[2] == 1).all()


def test_clip_grads_float32_overflow_falls_back_to_float64():
    g = [np.full(4, 1e20, dtype=np.float32)]  # sum of squares 4e40 > float32 max
    norm = clip_grads(g, 1.0)
    assert norm == pytest.approx(2e20, rel=1e-6)
    np.testing.assert_allclose(g[0], 0.5, rtol=1e-5)
    assert g[0].dtype == np.float32


def test_clip_grads_norm_of_f_ordered_and_strided_grads(rng):
    gs = [np.asfortranarray(rng.standard_normal((4, 3))), rng.standard_normal((6, 4))[:, ::2]]
    expected = np.sqrt(sum((g**2).sum() for g in gs))
    assert clip_grads(gs, 1e9) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("make", [
    lambda r, D, H: TimeRNN(r.standard_normal((D, H)), r.standard_normal((H, H)),
                            r.standard_normal(H)),
    lambda r, D, H: TimeLSTM(r.standard_normal((D, 4 * H)), r.standard_normal((H, 4 * H)),
                             r.standard_normal(4 * H)),
    lambda r, D, H: TimeGRU(r.standard_normal((D, 3 * H)), r.standard_normal((H, 3 * H)),
                            r.standard_normal(3 * H)),
])
def test_recurrent_backward_leaves_the_callers_arrays_alone(make, rng):
    """The backward loops write dh (and dc) in place: never into the caller's dh_last/dc_last,
    and a second backward gives the same gradients (no buffer carried over); TimeLSTM's backward
    works in its forward's buffers, so a second one is refused until forward runs again."""
    layer = make(rng, 3, 4)
    xs = rng.standard_normal((2, 5, 3))
    dhs = rng.standard_normal((2, 5, 4))
    last = {"dh_last": rng.standard_normal((2, 4))}
    if isinstance(layer, TimeLSTM):
        last["dc_last"] = rng.standard_normal((2, 4))
    kept = {k: v.copy() for k, v in last.items()}
    layer.forward(xs)
    dxs1 = layer.backward(dhs, **last).copy()
    grads1, dh1 = [g.copy() for g in layer.grads], layer.dh.copy()
    for k in last:
        np.testing.assert_array_equal(last[k], kept[k])
    if isinstance(layer, TimeLSTM):  # its backward works in the forward's buffers
        with pytest.raises(RuntimeError, match="already called after this forward"):
            layer.backward(dhs, **last)
        layer.forward(xs)
    dxs2 = layer.backward(dhs, **last)
    np.testing.assert_array_equal(dxs2, dxs1)
    np.testing.assert_array_equal(layer.dh, dh1)
    for g, g1 in zip(layer.grads, grads1):
        np.testing.assert_array_equal(g, g1)
