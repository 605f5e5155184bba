"""``bptt import-book``: the book's trained ``.pkl`` weights as a bptt checkpoint.

    bptt import-book ch06/Rnnlm.pkl --model rnnlm --data ../shared/data/ptb --out runs/book
    bptt eval runs/book            # the book's eval_perplexity on the test split

The file is read with an unpickler that accepts only NumPy arrays (see
:mod:`bptt.tools.exchange.book_import`); anything else is refused before it can run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..tools.exchange.book_import import BOOK_MODELS, import_book


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-book", help="import the book's trained .pkl weights (Rnnlm, "
                                           "BetterRnnlm, AttentionSeq2seq) as a checkpoint",
                       description="Read a parameter file written by the book's save_params "
                                   "(a pickled list of float16 arrays; only NumPy arrays are "
                                   "accepted) and write a bptt checkpoint with the corpus's "
                                   "vocabulary in the book's order.")
    p.add_argument("file", metavar="FILE", help="the book's .pkl (e.g. ch06/Rnnlm.pkl)")
    p.add_argument("--model", required=True, choices=BOOK_MODELS,
                   help="the book's class that wrote FILE")
    p.add_argument("--data", default=None, metavar="ptb|DIR|FILE",
                   help="the corpus the book trained on (rnnlm, better-rnnlm: default ptb, "
                        "cached or downloaded; attention-seq2seq: the book's dataset/date.txt, "
                        "required)")
    p.add_argument("--out", required=True, metavar="DIR", help="the checkpoint to write")
    p.set_defaults(run=run_import)


def run_import(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if (out / "best").exists():
        raise ValueError(f"{out} already holds a model; choose another --out")
    if args.data is None and args.model == "attention-seq2seq":
        raise ValueError("--model attention-seq2seq needs the pair file the book trained it "
                         "on: give --data PATH/dataset/date.txt (from the book's repository)")
    given = args.data or "ptb"
    data = str(Path(given).resolve()) if Path(given).exists() else given
    done = import_book(args.file, args.model, out, data)
    m = done["model"]
    print(f"imported the book's {args.model} from {args.file}: {m} ({done['dtype_in_file']} in "
          f"the file, now float32) with the vocabulary of {given} in the book's order "
          f"-> {out}/best")
    if args.model == "attention-seq2seq":
        print(f"try: bptt seq2seq eval {out}   bptt seq2seq translate {out} "
              f"\"september 27, 1994\"")
    else:
        print(f"try: bptt eval {out}   bptt generate {out} --start \"the\"")
    return 0
