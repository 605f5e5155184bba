"""The continuous cache (Grave, Joulin & Usunier, ICLR 2017): a trained language model's own
recent hidden states as a memory of the words that came after them. No training and no new
parameters; at evaluation each position mixes the model's softmax with the cache:

    p(w | t)       = (1 - lam) p_vocab(w | h_t) + lam p_cache(w | t)
    p_cache(w | t) = sum_{i=t-W}^{t-1} [x_{i+1} = w] exp(theta h_t . h_i)
                     / sum_{i=t-W}^{t-1} exp(theta h_t . h_i)

h_t (H,): the last recurrent layer's output at position t (the affine layer's input), x_{i+1}:
the word that followed position i (its target), W: the window, theta: how sharply the cache
matches states, lam: how much of the cache. A word seen in the last W positions, after a state
like the current one, gets probability from the cache whatever the softmax gives it: names,
numbers and topic words that repeat within a document. Where the window is empty (a stream's
first position) p = p_vocab.

The split is read as :func:`bptt.train.language_model.perplexity` reads it (N contiguous
streams, chunks of T, from a zero state) and every stream has its own cache; with ``lam = 0``
the result is that perplexity. W, theta and lam are chosen on the validation split
(:func:`tune_cache`, a grid) and then applied to the test split, as in the paper.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..backend import array_module, to_numpy
from ..data.batching import eval_batches
from ..models.rnnlm import LanguageModel
from .trainer import perplexity_of

# The grid searched on the validation split (the paper's PTB values lie inside it).
WINDOWS = (100, 500, 2000)
THETAS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
LAMBDAS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
BLOCK = 128  # positions scored together: (N, BLOCK, BLOCK + W) scores at a time


@dataclass(frozen=True)
class CacheSettings:
    """The cache's window W (positions), theta and lam (the module docstring)."""

    window: int
    theta: float
    lam: float

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"cache window {self.window}: give 1 position or more")
        if not self.theta > 0:
            raise ValueError(f"cache theta {self.theta}: give a number above 0")
        if not 0 <= self.lam < 1:
            raise ValueError(f"cache lambda {self.lam}: give a number in [0, 1)")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StreamStates:
    """What the cache needs from one pass of the model over a split, per stream.

    hidden (N, S, H): h_t.  targets (N, S): x_{t+1}.
    log_p_vocab (N, S): log p_vocab(x_{t+1} | h_t), float64.
    """

    hidden: np.ndarray
    targets: np.ndarray
    log_p_vocab: np.ndarray

    @property
    def tokens(self) -> int:
        return int(self.targets.size)


def stream_states(model: LanguageModel, ids: Any, batch_size: int = 10,
                  time_size: int = 35) -> StreamStates:
    """Run ``model`` (dropout off) over ``ids`` read as :func:`eval_batches` reads them and keep
    h_t and log p_vocab(target) at every position; the state is reset before and after."""
    model.eval()
    model.reset_state()
    hidden, targets, log_p = [], [], []
    for xs, ts in eval_batches(ids, batch_size, time_size):
        xp = array_module(model.affine.params[1])
        out = xp.asarray(xs)
        for layer in model.layers:
            if layer is model.affine:
                hidden.append(to_numpy(out))  # (N, t, H)
            out = layer.forward(out)
        scores = out.astype(xp.float64)  # (N, t, V)
        top = scores.max(axis=-1, keepdims=True)
        log_z = top[..., 0] + xp.log(xp.exp(scores - top).sum(axis=-1))  # (N, t)
        picked = xp.take_along_axis(scores, xp.asarray(ts)[..., None], axis=-1)[..., 0]
        log_p.append(to_numpy(picked - log_z))
        targets.append(np.asarray(ts))
    model.reset_state()
    return StreamStates(np.concatenate(hidden, axis=1), np.concatenate(targets, axis=1),
                        np.concatenate(log_p, axis=1))


def cache_probabilities(states: StreamStates, window: int,
                        thetas: Iterable[float]) -> dict[float, np.ndarray]:
    """p_cache(x_{t+1} | t) (N, S) for each theta, one window W; NaN where the window is empty
    (t = 0). The dot products h_t . h_i are computed once for all thetas, in h's dtype (float32
    for a float32 model: 1e-7 of p, where the mixture's log is float64)."""
    thetas = tuple(float(th) for th in thetas)
    H, ts = states.hidden, states.targets
    N, S = ts.shape
    found = {th: np.full((N, S), np.nan) for th in thetas}
    for s0 in range(0, S, BLOCK):
        s1 = min(S, s0 + BLOCK)
        k0, k1 = max(0, s0 - window), s1 - 1  # keys i in [k0, k1): every i some t may use
        if k1 <= k0:
            continue
        dots = H[:, s0:s1] @ H[:, k0:k1].transpose(0, 2, 1)  # (N, b, K), in h's dtype
        t = np.arange(s0, s1)[:, None]
        i = np.arange(k0, k1)[None, :]
        in_window = (i < t) & (i >= t - window)  # (b, K)
        hit = ts[:, k0:k1][:, None, :] == ts[:, s0:s1][:, :, None]  # (N, b, K): x_{i+1} = x_{t+1}
        usable = in_window.any(axis=1)  # (b,): False only at t = 0
        masked = np.where(in_window, dots, -np.inf)
        top = masked.max(axis=-1, keepdims=True)
        top[:, ~usable] = 0.0
        for th in thetas:
            e = np.exp(th * (masked - top))  # 0 outside the window
            p = (e * hit).sum(axis=-1) / np.maximum(e.sum(axis=-1), np.finfo(e.dtype).tiny)
            found[th][:, s0:s1][:, usable] = p[:, usable]
    return found


def mixed_log_likelihood(log_p_vocab: np.ndarray, p_cache: np.ndarray, lam: float) -> float:
    """Mean log p(x_{t+1} | t) of the mixture; p_vocab alone where p_cache is NaN."""
    p_vocab = np.exp(log_p_vocab)
    mixed = np.where(np.isnan(p_cache), p_vocab, (1 - lam) * p_vocab + lam * np.nan_to_num(p_cache))
    return float(np.log(mixed).mean())


def cache_perplexity(states: StreamStates, settings: CacheSettings) -> float:
    """Perplexity of the split under the cache mixture with ``settings``."""
    p_cache = cache_probabilities(states, settings.window, [settings.theta])[settings.theta]
    return perplexity_of(-mixed_log_likelihood(states.log_p_vocab, p_cache, settings.lam))


def tune_cache(states: StreamStates, windows: Iterable[int] = WINDOWS,
               thetas: Iterable[float] = THETAS,
               lambdas: Iterable[float] = LAMBDAS) -> tuple[CacheSettings, float,
                                                            list[dict[str, float]]]:
    """The grid point with the lowest perplexity on ``states`` (the validation split):
    (settings, that perplexity, every point as {window, theta, lam, perplexity})."""
    windows, thetas, lambdas = tuple(windows), tuple(thetas), tuple(lambdas)
    for w, th, lam in itertools.product(windows, thetas, lambdas):
        CacheSettings(w, th, lam)  # one clear line for a bad grid value
    table = []
    for w in windows:
        for th, p_cache in cache_probabilities(states, w, thetas).items():
            for lam in lambdas:
                ppl = perplexity_of(-mixed_log_likelihood(states.log_p_vocab, p_cache, lam))
                table.append({"window": w, "theta": th, "lam": lam, "perplexity": ppl})
    best = min(table, key=lambda row: row["perplexity"])
    return (CacheSettings(int(best["window"]), best["theta"], best["lam"]), best["perplexity"],
            table)
