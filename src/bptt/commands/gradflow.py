"""``bptt gradflow``: the vanishing/exploding gradient picture, as a table and a PNG."""

from __future__ import annotations

import argparse
import json
import sys

from ..figures import require_matplotlib
from ..nn.registry import cell_names
from ..tools.explaining.gradflow import format_table, gradient_flow_study
from ..tools.explaining.plots import plot_gradient_flow


def _floats(s: str) -> list[float]:
    try:
        return [float(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {s!r}") from None


def _cells(s: str) -> list[str]:
    cells = [c.strip() for c in s.split(",") if c.strip()]
    bad = [c for c in cells if c not in cell_names()]
    if bad or not cells:
        raise argparse.ArgumentTypeError(f"cells must be among {', '.join(cell_names())} "
                                         f"(registered cells), got {s!r}")
    return cells


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gradflow", help="||dL/dh_t|| over time for RNN/LSTM/GRU at several Wh scales",
        description="Run RNN, LSTM and GRU cells over a long adding-problem sequence with the "
                    "loss on the last step only, and print the norm of dL/dh_t for every t: "
                    "the vanishing (or exploding) gradient, for several scales of Wh; also the "
                    "parameter-gradient norm with and without clip_grads.")
    p.add_argument("--cells", type=_cells, default=["rnn", "lstm", "gru"],
                   help="comma-separated cells (default rnn,lstm,gru)")
    p.add_argument("--scales", type=_floats, default=[0.5, 1.0, 1.5, 2.0],
                   help="comma-separated scales of Wh (default 0.5,1,1.5,2)")
    p.add_argument("-T", "--time", dest="T", type=int, default=100, help="sequence length")
    p.add_argument("-H", "--hidden", dest="H", type=int, default=32, help="hidden size")
    p.add_argument("-N", "--batch", dest="N", type=int, default=16, help="batch size")
    p.add_argument("--init", choices=["orthogonal", "normal"], default="orthogonal",
                   help="Wh before scaling: orthogonal blocks or N(0, 1/H)")
    p.add_argument("--carry-bias", type=float, default=1.0,
                   help="bias of the gate that keeps the state (LSTM b_f, GRU -b_z); default 1")
    p.add_argument("--clip", type=float, default=1.0, help="max_norm of clip_grads")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate of the one SGD step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", metavar="PNG", default=None, help="write the picture here")
    p.add_argument("--json", metavar="PATH", default=None,
                   help="write every run (all norms) as JSON here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.plot:
        require_matplotlib()
    runs = gradient_flow_study(args.cells, args.scales, T=args.T, H=args.H, N=args.N,
                               init=args.init, carry_bias=args.carry_bias, max_norm=args.clip,
                               lr=args.lr, seed=args.seed)
    sys.stdout.write(format_table(runs))
    if args.json:
        data = [{k: v for k, v in vars(r).items() if k != "params"} | {
            "ratio": r.ratio, "per_step": r.per_step} for r in runs]
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plot:
        plot_gradient_flow(runs, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0
