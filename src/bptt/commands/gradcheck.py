"""``bptt gradcheck``: check every layer's backward against numerical differentiation."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gradcheck", help="check each layer's gradients numerically (float64)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("bptt gradcheck is being written")
