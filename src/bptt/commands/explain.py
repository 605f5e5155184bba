"""``bptt explain``: one batch through a model, layer by layer, with shapes and equations."""

from __future__ import annotations

import argparse
import sys

from ..tools.explaining.explain import explain
from ..tools.explaining.models import model_names
from ..tools.explaining.page import explainer_page


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain", help="show the forward/backward flow of a model: shapes, equations, order",
        description="Run one small batch through MODEL and print, layer by layer in forward "
                    "order and then in backward order, the shapes (with the letters N, T, D, "
                    "H, V), the equations from the layers' docstrings, and for recurrent layers "
                    "the gradient entering and leaving every time step, numbered in execution "
                    "order.")
    p.add_argument("model", metavar="MODEL",
                   help=f"one of {', '.join(model_names())}, or a checkpoint directory")
    p.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    p.add_argument("-N", "--batch", dest="N", type=int, default=None,
                   help="batch size N (default 2)")
    p.add_argument("-T", "--time", dest="T", type=int, default=None,
                   help="time steps T (default 3; 5 for a checkpoint)")
    p.add_argument("--size", action="append", default=[], metavar="LETTER=N",
                   help="another size, e.g. --size H=8 --size V=20 (built-in models)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the batch")
    p.add_argument("--text", default=None,
                   help="a checkpoint only: run on this sentence (N=1) instead of random ids")
    p.add_argument("-o", "--out", default=None, help="write to this file instead of stdout")
    p.add_argument("--html", default=None, metavar="PAGE.html",
                   help="write the explainer page instead: the unrolled graph, a step-through "
                        "of forward and backward, every node's value and gradient (one "
                        "self-contained file)")
    p.add_argument("--lang", choices=["en", "ja"], default="en",
                   help="the explainer page's language (a button on the page switches)")
    p.set_defaults(run=run)


def _sizes(items: list[str]) -> dict[str, int]:
    dims = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key.strip() or not val.strip().isdigit():
            raise ValueError(f"--size wants LETTER=N, e.g. H=8, got {item!r}")
        dims[key.strip()] = int(val)
    return dims


def run(args: argparse.Namespace) -> int:
    if args.html:
        if args.size:
            raise ValueError("--html draws the model at its own sizes; drop --size")
        path = explainer_page(args.model, N=args.N, T=args.T, seed=args.seed,
                              text=args.text, lang=args.lang).save(args.html)
        print(f"wrote {path}: open it in a browser (it needs no network)", file=sys.stderr)
        return 0
    ex = explain(args.model, N=args.N, T=args.T, dims=_sizes(args.size), seed=args.seed,
                 text=args.text)
    text = ex.render(args.format)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
