"""``bptt export``: a trained model to ONNX, or a language model to PyTorch.

    bptt export runs/ptb model.onnx                 # standard LSTM/GRU/RNN operators
    bptt export runs/fit model.onnx                 # a bptt fit run (sequence estimator)
    bptt export runs/ptb --torch model.pt           # a state_dict, word_language_model's names

The .pt file holds tensors only (``torch.save`` of a state_dict; no pickled classes), read back
by ``bptt import-torch`` (:mod:`bptt.commands.import_torch`). Needs the ``torch`` package.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..atomic import atomic_file
from ..tools.exchange.interop import import_torch
from ..tools.exchange.onnx_export import OPSET, export_estimator_onnx, export_onnx
from ..tools.exchange.torch_lm import state_dict_of
from ..train.estimators import KINDS
from ..train.kinds import load_checkpoint
from ..train.lm_checkpoint import load_language_model

ESTIMATOR_KINDS = tuple(KINDS.values())  # sequence-regressor, sequence-classifier


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


def run_export(args: argparse.Namespace) -> int:
    if args.onnx_out is None and args.torch is None:
        raise ValueError("say what to write: OUT.onnx and/or --torch PT")
    if (args.onnx_out is not None and args.torch is not None
            and Path(args.onnx_out).resolve() == Path(args.torch).resolve()):
        raise ValueError(f"OUT.onnx and --torch name the same file ({args.onnx_out}): give "
                         f"each its own name")
    run = Path(args.run_dir)
    folder = run / "model" if (run / "model").is_dir() else run  # bptt fit keeps OUT/model
    ck = load_checkpoint(folder)  # any kind, every file checked once
    kind = ck.kind
    if kind in ESTIMATOR_KINDS:
        if args.torch is not None:
            raise ValueError(f"--torch writes language models; {run} holds a {kind}")
        est = ck.model
        path = export_estimator_onnx(est, args.onnx_out)
        print(f"wrote {path}: {type(est).__name__} ({est.cell}, H={est.hidden_size}) as ONNX "
              f"(opset {OPSET}); input X (N, T, {est.n_features_}), output outputs"
              + (" and probabilities" if kind == "sequence-classifier" else ""))
        return 0
    if kind != "language-model":
        load_language_model(folder)  # says what the run holds and what it is for
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
