"""Bidirectional layers and stacks: gradients, masks, states, the builder."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.gradcheck import gradcheck
from bptt.nn.cells import TimeGRU, TimeLSTM, TimeRNN
from bptt.nn.stacks import (
    TimeBidirectional,
    TimeBiLSTM,
    TimeStack,
    make_recurrent_stack,
    reverse_index,
)

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def cell(kind, D, H, rng, **kw):
    G = GATES[kind]
    Wx, Wh, b = (rng.standard_normal(s) * 0.5 for s in [(D, G * H), (H, G * H), (G * H,)])
    if kind == "rnn":
        return TimeRNN(Wx, Wh, b, **kw)
    if kind == "lstm":
        return TimeLSTM(Wx, Wh, b, **kw)
    if kw.pop("reset_after", False):
        return TimeGRU(Wx, Wh, b, bh=rng.standard_normal(H) * 0.5, reset_after=True, **kw)
    return TimeGRU(Wx, Wh, b, **kw)


def right_padded_mask(lengths, T):
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


# ---------------------------------------------------------------- reverse_index


def test_reverse_index_right_padded_and_with_holes():
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 0, 1, 1, 0]])
    rev = reverse_index(np, mask, 4, 5)
    np.testing.assert_array_equal(rev, [[2, 1, 0, 3, 4], [4, 3, 2, 1, 0], [0, 1, 2, 3, 4],
                                        [3, 1, 2, 0, 4]])
    np.testing.assert_array_equal(np.take_along_axis(rev, rev, 1), np.tile(np.arange(5), (4, 1)))


# ---------------------------------------------------------------- TimeBidirectional


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("N,T,D,H", [(1, 1, 2, 3), (2, 4, 3, 2)])
def test_bidirectional_gradients(kind, N, T, D, H, rng):
    layer = TimeBidirectional(cell(kind, D, H, rng), cell(kind, D, H, rng))
    xs = rng.standard_normal((N, T, D))
    out = layer.forward(xs)
    assert out.shape == (N, T, 2 * H)
    report = gradcheck(layer, [xs])
    assert report.worst < 1e-6, report
    assert len(layer.params) == len(layer.grads) == 6


def test_bidirectional_is_forward_and_reversed_layers(rng):
    f, b = cell("lstm", 3, 4, rng), cell("lstm", 3, 4, rng)
    xs = rng.standard_normal((2, 5, 3))
    out = TimeBidirectional(f, b).forward(xs)
    ref_f = TimeLSTM(*[p.copy() for p in f.params]).forward(xs)
    ref_b = TimeLSTM(*[p.copy() for p in b.params]).forward(xs[:, ::-1].copy())[:, ::-1]
    np.testing.assert_allclose(out, np.concatenate([ref_f, ref_b], axis=2), rtol=1e-13)
    summed = TimeBidirectional(f, b, merge="sum")
    np.testing.assert_allclose(summed.forward(xs), ref_f + ref_b, rtol=1e-13)
    assert gradcheck(summed, [xs]).worst < 1e-6


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_bidirectional_masked_gradients(kind, rng):
    layer = TimeBidirectional(cell(kind, 3, 2, rng), cell(kind, 3, 2, rng))
    xs = rng.standard_normal((3, 5, 3))
    mask = right_padded_mask([5, 2, 3], 5)
    report = gradcheck(layer, [xs, mask])
    assert report.worst < 1e-6, report


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_bidirectional_padded_batch_equals_each_sequence_alone(kind, rng):
    D, H, T = 3, 4, 6
    lengths = [6, 2, 4]
    layer = TimeBidirectional(cell(kind, D, H, rng), cell(kind, D, H, rng))
    xs = rng.standard_normal((3, T, D))
    mask = right_padded_mask(lengths, T)
    xs_padded = np.where(mask[..., None], xs, 99.0)  # garbage in padding must not matter
    out = layer.forward(xs_padded, mask)
    dhs = rng.standard_normal(out.shape)
    dxs = layer.backward(dhs)
    grads = [g.copy() for g in layer.grads]
    total = [np.zeros_like(g) for g in grads]
    for n, L in enumerate(lengths):
        o = layer.forward(xs[n:n + 1, :L])
        np.testing.assert_allclose(out[n, :L], o[0], rtol=1e-12, atol=1e-14)
        assert not out[n, L:].any()
        dx = layer.backward(dhs[n:n + 1, :L])
        np.testing.assert_allclose(dxs[n, :L], dx[0], rtol=1e-12, atol=1e-14)
        assert not dxs[n, L:].any()
        for acc, g in zip(total, layer.grads, strict=True):
            acc += g
    for g, acc in zip(grads, total, strict=True):
        np.testing.assert_allclose(g, acc, rtol=1e-11, atol=1e-13)


def test_bilstm_convenience_and_states(rng):
    H, D = 3, 2
    ps = [rng.standard_normal(s) for s in [(D, 4 * H), (H, 4 * H), (4 * H,)] * 2]
    layer = TimeBiLSTM(*ps)
    xs = rng.standard_normal((2, 4, D))
    out = layer.forward(xs)
    assert out.shape == (2, 4, 2 * H) and layer.h.shape == (2, 2, H) and layer.c.shape == (2, 2, H)
    # backward direction's last state is the output at t = 0
    np.testing.assert_allclose(layer.h[1], out[:, 0, H:], rtol=1e-14)
    np.testing.assert_allclose(layer.h[0], out[:, -1, :H], rtol=1e-14)
    h0, c0 = rng.standard_normal((2, 2, H)), rng.standard_normal((2, 2, H))
    layer.set_state(h0, c0)
    out2 = layer.forward(xs)
    assert not np.allclose(out2, out)
    layer.backward(rng.standard_normal(out2.shape))
    assert layer.dh.shape == (2, 2, H) and layer.dc.shape == (2, 2, H)
    layer.reset_state()
    np.testing.assert_allclose(layer.forward(xs), out, rtol=1e-14)
    with pytest.raises(ValueError, match="merge"):
        TimeBiLSTM(*ps, merge="max")


# ---------------------------------------------------------------- TimeStack and builder


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_stack_gradients(kind, bidirectional, rng):
    stack = make_recurrent_stack(kind, 3, 2, 2, bidirectional=bidirectional, dtype=np.float64,
                                 generator=np.random.default_rng(1))
    xs = rng.standard_normal((2, 3, 3))
    out = stack.forward(xs)
    assert out.shape == (2, 3, 2 * (2 if bidirectional else 1))
    report = gradcheck(stack, [xs])
    assert report.worst < 1e-6, report
    mask = right_padded_mask([3, 1], 3)
    report = gradcheck(stack, [xs, mask])
    assert report.worst < 1e-6, report


def test_stack_with_dropout_gradients_and_eval(rng):
    stack = make_recurrent_stack("lstm", 3, 4, 3, dropout=0.4, dtype=np.float64,
                                 generator=np.random.default_rng(2))
    xs = rng.standard_normal((2, 3, 3))

    def reseed():
        for d in stack.dropouts[1:]:
            d.generator = np.random.default_rng(7)

    report = gradcheck(stack, [xs], setup=reseed)
    assert report.worst < 1e-6, report
    reseed()
    a = stack.forward(xs)
    stack.eval()
    b = stack.forward(xs)
    c = stack.forward(xs)
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(b, c)
    assert stack.dropouts[0] is None and all(d.dropout_ratio == 0.4 for d in stack.dropouts[1:])


def test_stack_equals_layers_applied_in_turn(rng):
    l1, l2 = cell("gru", 3, 4, rng, reset_after=True), cell("gru", 4, 5, rng)
    stack = TimeStack([l1, l2])
    xs = rng.standard_normal((2, 6, 3))
    out = stack.forward(xs)
    r1 = TimeGRU(*[p.copy() for p in l1.params[:3]], bh=l1.params[3].copy(), reset_after=True)
    r2 = TimeGRU(*[p.copy() for p in l2.params])
    np.testing.assert_allclose(out, r2.forward(r1.forward(xs)), rtol=1e-13)
    assert len(stack.params) == 7 and all(
        p.shape == g.shape for p, g in zip(stack.params, stack.grads, strict=True))


def test_stack_states_in_torch_layout(rng):
    H, L = 3, 2
    stack = make_recurrent_stack("lstm", 2, H, L, bidirectional=True, dtype=np.float64,
                                 generator=np.random.default_rng(3))
    xs = rng.standard_normal((4, 5, 2))
    stack.forward(xs)
    assert stack.h.shape == (L * 2, 4, H) and stack.c.shape == (L * 2, 4, H)
    h0, c0 = rng.standard_normal((L * 2, 4, H)), rng.standard_normal((L * 2, 4, H))
    stack.set_state(h0, c0)
    out = stack.forward(xs)
    # layer 1's backward direction started from h0[3], c0[3]
    np.testing.assert_array_equal(stack.layers[1].backward_layer.cache[2][0], h0[3])
    stack.backward(np.ones_like(out))
    assert stack.dh.shape == (L * 2, 4, H)
    dirs = [d for lay in stack.layers for d in (lay.forward_layer, lay.backward_layer)]
    for k, d in enumerate(dirs):  # direction fastest: l0 fwd, l0 bwd, l1 fwd, l1 bwd
        np.testing.assert_array_equal(stack.dh[k], d.dh)
        np.testing.assert_array_equal(stack.dc[k], d.dc)
        np.testing.assert_array_equal(stack.h[k], d.h)
    with pytest.raises(ValueError, match="num_layers \\* num_directions"):
        stack.set_state(h0[:3])


def test_stateful_stack_carries_state(rng):
    stack = make_recurrent_stack("rnn", 2, 3, 2, stateful=True, dtype=np.float64,
                                 generator=np.random.default_rng(4))
    xs = rng.standard_normal((2, 6, 2))
    whole = stack.forward(xs)
    stack.reset_state()
    first = stack.forward(xs[:, :3].copy())
    second = stack.forward(xs[:, 3:].copy())
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, rtol=1e-13)


def test_builder_defaults_dtype_initializer_and_errors():
    import bptt.backend as backend

    backend.seed(0)
    stack = make_recurrent_stack("lstm", 5, 7, 2)
    assert all(p.dtype == backend.default_dtype() for p in stack.params)
    Wx0 = stack.layers[0].params[0]
    assert Wx0.shape == (5, 28) and abs(Wx0.std() * np.sqrt(5) - 1) < 0.3
    assert stack.layers[1].params[0].shape == (7, 28)
    init = pytest.importorskip("bptt.initializers")
    s2 = make_recurrent_stack("gru", 4, 3, 1, dtype=np.float64, initializer=init.Normal(0.5),
                              reset_after=True)
    assert len(s2.params) == 4 and s2.params[3].shape == (3,) and s2.params[0].dtype == np.float64
    s3 = make_recurrent_stack("rnn", 4, 3, dtype=np.float64, initializer="xavier")
    assert s3.params[0].dtype == np.float64
    with pytest.raises(ValueError, match="unknown cell"):
        make_recurrent_stack("transformer", 2, 2)
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        make_recurrent_stack("lstm", 2, 0)
    with pytest.raises(ValueError, match="dropout"):
        make_recurrent_stack("lstm", 2, 2, 2, dropout=1.5)


def test_awd_stack_dropout_before_each_layer_weight_drop_and_smaller_last_layer(rng):
    """The language models' stack: dropout before every layer (variational: one mask per
    sequence), DropConnect on each Wh, a smaller last layer; gradients exact with the masks
    fixed, and eval() switches every dropout and weight drop off."""
    from bptt.nn.regularizers import WeightDrop

    stack = make_recurrent_stack("lstm", 3, 5, 2, last_hidden=4, dropout=0.3,
                                 input_dropout=True, variational=True, weight_drop=0.4,
                                 dtype=np.float64, generator=np.random.default_rng(1))
    assert all(isinstance(layer, WeightDrop) for layer in stack.layers)
    assert [type(m).__name__ for m in stack.sequence] == ["Dropout", "WeightDrop"] * 2
    assert stack.layers[1].layer.params[1].shape == (4, 16)
    assert stack.param_names[:3] == ["rnn0.Wx", "rnn0.Wh", "rnn0.b"]
    xs = rng.standard_normal((2, 6, 3))

    def reseed():
        for k, m in enumerate(stack.sequence):
            m.generator = np.random.default_rng(10 + k)

    reseed()
    out = stack.forward(xs)
    assert out.shape == (2, 6, 4)
    mask0 = stack.dropouts[0].mask
    assert mask0.shape == (2, 1, 3)  # variational
    report = gradcheck(stack, [xs], setup=reseed)
    assert report.worst < 1e-6, report
    stack.eval()
    a, b = stack.forward(xs), stack.forward(xs)
    np.testing.assert_array_equal(a, b)
    assert all(m.mask is None for m in stack.sequence)
    with pytest.raises(ValueError, match="weight drop needs a recurrent weight"):
        make_recurrent_stack("mingru", 2, 2, weight_drop=0.5)
    with pytest.raises(ValueError, match="last_hidden must be a positive integer"):
        make_recurrent_stack("lstm", 2, 2, last_hidden=0)


def test_an_initializer_per_layer_size(rng):
    from bptt.initializers import Uniform

    sizes = []

    def per_layer(H):
        sizes.append(H)
        return Uniform(1 / np.sqrt(H), dtype=np.float64, generator=np.random.default_rng(H))

    stack = make_recurrent_stack("gru", 2, 9, 2, last_hidden=4, initializer=per_layer,
                                 dtype=np.float64)
    assert sizes == [9, 4]
    assert np.abs(stack.layers[1].params[0]).max() <= 0.5


def test_the_language_model_is_built_on_the_stack():
    from bptt.models.rnnlm import LanguageModel

    lm = LanguageModel(20, 6, 6, num_layers=2, dropout=0.5, weight_drop=0.3, last_hidden=6,
                       tie_weights=True, seed=0, dtype=np.float64)
    assert isinstance(lm.rnn, TimeStack) and lm.rnn_layers == lm.rnn.layers
    assert lm.layers[1:1 + len(lm.rnn.sequence)] == lm.rnn.sequence
    assert [n for n in lm.param_names if n.startswith("rnn")] == lm.rnn.param_names
    lm.eval()
    assert all(not m.train_flg for m in lm.rnn.sequence)


@settings(max_examples=20, deadline=None)
@given(lengths=st.lists(st.integers(1, 5), min_size=1, max_size=4), seed=st.integers(0, 99))
def test_bidirectional_mask_property(lengths, seed):
    """Any right-padded batch: outputs of each sequence equal those of it alone."""
    r = np.random.default_rng(seed)
    layer = TimeBidirectional(cell("gru", 2, 3, r), cell("gru", 2, 3, r))
    T = max(lengths)
    xs = r.standard_normal((len(lengths), T, 2))
    out = layer.forward(xs, right_padded_mask(lengths, T))
    for n, L in enumerate(lengths):
        np.testing.assert_allclose(out[n, :L], layer.forward(xs[n:n + 1, :L])[0],
                                   rtol=1e-12, atol=1e-14)
