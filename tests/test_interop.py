"""PyTorch interop: from_torch / to_torch against torch.nn.RNN, LSTM, GRU in every layout."""

import subprocess
import sys

import numpy as np
import pytest

from bptt.gradcheck import relative_error
from bptt.nn.stacks import make_recurrent_stack

torch = pytest.importorskip("torch")

from bptt.tools.exchange.interop import from_torch, to_torch  # noqa: E402

MODULES = {
    "rnn_tanh": lambda **kw: torch.nn.RNN(nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: torch.nn.RNN(nonlinearity="relu", **kw),
    "lstm": lambda **kw: torch.nn.LSTM(**kw),
    "gru": lambda **kw: torch.nn.GRU(**kw),
}
TOL = {torch.float64: 1e-9, torch.float32: 1e-4}
N, T, D, H = 3, 4, 3, 4


def make_module(kind, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    m = MODULES[kind](input_size=D, hidden_size=H, **kw).to(dtype)
    with torch.no_grad():  # biases are zero-mean anyway; scale up so every block matters
        for p in m.parameters():
            p.mul_(1.5)
    return m


def run_torch(m, xs, dhs):
    """Outputs, input gradient and parameter gradients of m for batch-major xs, dhs."""
    x = torch.tensor(xs, requires_grad=True)
    xin = x if m.batch_first else x.transpose(0, 1)
    out, _ = m(xin)
    out = out if m.batch_first else out.transpose(0, 1)
    m.zero_grad()
    (out * torch.tensor(dhs)).sum().backward()
    grads = {k: p.grad.numpy() for k, p in m.named_parameters()}
    return out.detach().numpy(), x.grad.numpy(), grads


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("kind", list(MODULES))
def test_from_torch_matches_torch(kind, num_layers, bidirectional, batch_first, dtype):
    m = make_module(kind, dtype, num_layers=num_layers, bidirectional=bidirectional,
                    batch_first=batch_first)
    npdtype = np.float64 if dtype == torch.float64 else np.float32
    r = np.random.default_rng(1)
    nd = 2 if bidirectional else 1
    xs = r.standard_normal((N, T, D)).astype(npdtype)
    dhs = r.standard_normal((N, T, H * nd)).astype(npdtype)
    out_t, dx_t, grads_t = run_torch(m, xs, dhs)

    layer = from_torch(m)
    assert all(p.dtype == npdtype for p in layer.params)
    out = layer.forward(xs)
    dxs = layer.backward(dhs)
    tol = TOL[dtype]
    assert out.dtype == npdtype and dxs.dtype == npdtype
    assert relative_error(out, out_t) < tol
    assert relative_error(dxs, dx_t) < tol
    grads = to_torch(layer, grads=True)
    assert list(grads) == list(grads_t)  # same keys, same order as named_parameters()
    for k in grads_t:
        assert grads[k].shape == grads_t[k].shape, k
        assert relative_error(grads[k], grads_t[k]) < tol, k

    # round trip: weights out of bptt into a differently initialized module reproduce m
    state = to_torch(layer)
    assert list(state) == list(m.state_dict())
    for k, v in m.state_dict().items():
        if k.startswith("weight"):
            np.testing.assert_array_equal(state[k], v.numpy())
    m2 = make_module(kind, dtype, seed=7, num_layers=num_layers, bidirectional=bidirectional,
                     batch_first=batch_first)
    m2.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    out2, _, _ = run_torch(m2, xs, dhs)
    assert relative_error(out2, out_t) < tol


def test_bptt_stack_to_torch_and_back():
    """A stack made in bptt runs identically in torch after to_torch, and back via from_torch."""
    stack = make_recurrent_stack("gru", D, H, 2, bidirectional=True, reset_after=True,
                                 dtype=np.float64, generator=np.random.default_rng(0))
    for p in stack.params:  # non-zero biases everywhere
        p += np.random.default_rng(1).standard_normal(p.shape) * 0.3
    xs = np.random.default_rng(2).standard_normal((N, T, D))
    m = torch.nn.GRU(D, H, 2, bidirectional=True, batch_first=True).double()
    m.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch(stack).items()})
    out_t, _ = m(torch.tensor(xs))
    assert relative_error(stack.forward(xs), out_t.detach().numpy()) < 1e-12
    back = from_torch(m)
    assert relative_error(back.forward(xs), out_t.detach().numpy()) < 1e-12


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_mask_equals_packed_sequence(kind):
    m = make_module(kind, num_layers=2, bidirectional=True, batch_first=True)
    lengths = [4, 2, 3]
    r = np.random.default_rng(3)
    xs = r.standard_normal((N, T, D))
    mask = np.arange(T)[None] < np.array(lengths)[:, None]
    x = torch.tensor(xs, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                     enforce_sorted=False)
    out_p, _ = m(packed)
    out_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out_p, batch_first=True, total_length=T)
    dhs = r.standard_normal(out_t.shape) * mask[..., None]
    (out_t * torch.tensor(dhs)).sum().backward()
    layer = from_torch(m)
    out = layer.forward(xs, mask)
    dxs = layer.backward(dhs)
    assert relative_error(out, out_t.detach().numpy()) < 1e-9
    assert relative_error(dxs, x.grad.numpy()) < 1e-9
    grads = to_torch(layer, grads=True)
    for k, p in m.named_parameters():
        assert relative_error(grads[k], p.grad.numpy()) < 1e-9, k


def test_initial_state_in_torch_layout():
    m = make_module("lstm", num_layers=2, bidirectional=True, batch_first=True)
    r = np.random.default_rng(4)
    xs = r.standard_normal((N, T, D))
    h0, c0 = r.standard_normal((4, N, H)), r.standard_normal((4, N, H))
    out_t, (hn, cn) = m(torch.tensor(xs), (torch.tensor(h0), torch.tensor(c0)))
    layer = from_torch(m)
    layer.set_state(h0, c0)
    out = layer.forward(xs)
    assert relative_error(out, out_t.detach().numpy()) < 1e-9
    assert relative_error(layer.h, hn.detach().numpy()) < 1e-9
    assert relative_error(layer.c, cn.detach().numpy()) < 1e-9


def test_no_bias_and_dropout_module():
    m = make_module("gru", num_layers=2, bias=False, dropout=0.3, batch_first=True).eval()
    layer = from_torch(m)
    xs = np.random.default_rng(5).standard_normal((N, T, D))
    out_t, _ = m(torch.tensor(xs))
    assert relative_error(layer.forward(xs), out_t.detach().numpy()) < 1e-9  # eval: no dropout
    assert layer.dropouts[1].dropout_ratio == 0.3 and not layer.dropouts[1].train_flg
    state = to_torch(layer)
    assert list(state) == list(m.state_dict()) and not any("bias" in k for k in state)


def test_errors():
    with pytest.raises(TypeError, match="torch.nn.RNN, LSTM or GRU"):
        from_torch(torch.nn.Linear(2, 3))
    with pytest.raises(ValueError, match="proj_size"):
        from_torch(torch.nn.LSTM(2, 4, proj_size=2))
    with pytest.raises(TypeError, match="module.float"):
        from_torch(torch.nn.LSTM(2, 4).half())
    book_gru = make_recurrent_stack("gru", 2, 3, dtype=np.float64)
    with pytest.raises(ValueError, match="reset_after=True"):
        to_torch(book_gru)
    with pytest.raises(TypeError, match="to_torch handles"):
        to_torch(object())


def test_import_bptt_does_not_import_torch():
    code = ("import sys, bptt, bptt.tools.exchange.interop; "
            "assert 'torch' not in sys.modules; print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr


def test_without_torch_the_hint_names_the_cpu_build(monkeypatch):
    import sys

    from bptt.tools.exchange.interop import import_torch

    monkeypatch.setitem(sys.modules, "torch", None)  # as if not installed
    with pytest.raises(ValueError, match=r"CPU build is enough: pip install torch "
                                         r"--index-url https://download.pytorch.org/whl/cpu"):
        import_torch()
