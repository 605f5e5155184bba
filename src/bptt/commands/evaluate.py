"""``bptt eval``: the perplexity of a trained language model.

    bptt eval runs/ptb --split test
    bptt eval runs/ptb --cache        # also with the continuous cache, tuned on valid
"""

from __future__ import annotations

import argparse
import json

from ..train.language_model import evaluate
from ..train.neural_cache import CacheSettings
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
    p.add_argument("--cache", action="store_true",
                   help="also the perplexity with the continuous cache (Grave et al. 2017: the "
                        "model's recent hidden states recall the words that followed them), "
                        "its window, theta and lambda the best on the valid split")
    p.add_argument("--cache-window", default=None, metavar="W",
                   help="the cache's window in positions (with --cache-theta and "
                        "--cache-lambda: these instead of tuning)")
    p.add_argument("--cache-theta", default=None, metavar="THETA",
                   help="how sharply the cache matches hidden states")
    p.add_argument("--cache-lambda", default=None, metavar="LAMBDA",
                   help="the cache's share of the probability, in [0, 1)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(run=run_eval)


def cache_option(args: argparse.Namespace) -> CacheSettings | bool:
    """False (no cache), True (tune on valid) or the settings the three options give."""
    given = [args.cache_window, args.cache_theta, args.cache_lambda]
    if not any(v is not None for v in given):
        return bool(args.cache)
    if any(v is None for v in given):
        raise ValueError("give all three of --cache-window, --cache-theta and --cache-lambda "
                         "(or --cache alone to tune them on the valid split)")
    return CacheSettings(number(args.cache_window, "--cache-window", int, 1),
                         number(args.cache_theta, "--cache-theta", float, positive=True),
                         number(args.cache_lambda, "--cache-lambda", float, 0))


def run_eval(args: argparse.Namespace) -> int:
    r = evaluate(args.path, args.data, args.split,
                 batch_size=number(args.batch, "--batch", int, 1),
                 time_size=number(args.bptt, "--bptt", int, 1), book=args.book,
                 progress=not args.json, cache=cache_option(args))
    if args.json:
        print(json.dumps(r))
    else:
        how = ", the book's evaluation" if args.book else ""
        print(f"{r['split']} perplexity {r['perplexity']:.4f} ({r['scored_tokens']:,} of "
              f"{r['tokens']:,} tokens of {r['data']} scored{how}, "
              f"{100 * r['unk_fraction']:.1f}% <unk>, model {r['checkpoint']})")
        if "cache" in r:
            c, tuned = r["cache"], r["cache"]["tuned_on"]
            how = (f"the best on valid, where it gives {tuned['perplexity']:.2f}" if tuned
                   else "as given")
            print(f"{r['split']} perplexity {r['cache_perplexity']:.4f} with the continuous "
                  f"cache (window {c['window']}, theta {c['theta']:g}, lambda {c['lam']:g}: "
                  f"{how})")
    return 0
