"""``bptt fit TASK``: train a sequence model on a built-in task or a CSV series and report.

    bptt fit sine --cell lstm --epochs 20 --plot sine.png
    bptt fit adding --seq-len 100 --cell gru --epochs 8
    bptt fit waveforms --cell lstm
    bptt fit csv:data.csv --column temp --window 30 --horizon 1 --plot forecast.png

Prints the training loss and the validation metric after every epoch (and progress inside
each on stderr), then the test metrics next to the task's trivial baselines, and writes under
``--out`` the model (``model/``), checkpoints (``last/`` to ``--resume``, ``best/``),
``log.jsonl`` and ``metrics.json`` (configuration, history, test metrics, baselines). Ctrl-C
saves a checkpoint. The work is :func:`bptt.train.fit.fit_task`; this module parses and
reports.
"""

from __future__ import annotations

import argparse

from ..nn.registry import cell_names
from ..optim import OPTIMIZERS
from ..train.fit import TASK_HELP, FitConfig, fit_task
from .options import add_procs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="train a sequence model on a task or a CSV series",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       argument_default=argparse.SUPPRESS)  # unset options: FitConfig's
    p.add_argument("task", help=TASK_HELP)
    p.add_argument("--cell", choices=cell_names(),
                   help="recurrent cell: a built-in or a registered one")
    p.add_argument("--hidden", type=int, help="hidden size H (default 32)")
    p.add_argument("--layers", type=int, help="stacked recurrent layers")
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--dropout", type=float, help="dropout between layers")
    p.add_argument("--seq-len", type=int,
                   help="sequence length T (sine: window; copy: the pause between input and "
                        "answer)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch", type=int, help="batch size")
    p.add_argument("--lr", type=float, help="learning rate (default 0.01)")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS))
    p.add_argument("--clip", type=float, help="gradient-norm clipping (0: off)")
    p.add_argument("--patience", type=int,
                   help="early stopping after N epochs without a better validation loss")
    p.add_argument("--seed", type=int)
    p.add_argument("--n-train", type=int, help="training sequences (generated "
                                                             "tasks)")
    p.add_argument("--classes", type=int, help="waveforms: 2-4 classes")
    p.add_argument("--column",
                   help="csv: column name(s) or 0-based index(es), comma-separated")
    p.add_argument("--window", type=int, help="csv/sine: input window (T)")
    p.add_argument("--horizon", type=int, help="csv/sine: steps ahead to predict")
    p.add_argument("--plot", metavar="PATH",
                   help="PNG: the recursive forecast (sine, csv) or the loss curves")
    p.add_argument("--out", metavar="DIR",
                   help="where model/, last/, best/, metrics.json and log.jsonl go (default "
                        "runs/fit-TASK-CELL)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out exactly (its settings; --epochs may grow)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run already in --out (kept aside until the new one has "
                        "saved a checkpoint)")
    p.add_argument("--max-steps", type=int, help="stop after this many updates")
    p.add_argument("--quiet", action="store_true", help="no progress inside the epochs")
    add_procs(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    given = vars(args)
    m = fit_task(FitConfig.from_dict(given), explicit=set(given))
    return 130 if m["stopped"] == "interrupted" else 0
