"""Feed-forward layers: float64 gradient checks, the book's examples, errors, dtypes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.gradcheck import gradcheck
from bptt.nn.layers import (
    AddLayer,
    Affine,
    Dropout,
    Embedding,
    MulLayer,
    ReLU,
    Sigmoid,
    Softmax,
    SoftmaxWithLoss,
    Tanh,
)

TOL = 1e-6


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _away_from_zero(rng, shape):
    # ReLU's kink at 0: keep |x| > 0.1 so x +- eps never crosses it
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.1, 0.5, x)


# --- the book's computational-graph examples (ch. 5.4) ---------------------------------------

def test_apple_shopping_mul_layer():
    apple, apple_num, tax = 100, 2, 1.1
    mul_apple, mul_tax = MulLayer(), MulLayer()
    price = mul_tax.forward(mul_apple.forward(apple, apple_num), tax)
    assert price == pytest.approx(220.0)
    dapple_price, dtax = mul_tax.backward(1)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    assert dapple == pytest.approx(2.2)
    assert dapple_num == pytest.approx(110.0)
    assert dtax == pytest.approx(200.0)


def test_apple_orange_add_layer():
    apple, apple_num, orange, orange_num, tax = 100, 2, 150, 3, 1.1
    mul_apple, mul_orange, add, mul_tax = MulLayer(), MulLayer(), AddLayer(), MulLayer()
    apple_price = mul_apple.forward(apple, apple_num)
    orange_price = mul_orange.forward(orange, orange_num)
    price = mul_tax.forward(add.forward(apple_price, orange_price), tax)
    assert price == pytest.approx(715.0)
    dall, dtax = mul_tax.backward(1)
    dapple_price, dorange_price = add.backward(dall)
    dorange, dorange_num = mul_orange.backward(dorange_price)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    assert (dapple_num, dapple, dorange, dorange_num, dtax) == pytest.approx(
        (110.0, 2.2, 3.3, 165.0, 650.0))


# --- float64 gradient checks of every layer -------------------------------------------------

def test_mul_add_gradients(rng):
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    assert gradcheck(MulLayer(), [x, y]).worst < TOL
    assert gradcheck(AddLayer(), [x, y]).worst < TOL


@pytest.mark.parametrize("layer_cls", [ReLU, Sigmoid, Tanh, Softmax])
def test_activation_gradients(layer_cls, rng):
    x = _away_from_zero(rng, (4, 5))
    report = gradcheck(layer_cls(), [x])
    assert report.worst < TOL, report


@pytest.mark.parametrize("x_shape", [(4, 3), (4, 1, 3), (2, 3, 1, 2)])
def test_affine_gradients(x_shape, rng):
    D = int(np.prod(x_shape[1:]))
    layer = Affine(rng.standard_normal((D, 5)), rng.standard_normal(5))
    x = rng.standard_normal(x_shape)
    report = gradcheck(layer, [x])
    assert report.worst < TOL, report
    assert layer.backward(np.ones((x_shape[0], 5))).shape == x_shape


@pytest.mark.parametrize("one_hot", [False, True])
def test_softmax_with_loss_gradients(one_hot, rng):
    x = rng.standard_normal((6, 4)) * 3
    t = rng.integers(0, 4, size=6)
    if one_hot:
        t = np.eye(4)[t]
    report = gradcheck(SoftmaxWithLoss(), [x, t], wrt=[0])  # one-hot t is float: not checked
    assert report.worst < TOL, report


def test_softmax_with_loss_value_and_extreme_logits():
    layer = SoftmaxWithLoss()
    x = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 1000.0]])
    t = np.array([1, 2])
    loss = layer.forward(x, t)
    assert np.isfinite(loss)
    assert loss == pytest.approx((2000.0 + 0.0) / 2)  # -log y = 2000 for row 0, ~0 for row 1
    dx = layer.backward()
    assert np.all(np.isfinite(dx))
    np.testing.assert_allclose(dx, [[0.5, -0.5, 0], [0, 0, 0]], atol=1e-12)
    # matches -mean log softmax on ordinary logits
    x = np.array([[0.1, 0.2, 0.7], [2.0, -1.0, 0.5]])
    t = np.array([2, 0])
    y = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    assert layer.forward(x, t) == pytest.approx(-np.log(y[[0, 1], t]).mean(), rel=1e-12)


def test_dropout_train_mode_fixed_mask():
    rng = np.random.default_rng(1)
    layer = Dropout(0.3, generator=np.random.default_rng(0))

    def reseed():  # the same mask on every forward of the check
        layer.generator = np.random.default_rng(42)

    x = rng.standard_normal((5, 6))
    report = gradcheck(layer, [x], setup=reseed)
    assert report.worst < TOL, report
    reseed()
    out = layer.forward(x)
    kept = out != 0
    assert 0 < kept.sum() < x.size  # something dropped, something kept
    np.testing.assert_allclose(out[kept], x[kept] / 0.7)
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_allclose(dx, kept / 0.7)


def test_dropout_eval_mode_is_identity():
    layer = Dropout(0.5)
    layer.eval()
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_array_equal(layer.forward(x), x)
    assert gradcheck(layer, [x]).worst < TOL
    layer.train()
    assert layer.train_flg
    with pytest.raises(ValueError, match=r"dropout ratio must be in \[0, 1\), got 1.0"):
        Dropout(1.0)


def test_embedding_repeated_ids(rng):
    W = rng.standard_normal((7, 3))
    idx = np.array([[1, 3, 1], [6, 1, 0]])  # 1 three times
    layer = Embedding(W)
    np.testing.assert_array_equal(layer.forward(idx), W[idx])
    report = gradcheck(layer, [idx])
    assert report.worst < TOL, report
    dout = rng.standard_normal((2, 3, 3))
    layer.forward(idx)
    assert layer.backward(dout) is None
    ref = np.zeros_like(W)
    np.add.at(ref, idx.reshape(-1), dout.reshape(-1, 3))
    np.testing.assert_allclose(layer.grads[0], ref, rtol=1e-14, atol=1e-14)
    # grads are overwritten, not accumulated, by a second backward
    layer.backward(dout)
    np.testing.assert_allclose(layer.grads[0], ref, rtol=1e-14, atol=1e-14)


def test_grads_overwritten_in_place(rng):
    layer = Affine(rng.standard_normal((3, 2)), rng.standard_normal(2))
    dW, db = layer.grads
    x = rng.standard_normal((4, 3))
    layer.forward(x)
    layer.backward(np.ones((4, 2)))
    first = dW.copy()
    layer.forward(x)
    layer.backward(np.ones((4, 2)))
    assert layer.grads[0] is dW and layer.grads[1] is db
    np.testing.assert_allclose(dW, first)  # overwritten, not summed


# --- errors and dtypes -----------------------------------------------------------------------

def test_bad_inputs_name_shapes_and_values(rng):
    aff = Affine(rng.standard_normal((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match=r"shape \(4, 5\).*must be 3"):
        aff.forward(rng.standard_normal((4, 5)))
    with pytest.raises(TypeError, match="floating-point.*int64"):
        aff.forward(np.ones((4, 3), dtype=np.int64))
    loss = SoftmaxWithLoss()
    with pytest.raises(ValueError, match=r"id 5, outside the valid range \[0, 3\]"):
        loss.forward(rng.standard_normal((2, 4)), np.array([0, 5]))
    with pytest.raises(ValueError, match=r"id -1"):
        loss.forward(rng.standard_normal((2, 4)), np.array([-1, 0]))
    with pytest.raises(ValueError, match="3 entries but logits x have 2 rows"):
        loss.forward(rng.standard_normal((2, 4)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        loss.forward(rng.standard_normal((2, 4)), np.eye(3)[[0, 1]])
    with pytest.raises(TypeError, match="integer array"):
        loss.forward(rng.standard_normal((2, 4)), np.array([0.0, 1.0]))
    emb = Embedding(rng.standard_normal((5, 2)))
    with pytest.raises(ValueError, match=r"Embedding ids holds id 9, outside the valid range"):
        emb.forward(np.array([1, 9]))


def test_float32_stays_float32(rng):
    f32 = np.float32
    x = rng.standard_normal((4, 3)).astype(f32)
    aff = Affine(rng.standard_normal((3, 5)).astype(f32), np.zeros(5, f32))
    h = aff.forward(x)
    assert h.dtype == f32
    for layer in (ReLU(), Sigmoid(), Tanh(), Softmax(), Dropout(0.5)):
        out = layer.forward(h)
        assert out.dtype == f32, type(layer).__name__
        assert layer.backward(np.ones_like(out)).dtype == f32, type(layer).__name__
    loss = SoftmaxWithLoss()
    assert loss.forward(h, np.array([0, 1, 2, 3])).dtype == f32
    assert loss.backward().dtype == f32
    assert aff.backward(np.ones((4, 5), f32)).dtype == f32
    assert aff.grads[0].dtype == f32 and aff.grads[1].dtype == f32
    emb = Embedding(rng.standard_normal((5, 3)).astype(f32))
    assert emb.forward(np.array([1, 2])).dtype == f32
    emb.backward(np.ones((2, 3), f32))
    assert emb.grads[0].dtype == f32


@settings(max_examples=20, deadline=None)
@given(N=st.integers(1, 4), D=st.integers(1, 4), H=st.integers(1, 4), seed=st.integers(0, 99))
def test_affine_softmax_loss_gradients_any_shape(N, D, H, seed):
    r = np.random.default_rng(seed)
    layer = Affine(r.standard_normal((D, H)), r.standard_normal(H))
    assert gradcheck(layer, [r.standard_normal((N, D))], seed=seed).worst < TOL
    t = r.integers(0, H, size=N)
    report = gradcheck(SoftmaxWithLoss(), [r.standard_normal((N, H)), t], seed=seed)
    assert report.worst < TOL, report


def test_dropout_is_one_layer_under_the_books_two_names():
    """DL1's Dropout and DL2's TimeDropout are the same class, with the book's parameter name."""
    import bptt
    from bptt.nn.time_layers import TimeDropout

    assert TimeDropout is bptt.Dropout
    layer = bptt.Dropout(dropout_ratio=0.25, generator=np.random.default_rng(0))
    x = np.ones((4, 3, 2), dtype=np.float32)
    out = layer.forward(x)
    assert out.dtype == np.float32 and set(np.unique(out)) <= {0.0, np.float32(1 / 0.75)}
    layer.eval()
    assert layer.forward(x) is x


def test_a_size_is_checked_once_with_one_message():
    """The hidden size (and every other size) is refused in the same words wherever it is
    given in the library."""
    import bptt
    from bptt.models.seq2seq import Seq2seqModel

    makers = [lambda: bptt.LanguageModel(10, hidden_size=0),
              lambda: bptt.make_recurrent_stack("lstm", 3, 0),
              lambda: bptt.SequenceRegressor(hidden_size=0),
              lambda: Seq2seqModel(5, 5, hidden_size=0)]
    for make in makers:
        with pytest.raises(ValueError, match=r"^hidden_size must be a positive integer, got 0$"):
            make()


def test_train_and_eval_are_the_one_way_to_switch_the_mode():
    """Every model with training-only layers switches them with train()/eval(); nothing else
    in the library sets a layer's flag."""
    import re
    from pathlib import Path

    import bptt
    from bptt.models.sequence import SequenceNetwork

    lm = bptt.LanguageModel(20, 6, 6, num_layers=2, dropout=0.3, weight_drop=0.2,
                            embed_dropout=0.1, ar=1.0, tar=1.0, tie_weights=True)
    mlp = bptt.MultiLayerNet(4, [5], 3, use_dropout=True)
    net = SequenceNetwork("lstm", 2, 1, 4, num_layers=2, dropout=0.3)
    layers = {"lm": lm.drop_layers,
              "mlp": [v for v in mlp.layers.values() if isinstance(v, bptt.Dropout)],
              "net": [d for d in net.encoder.dropouts if d is not None]}
    for name, model in (("lm", lm), ("mlp", mlp), ("net", net)):
        assert len(layers[name]) >= 1, name
        model.eval()
        assert not any(d.train_flg for d in layers[name]), name
        model.train()
        assert all(d.train_flg for d in layers[name]), name
    src = Path(bptt.__file__).parent
    setters = [f"{p.name}:{k}" for p in src.rglob("*.py")
               for k, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
               if re.search(r"\w\.train_flg = ", line) and "self.train_flg = " not in line]
    assert setters == []
