"""sLSTM (xLSTM's scalar LSTM): exact gradients in float64, equal to a PyTorch reference
written here from the paper's equations, the stabilizer changing no output, stable in float32
over 1,024 steps, and a language model that trains and resumes with it."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.gradcheck import gradcheck
from bptt.models.rnnlm import LanguageModel
from bptt.nn.cells import SLSTM
from bptt.nn.registry import get_cell
from bptt.nn.stacks import make_recurrent_stack
from helpers import LossOf, assert_windows_carry_the_state


def params(D, H, seed=0, scale=0.5):
    g = np.random.default_rng(seed)
    return (g.standard_normal((D, 4 * H)) * scale, g.standard_normal((H, 4 * H)) * scale,
            g.standard_normal(4 * H) * scale)


def unstabilized(Wx, Wh, b, xs, dtype=np.float64):
    """The paper's sLSTM without the stabilizer (eqs. 8-14): exp input gate, sigmoid forget."""
    Wx, Wh, b, xs = (a.astype(dtype) for a in (Wx, Wh, b, xs))
    N, T, _ = xs.shape
    H = Wh.shape[0]
    h, c, n = (np.zeros((N, H), dtype=dtype) for _ in range(3))
    out = []
    for t in range(T):
        A = xs[:, t] @ Wx + h @ Wh + b
        i, f = np.exp(A[:, :H]), 1 / (1 + np.exp(-A[:, H:2 * H]))
        z, o = np.tanh(A[:, 2 * H:3 * H]), 1 / (1 + np.exp(-A[:, 3 * H:]))
        c, n = f * c + i * z, f * n + i
        h = o * c / n
        out.append(h)
    return np.stack(out, axis=1)


def test_one_step_gradients_with_any_state_and_upstream():
    g = np.random.default_rng(1)
    cell = SLSTM(*params(3, 4))
    state = np.concatenate([g.standard_normal((2, 4)), np.abs(g.standard_normal((2, 4))) + 0.5,
                            g.standard_normal((2, 4))], axis=1)  # [c, n, m]
    report = gradcheck(cell, [g.standard_normal((2, 3)), g.standard_normal((2, 4)), state])
    assert report.worst < 1e-7, report


@pytest.mark.parametrize("layers", [1, 2])
def test_time_layer_and_stack_gradients(layers):
    stack = make_recurrent_stack("slstm", 3, 4, layers, dtype=np.float64,
                                 generator=np.random.default_rng(2))
    xs = np.random.default_rng(3).standard_normal((2, 7, 3))
    report = gradcheck(stack, [xs])
    assert report.worst < 1e-7, report


def test_a_whole_language_model_with_slstm_has_exact_gradients():
    model = LanguageModel(9, 4, 5, cell="slstm", num_layers=2, dtype=np.float64, seed=0)
    g = np.random.default_rng(4)
    for p in model.params:  # weights large enough that every gradient is far from 0
        p[...] = 0.5 * g.standard_normal(p.shape)
    xs, ts = g.integers(0, 9, (2, 5)), g.integers(0, 9, (2, 5))

    report = gradcheck(LossOf(model, xs, ts), [], samples=30, eps=1e-5)
    assert report.worst < 1e-7, report


def test_equal_to_a_pytorch_reference_from_the_papers_equations():
    torch = pytest.importorskip("torch", reason="needs torch (CPU build) for the reference")
    D, H, N, T = 3, 4, 2, 9
    Wx, Wh, b = params(D, H, seed=5)
    xs = np.random.default_rng(6).standard_normal((N, T, D))
    layer = make_recurrent_stack("slstm", D, H, dtype=np.float64).layers[0]
    for p, v in zip(layer.params, (Wx, Wh, b), strict=True):
        p[...] = v
    hs = layer.forward(xs)
    dhs = np.random.default_rng(7).standard_normal(hs.shape)
    dxs = layer.backward(dhs)

    tW, tR, tb, tx = (torch.tensor(a, requires_grad=True) for a in (Wx, Wh, b, xs))
    h, c, n, m = (torch.zeros(N, H, dtype=torch.float64) for _ in range(4))
    out = []
    for t in range(T):  # eqs. 15-17: the stabilized gates; the first step starts m at i~
        A = tx[:, t] @ tW + h @ tR + tb
        ai, af, az, ao = A[:, :H], A[:, H:2 * H], A[:, 2 * H:3 * H], A[:, 3 * H:]
        logf = torch.nn.functional.logsigmoid(af)
        m_new = ai if t == 0 else torch.maximum(logf + m, ai)
        i = torch.exp(ai - m_new)
        f = torch.zeros_like(ai) if t == 0 else torch.exp(logf + m - m_new)
        c, n, m = f * c + i * torch.tanh(az), f * n + i, m_new
        h = torch.sigmoid(ao) * c / n
        out.append(h)
    ths = torch.stack(out, dim=1)
    (ths * torch.tensor(dhs)).sum().backward()
    np.testing.assert_allclose(hs, ths.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dxs, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(layer.grads, (tW, tR, tb), strict=True):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_the_stabilizer_changes_no_output():
    Wx, Wh, b = params(3, 4, seed=8)
    xs = np.random.default_rng(9).standard_normal((2, 20, 3))
    layer = make_recurrent_stack("slstm", 3, 4, dtype=np.float64).layers[0]
    for p, v in zip(layer.params, (Wx, Wh, b), strict=True):
        p[...] = v
    np.testing.assert_allclose(layer.forward(xs), unstabilized(Wx, Wh, b, xs), rtol=1e-12,
                               atol=1e-13)


def test_float32_is_stable_over_1024_steps_where_the_unstabilized_form_overflows():
    """The input gate's pre-activation near 100: exp(100) is beyond float32 (3.4e38), so the
    paper's unstabilized form overflows; the stabilized cell stays within float32 rounding of
    float64, forward and backward, over 1,024 steps."""
    Wx, Wh, b = params(3, 8, seed=10)
    b = b.copy()
    b[:8] += 100.0  # block i
    xs = np.random.default_rng(11).standard_normal((2, 1024, 3))
    with np.errstate(over="ignore", invalid="ignore"):
        assert not np.isfinite(unstabilized(Wx, Wh, b, xs, np.float32)).all()
    out = {}
    for dtype in (np.float32, np.float64):
        layer = make_recurrent_stack("slstm", 3, 8, dtype=dtype).layers[0]
        for p, v in zip(layer.params, (Wx, Wh, b), strict=True):
            p[...] = v.astype(dtype)
        hs = layer.forward(xs.astype(dtype))
        out[dtype] = hs, layer.backward(np.ones_like(hs))
    for ours, exact in zip(out[np.float32], out[np.float64], strict=True):
        assert np.isfinite(ours).all()
        np.testing.assert_allclose(ours, exact, atol=1e-4)


def test_its_state_is_c_n_m_side_by_side_and_a_stateful_run_carries_it():
    spec = get_cell("slstm")
    assert spec.cell_state_blocks == 3 and spec.state_widths(5) == (5, 15)
    layer = make_recurrent_stack("slstm", 3, 5, stateful=True, dtype=np.float64,
                                 generator=np.random.default_rng(12)).layers[0]
    assert_windows_carry_the_state(layer, np.random.default_rng(13).standard_normal((2, 8, 3)))
    assert layer.c.shape == (2, 15) and (layer.c[:, 5:10] >= 1 - 1e-12).all()  # n >= 1
    with pytest.raises(ValueError, match=r"must have shape \(N, H\) = \(2, 15\)"):
        layer.set_state(np.zeros((2, 5)), np.zeros((2, 5)))
