"""Optimizers against PyTorch and hand-computed steps; clip_grads; merge_shared."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import kernels
from bptt.optim import (
    NTASGD,
    SGD,
    AdaGrad,
    Adam,
    Momentum,
    Nesterov,
    RMSprop,
    clip_grads,
    make_optimizer,
    merge_shared,
)

SHAPES = [(3, 4), (4,), (2, 3, 2)]


def _problem(seed: int = 0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grad_seq = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(6)]
    return params, grad_seq


def _run_ours(opt, params, grad_seq):
    for gs in grad_seq:
        opt.update(params, [g.copy() for g in gs])
    return params


def _run_torch(make, params, grad_seq):
    torch = pytest.importorskip("torch")
    tp = [torch.tensor(p, requires_grad=True) for p in params]
    opt = make(tp)
    for gs in grad_seq:
        for t, g in zip(tp, gs):
            t.grad = torch.tensor(g)
        opt.step()
    return [t.detach().numpy() for t in tp]


TORCH_CASES = [
    (lambda: SGD(lr=0.1), lambda ps, t: t.optim.SGD(ps, lr=0.1)),
    (lambda: Momentum(lr=0.1, momentum=0.9),
     lambda ps, t: t.optim.SGD(ps, lr=0.1, momentum=0.9)),
    (lambda: Nesterov(lr=0.1, momentum=0.9),
     lambda ps, t: t.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)),
    (lambda: AdaGrad(lr=0.1, eps=1e-10), lambda ps, t: t.optim.Adagrad(ps, lr=0.1, eps=1e-10)),
    (lambda: RMSprop(lr=0.01, decay_rate=0.9, eps=1e-8),
     lambda ps, t: t.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-8)),
    (lambda: Adam(lr=0.01, beta1=0.8, beta2=0.99),
     lambda ps, t: t.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-8)),
]


@pytest.mark.parametrize("ours,theirs", TORCH_CASES,
                         ids=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_matches_torch_float64(ours, theirs):
    torch = pytest.importorskip("torch")
    params, grad_seq = _problem()
    expected = _run_torch(lambda ps: theirs(ps, torch), [p.copy() for p in params], grad_seq)
    got = _run_ours(ours(), params, grad_seq)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_nesterov_first_steps_by_hand():
    # mu = 0.5, lr = 0.1, g = 1, 2: v0 = 0
    # step 1: p += 0.25*0 - 1.5*0.1*1 = -0.15; v = -0.1
    # step 2: p += 0.25*(-0.1) - 1.5*0.1*2 = -0.325; v = 0.5*(-0.1) - 0.2 = -0.25
    p = np.array([0.0])
    opt = Nesterov(lr=0.1, momentum=0.5)
    opt.update([p], [np.array([1.0])])
    np.testing.assert_allclose(p, [-0.15])
    opt.update([p], [np.array([2.0])])
    np.testing.assert_allclose(p, [-0.475])
    np.testing.assert_allclose(opt.state["0"]["v"], [-0.25])


def test_adam_first_step_is_lr_times_sign():
    # after bias correction, m_hat = g and v_hat = g^2 on step 1: p -= lr * g / (|g| + eps)
    p = np.array([1.0, -2.0, 3.0])
    g = np.array([4.0, -0.5, 1e-3])
    Adam(lr=0.01).update([p], [g])
    np.testing.assert_allclose(p, [1.0, -2.0, 3.0] - 0.01 * g / (abs(g) + 1e-8), rtol=1e-13)
    assert abs(p[0] - 0.99) < 1e-9


@pytest.mark.parametrize("cls", [SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam])
def test_in_place_dtype_and_forms(cls):
    p32 = np.ones((2, 3), dtype=np.float32)
    g32 = np.full((2, 3), 0.5, dtype=np.float32)
    same = p32
    opt = cls(lr=0.1)
    opt.update([p32], [g32])
    assert p32 is same and p32.dtype == np.float32
    assert np.all(p32 < 1)
    for state in opt.state.values():
        assert all(a.dtype == np.float32 for a in state.values())

    class Layer:
        params = [np.ones(3)]
        grads = [np.ones(3)]

    layer = Layer()
    before = layer.params[0]
    cls(lr=0.1).update(layer)
    assert layer.params[0] is before and np.all(before < 1)

    d = {"W1": np.ones(2), "b1": np.zeros(1)}
    w = d["W1"]
    cls(lr=0.1).update(d, {"W1": np.ones(2), "b1": np.ones(1)})
    assert d["W1"] is w and np.all(w < 1) and np.all(d["b1"] < 0)


def test_bad_calls_are_clear():
    opt = SGD()
    with pytest.raises(ValueError, match=r"shape \(2,\).*\(3,\)"):
        opt.update([np.ones(2)], [np.ones(3)])
    with pytest.raises(ValueError, match="2 params but 1 grads"):
        opt.update([np.ones(2), np.ones(2)], [np.ones(2)])
    with pytest.raises(ValueError, match="keys"):
        opt.update({"W": np.ones(2)}, {"b": np.ones(2)})
    with pytest.raises(TypeError, match=r"\.params and \.grads"):
        opt.update(np.ones(2))
    with pytest.raises(ValueError, match="positive"):
        Adam(lr=0)


@pytest.mark.parametrize("cls", [Momentum, Nesterov, AdaGrad, RMSprop, Adam])
def test_state_dict_resume_is_exact(cls):
    params, grad_seq = _problem(1, np.float32)
    ref = [p.copy() for p in params]
    full = cls(lr=0.05)
    _run_ours(full, ref, grad_seq)

    first = cls(lr=0.05)
    _run_ours(first, params, grad_seq[:3])
    buf = io.BytesIO()
    np.savez(buf, **first.state_dict())  # the checkpoint route: plain arrays + scalars
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        saved = {k: z[k] for k in z.files}
    resumed = cls(lr=1.0)  # lr comes back from the state
    resumed.load_state_dict(saved)
    assert resumed.lr == pytest.approx(0.05) and resumed.iter == 3
    _run_ours(resumed, params, grad_seq[3:])
    for a, b in zip(params, ref):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_state_dict_is_a_copy_and_rejects_foreign_state():
    p = [np.ones(2)]
    opt = Momentum(lr=0.1)
    opt.update(p, [np.ones(2)])
    d = opt.state_dict()
    d["v/0"][...] = 123.0
    assert opt.state["0"]["v"][0] != 123.0
    with pytest.raises(ValueError, match="unexpected entry '(v/0|momentum)'"):
        Adam().load_state_dict(d)
    bad = Momentum()
    bad.load_state_dict(d)
    with pytest.raises(ValueError, match="wrong model"):
        bad.update([np.ones(3)], [np.ones(3)])


def test_lr_is_settable_for_decay():
    p = np.array([1.0])
    opt = SGD(lr=0.1)
    opt.update([p], [np.array([1.0])])
    opt.lr *= 0.5
    opt.update([p], [np.array([1.0])])
    np.testing.assert_allclose(p, [1.0 - 0.1 - 0.05])


def test_clip_grads_global_norm_in_place():
    g1, g2 = np.array([3.0, 0.0]), np.array([[0.0], [4.0]])  # global norm 5
    same = g1
    norm = clip_grads([g1, g2], 1.0)
    assert norm == pytest.approx(5.0)
    assert g1 is same
    np.testing.assert_allclose(g1, [0.6, 0.0])
    np.testing.assert_allclose(g2, [[0.0], [0.8]])
    total = np.sqrt((g1**2).sum() + (g2**2).sum())
    assert total == pytest.approx(1.0)
    # below the threshold: untouched
    g = [np.array([0.3, 0.4])]
    assert clip_grads(g, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(g[0], [0.3, 0.4])
    # dicts and float32 work; the dtype is kept
    d = {"W": np.full(4, 10.0, dtype=np.float32)}
    assert clip_grads(d, 2.0) == pytest.approx(20.0)
    assert d["W"].dtype == np.float32
    np.testing.assert_allclose(d["W"], 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        clip_grads(g, 0.0)


def test_merge_shared_identity_not_value():
    W = np.ones((2, 3))
    twin = np.ones((2, 3))  # equal values, separate parameter: must stay
    b = np.zeros(3)
    gW1, gW2, gtwin, gb = np.full((2, 3), 1.0), np.full((2, 3), 2.0), np.ones((2, 3)), np.ones(3)
    ps, gs = merge_shared([W, b, twin, W], [gW1, gb, gtwin, gW2])
    assert len(ps) == 3
    assert ps[0] is W and ps[1] is b and ps[2] is twin
    assert gs[0] is gW1
    np.testing.assert_array_equal(gs[0], 3.0)
    np.testing.assert_array_equal(gs[2], 1.0)


def test_merge_shared_tied_transpose():
    rng = np.random.default_rng(0)
    E = rng.standard_normal((5, 3))       # embedding (V, D)
    Wout = E.T                            # softmax weight (D, V), tied by a view
    gE, gW = rng.standard_normal((5, 3)), rng.standard_normal((3, 5))
    expected = gE + gW.T
    ps, gs = merge_shared([E, Wout], [gE, gW])
    assert len(ps) == 1 and ps[0] is E
    np.testing.assert_allclose(gs[0], expected)
    # order reversed: the kept one is the transposed view, and the grad is transposed back
    gE, gW = rng.standard_normal((5, 3)), rng.standard_normal((3, 5))
    expected = gW + gE.T
    ps, gs = merge_shared([Wout, E], [gW, gE])
    assert len(ps) == 1 and ps[0] is Wout
    np.testing.assert_allclose(gs[0], expected)


def test_merge_shared_same_grad_array_not_doubled_and_overlap_error():
    W, g = np.ones(3), np.ones(3)
    ps, gs = merge_shared([W, W], [g, g])
    assert len(ps) == 1
    np.testing.assert_array_equal(gs[0], 1.0)
    A = np.zeros((4, 4))
    with pytest.raises(ValueError, match="overlap"):
        merge_shared([A[:2].reshape(-1), A.reshape(-1)[4:12]], [np.zeros(8), np.zeros(8)])


@settings(max_examples=25, deadline=None)
@given(shapes=st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=3), min_size=1,
                       max_size=4),
       max_norm=st.floats(0.01, 10.0), scale=st.floats(0.001, 100.0), seed=st.integers(0, 99))
def test_clip_grads_property(shapes, max_norm, scale, seed):
    r = np.random.default_rng(seed)
    gs = [scale * r.standard_normal(s) for s in shapes]
    orig = [g.copy() for g in gs]
    norm = clip_grads(gs, max_norm)
    expected = np.sqrt(sum((g**2).sum() for g in orig))
    assert norm == pytest.approx(expected, rel=1e-12)
    after = np.sqrt(sum((g**2).sum() for g in gs))
    assert after <= max_norm * (1 + 1e-9) or after == pytest.approx(expected)
    rate = min(1.0, max_norm / expected)
    for g, o in zip(gs, orig):
        np.testing.assert_allclose(g, o * rate, rtol=1e-12)  # same direction, one rate


def test_make_optimizer():
    opt = make_optimizer("Adam", lr=0.01, beta1=0.5)
    assert isinstance(opt, Adam) and opt.lr == 0.01 and opt.beta1 == 0.5
    assert make_optimizer("sgd").lr == 0.01
    assert isinstance(make_optimizer("nesterov", 0.1, momentum=0.8), Nesterov)
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs': use one of sgd"):
        make_optimizer("lbfgs")


# -- NT-ASGD -----------------------------------------------------------------------------------
def test_ntasgd_averages_like_torch_asgd_once_triggered():
    """Triggered after the first update, the average is torch's ASGD ax with t0 = 0 and no
    decay (lambd = alpha = 0; torch's first averaged iterate is the second): the mean of the
    iterates from then on."""
    torch = pytest.importorskip("torch")
    params, grad_seq = _problem(2, np.float64)
    mean = np.mean(list(_iterates(params, grad_seq, 0.1))[1:], axis=0)  # exact, float64
    opt = NTASGD(lr=0.1, nonmono=1)
    ours = _run_ours(opt, [p.copy() for p in params], grad_seq[:1])
    opt.triggered = 1.0
    _run_ours(opt, ours, grad_seq[1:])
    tp = [torch.tensor(p, requires_grad=True) for p in params]
    ref = torch.optim.ASGD(tp, lr=0.1, lambd=0.0, alpha=0.0, t0=0.0)
    for gs in grad_seq:
        for t, g in zip(tp, gs):
            t.grad = torch.tensor(g)
        ref.step()
    for k, t in enumerate(tp):  # torch keeps its step size eta as a float32 scalar: 1e-7
        np.testing.assert_allclose(ours[k], t.detach().numpy(), rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(opt.state[str(k)]["avg"], ref.state[t]["ax"].numpy(),
                                   rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(opt.state["0"]["avg"], mean, rtol=1e-13)


def _iterates(params, grad_seq, lr):
    p = params[0].copy()
    for gs in grad_seq:
        p = p - lr * gs[0]
        yield p


def test_ntasgd_triggers_when_no_better_than_before_the_last_nonmono():
    opt = NTASGD(lr=1.0, nonmono=2)
    # 8.5 is worse than 8 but not than min(10, 9), the best before the last two
    fired = [opt.observe(v) for v in [10, 9, 8, 8.5, 7.9]]
    assert fired == [False] * 5 and not opt.triggered
    assert opt.observe(8.1) is True and opt.triggered  # 8.1 > min(10, 9, 8, 8.5) = 8
    assert opt.observe(100) is False  # fires once


def test_ntasgd_swap_and_state_dict_resume_exactly():
    params, grad_seq = _problem(3, np.float32)
    full = NTASGD(lr=0.05, nonmono=1)
    ref = [p.copy() for p in params]
    _run_ours(full, ref, grad_seq[:2])
    full.observe(1.0), full.observe(2.0)  # fires
    _run_ours(full, ref, grad_seq[2:])

    first = NTASGD(lr=0.05, nonmono=1)
    _run_ours(first, params, grad_seq[:2])
    first.observe(1.0), first.observe(2.0)
    _run_ours(first, params, grad_seq[2:4])
    buf = io.BytesIO()
    np.savez(buf, **first.state_dict())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        saved = {k: z[k] for k in z.files}
    resumed = NTASGD(lr=1.0)
    resumed.load_state_dict(saved)
    assert resumed.history == [1.0, 2.0] and resumed.triggered and resumed.nonmono == 1
    _run_ours(resumed, params, grad_seq[4:])
    for a, b in zip(params, ref):
        np.testing.assert_array_equal(a, b)
    before = [p.copy() for p in params]
    assert resumed.swap_average(params)
    assert not all(np.array_equal(a, b) for a, b in zip(params, before))
    resumed.swap_average(params)
    assert all(np.array_equal(a, b) for a, b in zip(params, before))
    assert NTASGD().swap_average(params) is False  # nothing averaged yet


needs_numba = pytest.mark.skipif(kernels.update_kernels(np, np.float32) is None,
                                 reason="the compiled updates need pip install 'bptt[numba]'")


@needs_numba
@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=3),
       layout=st.sampled_from(["C", "F", "transposed"]),
       dtype=st.sampled_from([np.float32, np.float64]), name=st.sampled_from(["sgd", "adam"]),
       big=st.booleans(), seed=st.integers(0, 2**16))
def test_compiled_updates_are_numpys_bit_for_bit(shape, layout, dtype, name, big, seed):
    """SGD and Adam's one compiled pass (bptt.numba_updates) against NumPy's passes, the
    same bits, over shapes, layouts (a tied weight is a transposed view) and steps, with
    gradients and moments large and small (Adam's eps matters for small v)."""
    rng = np.random.default_rng(seed)
    scale = 1e3 if big else 1e-6
    p = rng.standard_normal(shape).astype(dtype)
    if layout == "F":
        p = np.asfortranarray(p)
    elif layout == "transposed":
        p = p.T.copy().T
    grads = []
    for _ in range(3):
        g = np.empty_like(p)
        g[...] = rng.standard_normal(shape) * scale
        grads.append(g)

    def run(numba: str):
        before = os.environ.get("BPTT_NUMBA")
        os.environ["BPTT_NUMBA"] = numba
        try:
            q = p.copy(order="K")
            opt = SGD(lr=20.0) if name == "sgd" else Adam(lr=0.003, beta1=0.85, beta2=0.995)
            for g in grads:
                opt.update([q], [g])
        finally:
            if before is None:
                del os.environ["BPTT_NUMBA"]
            else:
                os.environ["BPTT_NUMBA"] = before
        return q, opt.state
    compiled_p, compiled_state = run("1")
    numpy_p, numpy_state = run("0")
    assert compiled_p.dtype == dtype and np.array_equal(compiled_p, numpy_p)
    for slot, value in numpy_state.get("0", {}).items():
        assert np.array_equal(compiled_state["0"][slot], value)


@needs_numba
def test_compiled_updates_only_take_arrays_laid_out_alike(monkeypatch):
    """A parameter and gradient of different layouts (or moments loaded as C order for an F
    order parameter) take NumPy's passes, and give the same result."""
    from bptt import numba_updates

    calls = []
    real = numba_updates.sgd
    monkeypatch.setattr(numba_updates, "sgd", lambda *a: calls.append(1) or real(*a))
    kernels._compile.cache_clear()
    try:
        assert kernels.update_kernels(np, np.float64) is not None  # compiled (its trial ran)
        calls.clear()
        p = np.asfortranarray(np.arange(12.0).reshape(3, 4))
        g = np.ones((3, 4))  # C order
        SGD(lr=0.5).update([p], [g])
        assert not calls and np.array_equal(p, np.arange(12.0).reshape(3, 4) - 0.5)
        SGD(lr=0.5).update([p], [np.asfortranarray(g)])
        assert calls and np.array_equal(p, np.arange(12.0).reshape(3, 4) - 1.0)
    finally:
        kernels._compile.cache_clear()
