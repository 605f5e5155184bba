"""Language models: gradients (float64), weight tying, state, parameters on disk."""

from __future__ import annotations

import numpy as np
import pytest

import bptt
from bptt.gradcheck import gradcheck
from bptt.models.rnnlm import (
    BetterRnnlm,
    LanguageModel,
    Rnnlm,
    SimpleRnnlm,
    model_from_config,
)
from bptt.optim import SGD, merge_shared
from helpers import LossOf


def randomize(model, rng, scale=0.5):
    """Weights large enough that every gradient is far from 0 (the init's 0.01 is not)."""
    for p in model.params:
        p[...] = scale * rng.standard_normal(p.shape)


def ids(rng, V, N, T):
    return rng.integers(0, V, (N, T))


MODELS = {
    "SimpleRnnlm": lambda: SimpleRnnlm(11, 4, 5, dtype=np.float64, seed=1),
    "Rnnlm": lambda: Rnnlm(11, 4, 5, dtype=np.float64, seed=1),
    "BetterRnnlm": lambda: BetterRnnlm(11, 5, 5, dropout_ratio=0.3, dtype=np.float64, seed=1),
    "gru-2-tied-variational": lambda: LanguageModel(11, 5, 5, cell="gru", num_layers=2,
                                                    dropout=0.2, variational=True,
                                                    tie_weights=True, dtype=np.float64, seed=1),
    "rnn-2": lambda: LanguageModel(11, 3, 4, cell="rnn", num_layers=2, dtype=np.float64, seed=1),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_model_gradients_float64(name):
    rng = np.random.default_rng(0)
    model = MODELS[name]()
    randomize(model, rng)
    xs, ts = ids(rng, 11, 3, 4), ids(rng, 11, 3, 4)
    report = gradcheck(LossOf(model, xs, ts, seed=5), [], wrt=[], samples=25)
    assert report.worst < 1e-6, report
    assert len(report.errors) == len(model.params)


def test_gradcheck_catches_a_missing_tied_gradient():
    """If the affine part of a tied weight's gradient were dropped, the check would fail."""
    rng = np.random.default_rng(0)
    model = LanguageModel(9, 4, 4, tie_weights=True, dtype=np.float64, seed=0)
    randomize(model, rng)
    assert model.affine.grads[0].base is model.embed.grads[0]  # one gradient array
    model.embed.accumulate = False  # the embedding now overwrites the output layer's part
    report = gradcheck(LossOf(model, ids(rng, 9, 2, 3), ids(rng, 9, 2, 3)), [], wrt=[])
    assert report.errors["param[0]"] > 1e-3


def test_tied_weights_are_one_array_and_their_gradients_sum():
    rng = np.random.default_rng(1)
    tied = LanguageModel(13, 6, 6, tie_weights=True, dtype=np.float64, seed=0)
    randomize(tied, rng)
    W = tied.embed.params[0]
    assert tied.affine.params[0].base is W and np.shares_memory(tied.affine.params[0], W)
    assert all(p is not tied.affine.params[0] for p in tied.params)
    assert "affine.W" not in tied.param_names and len(tied.params) == len(set(map(id, tied.params)))

    untied = LanguageModel(13, 6, 6, dtype=np.float64, seed=0)
    for p, q in zip(untied.params, [W, *tied.params[1:-1], W.T, tied.params[-1]]):
        p[...] = q
    xs, ts = ids(rng, 13, 2, 5), ids(rng, 13, 2, 5)
    assert tied.forward(xs, ts) == pytest.approx(untied.forward(xs, ts), rel=1e-12)
    tied.backward()
    untied.backward()
    dW_embed, dW_affine = untied.grads[0], untied.grads[-2]
    np.testing.assert_allclose(tied.grads[0], dW_embed + dW_affine.T, rtol=1e-12)

    SGD(lr=0.1).update(tied.params, tied.grads)  # the tie survives an update (in place)
    np.testing.assert_array_equal(tied.affine.params[0], tied.embed.params[0].T)


def test_params_agree_with_merge_shared_by_identity():
    model = BetterRnnlm(17, 8, 8, seed=0)
    all_p = [p for layer in model.layers for p in layer.params]
    all_g = [g.copy() for layer in model.layers for g in layer.grads]
    kept, _ = merge_shared(all_p, all_g)
    assert [id(p) for p in kept] == [id(p) for p in model.params]


def test_book_shapes_and_defaults():
    m = Rnnlm()
    assert [tuple(p.shape) for p in m.params] == [(10000, 100), (100, 400), (100, 400), (400,),
                                                 (100, 10000), (10000,)]
    assert m.params[0].dtype == np.float32
    s = SimpleRnnlm(20, 3, 4)
    assert [tuple(p.shape) for p in s.params] == [(20, 3), (3, 4), (4, 4), (4,), (4, 20), (20,)]
    b = BetterRnnlm(50, 16, 16)
    assert b.num_layers == 2 and b.tie_weights and len(b.drop_layers) == 3
    assert b.params[0].std() == pytest.approx(0.01, rel=0.1)  # the book's embedding init
    assert m.params[2].std() == pytest.approx(1 / np.sqrt(100), rel=0.05)  # Wh ~ 1/sqrt(H)


def test_float32_and_float64_models_from_one_seed_hold_the_same_weights():
    a = LanguageModel(30, 5, 6, seed=3)
    b = LanguageModel(30, 5, 6, seed=3, dtype=np.float64)
    assert a.params[1].dtype == np.float32 and b.params[1].dtype == np.float64
    for p, q in zip(a.params, b.params):
        np.testing.assert_allclose(p, q, rtol=1e-6)
    rng = np.random.default_rng(0)
    xs, ts = ids(rng, 30, 2, 7), ids(rng, 30, 2, 7)
    assert float(a.forward(xs, ts)) == pytest.approx(float(b.forward(xs, ts)), rel=1e-5)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_state_carries_across_calls(cell):
    rng = np.random.default_rng(2)
    model = LanguageModel(10, 4, 5, cell=cell, num_layers=2, dtype=np.float64, seed=0)
    randomize(model, rng)
    xs = ids(rng, 10, 3, 8)
    whole = model.predict(xs)
    model.reset_state()
    parts = np.concatenate([model.predict(xs[:, :3]), model.predict(xs[:, 3:])], axis=1)
    np.testing.assert_allclose(parts, whole, rtol=1e-12)
    model.reset_state()
    model.predict(xs[:, :3])
    saved = model.get_state()
    tail = model.predict(xs[:, 3:])
    model.set_state(saved)
    np.testing.assert_array_equal(model.predict(xs[:, 3:]), tail)
    assert whole.shape == (3, 8, 10)


def test_dropout_only_in_training():
    model = LanguageModel(10, 4, 4, dropout=0.5, seed=0)
    xs = np.zeros((2, 3), dtype=int)
    a = model.predict(xs)
    model.reset_state()
    assert np.array_equal(a, model.predict(xs))  # eval: deterministic
    model.reset_state()
    bptt.seed(0)
    l1 = float(model.forward(xs, xs))
    model.reset_state()
    bptt.seed(1)
    assert float(model.forward(xs, xs)) != l1  # training: masks differ


def test_save_and_load_params(tmp_path):
    a = BetterRnnlm(20, 6, 6, seed=0)
    a.save_params(tmp_path / "m.npz")
    b = BetterRnnlm(20, 6, 6, seed=1)
    b.load_params(tmp_path / "m.npz")
    for p, q in zip(a.params, b.params):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(b.affine.params[0], b.embed.params[0].T)  # tie kept
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        assert sorted(f.files) == sorted(a.param_names)
    assert list(tmp_path.iterdir()) == [tmp_path / "m.npz"]  # no temp file left


def test_load_params_errors_are_clear(tmp_path):
    LanguageModel(20, 6, 7, seed=0).save_params(tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"rnn0.Wx has shape \(6, 28\).*\(6, 32\)"):
        LanguageModel(20, 6, 8).load_params(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="missing rnn1.Wh, rnn1.Wx, rnn1.b"):
        LanguageModel(20, 6, 7, num_layers=2).load_params(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="unexpected affine.W"):
        LanguageModel(20, 7, 7, tie_weights=True).load_params(tmp_path / "m.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        LanguageModel(20, 6, 7).load_params(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        LanguageModel(20, 6, 7).load_params(tmp_path / "none.npz")


def test_constructor_errors():
    with pytest.raises(ValueError, match="unknown cell"):
        LanguageModel(10, cell="transformer")
    with pytest.raises(ValueError, match="embed_size == the last layer's hidden size"):
        LanguageModel(10, 4, 5, tie_weights=True)
    with pytest.raises(ValueError, match="dropout"):
        LanguageModel(10, dropout=1.0)
    with pytest.raises(ValueError, match="vocab_size must be a positive integer"):
        LanguageModel(0)


def test_inputs_are_checked():
    model = LanguageModel(10, 4, 4)
    with pytest.raises(ValueError, match=r"\(N, T\)"):
        model.predict(np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="id 10"):
        model.predict(np.full((1, 2), 10))


def test_config_rebuilds_the_model():
    m = LanguageModel(12, 5, 5, cell="gru", num_layers=2, dropout=0.1, tie_weights=True,
                      dtype=np.float64)
    r = model_from_config(m.config)
    assert r.config == m.config and r.param_names == m.param_names
    with pytest.raises(ValueError, match="unknown keys"):
        model_from_config({"vocab_size": 3, "heads": 2})


def test_top_level_names():
    for name in ("SimpleRnnlm", "Rnnlm", "BetterRnnlm", "LanguageModel"):
        assert getattr(bptt, name) is globals()[name]


# -- initialisation schemes ---------------------------------------------------------------------
def test_init_schemes_draw_what_they_say():
    V, D, H = 300, 40, 50
    book, torch_like, ortho = (LanguageModel(V, D, H, cell="lstm", init=i, seed=0, dtype="float64")
                               for i in ("book", "torch", "orthogonal"))
    p = {i: dict(zip(m.param_names, m.params, strict=True))
         for i, m in (("book", book), ("torch", torch_like), ("orthogonal", ortho))}
    assert np.std(p["book"]["embed.W"]) == pytest.approx(0.01, rel=0.05)
    assert np.std(p["torch"]["embed.W"]) == pytest.approx(1.0, rel=0.05)
    assert np.abs(p["orthogonal"]["embed.W"]).max() <= 0.1
    k = 1 / np.sqrt(H)
    for name in ("rnn0.Wx", "rnn0.Wh", "affine.W", "affine.b"):
        assert np.abs(p["torch"][name]).max() <= k  # U(-1/sqrt(H), 1/sqrt(H))
    b = p["torch"]["rnn0.b"]  # b_ih + b_hh: a triangular spread up to 2k
    assert np.abs(b).max() <= 2 * k and np.abs(b).max() > k
    Wh = p["orthogonal"]["rnn0.Wh"]
    for g in range(4):  # one orthogonal block per gate
        block = Wh[:, g * H:(g + 1) * H]
        np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-12)
    np.testing.assert_array_equal(p["orthogonal"]["rnn0.b"][:H], 1.0)  # forget gate f
    np.testing.assert_array_equal(p["orthogonal"]["rnn0.b"][H:], 0.0)
    gru = LanguageModel(V, D, H, cell="gru", init="orthogonal", seed=0)
    np.testing.assert_array_equal(gru.params[3][:H], -1.0)  # z: carry 1 - z opens
    assert LanguageModel(**ortho.config).init == "orthogonal"
    with pytest.raises(ValueError, match="unknown init 'xavier'"):
        LanguageModel(V, D, H, init="xavier")


def test_the_books_presets_keep_the_books_initial_weights():
    from bptt.train.config import PRESETS, TrainConfig
    for name in ("simple-rnnlm", "rnnlm", "better-rnnlm", "cpu-hour"):
        assert PRESETS[name]["init"] == "book"
        assert TrainConfig(preset=name).resolved().init == "book"
    assert TrainConfig(preset="rnnlm", init="torch").resolved().init == "torch"
