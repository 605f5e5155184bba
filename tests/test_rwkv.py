"""RWKV (RWKV-4's time mixing and channel mixing): exact gradients in float64, the recurrence
equal to WKV unrolled as attention and to a PyTorch reference written here from the paper's
(unstabilized) equations, the fused layer equal to the step loop with states and masks, its
token-shift state carried across windows, and float32 stable over 1,024 steps where the
unstabilized form overflows."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.gradcheck import gradcheck
from bptt.models.rnnlm import LanguageModel
from bptt.nn.cells import RWKV, TimeRWKV, rwkv_parallel
from bptt.nn.registry import get_cell
from bptt.nn.stacks import make_recurrent_stack
from bptt.nn.time_cell import TimeCell
from helpers import LossOf, assert_float32_near_float64, assert_windows_carry_the_state


def params(D=3, H=4, seed=0, scale=0.3, dtype=np.float64):
    """The cell's own starting parameters, each moved at random so that no path is checked at
    a trivial point."""
    ps = make_recurrent_stack("rwkv", D, H, dtype=np.float64,
                              generator=np.random.default_rng(seed)).layers[0].params
    g = np.random.default_rng(seed + 100)
    return [(p + scale * g.standard_normal(p.shape)).astype(dtype) for p in ps]


def state(N=2, H=4, seed=1):
    """A state as a run leaves it: shares and y of any sign, a and b with b >= 1, any p."""
    g = np.random.default_rng(seed)
    s, y, a = g.standard_normal((N, 3 * H)), g.standard_normal((N, H)), g.standard_normal((N, H))
    return np.concatenate([s, y, a, 1 + g.random((N, H)), g.standard_normal((N, H))], axis=1)


def test_one_step_gradients_with_any_state_and_upstream():
    g = np.random.default_rng(2)
    report = gradcheck(RWKV(*params()), [g.standard_normal((2, 3)), g.standard_normal((2, 4)),
                                         state()])
    assert report.worst < 1e-7, report


@pytest.mark.parametrize("layers", [1, 2])
def test_time_layer_and_stack_gradients(layers):
    stack = make_recurrent_stack("rwkv", 3, 4, layers, dtype=np.float64,
                                 generator=np.random.default_rng(3))
    # eps 1e-5: the second layer's smallest gradients are ~1e-4, so 1e-6 meets rounding noise
    report = gradcheck(stack, [np.random.default_rng(4).standard_normal((2, 7, 3))], eps=1e-5)
    assert report.worst < 1e-7, report


def test_a_whole_language_model_with_rwkv_has_exact_gradients():
    model = LanguageModel(9, 4, 5, cell="rwkv", num_layers=2, dtype=np.float64, seed=0)
    g = np.random.default_rng(5)
    for p in model.params:
        p[...] += 0.3 * g.standard_normal(p.shape)
    xs, ts = g.integers(0, 9, (2, 5)), g.integers(0, 9, (2, 5))
    report = gradcheck(LossOf(model, xs, ts), [], samples=30, eps=1e-5)
    assert report.worst < 1e-7, report


def run(layer, xs, dhs, mask=None, c0=None, dh_last=None, dc_last=None):
    if c0 is not None:
        layer.set_state(np.zeros((xs.shape[0], layer.H)), c0)
    hs = layer.forward(xs, mask=mask)
    h, c = layer.h.copy(), layer.c.copy()
    dxs = layer.backward(dhs, dh_last=dh_last, dc_last=dc_last)
    return [hs, h, c, dxs, *[g.copy() for g in layer.grads], layer.dh, layer.dc]


@pytest.mark.parametrize("T", [1, 2, 9])
@pytest.mark.parametrize("carried", [False, True])
def test_the_fused_layer_equals_the_step_loop(T, carried):
    ps = params(seed=T)
    g = np.random.default_rng(6)
    xs, dhs = g.standard_normal((2, T, 3)), g.standard_normal((2, T, 4))
    extra = {"c0": state(seed=T), "dh_last": g.standard_normal((2, 4)),
             "dc_last": g.standard_normal((2, 28))} if carried else {}
    fused = TimeRWKV(*[p.copy() for p in ps])
    loop = TimeCell(get_cell("rwkv"), *[p.copy() for p in ps])
    for ours, want in zip(run(fused, xs, dhs, **extra), run(loop, xs, dhs, **extra),
                          strict=True):
        np.testing.assert_allclose(ours, want, rtol=1e-10, atol=1e-12)


def test_a_padded_batch_takes_the_step_loop_and_pads_change_nothing():
    ps = params(seed=7)
    xs = np.random.default_rng(8).standard_normal((2, 6, 3))
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2], dtype=bool)
    padded = TimeRWKV(*ps).forward(xs, mask=mask)
    alone = TimeRWKV(*ps).forward(xs[1:, :4])
    np.testing.assert_allclose(padded[1, :4], alone[0], rtol=1e-12)
    assert (padded[1, 4:] == 0).all()


@pytest.mark.parametrize("T", [1, 7, 100])
def test_the_recurrence_equals_wkv_unrolled_as_attention(T):
    ps = params(seed=T)
    xs = np.random.default_rng(9).standard_normal((2, T, 3))
    np.testing.assert_allclose(TimeRWKV(*ps).forward(xs), rwkv_parallel(ps, xs), rtol=1e-10,
                               atol=1e-12)


def unstabilized(ps, xs, torch):
    """RWKV-4 from the paper (eqs. 11-17 and the recurrent WKV), in PyTorch, with raw
    exponentials: the running sums a = sum exp(-(t-1-i) w + k_i) v_i and b."""
    Wx, mix, decay, bonus, Wo, cmix, Wck, Wcv, Wcr, ln = ps
    N, T, D = xs.shape
    H = Wo.shape[0]
    a = b = y_prev = torch.zeros(N, H, dtype=xs.dtype)
    x_prev = torch.zeros(N, D, dtype=xs.dtype)
    out = []
    for t in range(T):
        x = xs[:, t]
        k, v, r = ((mix[j] * x + (1 - mix[j]) * x_prev) @ Wx[:, j * H:(j + 1) * H]
                   for j in range(3))
        wkv = (a + torch.exp(bonus + k) * v) / (b + torch.exp(bonus + k))
        a = torch.exp(-torch.exp(decay)) * a + torch.exp(k) * v
        b = torch.exp(-torch.exp(decay)) * b + torch.exp(k)
        y = (torch.sigmoid(r) * wkv) @ Wo
        yn = torch.nn.functional.layer_norm(y, (H,), ln[0], ln[1], eps=1e-5)
        ck, cr = (cmix[j] * yn + (1 - cmix[j]) * y_prev for j in range(2))
        out.append(y + torch.sigmoid(cr @ Wcr) * (torch.relu(ck @ Wck) ** 2 @ Wcv))
        x_prev, y_prev = x, yn
    return torch.stack(out, dim=1)


def test_equal_to_a_pytorch_reference_from_the_papers_equations():
    torch = pytest.importorskip("torch", reason="needs torch (CPU build) for the reference")
    ps = params(seed=10)
    g = np.random.default_rng(11)
    xs = g.standard_normal((2, 9, 3))
    layer = TimeRWKV(*ps)
    hs = layer.forward(xs)
    dhs = g.standard_normal(hs.shape)
    dxs = layer.backward(dhs)

    tps = [torch.tensor(p, requires_grad=True) for p in ps]
    tx = torch.tensor(xs, requires_grad=True)
    ths = unstabilized(tps, tx, torch)
    (ths * torch.tensor(dhs)).sum().backward()
    np.testing.assert_allclose(hs, ths.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dxs, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(layer.grads, tps, strict=True):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_float32_over_1024_steps_where_the_unstabilized_form_overflows():
    """Keys near 100 (a constant feature with a large weight): exp(k) is beyond float32
    (3.4e38), so the paper's running sums overflow; the stabilized recurrence stays within
    float32 rounding of float64, both ways."""
    torch = pytest.importorskip("torch", reason="needs torch (CPU build) for the reference")
    xs = np.random.default_rng(12).standard_normal((2, 1024, 3))
    xs[..., 0] = 1.0
    ps = params(seed=13)
    ps[0][0, :4] += 100.0  # Wk's row for the constant feature
    with torch.no_grad():
        raw = unstabilized([torch.tensor(p, dtype=torch.float32) for p in ps],
                           torch.tensor(xs, dtype=torch.float32), torch)
    assert not torch.isfinite(raw).all()
    assert_float32_near_float64(lambda dtype: TimeRWKV(*[p.astype(dtype) for p in ps]), xs,
                                1e-4)


def test_its_state_is_seven_blocks_and_a_stateful_run_carries_it():
    spec = get_cell("rwkv")
    assert spec.state_widths(5) == (5, 35) and spec.recurrent_params == ()
    layer = make_recurrent_stack("rwkv", 3, 5, stateful=True, dtype=np.float64,
                                 generator=np.random.default_rng(14)).layers[0]
    # the token shift across the cut comes from the state
    assert_windows_carry_the_state(layer, np.random.default_rng(15).standard_normal((2, 8, 3)))
    assert (layer.c[:, 25:30] >= 1 - 1e-12).all()  # b >= 1 after a step
    with pytest.raises(ValueError, match=r"must have shape \(N, H\) = \(2, 35\)"):
        layer.set_state(np.zeros((2, 5)), np.zeros((2, 5)))


def test_parameters_that_do_not_fit_are_one_clear_error():
    ps = params()
    ps[4] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"RWKV parameters do not fit together.*Wo \(4, 4\)"):
        RWKV(*ps)
