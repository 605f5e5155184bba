"""``bptt export`` and ``bptt import-torch``: language models to ONNX and to/from PyTorch.

    bptt export runs/ptb model.onnx                 # standard LSTM/GRU/RNN operators
    bptt export runs/fit model.onnx                 # a bptt fit run (sequence estimator)
    bptt export runs/ptb --torch model.pt           # a state_dict, word_language_model's names
    bptt import-torch model.pt --data ../shared/data/ptb --tie --out runs/from-torch

The .pt file holds tensors only (``torch.save`` of a state_dict; no pickled classes) and is
read back with ``torch.load(..., weights_only=True)``. Needs the ``torch`` package.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from ..atomic import atomic_file
from ..data.corpus import load_corpus
from ..tools.interop import import_torch
from ..tools.onnx_export import OPSET, export_estimator_onnx, export_onnx
from ..tools.torch_lm import from_state_dict, state_dict_of
from ..train.checkpoint import load_checkpoint, save_checkpoint
from ..train.config import TrainConfig
from ..train.estimators import SequenceClassifier, SequenceRegressor
from ..train.store import read_checkpoint

ESTIMATORS = {"sequence-regressor": SequenceRegressor, "sequence-classifier": SequenceClassifier}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a trained language model as ONNX (OUT.onnx) or "
                                      "for PyTorch (--torch PT)",
                       description="Write the model of RUN as an ONNX graph with the standard "
                                   "RNN/LSTM/GRU operators (needs the onnx extra) and/or as a "
                                   "PyTorch state_dict laid out like PyTorch's "
                                   "word_language_model example (encoder, rnn, decoder).")
    p.add_argument("run_dir", metavar="RUN", help="a run or checkpoint directory")
    p.add_argument("onnx_out", nargs="?", default=None, metavar="OUT.onnx",
                   help="the ONNX file to write")
    p.add_argument("--torch", default=None, metavar="PT", help="the .pt file to write")
    p.set_defaults(run=run_export)
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


def run_export(args: argparse.Namespace) -> int:
    if args.onnx_out is None and args.torch is None:
        raise ValueError("say what to write: OUT.onnx and/or --torch PT")
    if (args.onnx_out is not None and args.torch is not None
            and Path(args.onnx_out).resolve() == Path(args.torch).resolve()):
        raise ValueError(f"OUT.onnx and --torch name the same file ({args.onnx_out}): give "
                         f"each its own name")
    run = Path(args.run_dir)
    folder = run / "model" if (run / "model").is_dir() else run  # bptt fit keeps OUT/model
    kind = read_checkpoint(folder).kind
    if kind in ESTIMATORS:
        if args.torch is not None:
            raise ValueError(f"--torch writes language models; {run} holds a {kind}")
        est = ESTIMATORS[kind].load(folder)
        path = export_estimator_onnx(est, args.onnx_out)
        print(f"wrote {path}: {type(est).__name__} ({est.cell}, H={est.hidden_size}) as ONNX "
              f"(opset {OPSET}); input X (N, T, {est.n_features_}), output outputs"
              + (" and probabilities" if kind == "sequence-classifier" else ""))
        return 0
    ck = load_checkpoint(args.run_dir)
    if args.onnx_out is not None:
        path = export_onnx(ck.model, args.onnx_out)
        print(f"wrote {path}: {ck.model} as ONNX (opset {OPSET}); inputs ids (N, T) and the "
              f"states h0.. (1, N, H), outputs logits (N, T, V) and h0_out..")
    if args.torch is None:
        return 0
    torch = import_torch()
    state = {k: torch.from_numpy(v.copy()) for k, v in state_dict_of(ck.model).items()}
    out = Path(args.torch)
    with atomic_file(out) as f:
        torch.save(state, f)
    print(f"wrote {out}: {ck.model} as word_language_model's state_dict "
          f"({', '.join(list(state)[:3])}, ...)")
    return 0


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
