"""``bptt generate``: sample text from a trained language model, written as it is sampled.

    bptt generate runs/ptb --start "the company" --length 30 --seed 1

Each token is written (and flushed) as soon as it is drawn; Ctrl-C stops at once and keeps
what was written.
"""

from __future__ import annotations

import argparse
import sys

from ..train.generate import tokens_from_checkpoint
from .options import number


def add_parser(sub: argparse._SubParsersAction) -> None:
    _add_generate(sub)


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="sample text from a trained language model",
                       description="Sample text from the best model in DIR.")
    p.add_argument("path", metavar="DIR")
    p.add_argument("--start", default=None, metavar="TEXT", help="text to continue")
    p.add_argument("--length", default="100", metavar="N", help="tokens to generate (100)")
    p.add_argument("--temperature", default="1.0", metavar="X", help="> 0; lower is safer")
    p.add_argument("--top-k", default=None, metavar="K", help="sample among the K best")
    p.add_argument("--seed", default=None, metavar="N", help="make the sample reproducible")
    p.add_argument("--greedy", action="store_true", help="always the most likely token")
    p.add_argument("--skip", action="append", default=None, metavar="TOKEN",
                   help="never generate TOKEN (repeatable; default <unk>)")
    p.set_defaults(run=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    pieces = tokens_from_checkpoint(
        args.path, start=args.start, length=number(args.length, "--length", int, 0),
        temperature=number(args.temperature, "--temperature", float, positive=True),
        top_k=number(args.top_k, "--top-k", int, 1), seed=number(args.seed, "--seed", int, 0),
        skip=args.skip, greedy=args.greedy)
    try:
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
    except KeyboardInterrupt:
        print(flush=True)
        print("bptt generate: interrupted; the text written so far stays", file=sys.stderr)
        return 130
    print(flush=True)
    return 0
