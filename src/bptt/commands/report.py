"""``bptt report``: the page of a trained run of any kind.

    bptt report runs/lm --html lm.html            # curves, and the explainer views on the model
    bptt report runs/date --html date.html        # curves, and the attention of a test source
    bptt report runs/fit-sine-lstm --html f.html --lang ja
"""

from __future__ import annotations

import argparse
import sys

from ..tools.explaining.page import LANGUAGES, report_page


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="the page of a trained run (training curves; a language "
                                      "model's explainer views; a seq2seq model's attention)",
                       description="Write one self-contained HTML page about a trained run of "
                                   "any kind: its training curves from log.jsonl; for a "
                                   "language model, the unrolled graph, the step-through of "
                                   "the backward pass and the gradient connectivity on the "
                                   "trained weights; for an attention seq2seq model, the "
                                   "attention weights on a test source.")
    p.add_argument("run_dir", metavar="RUN", help="a run folder (--out of train, seq2seq, fit)")
    p.add_argument("--html", required=True, metavar="PAGE.html", help="the page to write")
    p.add_argument("--lang", choices=LANGUAGES, default="en",
                   help="the page's language (a button on the page switches)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = report_page(args.run_dir, lang=args.lang).save(args.html)
    print(f"wrote {path}: open it in a browser (it needs no network)", file=sys.stderr)
    return 0
