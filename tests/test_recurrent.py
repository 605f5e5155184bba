"""One-step cells RNN, LSTM, GRU: float64 gradient checks, step() == forward(), bad input."""

import numpy as np
import pytest

from bptt import GRU, LSTM, RNN, gradcheck

SHAPES = [(1, 1, 1), (1, 3, 4), (3, 2, 5), (4, 6, 3)]  # (N, D, H)


def make_cell(kind, D, H, rng, dtype=np.float64):
    """A cell with random weights AND random biases (zero biases hide bias-gradient bugs)."""
    k = {"rnn": 1, "rnn_relu": 1, "lstm": 4, "gru": 3, "gru_after": 3}[kind]
    Wx, Wh, b = (rng.standard_normal(s).astype(dtype) * 0.6
                 for s in [(D, k * H), (H, k * H), (k * H,)])
    if kind == "rnn":
        return RNN(Wx, Wh, b)
    if kind == "rnn_relu":
        return RNN(Wx, Wh, b, nonlinearity="relu")
    if kind == "lstm":
        return LSTM(Wx, Wh, b)
    if kind == "gru":
        return GRU(Wx, Wh, b)
    return GRU(Wx, Wh, b, bh=rng.standard_normal(H).astype(dtype) * 0.6, reset_after=True)


KINDS = ["rnn", "rnn_relu", "lstm", "gru", "gru_after"]


def cell_inputs(kind, N, D, H, rng):
    ins = [rng.standard_normal((N, D)), rng.standard_normal((N, H))]
    if kind == "lstm":
        ins.append(rng.standard_normal((N, H)))
    return ins


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("N,D,H", SHAPES)
def test_cell_gradients(kind, N, D, H):
    rng = np.random.default_rng(N * 100 + D * 10 + H)
    cell = make_cell(kind, D, H, rng)
    report = gradcheck(cell, cell_inputs(kind, N, D, H, rng), seed=1)
    # every input (x, h_prev[, c_prev]) and every parameter was checked
    assert len(report.errors) == len(cell.params) + (3 if kind == "lstm" else 2)
    assert report.worst < 1e-6, report


@pytest.mark.parametrize("kind", KINDS)
def test_cell_params_are_the_given_arrays_and_grads_are_in_place(kind):
    rng = np.random.default_rng(0)
    cell = make_cell(kind, 3, 4, rng)
    grads_before = [id(g) for g in cell.grads]
    ins = cell_inputs(kind, 8, 3, 4, rng)
    out = cell.forward(*ins)
    outs = out if isinstance(out, tuple) else (out,)
    cell.backward(*[np.ones_like(o) for o in outs])
    assert [id(g) for g in cell.grads] == grads_before
    assert all(g.shape == p.shape and g.dtype == p.dtype for p, g in zip(cell.params, cell.grads))
    assert any(np.abs(g).sum() > 0 for g in cell.grads)


@pytest.mark.parametrize("kind", KINDS)
def test_step_equals_forward_and_keeps_no_cache(kind):
    rng = np.random.default_rng(1)
    cell = make_cell(kind, 3, 5, rng)
    ins = cell_inputs(kind, 2, 3, 5, rng)
    state = tuple(ins[1:]) if kind == "lstm" else ins[1]
    out, new_state = cell.step(ins[0], state)
    assert cell.cache is None
    ref = cell.forward(*ins)
    if kind == "lstm":
        np.testing.assert_array_equal(out, ref[0])
        np.testing.assert_array_equal(new_state[1], ref[1])
    else:
        np.testing.assert_array_equal(out, ref)
        np.testing.assert_array_equal(new_state, ref)


@pytest.mark.parametrize("kind", KINDS)
def test_step_from_none_state_is_zeros(kind):
    rng = np.random.default_rng(2)
    cell = make_cell(kind, 3, 4, rng)
    x = rng.standard_normal((2, 3))
    zeros = np.zeros((2, 4))
    h, _ = cell.step(x)
    h_ref, _ = cell.step(x, (zeros, zeros) if kind == "lstm" else zeros)
    np.testing.assert_array_equal(h, h_ref)


def test_step_generation_loop_feeds_state_back():
    rng = np.random.default_rng(3)
    cell = make_cell("lstm", 2, 3, rng)
    x = rng.standard_normal((1, 2))
    state = None
    hs = []
    for _ in range(4):
        h, state = cell.step(x, state)
        hs.append(h)
    # the state really changes from step to step (it is fed back, not restarted)
    assert not np.allclose(hs[0], hs[1])
    h, c = np.zeros((1, 3)), np.zeros((1, 3))
    for _ in range(4):
        h, c = cell.forward(x, h, c)
    np.testing.assert_allclose(hs[-1], h, rtol=1e-13)


def test_lstm_gate_order_is_f_g_i_o():
    """Only the i block (columns 2H:3H) opens the input: with i shut, c_next = f * c_prev."""
    H, D = 2, 1
    Wx, Wh = np.zeros((D, 4 * H)), np.zeros((H, 4 * H))
    b = np.zeros(4 * H)
    b[0:H] = 50.0  # f = 1
    b[H:2 * H] = 50.0  # g = 1
    b[2 * H:3 * H] = -50.0  # i = 0
    b[3 * H:] = 50.0  # o = 1
    cell = LSTM(Wx, Wh, b)
    c_prev = np.array([[0.3, -0.2]])
    h, c = cell.forward(np.ones((1, D)), np.zeros((1, H)), c_prev)
    np.testing.assert_allclose(c, c_prev)
    np.testing.assert_allclose(h, np.tanh(c_prev))


def test_gru_update_gate_convention():
    """z = 1 keeps the candidate, z = 0 keeps h_prev: h = (1 - z) * h_prev + z * h~."""
    H = 2
    Wx, Wh = np.zeros((1, 3 * H)), np.zeros((H, 3 * H))
    b = np.zeros(3 * H)
    b[2 * H:] = 0.5  # candidate h~ = tanh(0.5)
    h_prev = np.array([[0.7, -0.1]])
    for bz, expect in [(-50.0, h_prev), (50.0, np.full((1, H), np.tanh(0.5)))]:
        b[:H] = bz
        np.testing.assert_allclose(GRU(Wx, Wh, b).forward(np.ones((1, 1)), h_prev), expect)


def test_gru_reset_after_differs_from_reset_before():
    rng = np.random.default_rng(4)
    before = make_cell("gru", 3, 4, rng)
    after = GRU(*before.params, reset_after=True)
    x, h = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    assert not np.allclose(before.forward(x, h), after.forward(x, h))
    assert len(after.params) == 4 and np.all(after.params[3] == 0)  # bh defaults to zeros


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_follows_params(dtype):
    rng = np.random.default_rng(5)
    for kind in KINDS:
        cell = make_cell(kind, 3, 4, rng, dtype)
        ins = [a.astype(dtype) for a in cell_inputs(kind, 2, 3, 4, rng)]
        out = cell.forward(*ins)
        outs = out if isinstance(out, tuple) else (out,)
        assert all(o.dtype == dtype for o in outs)
        dins = cell.backward(*[np.ones_like(o) for o in outs])
        assert all(d.dtype == dtype for d in dins)


# -- bad input ---------------------------------------------------------------------------------

def test_bad_param_shapes_name_the_expected_shapes():
    with pytest.raises(ValueError, match=r"Wx \(3, 16\)"):
        LSTM(np.zeros((3, 12)), np.zeros((4, 16)), np.zeros(16))
    with pytest.raises(ValueError, match="b"):
        RNN(np.zeros((3, 4)), np.zeros((4, 4)), np.zeros(5))
    with pytest.raises(TypeError, match="one dtype"):
        RNN(np.zeros((3, 4)), np.zeros((4, 4), np.float32), np.zeros(4))
    with pytest.raises(TypeError, match="floating"):
        RNN(np.zeros((3, 4), int), np.zeros((4, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(np.zeros((3, 4)), np.zeros((4, 4)), np.zeros(4), nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="reset_after"):
        GRU(np.zeros((3, 12)), np.zeros((4, 12)), np.zeros(12), bh=np.zeros(4))
    with pytest.raises(ValueError, match=r"\(H,\) = \(4,\)"):
        GRU(np.zeros((3, 12)), np.zeros((4, 12)), np.zeros(12), bh=np.zeros(5), reset_after=True)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_step_input(kind):
    rng = np.random.default_rng(6)
    cell = make_cell(kind, 3, 4, rng)
    x, h = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    extra = [h] if kind == "lstm" else []
    with pytest.raises(ValueError, match=r"\(2, 5\).*\(N, 3\)"):
        cell.forward(rng.standard_normal((2, 5)), h, *extra)
    with pytest.raises(TypeError, match="floating"):
        cell.forward(np.ones((2, 3), dtype=int), h, *extra)
    with pytest.raises(TypeError, match="float32"):
        cell.forward(x.astype(np.float32), h, *extra)
    with pytest.raises(ValueError, match=r"\(N, H\) = \(2, 4\)"):
        cell.forward(x, rng.standard_normal((3, 4)), *extra)  # batch mismatch
    with pytest.raises(ValueError, match="N, D"):
        cell.forward(rng.standard_normal((2, 1, 3)), h, *extra)


def test_docstring_parameter_shapes_match_the_code():
    """The 'Params:' line of each docstring states the shapes the constructor checks."""
    import re

    from bptt import TimeGRU, TimeLSTM, TimeRNN

    for cls, k in [(RNN, 1), (LSTM, 4), (GRU, 3), (TimeRNN, 1), (TimeLSTM, 4), (TimeGRU, 3)]:
        m = re.search(r"Params: Wx \(D, (\d*)H\), Wh \(H, (\d*)H\), b \((\d*)H,\)", cls.__doc__)
        assert m, f"{cls.__name__} docstring has no 'Params:' line"
        assert {int(g or 1) for g in m.groups()} == {k}, cls.__name__
        D, H = 3, 2
        cls(np.zeros((D, k * H)), np.zeros((H, k * H)), np.zeros(k * H))  # accepted
        with pytest.raises(ValueError):
            cls(np.zeros((D, (k + 1) * H)), np.zeros((H, (k + 1) * H)), np.zeros((k + 1) * H))
