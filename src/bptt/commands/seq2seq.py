"""``bptt seq2seq train|eval|translate``: sequence to sequence from the command line.

    bptt seq2seq train --data addition --model peeky --reverse --out runs/add
    bptt seq2seq train --data date --model attention --hidden 256 --epochs 3 --out runs/date
    bptt seq2seq eval runs/date --beam 3
    bptt seq2seq translate runs/date "september 27, 1994" "2/10/93" --beam 3

The work is :mod:`bptt.train.seq2seq`; this module parses and reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from ..data.corpus import read_text
from ..models.seq2seq import KINDS
from ..nn.attention import SCORES
from ..nn.registry import cell_names
from ..optim import OPTIMIZERS
from ..train.seq2seq import Seq2seqConfig, evaluate_seq2seq, train_seq2seq, translate
from .options import add_procs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("seq2seq", help="encoder-decoder models: train, eval, translate",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    _add_train(verbs)
    e = verbs.add_parser("eval", help="accuracy of a trained model on its test pairs")
    e.add_argument("path", metavar="RUN", help="the --out folder of a training (or a checkpoint)")
    e.add_argument("--data", default=None, help="score on all pairs of this file instead")
    e.add_argument("--beam", type=int, default=1, help="beam width (1: greedy)")
    e.add_argument("--limit", type=int, default=None, help="score the first N pairs only")
    e.set_defaults(run=run_eval)
    t = verbs.add_parser("translate", help="answer source texts with a trained model")
    t.add_argument("path", metavar="RUN", help="the --out folder of a training")
    t.add_argument("texts", nargs="*", metavar="TEXT", help="source texts (or --file)")
    t.add_argument("--file", default=None, help="a file of source texts, one per line")
    t.add_argument("--beam", type=int, default=1, help="beam width (1: greedy)")
    t.set_defaults(run=run_translate)


def _add_train(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("train", help="train on addition, date or a pair file",
                         argument_default=argparse.SUPPRESS)  # unset: Seq2seqConfig's
    p.add_argument("--data", help="addition | date (generated offline) | a pair file: the "
                                  "book's `question_answer` lines or source<TAB>target")
    p.add_argument("--model", choices=KINDS, help="plain (default), peeky or attention")
    p.add_argument("--cell", choices=cell_names(), help="recurrent cell (default lstm)")
    p.add_argument("--reverse", action="store_true", help="feed the sources backwards")
    p.add_argument("--level", choices=["char", "word"], help="tab-separated files: tokens")
    p.add_argument("--score", choices=SCORES, help="attention score (default dot)")
    p.add_argument("--bidirectional", action="store_true", help="bidirectional encoder")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), help="default adam")
    for name, kind, text in (("embed", int, "D (default 16)"), ("hidden", int, "H (default 128)"),
                             ("layers", int, "recurrent layers per side"),
                             ("batch", int, "pairs per step (default 128)"),
                             ("epochs", int, "default 25"), ("lr", float, "default 0.001"),
                             ("clip", float, "max gradient norm (default 5; 0: off)"),
                             ("seed", int, "weights and batch order"),
                             ("pairs", int, "use (generate) this many pairs"),
                             ("eval-size", int, "test pairs decoded after each epoch"),
                             ("max-steps", int, "stop after this many updates"),
                             ("max-minutes", float, "stop after this much time")):
        p.add_argument(f"--{name}", type=kind, help=text)
    p.add_argument("--float64", dest="dtype", action="store_const", const="float64")
    p.add_argument("--out", metavar="DIR", help="default runs/seq2seq")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run in --out (kept aside until the new one has saved a "
                        "checkpoint)")
    p.add_argument("--force", action="store_true",
                   help="with --resume: continue even though the training pairs changed")
    p.add_argument("--quiet", action="store_true", help="no progress or epoch lines")
    add_procs(p)
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    names = {f.name for f in fields(Seq2seqConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    m = train_seq2seq(Seq2seqConfig(**given), explicit=set(given))
    if m.get("rank"):  # data-parallel: rank 0 reports
        return 130 if m["stopped"] == "interrupted" else 0
    if m["stopped"] == "interrupted":
        print(f"interrupted at step {m['steps']}: continue with bptt seq2seq train --out "
              f"{given.get('out', 'runs/seq2seq')} --resume", file=sys.stderr)
        return 130
    acc = m.get("test_acc")
    print(f"test accuracy {100 * acc:.2f} % (exact match), characters "
          f"{100 * m['test_char_acc']:.2f} %" if acc is not None else "no evaluation")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    r = evaluate_seq2seq(args.path, args.data, beam=args.beam, limit=args.limit)
    print(json.dumps(r, indent=1))
    return 0


def run_translate(args: argparse.Namespace) -> int:
    texts = list(args.texts)
    if args.file:
        texts += [ln for ln in read_text(args.file).splitlines() if ln.strip()]
    if not texts:
        raise ValueError("nothing to translate: give TEXT arguments or --file")
    for text, (answer, _) in zip(texts, translate(args.path, texts, beam=args.beam),
                                 strict=True):
        print(f"{text}\t{answer}")
    return 0
