"""Attention layers: float64 gradient checks of every layer and score (masks too), the book's
per-step loop equal to TimeAttention, padded positions weighted 0, and PyTorch equivalence."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.gradcheck import gradcheck
from bptt.nn.attention import Attention, AttentionWeight, TimeAttention, WeightSum

N, Ts, Tt, He, Hd, A = 3, 5, 4, 6, 6, 7


def params_for(score, rng, He=He, Hd=Hd):
    if score == "dot":
        return []
    if score == "general":
        return [rng.standard_normal((Hd, He)) * 0.5]
    return [rng.standard_normal((He, A)) * 0.5, rng.standard_normal((Hd, A)) * 0.5,
            rng.standard_normal(A)]


def source_mask(rng):
    lengths = np.array([Ts, 2, 4])
    return np.arange(Ts)[None, :] < lengths[:, None]


@pytest.mark.parametrize("layer,inputs", [
    (AttentionWeight, lambda r: [r.standard_normal((N, Ts, He)), r.standard_normal((N, He))]),
    (WeightSum, lambda r: [r.standard_normal((N, Ts, He)), r.random((N, Ts))]),
    (Attention, lambda r: [r.standard_normal((N, Ts, He)), r.standard_normal((N, He))]),
])
def test_book_layer_gradients(layer, inputs):
    rng = np.random.default_rng(0)
    report = gradcheck(layer(), inputs(rng), seed=1)
    assert report.worst < 1e-7, report


@pytest.mark.parametrize("score", ["dot", "general", "additive"])
@pytest.mark.parametrize("masked", [False, True])
def test_time_attention_gradients(score, masked):
    rng = np.random.default_rng(1)
    layer = TimeAttention(score, params_for(score, rng))
    hs_enc, hs_dec = rng.standard_normal((N, Ts, He)), rng.standard_normal((N, Tt, Hd))
    inputs = [hs_enc, hs_dec] + ([source_mask(rng)] if masked else [])
    report = gradcheck(layer, inputs, wrt=[0, 1], seed=2)
    assert len(report.errors) == 2 + len(layer.params)
    assert report.worst < 1e-7, report


def test_time_attention_is_the_books_loop_over_attention_layers():
    rng = np.random.default_rng(2)
    hs_enc, hs_dec = rng.standard_normal((N, Ts, He)), rng.standard_normal((N, Tt, He))
    dc = rng.standard_normal((N, Tt, He))
    layer = TimeAttention("dot")
    c = layer.forward(hs_enc, hs_dec)
    d_enc, d_dec = layer.backward(dc)
    ref_enc, ref_dec = np.zeros_like(hs_enc), np.zeros_like(hs_dec)
    for t in range(Tt):  # the book's TimeAttention
        step = Attention()
        np.testing.assert_allclose(step.forward(hs_enc, hs_dec[:, t]), c[:, t], atol=1e-13)
        np.testing.assert_allclose(step.attention_weight, layer.attention_weights[:, t],
                                   atol=1e-13)
        dhs, dh = step.backward(dc[:, t])
        ref_enc += dhs
        ref_dec[:, t] = dh
    np.testing.assert_allclose(d_enc, ref_enc, atol=1e-12)
    np.testing.assert_allclose(d_dec, ref_dec, atol=1e-12)


@pytest.mark.parametrize("score", ["dot", "general", "additive"])
def test_padded_source_positions_get_zero_weight_and_no_gradient(score):
    rng = np.random.default_rng(3)
    layer = TimeAttention(score, params_for(score, rng))
    hs_enc, hs_dec = rng.standard_normal((N, Ts, He)), rng.standard_normal((N, Tt, Hd))
    mask = source_mask(rng)
    c = layer.forward(hs_enc, hs_dec, mask)
    a = layer.attention_weights
    assert np.all(a[~np.broadcast_to(mask[:, None, :], a.shape)] == 0)
    np.testing.assert_allclose(a.sum(axis=2), 1.0, atol=1e-12)
    d_enc, _ = layer.backward(rng.standard_normal(c.shape))
    assert np.all(d_enc[~mask] == 0)
    hs_enc2 = hs_enc.copy()
    hs_enc2[~mask] = 1e3  # what lies under the padding changes nothing
    np.testing.assert_array_equal(TimeAttention(score, layer.params).forward(hs_enc2, hs_dec,
                                                                              mask), c)


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown attention score 'cosine'"):
        TimeAttention("cosine")
    with pytest.raises(ValueError, match="'general' score takes 1 parameter"):
        TimeAttention("general")
    layer = TimeAttention("dot")
    x = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="mask must have shape"):
        layer.forward(x, x, np.ones((2, 4)))
    with pytest.raises(ValueError, match="no source step"):
        layer.forward(x, x, np.array([[1, 1, 1], [0, 0, 0]]))


@pytest.mark.parametrize("score", ["dot", "general", "additive"])
def test_time_attention_vs_torch(score):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    params = params_for(score, rng)
    layer = TimeAttention(score, params)
    hs_enc, hs_dec = rng.standard_normal((N, Ts, He)), rng.standard_normal((N, Tt, Hd))
    mask = source_mask(rng)
    dc = rng.standard_normal((N, Tt, He))
    c = layer.forward(hs_enc, hs_dec, mask)
    d_enc, d_dec = layer.backward(dc)

    te, td = (torch.tensor(a, requires_grad=True) for a in (hs_enc, hs_dec))
    tp = [torch.tensor(p, requires_grad=True) for p in params]
    if score == "dot":
        s = td @ te.transpose(1, 2)
    elif score == "general":
        s = (td @ tp[0]) @ te.transpose(1, 2)
    else:
        s = torch.tanh((te @ tp[0])[:, None] + (td @ tp[1])[:, :, None]) @ tp[2]
    s = s.masked_fill(~torch.tensor(mask)[:, None, :], float("-inf"))
    tc = torch.softmax(s, dim=2) @ te
    tc.backward(torch.tensor(dc))
    np.testing.assert_allclose(c, tc.detach().numpy(), atol=1e-9)
    np.testing.assert_allclose(d_enc, te.grad.numpy(), atol=1e-9)
    np.testing.assert_allclose(d_dec, td.grad.numpy(), atol=1e-9)
    for g, t in zip(layer.grads, tp, strict=True):
        np.testing.assert_allclose(g, t.grad.numpy(), atol=1e-9)
