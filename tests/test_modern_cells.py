"""minGRU, minLSTM (parallel scan and loop), IndRNN, the layer-normalised and peephole LSTMs:
float64 gradient checks with masks and states, fused layers equal to the generic TimeCell, the
scan equal to the loop (1e-10) and stable over long sequences, layer norm against PyTorch, and
each cell through the CLI (train, generate, fit, explain, gradflow)."""

import json
import subprocess
import sys

import numpy as np
import pytest

import bptt
from bptt.nn.cells import (
    TimeIndRNN,
    TimeMinGRU,
    TimeMinLSTM,
    TimePeepholeLSTM,
    scan_linear,
    scan_log,
)
from bptt.nn.cells.lnlstm import TimeLayerNormLSTM, layer_norm, layer_norm_backward
from bptt.nn.registry import get_cell, make_time_layer
from bptt.nn.time_cell import TimeCell

NEW = ["mingru", "minlstm", "indrnn", "lnlstm", "peephole"]
AFTER_LSTM = ["slstm", "mlstm", "mamba", "rwkv"]  # their own test files check the rest
FUSED = {"mingru": TimeMinGRU, "minlstm": TimeMinLSTM, "indrnn": TimeIndRNN,
         "lnlstm": TimeLayerNormLSTM, "peephole": TimePeepholeLSTM}


class Draws:
    """N(0, scale^2) weights and biases in float64 (the cell's init_params decides the rest)."""

    def __init__(self, seed=0, scale=0.6):
        self.rng, self.scale = np.random.default_rng(seed), scale

    def W(self, n_in, n_out):
        return self.scale * self.rng.standard_normal((n_in, n_out))

    def B(self, n):
        return self.scale * self.rng.standard_normal(n)


def params(cell, D, H, seed=0):
    """The cell's own parameters, every constant one (closed peepholes, unit gains) made
    random too, so that no path of the equations is checked at a trivial point."""
    ps = get_cell(cell).init_params(D, H, Draws(seed))
    r = np.random.default_rng(seed + 100)
    return [p + 0.3 * r.standard_normal(p.shape) if np.ptp(p) == 0 else p for p in ps]


def run(layer, xs, dhs, h0=None, mask=None, dh_last=None):
    if h0 is not None:
        layer.set_state(h0)
    hs = layer.forward(xs, mask=mask)
    h = layer.h.copy()
    dxs = layer.backward(dhs, dh_last=dh_last)
    return [hs, h, dxs, *[g.copy() for g in layer.grads], layer.dh]


def assert_all_close(got, want, tol):
    for g, w in zip(got, want, strict=True):
        scale = max(np.abs(w).max(initial=0.0), 1.0)
        np.testing.assert_allclose(g, w, rtol=0, atol=tol * scale)


def batch(N, T, D, H, seed=1, masked=True):
    r = np.random.default_rng(seed)
    xs, dhs = r.standard_normal((N, T, D)), r.standard_normal((N, T, H))
    h0, dh_last = np.abs(r.standard_normal((N, H))), r.standard_normal((N, H))
    lengths = r.integers(1, T + 1, size=N)
    lengths[0] = T
    mask = (np.arange(T)[None, :] < lengths[:, None]) if masked else None
    return xs, dhs, h0, mask, dh_last


@pytest.mark.parametrize("cell", list(FUSED))
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("N,T,D,H", [(1, 1, 2, 3), (3, 6, 4, 5), (2, 9, 1, 2)])
def test_fused_layer_equals_the_generic_loop_over_the_step(cell, masked, N, T, D, H):
    ps = params(cell, D, H)
    xs, dhs, h0, mask, dh_last = batch(N, T, D, H, masked=masked)
    modes = ["scan", "loop"] if cell.startswith("min") else [None]
    want = run(TimeCell(get_cell(cell), *[p.copy() for p in ps]), xs, dhs, h0, mask, dh_last)
    for mode in modes:
        layer = FUSED[cell](*[p.copy() for p in ps], **({"mode": mode} if mode else {}))
        assert_all_close(run(layer, xs, dhs, h0, mask, dh_last), want, 1e-10)


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
@pytest.mark.parametrize("T", [1, 2, 7, 64, 300])
def test_scan_equals_loop_forward_and_backward(cell, T):
    ps = params(cell, 3, 4, seed=T)
    xs, dhs, h0, mask, dh_last = batch(2, T, 3, 4, seed=T)
    loop = run(FUSED[cell](*ps, mode="loop"), xs, dhs, h0, mask, dh_last)
    scan = run(FUSED[cell](*ps, mode="scan"), xs, dhs, h0, mask, dh_last)
    assert_all_close(scan, loop, 1e-10)


@pytest.mark.parametrize("cell", NEW)
@pytest.mark.parametrize("fused", [True, False])
def test_time_layer_gradients_with_a_mask_from_a_set_state(cell, fused):
    layer = make_time_layer(cell, *params(cell, 3, 4), fused=fused)
    xs, _, h0, mask, _ = batch(3, 5, 3, 4)
    report = bptt.gradcheck(layer, [xs, mask], wrt=[0], seed=0,
                            setup=lambda: layer.set_state(h0))
    assert report.worst < 1e-6, report


@pytest.mark.parametrize("mode", ["scan", "loop"])
def test_scan_and_loop_gradcheck(mode):
    layer = TimeMinLSTM(*params("minlstm", 2, 3), mode=mode)
    xs = np.random.default_rng(0).standard_normal((2, 6, 2))
    assert bptt.gradcheck(layer, [xs], seed=0).worst < 1e-6


def test_scans_match_their_definitions():
    r = np.random.default_rng(0)
    a, b = r.uniform(0.1, 1.0, (9, 2, 3)), r.uniform(0.1, 2.0, (9, 2, 3))
    h, want = np.zeros((2, 3)), []
    for t in range(9):
        h = a[t] * h + b[t]
        want.append(h)
    np.testing.assert_allclose(scan_linear(a, b), np.stack(want), rtol=1e-13)
    A, B = scan_log(np.log(a), np.log(b))
    np.testing.assert_allclose(np.exp(B), np.stack(want), rtol=1e-12)
    np.testing.assert_allclose(A, np.cumsum(np.log(a), axis=0), rtol=1e-12)


def test_long_float32_scan_neither_underflows_nor_overflows():
    """T = 1024 with gates that forget hard (prod a ~ 1e-300): the log-space scan stays finite
    and equal to the loop in float32."""
    D, H = 2, 3
    Wx = np.zeros((D, 2 * H), dtype=np.float32)
    b = np.concatenate([np.full(H, 2.0), np.full(H, 0.5)]).astype(np.float32)  # z ~ 0.88
    xs = np.random.default_rng(0).standard_normal((2, 1024, D)).astype(np.float32)
    hs_scan = TimeMinGRU(Wx, b, mode="scan").forward(xs)
    hs_loop = TimeMinGRU(Wx.copy(), b.copy(), mode="loop").forward(xs)
    assert np.isfinite(hs_scan).all()
    np.testing.assert_allclose(hs_scan, hs_loop, rtol=1e-5, atol=1e-6)


def test_indrnn_keeps_its_recurrent_weights_inside_the_constraint():
    Wx, u, b = params("indrnn", 2, 4)
    u[...] = [-3.0, 0.5, 1.5, 0.9]
    layer = TimeIndRNN(Wx, u, b, u_max=1.0)
    layer.forward(np.ones((1, 3, 2)))
    np.testing.assert_array_equal(layer.params[1], [-1.0, 0.5, 1.0, 0.9])
    with pytest.raises(ValueError, match="u_max must be positive"):
        TimeIndRNN(Wx, u, b, u_max=0)


def test_layer_norm_equals_pytorch_forward_and_backward():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(0)
    v, gamma, beta, dy = (r.standard_normal(s) for s in [(5, 8), (8,), (8,), (5, 8)])
    y, cache = layer_norm(v, gamma, beta)
    dv, dgamma, dbeta = layer_norm_backward(dy, cache)
    tv, tg, tb = (torch.tensor(a, requires_grad=True) for a in (v, gamma, beta))
    ty = torch.nn.functional.layer_norm(tv, (8,), tg, tb, eps=1e-5)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-12)
    for mine, theirs in ((dv, tv), (dgamma, tg), (dbeta, tb)):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), atol=1e-12)


def test_cells_without_a_full_recurrent_weight_have_their_own_parameters():
    assert get_cell("mingru").param_shapes(3, 4) == [(3, 8), (8,)]
    assert get_cell("minlstm").param_shapes(3, 4) == [(3, 12), (12,)]
    assert get_cell("indrnn").param_shapes(3, 4) == [(3, 4), (4,), (4,)]
    assert get_cell("lnlstm").param_shapes(3, 4) == [(3, 16), (4, 16), (16,), (16,), (16,),
                                                     (4,), (4,)]


@pytest.mark.parametrize("cell", NEW + AFTER_LSTM)
def test_each_new_cell_trains_a_language_model_saves_and_generates(cell, tmp_path):
    cfg = bptt.TrainConfig(cell=cell, embed=16, hidden=16, batch=4, bptt=8, max_steps=30,
                           out=str(tmp_path / "lm"), quiet=True, optimizer="adam", lr=0.01)
    m = bptt.train_language_model(cfg)
    assert m["valid_ppl"] < m["data"]["vocab_size"]  # better than a uniform guess
    ck = bptt.load_checkpoint(tmp_path / "lm" / "best")
    assert ck.model.cell == cell
    out = subprocess.run([sys.executable, "-m", "bptt", "generate", str(tmp_path / "lm"),
                          "--length", "5", "--seed", "1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


@pytest.mark.parametrize("cell", NEW + AFTER_LSTM)
def test_each_new_cell_in_fit_explain_and_gradflow(cell, tmp_path):
    fit = subprocess.run([sys.executable, "-m", "bptt", "fit", "sine", "--cell", cell,
                          "--epochs", "1", "--hidden", "8", "--out", str(tmp_path / "fit")],
                         capture_output=True, text=True)
    assert fit.returncode == 0, fit.stderr
    metrics = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    assert metrics["model"]["cell"] == cell
    assert metrics["test"]["mse"] < metrics["baselines"]["mean"]  # it learned something
    text = str(bptt.explain(cell))
    assert get_cell(cell).step.__name__ in text
    run_ = bptt.gradient_flow(cell, T=20, H=6, N=4)
    assert len(run_.norms) == 20 and all(np.isfinite(run_.norms))


def test_auto_mode_loops_on_numpy():
    layer = TimeMinGRU(*params("mingru", 2, 3))
    layer.forward(np.ones((1, 4, 2)))
    assert layer.mode == "auto" and layer.cache[-1] is False  # the loop: faster on a CPU
    with pytest.raises(ValueError, match="mode must be one of auto, scan, loop"):
        TimeMinGRU(*params("mingru", 2, 3), mode="parallel")
