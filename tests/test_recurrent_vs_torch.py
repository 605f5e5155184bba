"""Cells and Time layers against PyTorch (torch.nn.RNN/LSTM/GRU and their *Cell), in float64
(relative error < 1e-9) and float32 (< 1e-4): outputs, final states, input gradients, every
parameter gradient and the initial-state gradients; variable lengths against packed sequences.

The weight mapping, written out (torch keeps weights as (rows = gate units, columns = inputs)):

    RNN   Wx = weight_ih.T (D, H)      Wh = weight_hh.T      b = bias_ih + bias_hh
    LSTM  torch blocks i, f, g, o (rows of weight_ih (4H, D)) -> ours f, g, i, o (columns)
          Wx = [W_f, W_g, W_i, W_o]_ih.T   Wh = same of weight_hh
          b = bias_ih + bias_hh (same order)
    GRU   torch blocks r, z, n; h' = (1 - z_t) n + z_t h, ours h' = (1 - z) h + z h~, so
          z = 1 - z_t = sigmoid(-a_z): the z block is NEGATED (weights and both biases).
          Wx = [-W_z, W_r, W_n]_ih.T   Wh = [-W_z, W_r, W_n]_hh.T
          b = [-(b_ih_z + b_hh_z), b_ih_r + b_hh_r, b_ih_n]   bh = b_hh_n   (reset_after=True)
    The gradients map back the same way; each torch bias gets the gradient of the summed bias.
"""

import numpy as np
import pytest

from bptt import GRU, LSTM, RNN, TimeGRU, TimeLSTM, TimeRNN
from bptt.gradcheck import relative_error
from bptt.tools.exchange.interop import grads_to_torch as interop_grads_to_torch
from bptt.tools.exchange.interop import params_from_torch

torch = pytest.importorskip("torch")

CELL = {"rnn_tanh": "rnn", "rnn_relu": "rnn", "lstm": "lstm", "gru": "gru"}

# every test here runs on both LSTM step paths (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("lstm_step_path")


def _blocks(a, k):
    H = a.shape[0] // k
    return [a[j * H:(j + 1) * H] for j in range(k)]


KINDS = {
    # name: (torch module class, torch cell class, module kwargs, our Time class, our cell class)
    "rnn_tanh": (torch.nn.RNN, torch.nn.RNNCell, {"nonlinearity": "tanh"}, TimeRNN, RNN),
    "rnn_relu": (torch.nn.RNN, torch.nn.RNNCell, {"nonlinearity": "relu"}, TimeRNN, RNN),
    "lstm": (torch.nn.LSTM, torch.nn.LSTMCell, {}, TimeLSTM, LSTM),
    "gru": (torch.nn.GRU, torch.nn.GRUCell, {}, TimeGRU, GRU),
}
TOL = {np.float64: 1e-9, np.float32: 1e-4}


def _torch_weights(mod, suffix=""):
    names = [f"weight_ih{suffix}", f"weight_hh{suffix}", f"bias_ih{suffix}", f"bias_hh{suffix}"]
    return [getattr(mod, n) for n in names]


def _randomize(mod, rng, suffix=""):
    with torch.no_grad():
        for p in _torch_weights(mod, suffix):
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)) * 0.5))


def ours_from_torch(kind, weights, time=True):
    """Our layer (Time or cell) holding the torch module's weights."""
    _, _, kw, time_cls, cell_cls = KINDS[kind]
    arrs = [w.detach().numpy().copy() for w in weights]
    cls = time_cls if time else cell_cls
    params = params_from_torch(CELL[kind], *arrs)  # written out in test_mapping_written_out
    if kind.startswith("rnn"):
        return cls(*params, nonlinearity=kw["nonlinearity"])
    if kind == "lstm":
        return cls(*params)
    Wx, Wh, b, bh = params
    return cls(Wx, Wh, b, bh=bh, reset_after=True)


def grads_to_torch(kind, grads):
    return interop_grads_to_torch(CELL[kind], grads)


def test_mapping_written_out():
    """bptt.tools.exchange.interop's mapping (used by the tests below) is the one of the module
    docstring."""
    rng = np.random.default_rng(0)
    D, H = 3, 2
    for kind, G in (("rnn", 1), ("lstm", 4), ("gru", 3)):
        w_ih, w_hh = rng.standard_normal((G * H, D)), rng.standard_normal((G * H, H))
        b_ih, b_hh = rng.standard_normal(G * H), rng.standard_normal(G * H)
        if kind == "rnn":
            want = [w_ih.T, w_hh.T, b_ih + b_hh]
        elif kind == "lstm":  # torch i, f, g, o -> ours f, g, i, o
            def fgio(a):
                i, f, g, o = _blocks(a, 4)
                return np.concatenate([f, g, i, o])
            want = [fgio(w_ih).T, fgio(w_hh).T, fgio(b_ih + b_hh)]
        else:  # torch r, z, n -> ours z, r, h~ with z negated
            (ri, zi, ni), (rh, zh, nh) = _blocks(w_ih, 3), _blocks(w_hh, 3)
            (bri, bzi, bni), (brh, bzh, bnh) = _blocks(b_ih, 3), _blocks(b_hh, 3)
            want = [np.concatenate([-zi, ri, ni]).T, np.concatenate([-zh, rh, nh]).T,
                    np.concatenate([-(bzi + bzh), bri + brh, bni]), bnh]
        got = params_from_torch(kind, w_ih, w_hh, b_ih, b_hh)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        # gradients go back with the inverse map (so the weights come back as they were);
        # both torch biases get the gradient of the summed bias
        d_ih, d_hh, db_ih, db_hh = interop_grads_to_torch(kind, want)
        np.testing.assert_array_equal(d_ih, w_ih)
        np.testing.assert_array_equal(d_hh, w_hh)
        if kind == "gru":
            np.testing.assert_array_equal(db_ih, np.concatenate([bri + brh, bzi + bzh, bni]))
            np.testing.assert_array_equal(db_hh, np.concatenate([bri + brh, bzi + bzh, bnh]))
        else:
            np.testing.assert_array_equal(db_ih, b_ih + b_hh)
            np.testing.assert_array_equal(db_hh, b_ih + b_hh)


def check(a, t, tol, what):
    err = relative_error(a, t.detach().numpy())
    assert err < tol, f"{what}: relative error {err:.2e} >= {tol:.0e}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("N,T,D,H", [(1, 1, 3, 4), (3, 6, 5, 4), (4, 3, 2, 7)])
def test_time_layer_matches_torch(kind, dtype, N, T, D, H):
    rng = np.random.default_rng(N * 100 + T * 10 + H)
    mod_cls, _, kw, _, _ = KINDS[kind]
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    mod = mod_cls(D, H, batch_first=True, **kw).to(tdtype)
    _randomize(mod, rng, "_l0")
    ours = ours_from_torch(kind, _torch_weights(mod, "_l0"))  # in the module's dtype
    assert ours.params[0].dtype == dtype

    x = rng.standard_normal((N, T, D)).astype(dtype)
    h0 = rng.standard_normal((N, H)).astype(dtype)
    c0 = rng.standard_normal((N, H)).astype(dtype)
    r = rng.standard_normal((N, T, H)).astype(dtype)
    rh = rng.standard_normal((N, H)).astype(dtype)
    rc = rng.standard_normal((N, H)).astype(dtype)

    tx = torch.from_numpy(x).requires_grad_()
    th0 = torch.from_numpy(h0[None]).requires_grad_()
    tc0 = torch.from_numpy(c0[None]).requires_grad_()
    if kind == "lstm":
        tout, (thn, tcn) = mod(tx, (th0, tc0))
        loss = (tout * torch.from_numpy(r)).sum() + (thn[0] * torch.from_numpy(rh)).sum() \
            + (tcn[0] * torch.from_numpy(rc)).sum()
    else:
        tout, thn = mod(tx, th0)
        loss = (tout * torch.from_numpy(r)).sum() + (thn[0] * torch.from_numpy(rh)).sum()
    loss.backward()

    ours.set_state(h0, c0 if kind == "lstm" else None)
    hs = ours.forward(x)
    if kind == "lstm":
        dxs = ours.backward(r, dh_last=rh, dc_last=rc)
    else:
        dxs = ours.backward(r, dh_last=rh)
    tol = TOL[dtype]
    check(hs, tout, tol, "outputs hs")
    check(ours.h, thn[0], tol, "final h")
    check(dxs, tx.grad, tol, "dxs")
    check(ours.dh, th0.grad[0], tol, "dh0")
    if kind == "lstm":
        check(ours.c, tcn[0], tol, "final c")
        check(ours.dc, tc0.grad[0], tol, "dc0")
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    for name, g, tp in zip(names, grads_to_torch(kind, ours.grads),
                           _torch_weights(mod, "_l0")):
        check(g, tp.grad, tol, f"d {name}")


@pytest.mark.parametrize("kind", list(KINDS))
def test_cells_match_torch_cells(kind):
    rng = np.random.default_rng(5)
    N, D, H = 3, 4, 5
    _, cell_cls, kw, _, _ = KINDS[kind]
    tcell = cell_cls(D, H, **kw).double()
    _randomize(tcell, rng)
    cell = ours_from_torch(kind, _torch_weights(tcell), time=False)
    x, h, c = (rng.standard_normal(s) for s in [(N, D), (N, H), (N, H)])
    r, rc = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    tx, th, tc = (torch.from_numpy(a).requires_grad_() for a in (x, h, c))
    if kind == "lstm":
        th1, tc1 = tcell(tx, (th, tc))
        ((th1 * torch.from_numpy(r)).sum() + (tc1 * torch.from_numpy(rc)).sum()).backward()
        h1, c1 = cell.forward(x, h, c)
        dx, dh, dc = cell.backward(r, rc)
        check(c1, tc1, 1e-9, "c_next")
        check(dc, tc.grad, 1e-9, "dc_prev")
    else:
        th1 = tcell(tx, th)
        (th1 * torch.from_numpy(r)).sum().backward()
        h1 = cell.forward(x, h)
        dx, dh = cell.backward(r)
    check(h1, th1, 1e-9, "h_next")
    check(dx, tx.grad, 1e-9, "dx")
    check(dh, th.grad, 1e-9, "dh_prev")
    for g, tp in zip(grads_to_torch(kind, cell.grads), _torch_weights(tcell)):
        check(g, tp.grad, 1e-9, "param grad")


@pytest.mark.parametrize("kind", list(KINDS))
def test_mask_matches_torch_packed_sequences(kind):
    """Right-padded batch + mask == torch's pack_padded_sequence: outputs (0 where padded),
    the state after each sequence's last token, and every gradient."""
    rng = np.random.default_rng(6)
    N, T, D, H = 4, 6, 3, 5
    lengths = [6, 1, 4, 3]
    mod_cls, _, kw, _, _ = KINDS[kind]
    mod = mod_cls(D, H, batch_first=True, **kw).double()
    _randomize(mod, rng, "_l0")
    ours = ours_from_torch(kind, _torch_weights(mod, "_l0"))
    x, r, rh = (rng.standard_normal(s) for s in [(N, T, D), (N, T, H), (N, H)])
    tx = torch.from_numpy(x).requires_grad_()
    packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    tout, state = mod(packed)
    thn = state[0] if kind == "lstm" else state
    tout, _ = torch.nn.utils.rnn.pad_packed_sequence(tout, batch_first=True, total_length=T)
    ((tout * torch.from_numpy(r)).sum() + (thn[0] * torch.from_numpy(rh)).sum()).backward()

    mask = np.arange(T)[None, :] < np.array(lengths)[:, None]
    hs = ours.forward(x, mask=mask)
    dxs = ours.backward(r, dh_last=rh)
    check(hs, tout, 1e-9, "hs")
    check(ours.h, thn[0], 1e-9, "final h")
    check(dxs, tx.grad, 1e-9, "dxs")
    for g, tp in zip(grads_to_torch(kind, ours.grads), _torch_weights(mod, "_l0")):
        check(g, tp.grad, 1e-9, "param grad")
