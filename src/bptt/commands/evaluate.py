"""``bptt eval``: the perplexity of a trained language model.

    bptt eval runs/ptb --split test
"""

from __future__ import annotations

import argparse
import json

from ..train.language_model import evaluate
from .options import number


def add_parser(sub: argparse._SubParsersAction) -> None:
    _add_eval(sub)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="perplexity of a trained language model",
                       description="Perplexity of the best model in DIR (a `bptt train --out` "
                                   "directory or a checkpoint directory) on a split.")
    p.add_argument("path", metavar="DIR")
    p.add_argument("--data", default=None, metavar="ptb|PATH",
                   help="default: the data the model was trained on")
    p.add_argument("--split", choices=["train", "valid", "test", "all"], default="test",
                   help="default test; 'all': every token (e.g. of another text file)")
    p.add_argument("--batch", default=None, metavar="N", help="streams (default: the run's)")
    p.add_argument("--bptt", default=None, metavar="T", help="chunk length (default: the run's)")
    p.add_argument("--book", action="store_true",
                   help="the book's eval_perplexity: whole N x T windows only, each stream's "
                        "last tokens unscored (its Rnnlm.pkl: 136.08; default, every token: "
                        "135.90)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    r = evaluate(args.path, args.data, args.split,
                 batch_size=number(args.batch, "--batch", int, 1),
                 time_size=number(args.bptt, "--bptt", int, 1), book=args.book,
                 progress=not args.json)
    if args.json:
        print(json.dumps(r))
    else:
        how = ", the book's evaluation" if args.book else ""
        print(f"{r['split']} perplexity {r['perplexity']:.4f} ({r['scored_tokens']:,} of "
              f"{r['tokens']:,} tokens of {r['data']} scored{how}, "
              f"{100 * r['unk_fraction']:.1f}% <unk>, model {r['checkpoint']})")
    return 0
