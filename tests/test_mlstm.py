"""mLSTM (xLSTM's matrix-memory LSTM): exact gradients in float64, the step loop equal to the
parallel form and to a PyTorch reference written here from the paper's equations, stable in
float32 over 1,024 steps, and a language model that trains and resumes with it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bptt.gradcheck import gradcheck
from bptt.models.rnnlm import LanguageModel
from bptt.nn.cells import MLSTM, mlstm_parallel
from bptt.nn.registry import get_cell
from bptt.nn.stacks import make_recurrent_stack
from helpers import LossOf, assert_windows_carry_the_state


def params(D, H, seed=0, scale=0.5):
    g = np.random.default_rng(seed)
    return [g.standard_normal((D, 4 * H)) * scale, g.standard_normal(4 * H) * scale,
            g.standard_normal((D, 2)) * scale, g.standard_normal(2) * scale]


def layer_with(ps, dtype=np.float64):
    D, H = ps[0].shape[0], ps[0].shape[1] // 4
    layer = make_recurrent_stack("mlstm", D, H, dtype=dtype).layers[0]
    for p, v in zip(layer.params, ps, strict=True):
        p[...] = v.astype(dtype)
    return layer


def test_one_step_gradients_with_any_state_and_upstream():
    g = np.random.default_rng(1)
    H = 4
    cell = MLSTM(*params(3, H))
    state = np.concatenate([g.standard_normal((2, H * H)), g.standard_normal((2, H)),
                            g.standard_normal((2, H))], axis=1)  # [C, n, m]
    report = gradcheck(cell, [g.standard_normal((2, 3)), g.standard_normal((2, H)), state])
    assert report.worst < 1e-7, report


@pytest.mark.parametrize("layers", [1, 2])
def test_time_layer_and_stack_gradients(layers):
    stack = make_recurrent_stack("mlstm", 3, 4, layers, dtype=np.float64,
                                 generator=np.random.default_rng(2))
    report = gradcheck(stack, [np.random.default_rng(3).standard_normal((2, 7, 3))])
    assert report.worst < 1e-7, report


def test_a_whole_language_model_with_mlstm_has_exact_gradients():
    model = LanguageModel(9, 4, 5, cell="mlstm", num_layers=2, dtype=np.float64, seed=0)
    g = np.random.default_rng(4)
    for p in model.params:
        p[...] = 0.5 * g.standard_normal(p.shape)
    xs, ts = g.integers(0, 9, (2, 5)), g.integers(0, 9, (2, 5))

    report = gradcheck(LossOf(model, xs, ts), [], samples=30, eps=1e-5)
    assert report.worst < 1e-7, report


@pytest.mark.parametrize("T", [1, 7, 64])
def test_the_step_loop_equals_the_parallel_form(T):
    ps = params(3, 5, seed=T)
    xs = np.random.default_rng(5).standard_normal((2, T, 3))
    np.testing.assert_allclose(layer_with(ps).forward(xs), mlstm_parallel(ps, xs),
                               rtol=1e-10, atol=1e-12)


def test_equal_to_a_pytorch_reference_from_the_papers_equations():
    torch = pytest.importorskip("torch", reason="needs torch (CPU build) for the reference")
    D, H, N, T = 3, 4, 2, 9
    ps = params(D, H, seed=6)
    xs = np.random.default_rng(7).standard_normal((N, T, D))
    layer = layer_with(ps)
    hs = layer.forward(xs)
    dhs = np.random.default_rng(8).standard_normal(hs.shape)
    dxs = layer.backward(dhs)

    tW, tb, twg, tbg, tx = (torch.tensor(a, requires_grad=True) for a in (*ps, xs))
    C = torch.zeros(N, H, H, dtype=torch.float64)
    n = torch.zeros(N, H, dtype=torch.float64)
    m = torch.zeros(N, dtype=torch.float64)
    out = []
    for t in range(T):  # eqs. 19-26 with the stabilizer; the first step starts m at i~
        A = tx[:, t] @ tW + tb
        q, k, v = A[:, :H], A[:, H:2 * H] / math.sqrt(H), A[:, 2 * H:3 * H]
        o = torch.sigmoid(A[:, 3 * H:])
        gates = tx[:, t] @ twg + tbg
        ai, logf = gates[:, 0], torch.nn.functional.logsigmoid(gates[:, 1])
        m_new = ai if t == 0 else torch.maximum(logf + m, ai)
        i = torch.exp(ai - m_new)
        f = torch.zeros_like(ai) if t == 0 else torch.exp(logf + m - m_new)
        C = f[:, None, None] * C + i[:, None, None] * torch.einsum("nr,nc->nrc", v, k)
        n = f[:, None] * n + i[:, None] * k
        m = m_new
        den = torch.maximum((n * q).sum(1).abs(), torch.exp(-m))
        out.append(o * torch.einsum("nrc,nc->nr", C, q) / den[:, None])
    ths = torch.stack(out, dim=1)
    (ths * torch.tensor(dhs)).sum().backward()
    np.testing.assert_allclose(hs, ths.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dxs, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(layer.grads, (tW, tb, twg, tbg), strict=True):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


def run(ps, xs, dtype):
    layer = layer_with(ps, dtype)
    hs = layer.forward(xs.astype(dtype))
    return hs, layer.backward(np.ones_like(hs))


def test_float32_over_1024_steps_is_float64_to_rounding_and_the_parallel_form():
    ps = params(3, 6, seed=9)
    xs = np.random.default_rng(10).standard_normal((2, 1024, 3))
    single, double = run(ps, xs, np.float32), run(ps, xs, np.float64)
    for ours, exact in zip(single, double, strict=True):  # the parallel form: its sums of
        # 1,024 log forget gates round to ~1e-5 relative in float32 (the loop's to ~1e-7)
        assert np.linalg.norm(ours - exact) <= 1e-4 * np.linalg.norm(exact)
    np.testing.assert_allclose(double[0], mlstm_parallel(ps, xs), rtol=1e-10, atol=1e-10)


def test_input_gates_beyond_float32s_range_stay_finite():
    """Pre-activations of the input gate near 100: exp(100) overflows float32 (3.4e38), and
    the unstabilized memory with it; the stabilized one stays finite forward and backward."""
    ps = params(3, 6, seed=9)
    ps[3] = ps[3] + np.array([100.0, 0.0])
    xs = np.random.default_rng(10).standard_normal((2, 256, 3)).astype(np.float32)
    Wx, b, wg, bg = (p.astype(np.float32) for p in ps)
    with np.errstate(over="ignore", invalid="ignore"):  # the paper's form without m
        gates = xs @ wg + bg
        i = np.exp(gates[..., 0])
        assert not np.isfinite(i).all()
    hs, dxs = run(ps, xs, np.float32)
    assert np.isfinite(hs).all() and np.isfinite(dxs).all()


def test_its_state_is_the_memory_matrix_normalizer_and_stabilizer():
    spec = get_cell("mlstm")
    assert spec.state_widths(5) == (5, 35) and spec.recurrent_params == ()
    layer = make_recurrent_stack("mlstm", 3, 5, stateful=True, dtype=np.float64,
                                 generator=np.random.default_rng(11)).layers[0]
    assert_windows_carry_the_state(layer, np.random.default_rng(12).standard_normal((2, 8, 3)))
    assert layer.c.shape == (2, 35)
    with pytest.raises(ValueError, match="weight drop needs a recurrent weight"):
        LanguageModel(9, 4, 5, cell="mlstm", weight_drop=0.5)
