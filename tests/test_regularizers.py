"""AWD-LSTM's regularisers (weight drop, embedding dropout, AR, TAR): float64 gradient checks,
one mask per forward shared by all time steps, identity at evaluation, off by default, through
the language model and `bptt train`, and resumed bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bptt
from bptt.data.make_builtin import compose
from bptt.nn.registry import get_cell, make_time_layer
from bptt.nn.regularizers import ActivationPenalty, EmbeddingDropout, WeightDrop
from bptt.train import TrainConfig, train_language_model
from bptt.train.config import PRESETS


class Draws:
    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)

    def W(self, n_in, n_out):
        return 0.6 * self.rng.standard_normal((n_in, n_out))

    def B(self, n):
        return 0.6 * self.rng.standard_normal(n)


def wrapped(cell="lstm", p=0.5, seed=0):
    layer = make_time_layer(cell, *get_cell(cell).init_params(3, 4, Draws(seed)))
    name = getattr(get_cell(cell).step, "recurrent_params", ("Wh",))[0]
    return WeightDrop(layer, p, name=name, generator=np.random.default_rng(0))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "indrnn", "lnlstm"])
def test_weight_drop_gradients(cell):
    layer = wrapped(cell)
    xs = np.random.default_rng(1).standard_normal((2, 4, 3))

    def same_mask():
        layer.generator = np.random.default_rng(0)

    report = bptt.gradcheck(layer, [xs], seed=0, setup=same_mask)
    assert report.worst < 1e-6, report
    assert layer.mask is not None and 0 < (layer.mask == 0).mean() < 1  # something dropped


def test_weight_drop_masks_the_weight_once_per_forward_and_never_at_evaluation():
    layer = wrapped("lstm", p=0.5)
    raw = layer.params[1]
    assert layer.params[1] is layer.raw and layer.layer.params[1] is not raw
    xs = np.ones((2, 6, 3))
    layer.forward(xs)
    first = layer.mask.copy()
    np.testing.assert_array_equal(layer.layer.params[1], raw * first)  # every step used it
    layer.forward(xs)
    assert not np.array_equal(first, layer.mask)  # a new mask per forward
    layer.train_flg = False
    hs = layer.forward(xs)
    plain = make_time_layer("lstm", layer.params[0], raw.copy(), layer.params[2])
    np.testing.assert_allclose(hs, plain.forward(xs), atol=1e-14)


def test_weight_drop_refuses_a_cell_without_a_recurrent_weight():
    with pytest.raises(ValueError, match="'mingru' cell has none"):
        bptt.LanguageModel(10, 4, 4, cell="mingru", weight_drop=0.3)


def test_embedding_dropout_drops_whole_words_and_its_gradient():
    W = np.random.default_rng(0).standard_normal((7, 3))
    layer = EmbeddingDropout(W, 0.5, generator=np.random.default_rng(0))
    xs = np.array([[1, 2, 1, 3], [3, 1, 0, 6]])
    out = layer.forward(xs)
    for v in range(7):  # a word is kept or dropped everywhere in the batch
        rows = out[xs == v]
        assert len(rows) == 0 or np.all(rows == 0) or np.allclose(rows, 2 * W[v])

    def same_mask():
        layer.generator = np.random.default_rng(0)

    assert bptt.gradcheck(layer, [xs], seed=0, setup=same_mask).worst < 1e-7
    layer.train_flg = False
    np.testing.assert_array_equal(layer.forward(xs), W[xs])


@pytest.mark.parametrize("alpha,beta", [(2.0, 0.0), (0.0, 1.5), (0.7, 0.3)])
def test_ar_and_tar_gradients_are_those_of_the_penalty(alpha, beta):
    rng = np.random.default_rng(0)
    hs, r = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 3))
    layer = ActivationPenalty(alpha, beta)

    def objective(h):
        out = layer.forward(h)
        return float((r * out).sum()) + layer.penalty

    objective(hs)
    analytic = layer.backward(r)
    numeric = np.zeros_like(hs)
    for i in np.ndindex(*hs.shape):
        old = hs[i]
        hs[i] = old + 1e-6
        up = objective(hs)
        hs[i] = old - 1e-6
        down = objective(hs)
        hs[i] = old
        numeric[i] = (up - down) / 2e-6
    np.testing.assert_allclose(analytic, numeric, atol=1e-7)
    want = alpha * np.mean(hs**2) + beta * np.mean(np.diff(hs, axis=1) ** 2)
    layer.forward(hs)
    assert layer.penalty == pytest.approx(want, rel=1e-12)


def test_the_language_model_follows_the_gradient_of_loss_plus_penalty():
    model = bptt.LanguageModel(12, 5, 5, cell="lstm", num_layers=2, dropout=0.2,
                               weight_drop=0.4, embed_dropout=0.2, ar=2.0, tar=1.0,
                               tie_weights=True, dtype=np.float64, seed=0)
    ids = np.random.default_rng(1).integers(0, 12, (3, 7))
    xs, ts = ids[:, :-1], ids[:, 1:]

    def objective():
        bptt.seed(5)  # the same dropout, weight-drop and word masks at every forward
        model.reset_state()
        return float(model.forward(xs, ts)) + model.penalty

    objective()
    model.backward()
    for name in ("rnn0.Wh", "rnn1.Wh", "embed.W", "rnn1.b"):
        k = model.param_names.index(name)
        p, g = model.params[k], model.grads[k].copy()
        idx = [tuple(int(i) for i in np.unravel_index(j, p.shape))
               for j in np.random.default_rng(k).choice(p.size, 6, replace=False)]
        numeric = bptt.numerical_gradient(objective, p, 1e-6, index=idx)
        for i in idx:
            assert abs(numeric[i] - g[i]) <= 1e-7 + 1e-5 * abs(g[i]), (name, i)
    assert model.penalty > 0


def test_everything_is_off_by_default():
    model = bptt.LanguageModel(10, 4, 4)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert not kinds & {"WeightDrop", "EmbeddingDropout", "ActivationPenalty"}
    assert model.penalty == 0
    for preset in (p for p in PRESETS if p != "awd"):  # awd: AWD-LSTM's, all on
        cfg = TrainConfig(preset=preset).resolved()
        assert (cfg.weight_drop, cfg.embed_dropout, cfg.ar, cfg.tar) == (0, 0, 0, 0), preset


def test_bad_settings_are_one_clear_error():
    for kw, match in [({"weight_drop": 1.0}, "--weight-drop must be in"),
                      ({"embed_dropout": -0.1}, "--embed-dropout must be in"),
                      ({"ar": -1.0}, "--ar must be >= 0")]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**kw).resolved()


def test_resume_with_every_regulariser_is_bit_exact(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(compose(stories=2), encoding="utf-8")
    base = dict(data=str(text), embed=6, hidden=6, batch=4, bptt=5, layers=2, dropout=0.2,
                weight_drop=0.3, embed_dropout=0.1, ar=1.0, tar=1.0, optimizer="sgd", lr=1.0,
                clip=1.0, epochs=2, quiet=True, dtype="float64")
    full = train_language_model(TrainConfig(out=str(tmp_path / "full"), **base))
    stop = full["steps"] // 2 + 1
    train_language_model(TrainConfig(out=str(tmp_path / "part"), max_steps=stop, **base))
    train_language_model(TrainConfig(out=str(tmp_path / "part"), resume=True, quiet=True),
                         explicit={"out", "resume", "quiet"})
    cfg = json.loads((tmp_path / "part" / "last" / "config.json").read_text())
    assert cfg["model"]["weight_drop"] == 0.3 and cfg["model"]["tar"] == 1.0
    want, got = (last_params(tmp_path / name) for name in ("full", "part"))
    assert all(np.array_equal(want[k], got[k]) for k in want)


def last_params(out):
    with np.load(out / "last" / "model.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_a_narrower_last_layer_ties_to_a_narrower_embedding():
    model = bptt.LanguageModel(20, 4, 7, num_layers=3, last_hidden=4, tie_weights=True,
                               dtype=np.float64, seed=0)
    shapes = dict(zip(model.param_names, (p.shape for p in model.params), strict=True))
    assert shapes["rnn0.Wx"] == (4, 28) and shapes["rnn1.Wh"] == (7, 28)
    assert shapes["rnn2.Wx"] == (7, 16) and shapes["rnn2.Wh"] == (4, 16)
    assert "affine.W" not in shapes  # tied: the (4, 20) output weight is embed.W
    ids = np.random.default_rng(0).integers(0, 20, (2, 6))
    assert np.isfinite(float(model.forward(ids[:, :-1], ids[:, 1:])))
    model.backward()
    rebuilt = bptt.LanguageModel(**model.config)
    assert rebuilt.last_hidden == 4 and rebuilt.num_params() == model.num_params()
    with pytest.raises(ValueError, match="--tie needs --embed equal to --last-hidden"):
        TrainConfig(embed=8, hidden=16, last_hidden=12, tie=True).resolved()


def test_the_awd_preset_smoke_run(tmp_path):
    """AWD-LSTM's settings (3 x LSTM 1150/1150/400, every regulariser, NT-ASGD) for a few
    short windows on the built-in corpus: the whole preset wired up on the CPU."""
    m = train_language_model(TrainConfig(preset="awd", batch=4, bptt=12, max_steps=3,
                                         out=str(tmp_path / "awd"), quiet=True))
    cfg = m["config"]
    assert (cfg["layers"], cfg["hidden"], cfg["last_hidden"], cfg["optimizer"]) == \
        (3, 1150, 400, "ntasgd")
    model = m["model"]
    assert (model["weight_drop"], model["embed_dropout"], model["ar"], model["tar"]) == \
        (0.5, 0.1, 2.0, 1.0)
    assert m["steps"] == 3 and np.isfinite(m["valid_ppl"])
