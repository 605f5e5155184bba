"""The continuous cache (bptt.train.neural_cache): the formula position by position, the
streams and windows, lam = 0 is the plain perplexity, the grid search, where it helps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.models.rnnlm import LanguageModel
from bptt.train.language_model import perplexity
from bptt.train.neural_cache import (
    CacheSettings,
    StreamStates,
    cache_perplexity,
    cache_probabilities,
    mixed_log_likelihood,
    stream_states,
    tune_cache,
)


def reference_log_likelihood(states: StreamStates, window: int, theta: float,
                             lam: float) -> float:
    """The paper's formula, one position at a time (module docstring)."""
    H, ts, log_p = states.hidden, states.targets, states.log_p_vocab
    N, S = ts.shape
    total = 0.0
    for n in range(N):
        for t in range(S):
            p_vocab = math.exp(log_p[n, t])
            keys = range(max(0, t - window), t)
            if not keys:
                total += math.log(p_vocab)
                continue
            weights = [math.exp(theta * float(H[n, t] @ H[n, i])) for i in keys]
            p_cache = sum(w for w, i in zip(weights, keys, strict=True)
                          if ts[n, i] == ts[n, t]) / sum(weights)
            total += math.log((1 - lam) * p_vocab + lam * p_cache)
    return total / (N * S)


def random_states(rng: np.random.Generator, N: int, S: int, H: int, V: int) -> StreamStates:
    log_p = np.log(rng.uniform(0.01, 0.9, (N, S)))
    return StreamStates(rng.normal(size=(N, S, H)), rng.integers(0, V, (N, S)), log_p)


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3), S=st.integers(1, 120), H=st.integers(1, 6), V=st.integers(1, 6),
       window=st.integers(1, 150), theta=st.floats(0.01, 3.0), lam=st.floats(0.0, 0.95),
       seed=st.integers(0, 2**16))
def test_the_cache_is_the_formula_at_every_position(N, S, H, V, window, theta, lam, seed):
    states = random_states(np.random.default_rng(seed), N, S, H, V)
    p_cache = cache_probabilities(states, window, [theta])[theta]
    assert np.isnan(p_cache[:, 0]).all() and not np.isnan(p_cache[:, 1:]).any()
    got = mixed_log_likelihood(states.log_p_vocab, p_cache, lam)
    assert got == pytest.approx(reference_log_likelihood(states, window, theta, lam),
                                rel=1e-12, abs=1e-12)


def test_large_dot_products_do_not_overflow():
    states = random_states(np.random.default_rng(0), 2, 40, 4, 3)
    big = StreamStates(states.hidden * 100, states.targets, states.log_p_vocab)
    p = cache_probabilities(big, 10, [1.0])[1.0][:, 1:]
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1 + 1e-12).all()


def tiny_model() -> LanguageModel:
    return LanguageModel(12, 6, 5, num_layers=2, dropout=0.3, dtype="float64", seed=3)


def test_lam_zero_is_the_plain_perplexity_and_states_are_the_affine_inputs():
    model = tiny_model()
    ids = np.random.default_rng(1).integers(0, 12, 203)
    states = stream_states(model, ids, 4, 7)
    assert states.hidden.shape == (4, 50, 5) and states.targets.shape == (4, 50)
    assert cache_perplexity(states, CacheSettings(20, 0.5, 0.0)) == pytest.approx(
        perplexity(model, ids, 4, 7), rel=1e-12)
    model.reset_state()  # h_t of stream 0 at its first chunk: the last LSTM layer's output
    out = model.embed.forward(ids[None, :7])
    for layer in model.rnn.sequence:
        out = layer.forward(out)
    np.testing.assert_allclose(states.hidden[0, :7], out[0], rtol=1e-12)


def test_a_repeated_text_is_predicted_by_the_cache():
    """An untrained model knows nothing; the cache remembers what followed a state like this."""
    model = LanguageModel(40, 16, 32, dtype="float32", seed=3, init="torch")
    ids = np.tile(np.random.default_rng(2).permutation(40)[:25], 12)  # a phrase, 12 times
    states = stream_states(model, ids, 2, 10)
    plain = cache_perplexity(states, CacheSettings(100, 1.0, 0.0))
    assert plain > 30  # ~ uniform over 40 words
    best, ppl, table = tune_cache(states, windows=[50, 100], thetas=[5.0, 50.0, 500.0],
                                  lambdas=[0.1, 0.5, 0.9])
    assert ppl < plain / 5  # 3.6: after its first time the phrase comes from the cache
    assert len(table) == 18 and ppl == min(row["perplexity"] for row in table)
    assert cache_perplexity(states, best) == pytest.approx(ppl, rel=1e-12)


@pytest.mark.parametrize("window,theta,lam,message", [
    (0, 0.3, 0.1, "cache window 0: give 1 position or more"),
    (100, 0.0, 0.1, "cache theta 0.0: give a number above 0"),
    (100, 0.3, 1.0, r"cache lambda 1.0: give a number in \[0, 1\)"),
    (100, 0.3, -0.1, r"cache lambda -0.1: give a number in \[0, 1\)"),
])
def test_bad_settings_are_one_clear_line(window, theta, lam, message):
    with pytest.raises(ValueError, match=message):
        CacheSettings(window, theta, lam)
    states = random_states(np.random.default_rng(0), 1, 5, 2, 2)
    with pytest.raises(ValueError, match=message):
        tune_cache(states, windows=[window], thetas=[theta], lambdas=[lam])
