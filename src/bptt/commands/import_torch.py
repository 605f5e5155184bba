"""``bptt import-torch``: a language model from a PyTorch state_dict (the inverse of
``bptt export --torch``).

    bptt import-torch model.pt --data ../shared/data/ptb --tie --out runs/from-torch

The .pt file is read with ``torch.load(..., weights_only=True)``: tensors only, no pickled
classes. Needs the ``torch`` package.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from ..data.corpus import load_corpus
from ..tools.exchange.interop import import_torch
from ..tools.exchange.torch_lm import from_state_dict
from ..train.config import TrainConfig
from ..train.lm_checkpoint import save_checkpoint


def add_parser(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("import-torch", help="read a word_language_model state_dict (.pt)",
                       description="Build a bptt language model from a PyTorch state_dict "
                                   "with word_language_model's names, read with "
                                   "weights_only=True; the vocabulary is --data's, in the "
                                   "order the torch model was trained with.")
    q.add_argument("file", metavar="PT")
    q.add_argument("--cell", choices=["lstm", "rnn"], default=None,
                   help="default: from the gate count")
    q.add_argument("--tie", action="store_true", help="tie the output to the embedding")
    q.add_argument("--data", default=None, metavar="ptb|DIR|FILE",
                   help="the corpus whose vocabulary the model uses (default: the built-in)")
    q.add_argument("--out", required=True, metavar="DIR")
    q.set_defaults(run=run_import)


def run_import(args: argparse.Namespace) -> int:
    torch = import_torch()
    out = Path(args.out)
    if (out / "best").exists():
        raise ValueError(f"{out} already holds a model; choose another --out")
    source = Path(args.file)
    if not source.exists():
        raise FileNotFoundError(2, "no such file or directory", str(source))
    if not source.is_file():  # a FIFO or a device would block the reader
        raise ValueError(f"{source} is not a regular file; give the .pt file")
    try:
        with warnings.catch_warnings():  # torch's notes on odd pickles: the error says it
            warnings.simplefilter("ignore")
            state = torch.load(args.file, weights_only=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - torch's unpickler raises many kinds; none may escape
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"{args.file} is not a readable state_dict of tensors "
                         f"({type(e).__name__}{': ' + first if first else ''}); only tensors "
                         f"are accepted (weights_only=True)") from None
    if not isinstance(state, dict):
        raise ValueError(f"{args.file} holds a {type(state).__name__}, not a state_dict")
    model = from_state_dict(state, cell=args.cell, tie=args.tie, source=args.file)
    corpus = load_corpus(args.data, "word")
    if len(corpus.vocab) != model.vocab_size:
        raise ValueError(f"{args.file} has {model.vocab_size:,} words but the vocabulary of "
                         f"{args.data or 'the built-in corpus'} has {len(corpus.vocab):,}: "
                         f"give --data the corpus the model was trained on")
    data = str(Path(args.data).resolve()) if args.data and Path(args.data).exists() else args.data
    config = TrainConfig(data=data, cell=model.cell, layers=model.num_layers,
                         embed=model.embed_size, hidden=model.hidden_size,
                         tie=model.tie_weights, out=str(out)).resolved()
    save_checkpoint(out / "best", model, corpus.vocab, config.to_dict(),
                    data={"torch_file": str(Path(args.file).resolve())})
    print(f"imported {args.file}: {model} -> {out}/best; try: bptt eval {out}")
    return 0
