"""``bptt gradflow``: the numbers behind the vanishing/exploding-gradient picture."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bptt.cli import main
from bptt.nn.cells import TimeGRU, TimeLSTM, TimeRNN
from bptt.nn.registry import get_cell
from bptt.tools.explaining.gradflow import (
    _forward_backward,
    adding_batch,
    format_table,
    gradient_flow,
    gradient_flow_study,
    init_params,
)

SCALES = (0.5, 1.0, 1.5, 2.0)


@pytest.fixture(scope="module", params=[0, 1], ids=["seed0", "seed1"])
def study(request):
    runs = gradient_flow_study(("rnn", "lstm", "gru"), SCALES, T=100, H=32, N=16,
                               seed=request.param)
    return {(r.cell, r.scale): r for r in runs}


def _log_ratios(study, cell):
    return [math.log10(study[(cell, s)].ratio) for s in SCALES]


def test_rnn_gradient_vanishes_for_small_wh_and_explodes_for_large(study):
    rnn = _log_ratios(study, "rnn")
    assert rnn[0] < -20  # Wh x 0.5: ||dL/dh_0|| / ||dL/dh_99|| below 1e-20
    assert all(a < b for a, b in zip(rnn, rnn[1:], strict=False)), rnn  # grows with the scale
    assert rnn[-1] > 1  # Wh x 2: the gradient reaching t=0 is more than 10x the last one
    norms = study[("rnn", 0.5)].norms  # decays step after step, back from the loss
    assert all(a < b for a, b in zip(norms, norms[1:], strict=False))


def test_lstm_gradient_decays_much_slower_and_does_not_explode(study):
    rnn, lstm = _log_ratios(study, "rnn"), _log_ratios(study, "lstm")
    assert lstm[0] > rnn[0] + 15  # Wh x 0.5: 15 more decades survive 100 steps
    assert lstm[0] > -12
    assert lstm[-1] < 1.5 < rnn[-1]  # Wh x 2: no explosion through the cell state
    spread = lambda v: max(v) - min(v)  # noqa: E731
    assert spread(lstm) < spread(rnn) / 3  # far less sensitive to the scale of Wh
    assert study[("lstm", 1.0)].per_step > study[("rnn", 1.0)].per_step - 0.02


def test_carry_bias_is_what_keeps_the_lstm_gradient():
    closed = gradient_flow("lstm", 1.0, carry_bias=-2.0)  # forget gate ~ 0.12
    opened = gradient_flow("lstm", 1.0, carry_bias=3.0)  # forget gate ~ 0.95
    assert opened.ratio > 1e6 * closed.ratio


def test_clipping_caps_the_parameter_gradient(study):
    for r in study.values():
        assert r.clipped_norm == pytest.approx(min(r.grad_norm, r.max_norm), rel=1e-9)
    big = study[("rnn", 2.0)]
    assert big.grad_norm > 100 * big.max_norm


@pytest.mark.parametrize("cell,Time", [("rnn", TimeRNN), ("lstm", TimeLSTM), ("gru", TimeGRU)])
def test_cell_loop_agrees_with_the_time_layer(cell, Time):
    """The per-step loop gives the same dL/dh_init as the fused Time layer's ``dh``."""
    run = gradient_flow(cell, 1.3, T=30, H=6, N=4, seed=3)
    p = run.params
    x, y = adding_batch(4, 30, seed=3)
    layer = Time(p["Wx"], p["Wh"], p["b"])
    hs = layer.forward(x)
    err = hs[:, -1] @ p["w"] - y
    dhs = np.zeros_like(hs)
    dhs[:, -1] = np.outer(err / 4, p["w"])  # the loss is on the last step only
    layer.backward(dhs)
    assert run.dh0_norm == pytest.approx(np.linalg.norm(layer.dh), rel=1e-10)
    assert run.norms[-1] == pytest.approx(np.linalg.norm(dhs[:, -1]), rel=1e-12)
    assert run.loss == pytest.approx(float((err**2).sum() / 8), rel=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_parameter_gradients_match_finite_differences(cell):
    x, y = adding_batch(3, 5, seed=1)
    p = init_params(cell, 2, scale=1.5, seed=2)
    _, _, _, grads = _forward_backward(cell, p, x, y)
    eps = 1e-6
    for name, a in p.items():
        num = np.zeros_like(a)
        for i in np.ndindex(*a.shape):
            old = a[i]
            a[i] = old + eps
            lp = _forward_backward(cell, p, x, y, backward=False)[0]
            a[i] = old - eps
            lm = _forward_backward(cell, p, x, y, backward=False)[0]
            a[i] = old
            num[i] = (lp - lm) / (2 * eps)
        err = np.linalg.norm(num - grads[name]) / max(np.linalg.norm(num) + np.linalg.norm(
            grads[name]), 1e-12)
        assert err < 1e-6, (name, err)


def _steps_from(cell, p, x, state, t0, t1):
    """The state after steps t0..t1-1 of ``cell`` with the run's parameters, from ``state``."""
    spec = get_cell(cell)
    names = [k for k in p if k != "w"]
    given = len(spec.param_shapes(x.shape[2], p["w"].shape[0]))
    step = spec.make_step(*(p[k] for k in names[:given]))
    for a, k in zip(step.params[given:], names[given:], strict=True):
        a[...] = p[k]
    for t in range(t0, t1):
        state = spec.forward(step, x[:, t], state)
    return state


@pytest.mark.parametrize("cell", ["mlstm", "mamba", "rwkv"])
def test_cells_that_do_not_read_h_follow_their_whole_state(cell):
    """dL/dh_t is 0 before the last step for these cells (h_{t-1} is not read): the norms are
    of dL/d(h_t, s_t), equal to the finite-difference gradient of the loss in the state."""
    spec = get_cell(cell)
    assert not spec.reads_previous_h and get_cell("lstm").reads_previous_h
    N, T, H, t0 = 2, 5, 3, 2
    run = gradient_flow(cell, T=T, H=H, N=N, seed=5)
    assert run.of == "(h_t, s_t)" and min(run.norms) > 0
    p, (x, y) = run.params, adding_batch(N, T, seed=5)
    state = _steps_from(cell, p, x, spec.zero_state(np, N, H), 0, t0 + 1)  # (h_t0, s_t0)

    def loss(st):
        h = _steps_from(cell, p, x, st, t0 + 1, T)[0]
        return float(((h @ p["w"] - y) ** 2).sum() / (2 * N))
    eps, squares = 1e-6, 0.0
    for k, part in enumerate(state):
        for i in np.ndindex(*part.shape):
            moved = [a.copy() for a in state]
            moved[k][i] += eps
            up = loss(tuple(moved))
            moved[k][i] -= 2 * eps
            squares += ((up - loss(tuple(moved))) / (2 * eps)) ** 2
    assert run.norms[t0] == pytest.approx(math.sqrt(squares), rel=1e-6)
    assert "follow ||dL/d(h_t, s_t)||" in format_table([run])
    assert "follow" not in format_table([gradient_flow("lstm", T=T, H=H, N=N)])


def test_adding_batch():
    x, y = adding_batch(50, 20, seed=0)
    assert x.shape == (50, 20, 2) and y.shape == (50,)
    assert (x[:, :, 1].sum(axis=1) == 2).all()
    assert (x[:, :10, 1].sum(axis=1) == 1).all()  # one marker in each half
    np.testing.assert_allclose(y, (x[:, :, 0] * x[:, :, 1]).sum(axis=1))


def test_table_and_errors():
    runs = gradient_flow_study(("rnn",), (0.5, 2.0), T=10, H=4, N=2)
    table = format_table(runs)
    assert "first/last" in table and "t=0" in table and "t=9" in table
    assert len(table.strip().splitlines()) == 4 + 2
    with pytest.raises(ValueError, match="unknown cell"):
        gradient_flow("lstmm")
    with pytest.raises(ValueError, match="scale"):
        gradient_flow("rnn", 0.0)
    with pytest.raises(ValueError, match="T >= 2"):
        gradient_flow("rnn", T=1)


def test_cli_table_and_json(tmp_path, capsys):
    out = tmp_path / "runs.json"
    assert main(["gradflow", "--cells", "rnn,lstm", "--scales", "0.5,2", "-T", "20", "-H", "8",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count("\n rnn") == 2 and text.count("lstm") >= 2
    data = json.loads(out.read_text())
    assert len(data) == 4 and len(data[0]["norms"]) == 20
    assert data[0]["ratio"] < data[1]["ratio"]  # rnn: Wh x 0.5 vs x 2


def test_cli_rejects_bad_cells():
    with pytest.raises(SystemExit):
        main(["gradflow", "--cells", "lstmx"])
