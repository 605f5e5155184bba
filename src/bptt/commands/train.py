"""``bptt train``: train a language model from the command line.

    bptt train                                     # small LSTM on the built-in corpus, ~1 min
    bptt train --data ../shared/data/ptb --preset rnnlm --out runs/ptb

Numbers are parsed here (not by argparse) so a bad value is one clear line, not a usage dump.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..data.tokenizers import TOKENIZERS
from ..models.rnnlm import INIT_SCHEMES
from ..nn.registry import cell_names
from ..train.config import OPTIMIZERS, PRESETS, TrainConfig
from ..train.language_model import train_language_model
from .options import add_procs, number

_TRAIN_NUMBERS = {  # option dest -> (type, lower bound); the model's sizes: the library's check
    "layers": (int, None), "embed": (int, None), "hidden": (int, None),
    "last_hidden": (int, None),
    "batch": (int, 1),
    "bptt": (int, 1), "epochs": (int, 1), "max_steps": (int, 1), "seed": (int, 0),
    "min_freq": (int, 1), "max_size": (int, 2), "log_every": (int, 1),
    "eval_batch": (int, 1), "eval_bptt": (int, 1),
    "dropout": (float, 0.0), "lr": (float, None), "clip": (float, 0.0),
    "lr_decay": (float, 1.0), "max_minutes": (float, None), "decay_after": (int, 1),
    "weight_drop": (float, 0.0), "embed_dropout": (float, 0.0), "ar": (float, 0.0),
    "tar": (float, 0.0),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    _add_train(sub)


def preset_table() -> str:
    """What each preset sets, for ``bptt train --help``."""
    lines = ["presets (an option given on the command line wins):"]
    for name, values in PRESETS.items():
        settings = " ".join(f"--{k.replace('_', '-')}" if v is True else
                            f"--{k.replace('_', '-')} {v}" for k, v in values.items()
                            if v is not False)
        lines.append(f"  {name:<13} {settings}")
    return "\n".join(lines)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a language model (no --data: the built-in corpus, < 1 minute)",
        description="Train a recurrent language model with truncated BPTT. Settings not given "
                    "come from --preset (tiny for the built-in corpus, rnnlm for the PTB, text for "
                    "your own text). Writes "
                    "OUT/best (best validation model), OUT/last (to --resume), OUT/log.jsonl "
                    "and OUT/metrics.json.",
        epilog=preset_table(), formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--data", default=None, metavar="ptb|PATH",
      help="'ptb' (cache/download), a directory with ptb.*.txt or train.txt/valid.txt[/test.txt], "
           "or one UTF-8 text file (split 90/5/5); default: the built-in corpus")
    a("--level", choices=["word", "char"], default=None, help="tokens: words or characters")
    a("--tokenizer", choices=TOKENIZERS, default=None,
      help="how a text file's lines split into words: whitespace (default), janome (Japanese "
           "morphemes; pip install 'bptt[ja]'), or subword pieces learned from the training "
           "split, bpe or unigram (--max-size pieces, default 8000; pip install "
           "'bptt[subword]')")
    a("--preset", default=None, metavar="NAME", help=f"one of {', '.join(PRESETS)}")
    a("--cell", choices=cell_names(), default=None,
      help="recurrent cell: a built-in or a registered one (bptt.cells entry points)")
    for opt, help_ in (("--layers", "recurrent layers"), ("--embed", "word vector size D"),
                       ("--hidden", "hidden size H"),
                       ("--last-hidden", "hidden size of the last layer (default H)"),
                       ("--dropout", "dropout ratio P"),
                       ("--weight-drop", "DropConnect ratio on the recurrent weights Wh "
                                         "(AWD-LSTM; default 0)"),
                       ("--embed-dropout", "ratio of whole words dropped from the embedding "
                                           "(default 0)"),
                       ("--ar", "activation regularisation alpha (default 0)"),
                       ("--tar", "temporal activation regularisation beta (default 0)"),
                       ("--batch", "parallel streams N"), ("--bptt", "time steps T per update"),
                       ("--lr", "learning rate"), ("--clip", "max global gradient norm (0: off)"),
                       ("--lr-decay", "divide lr by this when valid ppl does not improve "
                                      "(default 4; 1: never)"),
                       ("--decay-after", "from the end of epoch N on, divide lr by --lr-decay "
                                         "after every epoch (Zaremba et al.'s schedule)"),
                       ("--epochs", "passes over the training split"),
                       ("--max-steps", "stop after this many updates"),
                       ("--max-minutes", "stop after this much time (a checkpoint is kept)"),
                       ("--seed", "seed of weights and dropout (default 0)"),
                       ("--eval-batch", "streams for perplexity (default 10)"),
                       ("--eval-bptt", "time steps for perplexity (default 35)"),
                       ("--min-freq", "drop rarer tokens from the vocabulary (text data)"),
                       ("--max-size", "cap the vocabulary size (text data; bpe/unigram: the pieces "
                                     "learned)"),
                       ("--log-every", "steps between log.jsonl records (default 100)")):
        kind = _TRAIN_NUMBERS[opt[2:].replace("-", "_")][0]
        a(opt, default=None, metavar="N" if kind is int else "X", help=help_)
    a("--tie", action=argparse.BooleanOptionalAction, default=None,
      help="tie the output weights to the embedding (needs --embed == --hidden)")
    a("--variational", action="store_true", default=None,
      help="one dropout mask per sequence for all time steps")
    a("--init", choices=INIT_SCHEMES, default=None,
      help="initial weights: book (the book's), torch (PyTorch's defaults) or orthogonal "
           "(orthogonal Wh, carry-gate bias 1)")
    a("--variable-bptt", action="store_true", default=None,
      help="AWD-LSTM's window lengths: --bptt (or half of it) plus N(0, 5^2) noise, the lr "
           "scaled by length / --bptt")
    a("--optimizer", choices=OPTIMIZERS, default=None,
      help="ntasgd: SGD that starts averaging the weights when the validation perplexity stops "
           "improving (AWD-LSTM's NT-ASGD)")
    a("--cache", action=argparse.BooleanOptionalAction, default=None,
      help="at the end, the test perplexity also with the continuous cache (Grave et al. "
           "2017), tuned on valid (default: on for --preset cpu-hour; bptt eval --cache "
           "does it for any run)")
    a("--float64", action="store_true", default=None, help="train in float64 (default float32)")
    a("--out", default=None, metavar="DIR", help="output directory (default runs/lm)")
    a("--resume", action="store_true", default=None, help="continue the run in --out exactly")
    a("--overwrite", action="store_true", default=None,
      help="replace a model already trained in --out (otherwise that is an error); the "
           "earlier run is kept aside until the new one has saved a checkpoint")
    a("--force", action="store_true", default=None,
      help="with --resume: continue even though the training data changed")
    a("--plot", default=None, metavar="PNG", help="write train/valid perplexity per epoch")
    a("--quiet", action="store_true", default=None, help="no progress bar or epoch lines")
    add_procs(p)
    p.set_defaults(run=run_train)


def train_config_from_args(args: argparse.Namespace) -> tuple[Any, set[str]]:
    """(TrainConfig, names of the settings given on the command line)."""
    values: dict[str, Any] = {}
    for dest, (kind, lower) in _TRAIN_NUMBERS.items():
        raw = getattr(args, dest, None)
        if raw is not None:
            values[dest] = number(raw, "--" + dest.replace("_", "-"), kind, lower,
                                  positive=dest in ("lr", "max_minutes"))
    for dest in ("data", "level", "tokenizer", "preset", "cell", "init", "tie", "variational",
                 "variable_bptt", "optimizer", "out", "resume", "overwrite", "force", "plot",
                 "quiet", "cache"):
        v = getattr(args, dest, None)
        if v is not None:
            values[dest] = v
    if args.float64:
        values["dtype"] = "float64"
    device = getattr(args, "device", None)
    if device:
        values["device"] = device
    if values.get("preset") is not None and values["preset"] not in PRESETS:
        raise ValueError(f"unknown preset {values['preset']!r}: choose one of "
                         f"{', '.join(PRESETS)}")
    return TrainConfig(**values), set(values)


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "n/a" if v is None else format(v, spec)


def run_train(args: argparse.Namespace) -> int:
    config, explicit = train_config_from_args(args)
    m = train_language_model(config, explicit)
    if m.get("rank"):  # data-parallel: rank 0 reports
        return 130 if m["stopped"] == "interrupted" else 0
    out = m["config"]["out"]
    if m["stopped"] == "interrupted":
        print(f"interrupted at step {m['steps']}: checkpoint saved in {out}/last; continue "
              f"with: bptt train --out {out} --resume", file=sys.stderr)
        return 130
    tps = m["train_tokens_per_sec"]
    print(f"valid ppl {_fmt(m['valid_ppl'])} | test ppl {_fmt(m['test_ppl'])} | "
          f"{_fmt(tps, ',.0f')} tokens/s | {m['epochs']:g} epochs, {m['steps']} steps | "
          f"{m['wall_time_s']:.0f} s ({m['stopped']})")
    if m.get("test_ppl_cache") is not None:
        c = m["cache"]
        print(f"test ppl {m['test_ppl_cache']:.2f} with the continuous cache (window "
              f"{c['window']}, theta {c['theta']:g}, lambda {c['lam']:g}: the best on valid, "
              f"where it gives {c['tuned_on']['perplexity']:.2f})")
    print(f"model: {out}/best   metrics: {out}/metrics.json   try: bptt generate {out}")
    if m["config"].get("plot"):
        print(f"plot: {m['config']['plot']}")
    return 0
