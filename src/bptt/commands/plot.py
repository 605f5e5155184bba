"""``bptt plot gates|states|attention``: LSTM gate heatmaps, hidden-state trajectories and
seq2seq attention weights as PNG.

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

from ..tools.explaining.plots import (
    gate_activations,
    hidden_states,
    load_text_model,
    plot_attention,
    plot_gates,
    plot_states,
    recurrent_cell,
    recurrent_layer_count,
    require_matplotlib,
    sentence_ids,
)
from ..train.seq2seq import attention_map


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
    a = kinds.add_parser("attention", help="attention weights of a seq2seq model answering "
                                           "a text (source x output heatmap)")
    a.add_argument("model", metavar="RUN", help="the --out folder of bptt seq2seq train")
    a.add_argument("text", help="the source text")
    a.add_argument("--out", "--plot", dest="out", required=True, metavar="PNG")
    a.set_defaults(run=run_attention)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="checkpoint directory or built-in model name")
    p.add_argument("--out", "--plot", dest="out", required=True, metavar="PNG",
                   help="the PNG to write")
    p.add_argument("--layer", type=int, default=-1,
                   help="which recurrent layer (default -1, the last)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated text")


def run_gates(args: argparse.Namespace) -> int:
    require_matplotlib()
    model, words = load_text_model(args.model)
    ids = sentence_ids(model, words, args.text, args.start, args.length, args.seed)
    acts = gate_activations(model, ids, args.layer)
    cell = recurrent_cell(model, args.layer).step.__name__
    n = recurrent_layer_count(model)
    plot_gates(acts, words.words(ids), args.out, units=args.units,
               title=f"{cell} activations at each word ({Path(args.model).name}, "
                     f"recurrent layer {args.layer % n + 1} of {n})")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def run_states(args: argparse.Namespace) -> int:
    require_matplotlib()
    model, words = load_text_model(args.model)
    texts = args.text or [None, None]
    paths = []
    for k, text in enumerate(texts):
        ids = sentence_ids(model, words, text, None, args.length, args.seed + k)
        paths.append((words.words(ids), hidden_states(model, ids, args.layer)))
    plot_states(paths, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def run_attention(args: argparse.Namespace) -> int:
    require_matplotlib()
    source, output, weights = attention_map(args.model, args.text)
    answer = "".join(output) if len(max(output, key=len, default="")) <= 1 else " ".join(output)
    plot_attention(weights, source, output, args.out,
                   title=f"{args.text.strip()!r} -> {answer.strip()!r}")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
