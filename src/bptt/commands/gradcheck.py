"""``bptt gradcheck``: check every layer's backward against numerical differentiation.

    $ bptt gradcheck                   # every layer
    $ bptt gradcheck --layer TimeLSTM --layer Affine --tol 1e-7

One row per layer with its worst relative error (float64, random upstream gradients) and
PASS/FAIL; exit status 1 if any layer fails. The registry of layers is
:func:`bptt.tools.verification.gradcheck_suite.layer_cases`.
"""

from __future__ import annotations

import argparse
import math

from ..tools.verification.gradcheck_suite import run_suite


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gradcheck", help="check each layer's gradients numerically (float64)",
                       description="Compare every layer's hand-written backward with central "
                                   "differences in float64; exit 1 if any layer fails.")
    p.add_argument("--layer", action="append", metavar="NAME", default=None,
                   help="check only this layer (repeatable; case-insensitive), e.g. TimeLSTM")
    p.add_argument("--tol", type=float, default=1e-6,
                   help="largest relative error that passes (default 1e-6)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random upstream gradients")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.tol > 0:
        raise ValueError(f"--tol must be positive, got {args.tol}")
    results = run_suite(args.layer, tol=args.tol, seed=args.seed)
    width = max([len("layer")] + [len(r.name) for r in results])
    print(f"{'layer':<{width}}  {'worst rel. error':>16}  result")
    for r in results:
        err = "-" if math.isnan(r.worst) else f"{r.worst:.2e}"
        line = f"{r.name:<{width}}  {err:>16}  {'PASS' if r.passed else 'FAIL'}"
        if r.error:
            line += f"  ({r.error})"
        print(line)
    failed = [r.name for r in results if not r.passed]
    print(f"{len(results) - len(failed)}/{len(results)} layers pass at tol {args.tol:g}"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
