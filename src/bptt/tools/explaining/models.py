"""The small models ``bptt explain NAME`` builds, with a batch to run them on.

Sizes default to N=2, T=3, V=11, D=4, H=5 (two-layer-net: N=2, D=4, H=5, C=3): all different,
so every number in a shape names exactly one letter.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...backend import seed as seed_backend
from ...backend import to_device
from ...models import rnnlm
from ...models.mlp import TwoLayerNet
from ...models.seq2seq import AttentionSeq2seq, PeekySeq2seq, Seq2seq
from ...nn.registry import cell_names
from ...train.lm_checkpoint import load_language_model

BOOK_MODELS = ("simple-rnnlm", "rnnlm", "better-rnnlm")
SEQ2SEQ_MODELS = {"seq2seq": Seq2seq, "peeky-seq2seq": PeekySeq2seq,
                  "attention-seq2seq": AttentionSeq2seq}


def model_names() -> tuple[str, ...]:
    """The book's language models, a one-layer language model per registered cell, and the
    book's two-layer net."""
    return (*BOOK_MODELS, *cell_names(), *SEQ2SEQ_MODELS, "two-layer-net")


def _dims(defaults: dict[str, int], N: int | None, T: int | None,
          dims: Mapping[str, int] | None) -> dict[str, int]:
    d = dict(defaults)
    for k, v in (dims or {}).items():
        if k not in d:
            raise ValueError(f"unknown size {k!r}: this model's sizes are {', '.join(d)}")
        d[k] = int(v)
    if N is not None:
        d["N"] = int(N)
    if T is not None and "T" in d:
        d["T"] = int(T)
    for k, v in d.items():
        if v < 1:
            raise ValueError(f"size {k} must be a positive integer, got {v}")
        most = LARGEST.get(k, LARGEST["*"])
        if v > most:
            raise ValueError(f"size {k} = {v:,} is more than explain shows (at most {most:,}: "
                             f"it records every array of every step); use a smaller {k}")
    return d


# explain keeps every array of every step: sizes a page can show and memory can hold
LARGEST = {"N": 1000, "T": 1000, "*": 10_000}


def _lm_batch(d: Mapping[str, int], seed: int) -> tuple[Any, Any]:
    g = np.random.default_rng(seed)
    xs = g.integers(0, d["V"], size=(d["N"], d["T"]))  # (N, T) word ids
    ts = g.integers(0, d["V"], size=(d["N"], d["T"]))  # (N, T) next-word ids
    return to_device(xs), to_device(ts)


def build(name: str, N: int | None = None, T: int | None = None,
          dims: Mapping[str, int] | None = None, seed: int = 0,
          text: str | None = None) -> tuple[Any, tuple, dict]:
    """(model, batch, dims) for a model name or a checkpoint directory.

    ``text`` (checkpoints only): explain the model on this sentence (xs = its words but the
    last, ts = its words but the first, N = 1) instead of a random batch.
    """
    seed_backend(seed)
    if name not in model_names():
        path = Path(name)
        if path.is_dir():
            return _from_checkpoint(path, N, T, dims, seed, text)
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(model_names())} "
                         f"or give a checkpoint directory (with config.json and model.npz)")
    if text is not None:
        raise ValueError("--text needs a checkpoint directory (its vocabulary reads the text); "
                         f"{name!r} is an untrained built-in model")
    if name == "two-layer-net":
        d = _dims({"N": 2, "D": 4, "H": 5, "C": 3}, N, None, dims)
        net = TwoLayerNet(d["D"], d["H"], d["C"], weight_init_std=0.5,
                          generator=np.random.default_rng(seed))
        g = np.random.default_rng(seed + 1)
        x = to_device(g.standard_normal((d["N"], d["D"])).astype(net.params["W1"].dtype))
        t = to_device(g.integers(0, d["C"], size=d["N"]))
        return net, (x, t), d
    d = _dims(dict(N=2, T=3, V=11, D=4, H=5), N, T, dims)
    V, D, H = d["V"], d["D"], d["H"]
    if name in SEQ2SEQ_MODELS:  # source and decoder input both T long, one vocabulary
        g = np.random.default_rng(seed)
        xs = to_device(g.integers(0, V, size=(d["N"], d["T"])))
        ts = to_device(g.integers(0, V, size=(d["N"], d["T"] + 1)))
        return SEQ2SEQ_MODELS[name](V, D, H, seed=seed), (xs, ts), d
    if name == "simple-rnnlm":
        model = rnnlm.SimpleRnnlm(V, D, H, seed=seed)
    elif name == "rnnlm":
        model = rnnlm.Rnnlm(V, D, H, seed=seed)
    elif name == "better-rnnlm":
        d["D"] = H  # weight tying needs D == H
        model = rnnlm.BetterRnnlm(V, H, H, seed=seed)
    else:
        model = rnnlm.LanguageModel(V, D, H, cell=name, seed=seed)
    return model, _lm_batch(d, seed), d


def _from_checkpoint(path: Path, N: int | None, T: int | None,
                     dims: Mapping[str, int] | None, seed: int,
                     text: str | None = None) -> tuple[Any, tuple, dict]:
    """A trained model from ``bptt train --out DIR`` (or DIR/best), on a random batch of ids
    or on ``text``."""
    ck = load_language_model(path)
    model = ck.model
    cfg = model.config
    d = _dims(dict(N=2, T=5, V=int(cfg["vocab_size"]), D=int(cfg["embed_size"]),
                   H=int(cfg["hidden_size"])), N, T, dims)
    model.reset_state()
    if text is None:
        return model, _lm_batch(d, seed), d
    ids = np.asarray(ck.vocab.encode(text), dtype=np.int64)
    if ids.shape[0] < 2:
        raise ValueError(f"--text needs at least 2 tokens (inputs and next-token targets), "
                         f"got {ids.shape[0]}")
    d["N"], d["T"] = 1, int(ids.shape[0] - 1)
    return model, (to_device(ids[None, :-1]), to_device(ids[None, 1:])), d
