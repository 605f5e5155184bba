"""``bptt plot gates|states``: LSTM gate heatmaps and hidden-state trajectories as PNG.

    bptt plot gates  runs/ptb --start "the stock" --length 15 --out gates.png
    bptt plot states runs/ptb --text "the stock fell" --text "the market rose" --out states.png

MODEL is a checkpoint directory (``bptt train --out DIR``; its vocabulary turns text into ids)
or a built-in model name (untrained, ids shown as numbers: useful to try the command).
Training curves: ``bptt train --plot PNG``. Gradient flow: ``bptt gradflow --plot PNG``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..tools.explain_models import build
from ..tools.plots import (
    gate_activations,
    hidden_states,
    plot_gates,
    plot_states,
    require_matplotlib,
)
from ..train.checkpoint import load_checkpoint
from ..train.generate import sample_ids


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="draw LSTM gates over a sentence, or hidden-state paths",
                       description=__doc__.split("\n\n")[0])
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    g = kinds.add_parser("gates", help="heatmap of each gate (units x words) over a sentence")
    _common(g)
    g.add_argument("--text", default=None, help="the sentence (default: generated)")
    g.add_argument("--start", default=None, help="first word(s) of a generated sentence")
    g.add_argument("--length", type=int, default=15, help="words to generate (default 15)")
    g.add_argument("--units", type=int, default=24, help="hidden units drawn (default 24)")
    g.set_defaults(run=run_gates)
    s = kinds.add_parser("states", help="hidden state h_t of sentences, PCA to 2-D")
    _common(s)
    s.add_argument("--text", action="append", default=[],
                   help="a sentence (repeat for several; default: two generated ones)")
    s.add_argument("--length", type=int, default=12, help="words per generated sentence")
    s.set_defaults(run=run_states)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="checkpoint directory or built-in model name")
    p.add_argument("--out", "--plot", dest="out", required=True, metavar="PNG",
                   help="the PNG to write")
    p.add_argument("--layer", type=int, default=-1,
                   help="which recurrent layer (default -1, the last)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated text")


class _Words:
    """Text <-> ids for a checkpoint (its vocabulary) or a built-in model (ids as numbers)."""

    def __init__(self, vocab: Any, V: int) -> None:
        self.vocab, self.V = vocab, V

    def encode(self, text: str) -> list[int]:
        if self.vocab is not None:
            ids = [int(i) for i in self.vocab.encode(text)]
        else:
            try:
                ids = [int(w) for w in text.split()]
            except ValueError:
                raise ValueError("a built-in (untrained) model has no vocabulary: give the text "
                                 "as word ids, e.g. --text '1 5 2', or use a checkpoint") from None
        if not ids:
            raise ValueError("the text is empty")
        bad = [i for i in ids if not 0 <= i < self.V]
        if bad:
            raise ValueError(f"word id {bad[0]} is outside the vocabulary [0, {self.V - 1}]")
        return ids

    def words(self, ids: list[int]) -> list[str]:
        return self.vocab.tokens(ids) if self.vocab is not None else [str(i) for i in ids]


def _load(name: str) -> tuple[Any, _Words]:
    if Path(name).is_dir():
        ck = load_checkpoint(name)
        return ck.model, _Words(ck.vocab, ck.model.vocab_size)
    model, _, d = build(name)
    if not hasattr(model, "predict"):
        raise ValueError(f"{name} is not a language model: choose a checkpoint directory or "
                         f"rnnlm, lstm, gru, rnn, simple-rnnlm, better-rnnlm")
    return model, _Words(None, d["V"])


def _sentence(model: Any, words: _Words, text: str | None, start: str | None, length: int,
              seed: int) -> list[int]:
    if text:
        return words.encode(text)
    first = words.encode(start) if start else [int(np.random.default_rng(seed).integers(
        words.V))]
    unk = getattr(words.vocab, "unk_id", None)
    skip = [unk] if unk is not None else []
    return first + sample_ids(model, first, length, seed=seed, skip_ids=skip)


def run_gates(args: argparse.Namespace) -> int:
    require_matplotlib()
    model, words = _load(args.model)
    ids = _sentence(model, words, args.text, args.start, args.length, args.seed)
    acts = gate_activations(model, ids, args.layer)
    cell = "LSTM" if "f" in acts else ("GRU" if "z" in acts else "RNN")
    plot_gates(acts, words.words(ids), args.out, units=args.units,
               title=f"{cell} activations at each word ({Path(args.model).name}, "
                     f"layer {args.layer})")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def run_states(args: argparse.Namespace) -> int:
    require_matplotlib()
    model, words = _load(args.model)
    texts = args.text or [None, None]
    paths = []
    for k, text in enumerate(texts):
        ids = _sentence(model, words, text, None, args.length, args.seed + k)
        paths.append((words.words(ids), hidden_states(model, ids, args.layer)))
    plot_states(paths, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
