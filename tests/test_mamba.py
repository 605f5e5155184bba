"""The selective state space cell (Mamba's S6): exact gradients in float64, the step loop equal
to the parallel scan and to a PyTorch reference written here from the paper's equations,
stable in float32 over 1,024 steps, and a language model that trains and resumes with it."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.gradcheck import gradcheck
from bptt.models.rnnlm import LanguageModel
from bptt.nn.cells import Mamba, mamba_scan
from bptt.nn.registry import get_cell
from bptt.nn.stacks import make_recurrent_stack
from helpers import LossOf, assert_float32_near_float64, assert_windows_carry_the_state


def layer(D=3, H=4, seed=0, dtype=np.float64):
    return make_recurrent_stack("mamba", D, H, dtype=dtype,
                                generator=np.random.default_rng(seed)).layers[0]


def test_one_step_gradients_with_any_state_and_upstream():
    g = np.random.default_rng(1)
    ps = [p + 0.1 * g.standard_normal(p.shape) for p in layer().params]
    report = gradcheck(Mamba(*ps), [g.standard_normal((2, 3)), g.standard_normal((2, 4)),
                                    g.standard_normal((2, 4 * 16))])
    assert report.worst < 1e-7, report


@pytest.mark.parametrize("layers", [1, 2])
def test_time_layer_and_stack_gradients(layers):
    stack = make_recurrent_stack("mamba", 3, 4, layers, dtype=np.float64,
                                 generator=np.random.default_rng(2))
    report = gradcheck(stack, [np.random.default_rng(3).standard_normal((2, 7, 3))])
    assert report.worst < 1e-7, report


def test_a_whole_language_model_with_mamba_has_exact_gradients():
    model = LanguageModel(9, 4, 5, cell="mamba", num_layers=2, dtype=np.float64, seed=0)
    g = np.random.default_rng(4)
    for name, p in zip(model.param_names, model.params, strict=True):
        if not name.endswith("A_log"):  # weights large enough that every gradient is far from 0
            p[...] += 0.3 * g.standard_normal(p.shape)
    xs, ts = g.integers(0, 9, (2, 5)), g.integers(0, 9, (2, 5))

    report = gradcheck(LossOf(model, xs, ts), [], samples=30, eps=1e-5)
    assert report.worst < 1e-7, report


@pytest.mark.parametrize("T", [1, 7, 100])
def test_the_step_loop_equals_the_parallel_scan(T):
    lay = layer(seed=T)
    xs = np.random.default_rng(5).standard_normal((2, T, 3))
    np.testing.assert_allclose(lay.forward(xs), mamba_scan(lay.params, xs), rtol=1e-10,
                               atol=1e-12)


def test_equal_to_a_pytorch_reference_from_the_papers_equations():
    torch = pytest.importorskip("torch", reason="needs torch (CPU build) for the reference")
    N, T, H, S = 2, 9, 4, 16
    lay = layer(seed=6)
    g = np.random.default_rng(7)
    for p in lay.params[:4]:
        p += 0.2 * g.standard_normal(p.shape)
    xs = g.standard_normal((N, T, 3))
    hs = lay.forward(xs)
    dhs = g.standard_normal(hs.shape)
    dxs = lay.backward(dhs)

    tps = [torch.tensor(p, requires_grad=True) for p in lay.params]
    Wx, b, WB, WC, A_log, Dk = tps
    tx = torch.tensor(xs, requires_grad=True)
    s = torch.zeros(N, H, S, dtype=torch.float64)
    out = []
    for t in range(T):  # Algorithm 2: Δ = softplus(.), discretize A and B, scan, read with C
        ud = tx[:, t] @ Wx + b
        u, delta = ud[:, :H], torch.nn.functional.softplus(ud[:, H:])
        A = -torch.exp(A_log)
        A_bar = torch.exp(delta[:, :, None] * A)
        B_bar_x = (delta * u)[:, :, None] * (tx[:, t] @ WB)[:, None, :]
        s = A_bar * s + B_bar_x
        out.append((s * (tx[:, t] @ WC)[:, None, :]).sum(-1) + Dk * u)
    ths = torch.stack(out, dim=1)
    (ths * torch.tensor(dhs)).sum().backward()
    np.testing.assert_allclose(hs, ths.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dxs, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(lay.grads, tps, strict=True):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_float32_over_1024_steps_is_float64_to_rounding():
    xs = np.random.default_rng(8).standard_normal((2, 1024, 3))
    assert_float32_near_float64(lambda dtype: layer(seed=9, dtype=dtype), xs, 1e-5)


def test_its_state_is_the_channels_times_the_state_size():
    spec = get_cell("mamba")
    assert spec.state_widths(5) == (5, 80) and spec.recurrent_params == ()
    lay = make_recurrent_stack("mamba", 3, 5, stateful=True, dtype=np.float64,
                               generator=np.random.default_rng(10)).layers[0]
    assert_windows_carry_the_state(lay, np.random.default_rng(11).standard_normal((2, 8, 3)))
    A = -np.exp(lay.params[4])
    assert (A < 0).all() and np.allclose(A[0], -np.arange(1, 17))  # S4D-real at the start
